"""Integrity of data sets and checkpoints: SHA-256 manifests that catch a tampered file.

The supply-chain half of a backdoor defence: if you know the hash of what you vetted,
a swapped data file or model checkpoint is caught before it is used.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import torch


def sha256_file(path, chunk_size: int = 1 << 20) -> str:
    """Hex SHA-256 of a file, read in chunks so that large files need little memory."""
    if not isinstance(path, (str, Path)):
        raise TypeError(f"path must be a str or pathlib.Path naming a file, got {type(path).__name__}")
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(chunk_size), b""):
            digest.update(chunk)
    return digest.hexdigest()


def sha256_tensor(tensor: torch.Tensor) -> str:
    """Hex SHA-256 of a tensor's dtype, shape and bytes (the same data always gives the same hash)."""
    t = tensor.detach().cpu().contiguous()
    digest = hashlib.sha256(f"{t.dtype}{tuple(t.shape)}".encode())
    digest.update(t.view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return digest.hexdigest()


def make_manifest(folder) -> dict[str, str]:
    """{relative path: SHA-256} for every file under `folder`."""
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"{folder} is not a folder")
    return {p.relative_to(folder).as_posix(): sha256_file(p) for p in sorted(folder.rglob("*")) if p.is_file()}


def save_manifest(manifest: dict[str, str], path) -> None:
    Path(path).write_text(json.dumps(manifest, indent=1, sort_keys=True))


def load_manifest(path) -> dict[str, str]:
    return json.loads(Path(path).read_text())


def verify_manifest(manifest: dict[str, str], folder) -> list[str]:
    """The names in `manifest` whose file under `folder` is missing or has another hash (sorted)."""
    if not isinstance(manifest, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in manifest.items()):
        raise TypeError("manifest must be a dict {relative path: SHA-256 hex string}, as make_manifest returns; "
                        f"got {type(manifest).__name__} {manifest!r:.80}")
    folder = Path(folder)
    return sorted(name for name, digest in manifest.items()
                  if not (folder / name).is_file() or sha256_file(folder / name) != digest)
