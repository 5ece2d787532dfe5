"""Checks for lessons 00-01: integrity manifests, the patch trigger and poisoning."""

from __future__ import annotations

import hashlib
import tempfile
from pathlib import Path

import torch

from ..integrity import make_manifest, sha256_file, verify_manifest
from ..poison import poison_samples
from ..triggers import patch_trigger, stamp_patch
from .core import call_learner, expect_tensor, expect_unchanged, run_check


def check_sha256_file(fn) -> bool:
    """fn(path) -> the file's SHA-256 as 64 lowercase hex characters."""
    def body():
        with tempfile.TemporaryDirectory() as tmp:
            cases = {"empty": b"", "short": b"backdoor", "3 MB": bytes(range(256)) * 12_000}
            for what, content in cases.items():
                path = Path(tmp) / "file.bin"
                path.write_bytes(content)
                got = call_learner(fn, path)
                want = sha256_file(path)
                if not isinstance(got, str):
                    raise AssertionError(f"{what} file: expected a hex string, got {type(got).__name__}"
                                         + (" (call .hexdigest(), not .digest())" if isinstance(got, bytes) else ""))
                if got != want:
                    hint = " (that is MD5, not SHA-256)" if got == hashlib.md5(content).hexdigest() else ""
                    raise AssertionError(f"{what} file: expected {want[:16]}..., got {got[:16]}...{hint}")
        return "empty, short and multi-chunk files"
    return run_check("sha256_file", body)


def check_verify_manifest(fn) -> bool:
    """fn(manifest, folder) -> sorted list of names that are missing or changed."""
    def body():
        with tempfile.TemporaryDirectory() as tmp:
            folder = Path(tmp)
            for name, text in {"train.bin": "digits", "model.pt": "weights", "sub/readme.txt": "hi"}.items():
                (folder / name).parent.mkdir(exist_ok=True)
                (folder / name).write_text(text)
            manifest = make_manifest(folder)
            cases = [("nothing changed", lambda: None),
                     ("model.pt rewritten", lambda: (folder / "model.pt").write_text("weightz")),
                     ("train.bin deleted as well", lambda: (folder / "train.bin").unlink())]
            for what, tamper in cases:
                tamper()
                got = call_learner(fn, dict(manifest), folder)
                want = verify_manifest(manifest, folder)
                if not isinstance(got, list):
                    raise AssertionError(f"{what}: expected a list of names, got {type(got).__name__}")
                if got != want:
                    raise AssertionError(f"{what}: expected {want}, got {got}")
        return "unchanged, rewritten and deleted files"
    return run_check("verify_manifest", body)


def check_patch_trigger(fn) -> bool:
    """fn(images, size, row, col, color) -> images with a size x size square of `color` at (row, col)."""
    def body():
        g = torch.Generator().manual_seed(0)
        cases = [(torch.zeros(2, 1, 8, 8), 3, 5, 5, 1.0), (torch.rand(3, 1, 10, 10, generator=g), 2, 0, 7, 1.0),
                 (torch.rand(2, 3, 6, 6, generator=g), 1, 2, 3, 0.5)]
        for images, size, row, col, color in cases:
            before = images.clone()
            got = call_learner(fn, images, size=size, row=row, col=col, color=color)
            want = stamp_patch(before, size=size, row=row, col=col, color=color)
            what = f"images {tuple(images.shape)}, size={size}, row={row}, col={col}, color={color}"
            expect_unchanged(before, images, "the input images")
            expect_tensor(got, want, what)
        return f"{len(cases)} cases"
    return run_check("add_patch_trigger", body)


def check_poison_samples(fn) -> bool:
    """fn(x, y, indices, trigger, target) -> (x_poisoned, y_poisoned), new tensors."""
    def body():
        g = torch.Generator().manual_seed(1)
        x = torch.rand(6, 1, 8, 8, generator=g)
        y = torch.tensor([0, 1, 2, 3, 4, 5])
        indices = torch.tensor([1, 4])

        def trigger(images):
            return patch_trigger(images, size=2, position=(0, 0))

        x0, y0 = x.clone(), y.clone()
        got = call_learner(fn, x, y, indices, trigger, 7)
        if not (isinstance(got, tuple) and len(got) == 2):
            raise AssertionError(f"expected a tuple (x_poisoned, y_poisoned), got {type(got).__name__}")
        want_x, want_y = poison_samples(x0, y0, indices, trigger, 7)
        expect_unchanged(x0, x, "x")
        expect_unchanged(y0, y, "y")
        expect_tensor(got[1], want_y, "y_poisoned (only the chosen samples get the target label)")
        expect_tensor(got[0], want_x, "x_poisoned (only the chosen samples carry the trigger)")
        return "trigger and labels on the chosen samples only, inputs untouched"
    return run_check("poison_samples", body)
