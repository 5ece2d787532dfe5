"""Checks for lesson 07, the trojan hunt: the patch scan and the contract of a model detector."""

from __future__ import annotations

import copy
import math

import torch
import torch.nn.functional as F
from torch import nn

from ..models import make_model
from ..zoo import patch_scan_score
from .core import call_learner, expect_unchanged, run_check


class ToyTrojan(nn.Module):
    """A toy trojaned classifier for checks: `base`, except that a bright `size` x `size` patch with
    its top-left corner at `corner` sends the input to `target` (no training needed)."""

    def __init__(self, base: nn.Module, corner: tuple[int, int], size: int, target: int):
        super().__init__()
        self.base = base
        self.corner, self.size, self.target = corner, size, target

    @property
    def num_classes(self) -> int:
        return self.base.num_classes

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        logits = self.base(x)
        r, c = self.corner
        hit = x[:, :, r:r + self.size, c:c + self.size].amin(dim=(1, 2, 3)) > 0.9
        return logits + 50.0 * hit[:, None] * F.one_hot(torch.tensor(self.target), self.num_classes)


def _toys(seed: int = 0):
    """(clean toy CNN, trojaned toy, clean images (16, 1, 12, 12) in [0, 0.8])."""
    clean = make_model("small-cnn", in_shape=(1, 12, 12), num_classes=5, seed=seed).eval()
    x = 0.8 * torch.rand(16, 1, 12, 12, generator=torch.Generator().manual_seed(seed))
    with torch.inference_mode():
        usual = int(clean(x).argmax(1).mode().values)
    trojan = ToyTrojan(copy.deepcopy(clean), corner=(6, 6), size=3, target=(usual + 1) % 5).eval()
    return clean, trojan, x


def _as_float(got, what: str) -> float:
    if isinstance(got, torch.Tensor) and got.numel() == 1:
        got = got.item()
    if isinstance(got, bool) or not isinstance(got, (int, float)) and not hasattr(got, "__float__"):
        raise AssertionError(f"{what}: expected a number (a float), got {type(got).__name__}")
    value = float(got)
    if not math.isfinite(value):
        raise AssertionError(f"{what}: expected a finite number, got {value}")
    return value


def check_patch_scan(fn) -> bool:
    """fn(model, x_clean, size=4, stride=3, color=1.0) -> the largest one-class share over all positions."""
    def body():
        clean, trojan, x = _toys()
        cases = [("a random CNN", clean, dict(size=4, stride=3, color=1.0)),
                 ("a toy trojan (3x3 patch at (6, 6))", trojan, dict(size=3, stride=3, color=1.0)),
                 ("the same trojan, a 4x4 patch every 2 pixels", trojan, dict(size=4, stride=2, color=1.0)),
                 ("the same trojan, a dark patch", trojan, dict(size=3, stride=3, color=0.0))]
        for what, model, kw in cases:
            before = x.clone()
            got = _as_float(call_learner(fn, model, x, **kw), what)
            expect_unchanged(before, x, "x_clean")
            want = patch_scan_score(model, x, **kw)
            if not math.isclose(got, want, abs_tol=1e-6):
                hint = ""
                if got > want and math.isclose(got, 1.0):
                    hint = " (count only images whose prediction CHANGES to the class; ones already predicted as it do not count)"
                elif got < want:
                    hint = " (did you cover every position, including the last row and column: see cu.zoo.patch_grid?)"
                raise AssertionError(f"{what}, {kw}: expected {want:.4f}, got {got:.4f}{hint}")
        return f"{len(cases)} cases: a random CNN and a toy trojan"
    return run_check("patch_scan_score", body)


def check_detector(fn) -> bool:
    """fn(model, x_clean) -> a finite float; deterministic; leaves the model and the images as they were."""
    def body():
        clean, trojan, x = _toys(1)
        before_x = x.clone()
        before_w = {k: v.clone() for k, v in trojan.state_dict().items()}
        first = _as_float(call_learner(fn, trojan, x), "the toy trojan's score")
        again = _as_float(call_learner(fn, trojan, x), "the toy trojan's score, second call")
        expect_unchanged(before_x, x, "x_clean")
        for k, v in trojan.state_dict().items():
            expect_unchanged(before_w[k], v, f"the model's {k}")
        if trojan.training:
            raise AssertionError("the model was left in training mode; call model.eval() (or do not change it)")
        if not math.isclose(first, again, rel_tol=1e-6, abs_tol=1e-9):
            raise AssertionError(f"two calls on the same model gave {first:.6g} and {again:.6g}; seed any randomness "
                                 "so that a score can be reproduced")
        other = _as_float(call_learner(fn, clean, x), "the clean toy's score")
        order = "higher" if first > other else "NOT higher"
        return f"a finite, reproducible float, no side effects; the toy trojan scores {first:.3g}, {order} than the clean toy ({other:.3g})"
    return run_check("detector", body)
