"""Check for lesson 08's model-hub exercise: verify a checkpoint against its card, then load it safely."""

from __future__ import annotations

import tempfile
from pathlib import Path

import torch

from ..hub import PAYLOAD_TEXT, save_checkpoint, save_trojaned_checkpoint
from ..integrity import sha256_file
from .core import call_learner, run_check


def _expect_refused(fn, path, card, marker: Path, what: str) -> None:
    try:
        got = call_learner(fn, path, card)
    except AssertionError as err:
        if marker.exists():
            raise AssertionError(f"{what}: the payload ran (it wrote {marker.name}) before you refused the file: "
                                 "check the hash BEFORE unpickling, and unpickle with weights_only=True") from None
        if "raised ValueError" in str(err) or "UnpicklingError" in str(err):
            return
        raise
    if marker.exists() and marker.read_text() == PAYLOAD_TEXT:
        raise AssertionError(f"{what}: the payload ran (it wrote {marker.name}): never unpickle with weights_only=False")
    raise AssertionError(f"{what}: expected a refusal (ValueError or UnpicklingError), but you returned "
                         f"{type(got).__name__}")


def check_load_verified(fn) -> bool:
    """fn(path, card) -> state dict if sha256(path) == card["sha256"], else ValueError; never runs a payload."""
    def body():
        weights = {"w": torch.arange(6.0).view(2, 3), "b": torch.zeros(2)}
        with tempfile.TemporaryDirectory() as tmp:
            tmp = Path(tmp)
            good = save_checkpoint(weights, tmp / "model.pt")
            card = {"name": "demo", "sha256": sha256_file(good)}
            got = call_learner(fn, good, dict(card))
            if not isinstance(got, dict) or set(got) != set(weights):
                raise AssertionError(f"the vetted file: expected the state dict with keys {sorted(weights)}, got "
                                     f"{sorted(got) if isinstance(got, dict) else type(got).__name__} (return ['state_dict'])")
            if any(not torch.equal(got[k], weights[k]) for k in weights):
                raise AssertionError("the vetted file: the tensors you returned differ from the saved ones")
            swapped = save_checkpoint({k: v + 1 for k, v in weights.items()}, tmp / "swapped.pt")
            _expect_refused(fn, swapped, dict(card), tmp / "none.txt", "a swapped file (other weights, old card)")
            upper = dict(card, sha256=card["sha256"].upper())
            try:
                call_learner(fn, good, upper)
            except AssertionError as err:
                raise AssertionError(f"the vetted file, its card's hash written in capitals, was refused ({err}): "
                                     "hex is case-insensitive, compare in lowercase") from None
            trojan = save_trojaned_checkpoint(weights, tmp / "trojan.pt", tmp / "PAYLOAD_RAN.txt")
            _expect_refused(fn, trojan, dict(card), tmp / "PAYLOAD_RAN.txt", "a trojaned file under the old card")
            careless = {"name": "demo", "sha256": sha256_file(trojan)}  # the uploader hashed the trojan itself
            _expect_refused(fn, trojan, careless, tmp / "PAYLOAD_RAN.txt", "a trojaned file whose own hash is on the card")
        return "vetted file loads; swapped file refused; payload never runs, even with a matching hash"
    return run_check("load_verified", body)
