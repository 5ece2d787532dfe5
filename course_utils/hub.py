"""Model hubs and the supply chain (lesson 08): a checkpoint is code, hashes pin it, cards record it.

A PyTorch checkpoint saved with `torch.save` is a pickle, and unpickling may call any function the
file names: `torch.load(path, weights_only=False)` on a downloaded file runs the uploader's code
(the "malicious pickle" models found on public hubs; see Trail of Bits' "Never a dill moment",
2021, and JFrog's 2024 report). `weights_only=True` (the default since PyTorch 2.6) unpickles only
tensors and plain containers, and safetensors (Hugging Face) stores nothing but tensors and a JSON
header, so neither can run a payload. A hash recorded when the model was vetted (lesson 00's
manifests) catches a file swapped after that; a model card and a datasheet (Mitchell et al. 2019;
Gebru et al. 2021) record provenance, hashes and the checks run, so the next person can verify.

The payload here is harmless on purpose: it writes one small text file at a path the caller gives
(a temporary folder in the lesson) and does nothing else.
"""

from __future__ import annotations

import datetime
import pathlib
from collections.abc import Mapping
from pathlib import Path

import torch

from .integrity import sha256_file

PAYLOAD_TEXT = "this file was written by code hidden in a checkpoint\n"


class Payload:
    """An object whose unpickling writes PAYLOAD_TEXT to `marker` (a demonstration: nothing else happens).

    Pickle rebuilds an object by calling what `__reduce__` names with the arguments it names; an
    attacker names `os.system` and a shell command, this demo names `Path.write_text`.
    """

    def __init__(self, marker):
        self.marker = Path(marker)

    def __reduce__(self):
        return (pathlib.Path.write_text, (self.marker, PAYLOAD_TEXT))


def save_trojaned_checkpoint(state_dict: Mapping[str, torch.Tensor], path, marker) -> Path:
    """Save `state_dict` with a `Payload(marker)` inside, as a compromised upload would: returns `path`.

    The file looks like any checkpoint: loading it with weights_only=False returns the weights
    (under "state_dict") and, as a side effect, writes the marker file.
    """
    path = Path(path)
    torch.save({"state_dict": dict(state_dict), "metadata": Payload(marker)}, path)
    return path


def save_checkpoint(state_dict: Mapping[str, torch.Tensor], path) -> Path:
    """Save a plain state dict (tensors only) with torch.save: returns `path`."""
    path = Path(path)
    torch.save({"state_dict": dict(state_dict)}, path)
    return path


def load_verified(path, card: Mapping) -> dict[str, torch.Tensor]:
    """The state dict in `path` if its SHA-256 equals `card["sha256"]`, loaded without running code.

    Order matters: hash first (reading bytes runs nothing), refuse on mismatch, and only then
    unpickle, with weights_only=True so that even a file whose hash was recorded carelessly cannot
    run a payload. Raises ValueError on a hash mismatch or a card without "sha256" (a 64-character
    hex string), and pickle.UnpicklingError when the file holds anything but tensors and containers.
    """
    expected = card.get("sha256") if isinstance(card, Mapping) else None
    if not isinstance(expected, str) or len(expected) != 64:
        raise ValueError("the model card must record the checkpoint's SHA-256 as card['sha256'] (64 hex characters)")
    actual = sha256_file(path)
    if actual != expected.lower():
        raise ValueError(f"{Path(path).name}: SHA-256 {actual[:12]}... does not match the card's {expected[:12]}...; "
                         "the file is not the one that was vetted: do not load it")
    return torch.load(path, map_location="cpu", weights_only=True)["state_dict"]


def _safetensors():
    try:
        import safetensors.torch
    except ImportError:
        raise ImportError("this needs the safetensors package: pip install safetensors "
                          "(it is in the course's requirements)") from None
    return safetensors.torch


def save_safetensors(state_dict: Mapping[str, torch.Tensor], path) -> Path:
    """Save tensors in the safetensors format (a JSON header and raw bytes: no code can be stored)."""
    _safetensors().save_file(dict(state_dict), str(path))
    return Path(path)


def load_safetensors(path) -> dict[str, torch.Tensor]:
    """Load a safetensors file: parsing it reads a header and bytes, it never calls a function."""
    return _safetensors().load_file(str(path))


def model_card(name: str, checkpoint, *, data: str, provenance: str, metrics: Mapping[str, str],
               checks: Mapping[str, str], intended_use: str, limitations: str) -> dict:
    """A model card (Mitchell et al., 2019, "Model Cards for Model Reporting") as a dict, hash included.

    checks: {check run: its result} (e.g. the poisoning detectors and what they found); metrics:
    {name: value as printed}. The SHA-256 of `checkpoint` is computed here, from the file itself.
    """
    for what, value in {"name": name, "data": data, "provenance": provenance, "intended_use": intended_use}.items():
        if not isinstance(value, str) or not value.strip():
            raise ValueError(f"the model card needs a non-empty {what}")
    if not checks:
        raise ValueError("record at least one check in `checks`: a card without them cannot say the model was vetted")
    return {"name": name, "file": Path(checkpoint).name, "sha256": sha256_file(checkpoint),
            "date": datetime.date.today().isoformat(), "training data": data, "provenance": provenance,
            "intended use": intended_use, "metrics": dict(metrics), "checks run": dict(checks),
            "limitations": limitations}


def datasheet(name: str, *, source: str, licence: str, collection: str, composition: str, preprocessing: str,
              known_risks: str, fingerprint: str) -> dict:
    """A datasheet for a data set (Gebru et al., 2021, "Datasheets for Datasets") as a dict.

    fingerprint: a hash of the data as used (e.g. `cu.integrity.sha256_tensor` of the table), so that a
    later copy can be checked against what was vetted.
    """
    fields = {"source": source, "licence": licence, "collection": collection, "composition": composition,
              "preprocessing": preprocessing, "known risks": known_risks, "fingerprint": fingerprint}
    empty = [k for k, v in fields.items() if not isinstance(v, str) or not v.strip()]
    if empty:
        raise ValueError(f"the datasheet needs every field filled in; empty: {empty}")
    return {"name": name, **fields}


def as_markdown(card: Mapping) -> str:
    """A card or datasheet dict as a markdown list (nested dicts as sub-lists), for display or a README."""
    lines = []
    for key, value in card.items():
        if isinstance(value, Mapping):
            lines.append(f"- **{key}**:")
            lines += [f"  - {k}: {v}" for k, v in value.items()]
        else:
            lines.append(f"- **{key}**: {value}")
    return "\n".join(lines)
