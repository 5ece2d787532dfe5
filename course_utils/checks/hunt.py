"""Checks for lesson 07, the trojan hunt: the patch scan and the contract of a model detector."""

from __future__ import annotations

import copy
import math

import torch
import torch.nn.functional as F
from torch import nn

from ..models import make_model
from ..zoo import invert_triggers, patch_scan_score, trigger_success
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
        x8 = (x * 255).round().to(torch.uint8)  # the notebook passes uint8 digits (x_scan)
        cases = [("a random CNN", clean, x, dict(size=4, stride=3, color=1.0)),
                 ("a toy trojan (3x3 patch at (6, 6))", trojan, x, dict(size=3, stride=3, color=1.0)),
                 ("the same trojan, uint8 images as the notebook passes", trojan, x8, dict(size=3, stride=3, color=1.0)),
                 ("the same trojan, a 4x4 patch every 2 pixels", trojan, x, dict(size=4, stride=2, color=1.0)),
                 ("the same trojan, a dark patch", trojan, x, dict(size=3, stride=3, color=0.0))]
        for what, model, images, kw in cases:
            before = images.clone()
            got = _as_float(call_learner(fn, model, images, **kw), what)
            expect_unchanged(before, images, "x_clean")
            want = patch_scan_score(model, images, **kw)
            if not math.isclose(got, want, abs_tol=1e-6):
                hint = ""
                if images.dtype == torch.uint8:
                    hint = " (uint8 images hold 0-255: convert with cu.as_float before stamping a patch of value `color`)"
                elif got > want and math.isclose(got, 1.0):
                    hint = " (count only images whose prediction CHANGES to the class; ones already predicted as it do not count)"
                elif got < want:
                    hint = " (did you cover every position, including the last row and column: see cu.zoo.patch_grid?)"
                raise AssertionError(f"{what}, {kw}: expected {want:.4f}, got {got:.4f}{hint}")
        return f"{len(cases)} cases: a random CNN and a toy trojan, float and uint8 images"
    return run_check("patch_scan_score", body)


class SoftToyTrojan(ToyTrojan):
    """ToyTrojan with a smooth trigger response (a sigmoid of the patch's mean brightness), so that a
    gradient leads an optimiser to the trigger, as it does in a trained network."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        r, c = self.corner
        level = x[:, :, r:r + self.size, c:c + self.size].mean(dim=(1, 2, 3))
        boost = 40.0 * torch.sigmoid(12.0 * (level - 0.95))
        return self.base(x) + boost[:, None] * F.one_hot(torch.tensor(self.target), self.num_classes)


def _soft_toys(seed: int = 2):
    clean, trojan, x = _toys(seed)
    soft = SoftToyTrojan(trojan.base, trojan.corner, trojan.size, trojan.target).eval()
    return clean, soft, x


def check_invert_triggers(fn) -> bool:
    """fn(model, x_fit, radius=3.0, steps=30, batch_size=20, lr=0.5, seed=0) -> deltas (K, C, H, W)."""
    def body():
        clean, trojan, x = _soft_toys()
        x8 = (x * 255).round().to(torch.uint8)
        before_x = x8.clone()
        before_w = {k: v.clone() for k, v in trojan.state_dict().items()}
        kw = dict(radius=2.0, steps=40, batch_size=8, lr=0.3, seed=0)
        got = call_learner(fn, trojan, x8, **kw)
        k, shape = trojan.num_classes, tuple(x.shape[1:])
        if not isinstance(got, torch.Tensor) or tuple(got.shape) != (k, *shape) or not got.is_floating_point():
            raise AssertionError(f"expected a float tensor of shape {(k, *shape)} (one perturbation per class), got "
                                 f"{type(got).__name__} {tuple(getattr(got, 'shape', ()))} {getattr(got, 'dtype', '')}")
        expect_unchanged(before_x, x8, "x_fit")
        for name, v in trojan.state_dict().items():
            expect_unchanged(before_w[name], v, f"the model's {name}")
        if not all(p.requires_grad for p in trojan.parameters()):
            raise AssertionError("the model's parameters were left with requires_grad=False; restore them (try/finally)")
        if got.requires_grad:
            raise AssertionError("return the perturbations detached from the graph (delta.detach())")
        norms = got.flatten(1).norm(dim=1)
        if norms.max() > kw["radius"] * 1.001:
            raise AssertionError(f"perturbation norms must be <= radius {kw['radius']}, the largest is "
                                 f"{norms.max():.3f}: project every delta_k back onto the L2 ball after each step")
        again = call_learner(fn, trojan, x8, **kw)
        if not torch.allclose(got, again, atol=1e-5):
            raise AssertionError("two calls with the same seed gave different perturbations; draw the batches with "
                                 "a torch.Generator seeded with `seed`")
        success = trigger_success(trojan, x, got)
        want = trigger_success(trojan, x, invert_triggers(trojan, x8, **kw))
        target = trojan.target
        if success[target] < want[target] - 0.25:
            raise AssertionError(f"your trigger for the backdoor's target class {target} moves {success[target]:.0%} of "
                                 f"the images there, the reference's {want[target]:.0%}: minimise the cross-entropy "
                                 "TOWARDS class k (gradient descent on the loss), with every image under every delta_k")
        return f"shape, L2 projection, reproducible, model untouched; the toy's target reached by {success[target]:.0%}"
    return run_check("invert_triggers", body)


def check_detector(fn) -> bool:
    """fn(model, x_clean) -> a probability in [0, 1]; deterministic; no side effects; and it must rank
    toy trojans above their clean twins (a constant, or a score that does not separate them, fails)."""
    def body():
        scores = []
        for seed in (1, 3):
            clean, trojan, x = _toys(seed)
            x = torch.cat([x, x.flip(-1)])  # 32 images: enough for a detector that holds some out
            before_x = x.clone()
            before_w = {k: v.clone() for k, v in trojan.state_dict().items()}
            first = _probability(call_learner(fn, trojan, x), "the toy trojan's score")
            again = _probability(call_learner(fn, trojan, x), "the toy trojan's score, second call")
            expect_unchanged(before_x, x, "x_clean")
            for k, v in trojan.state_dict().items():
                expect_unchanged(before_w[k], v, f"the model's {k}")
            if trojan.training:
                raise AssertionError("the model was left in training mode; call model.eval() (or do not change it)")
            if not math.isclose(first, again, rel_tol=1e-6, abs_tol=1e-9):
                raise AssertionError(f"two calls on the same model gave {first:.6g} and {again:.6g}; seed any "
                                     "randomness so that a score can be reproduced")
            other = _probability(call_learner(fn, clean, x), "the clean toy's score")
            scores.append((first, other))
        if not all(t > c for t, c in scores):
            pairs = ", ".join(f"trojan {t:.3g} vs clean {c:.3g}" for t, c in scores)
            raise AssertionError(f"a detector must give a trojaned model a higher probability than its clean twin; got "
                                 f"{pairs}. A constant (or anything that ignores the trigger) tells them apart no better "
                                 "than a coin: it scores 0")
        return "probabilities in [0, 1], reproducible, no side effects; toy trojans above their clean twins (" + \
            ", ".join(f"{t:.2f} > {c:.2f}" for t, c in scores) + ")"
    return run_check("detector", body)


def _probability(got, what: str) -> float:
    value = _as_float(got, what)
    if not 0.0 <= value <= 1.0:
        raise AssertionError(f"{what}: expected a probability in [0, 1], got {value:.4g}; squash a score into a "
                             "probability (a logistic of it, or cu.zoo.to_probability)")
    return value
