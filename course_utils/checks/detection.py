"""Checks for lesson 03: Neural Cleanse's objective and lambda schedule, the Spectral Signatures
class score (core exercises), and STRIP's entropy (optional warm-up).

Each check compares with the library's function on tiny fixed inputs and, when an answer is
wrong, tries the usual mistakes (a variant of the reference) to name what went wrong.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..detect import nc_objective, nc_update_costs, spectral_signature_class_scores, superimposed_entropy
from .core import call_learner, expect_tensor, expect_unchanged, run_check


def _tiny_model() -> nn.Module:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(16, 3))
    with torch.no_grad():
        model[1].weight.mul_(8)
    return model.eval().requires_grad_(False)


def _first_match(got, variants: dict, atol: float) -> str:
    """The name of the first wrong variant that `got` reproduces, or ''."""
    for name, want in variants.items():
        if isinstance(got, torch.Tensor) and got.shape == want.shape and torch.allclose(
                got.detach().double(), want.double(), atol=atol, rtol=0):
            return name
    return ""


# ----------------------------------------------------------------------------- Neural Cleanse


def _nc_variant(net, x, mask_logit, pattern_logit, cost, keep, *, squash=True, swap=False, use_keep=True,
                per_label=True):
    """nc_objective's loss with one deliberate mistake switched on (for naming a learner's error)."""
    k, b = len(mask_logit), len(x)
    mask = torch.sigmoid(mask_logit) if squash else mask_logit
    pattern = torch.sigmoid(pattern_logit) if squash else pattern_logit
    if swap:
        stamped = mask.unsqueeze(1) * x.unsqueeze(0) + ((1 - mask) * pattern).unsqueeze(1)
    else:
        stamped = (1 - mask.unsqueeze(1)) * x.unsqueeze(0) + (mask * pattern).unsqueeze(1)
    logits = net(stamped.flatten(0, 1)).view(k, b, -1)
    labels = torch.arange(k).view(k, 1).expand(k, b)
    ce = F.cross_entropy(logits.flatten(0, 1), labels.flatten(), reduction="none").view(k, b)
    weight = keep.float() if use_keep else torch.ones(k, b)
    l1 = mask.flatten(1).sum(1) if per_label else mask.sum().expand(k)
    return (ce * weight).sum(1) / weight.sum(1).clamp_min(1) + cost * l1


def _nc_case(seed: int, k: int = 3, b: int = 5):
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(b, 1, 4, 4, generator=g)
    mask_logit = torch.randn(k, 1, 4, 4, generator=g)
    pattern_logit = torch.randn(k, 1, 4, 4, generator=g)
    cost = torch.tensor([0.01, 0.1, 0.5])[:k]
    keep = torch.rand(k, b, generator=g) > 0.3
    keep[:, 0] = True  # every label keeps at least one image
    return x, mask_logit, pattern_logit, cost, keep


def check_nc_objective(fn) -> bool:
    """fn(net, x (B,C,H,W), mask_logit (K,1,H,W), pattern_logit (K,C,H,W), cost (K,), keep (K,B) bool)
    -> (loss (K,) differentiable, success (K,))."""
    mistakes = {"the mask and pattern are used without the sigmoid (they must lie in [0, 1])": dict(squash=False),
                "the mask is on the wrong side: (1 - m) * x + m * p keeps the image where m is 0": dict(swap=True),
                "`keep` is ignored: average the cross-entropy over the kept (label, image) pairs only": dict(use_keep=False),
                "the L1 norm is of all K masks together; each label pays for its own mask": dict(per_label=False)}

    def body():
        net = _tiny_model()
        for seed in (1, 2):
            x, mask_logit, pattern_logit, cost, keep = _nc_case(seed)
            inputs = [t.clone() for t in (x, mask_logit, pattern_logit, cost, keep)]
            ml, pl = mask_logit.clone().requires_grad_(True), pattern_logit.clone().requires_grad_(True)
            out = call_learner(fn, net, x, ml, pl, cost, keep)
            if not (isinstance(out, tuple) and len(out) == 2):
                raise AssertionError(f"expected a tuple (loss, success), got {type(out).__name__}")
            loss, success = out
            rl, rp = mask_logit.clone().requires_grad_(True), pattern_logit.clone().requires_grad_(True)
            want_loss, want_success = nc_objective(net, x, rl, rp, cost, keep)
            for before, after, name in zip(inputs, (x, mask_logit, pattern_logit, cost, keep),
                                           ("x", "mask_logit", "pattern_logit", "cost", "keep")):
                expect_unchanged(before, after, name)
            if isinstance(loss, torch.Tensor) and loss.shape == want_loss.shape and not torch.allclose(
                    loss.detach(), want_loss.detach(), atol=1e-4):
                variants = {why: _nc_variant(net, x, mask_logit, pattern_logit, cost, keep, **flags)
                            for why, flags in mistakes.items()}
                why = _first_match(loss, variants, 1e-4)
                if why:
                    raise AssertionError(f"loss: {why}")
            expect_tensor(loss.detach() if isinstance(loss, torch.Tensor) else loss, want_loss.detach(),
                          f"loss per label (case {seed})", atol=1e-4)
            if not loss.requires_grad:
                raise AssertionError("loss has no gradient: build it from mask_logit and pattern_logit with torch "
                                     "operations (no .detach(), .item() or torch.no_grad() around it)")
            loss.sum().backward()
            want_loss.sum().backward()
            expect_tensor(ml.grad, rl.grad, "gradient of the loss with respect to mask_logit", atol=1e-4)
            expect_tensor(pl.grad, rp.grad, "gradient of the loss with respect to pattern_logit", atol=1e-4)
            expect_tensor(success.detach() if isinstance(success, torch.Tensor) else success, want_success,
                          f"success per label (the kept share sent to label k, case {seed})", atol=1e-5)
        return "loss, gradients and success on 2 cases of 3 labels x 5 images"
    return run_check("nc_objective", body)


def check_nc_update_costs(fn) -> bool:
    """fn(costs (K,), streak (K,) int64, success (K,), threshold=, patience=) -> (costs, streak)."""
    def body():
        costs = torch.tensor([1e-3, 1e-3, 1e-3, 1e-3, 1e-3])
        streak = torch.tensor([0, 1, 2, -2, 2])
        success = torch.tensor([1.0, 0.995, 0.5, 0.2, 0.99])
        kwargs = dict(threshold=0.99, patience=3)
        before = (costs.clone(), streak.clone(), success.clone())
        got = call_learner(fn, costs, streak, success, **kwargs)
        want = nc_update_costs(*before, **kwargs)
        for b, a, name in zip(before, (costs, streak, success), ("costs", "streak", "success")):
            expect_unchanged(b, a, name)
        if not (isinstance(got, tuple) and len(got) == 2):
            raise AssertionError(f"expected a tuple (costs, streak), got {type(got).__name__}")
        got_costs, got_streak = got
        if isinstance(got_costs, torch.Tensor) and got_costs.shape == want[0].shape:
            if torch.allclose(got_costs, torch.where(success >= 0.99, costs * 1.5, costs / 1.5 ** 1.5)):
                raise AssertionError("costs: every label moved at once; wait for `patience` checks in a row")
            if not torch.allclose(got_costs[4], want[0][4]):
                raise AssertionError("costs: label 4 reached exactly the threshold (0.99), which counts as success")
        expect_tensor(got_costs, want[0], "costs after one check (threshold 0.99, patience 3)", atol=1e-9)
        expect_tensor(got_streak, want[1], "streak after one check (+ successes, - misses in a row; 0 after a "
                      "change; a streak that changes direction restarts at +-1)")
        again = call_learner(fn, *want, torch.tensor([0.995, 0.0, 0.0, 0.0, 0.995]), **kwargs)
        expect_tensor(again[0], nc_update_costs(*want, torch.tensor([0.995, 0.0, 0.0, 0.0, 0.995]), **kwargs)[0],
                      "costs after a second check", atol=1e-9)
        return "two rounds of 5 labels: up, down, patience, streak reset, the threshold itself"
    return run_check("nc_update_costs", body)


# ----------------------------------------------------------------------------- Spectral Signatures


def _ss_cases() -> list[torch.Tensor]:
    g = torch.Generator().manual_seed(3)
    tall = torch.randn(40, 6, generator=g, dtype=torch.float64) + 5.0  # far from the origin: centring matters
    tall[:6] += torch.tensor([4.0, 0, 0, 3.0, 0, 0], dtype=torch.float64)  # a small planted group
    wide = torch.randn(7, 20, generator=g, dtype=torch.float64) * torch.linspace(3, 0.1, 20, dtype=torch.float64)
    return [tall, wide + 2.0]


def check_spectral_signature_class_scores(fn) -> bool:
    """fn(feats (n, D) float64) -> (n,) float64: squared projection of the centred rows on the top right
    singular vector."""
    def body():
        for feats in _ss_cases():
            before = feats.clone()
            got = call_learner(fn, feats)
            want = spectral_signature_class_scores(before)
            expect_unchanged(before, feats, "feats")
            centred = before - before.mean(0)
            u, s, vh = torch.linalg.svd(centred, full_matrices=False)
            proj = centred @ vh[0]
            raw = before @ torch.linalg.svd(before, full_matrices=False).Vh[0]
            variants = {"the rows were not centred on the class mean first": raw**2,
                        "the projection is not squared (Tran et al. score (R_i . v)^2)": proj,
                        "the absolute projection is not squared": proj.abs(),
                        "that is u^2, the LEFT singular vector: R v = sigma u, so the score is sigma^2 u^2": u[:, 0] ** 2,
                        "centred per row (mean over dim 1) instead of per feature (mean over the n rows, dim 0)":
                            ((before - before.mean(1, keepdim=True)) @ torch.linalg.svd(
                                before - before.mean(1, keepdim=True), full_matrices=False).Vh[0]) ** 2,
                        "the projection is on a column of Vh (Vh[:, 0]); the top right singular vector is the ROW "
                        "Vh[0]": (centred @ vh[:, 0]) ** 2 if vh.shape[0] == vh.shape[1] else proj * 0 - 1}
            why = _first_match(got, {k: v for k, v in variants.items() if v.shape == want.shape}, 1e-6)
            if why and not (isinstance(got, torch.Tensor) and torch.allclose(got.double(), want, atol=1e-6)):
                raise AssertionError(why)
            expect_tensor(got, want, f"scores of a {tuple(before.shape)} class", atol=1e-6 * float(want.max()))
        return "a tall class with a planted group, a wide class (n < D)"
    return run_check("spectral_signature_class_scores", body)


# ----------------------------------------------------------------------------- STRIP


def check_superimposed_entropy(fn) -> bool:
    """fn(model, x (N, C, H, W), overlays (n, C, H, W)) -> mean softmax entropy over the n blends, (N,)."""
    def body():
        model = _tiny_model()
        g = torch.Generator().manual_seed(1)
        x = torch.rand(4, 1, 4, 4, generator=g)
        overlays = torch.rand(3, 1, 4, 4, generator=g)
        x_before, o_before = x.clone(), overlays.clone()
        got = call_learner(fn, model, x, overlays)
        want = superimposed_entropy(model, x_before, o_before)
        expect_unchanged(x_before, x, "x")
        expect_unchanged(o_before, overlays, "overlays")
        p = model((x[:, None] + overlays[None]).clamp(0, 1).flatten(0, 1)).softmax(1)
        variants = {"the blend is not clamped to [0, 1]": None,
                    "the entropy uses log base 2; use the natural log": (-(p * p.log2()).sum(1)).view(4, 3).mean(1),
                    "that is the entropy of the MEAN prediction; average the entropies of the n blends instead":
                        (lambda q: -(q * q.log()).sum(1))(p.view(4, 3, -1).mean(1)),
                    "the entropy is summed over the n overlays; take the mean": (-(p * p.log()).sum(1)).view(4, 3).sum(1)}
        lu = F.log_softmax(model((x[:, None] + overlays[None]).flatten(0, 1).clamp(-1e9, 1e9)), 1)
        variants["the blend is not clamped to [0, 1]"] = (-(lu.exp() * lu).sum(1)).view(4, 3).mean(1)
        why = _first_match(got, variants, 1e-4)
        if why and not torch.allclose(got, want, atol=1e-4):
            raise AssertionError(why)
        expect_tensor(got, want, "entropy of 4 inputs x 3 overlays", atol=1e-4)
        bright = torch.ones(2, 1, 4, 4)  # saturated inputs: every blend is the same image
        expect_tensor(call_learner(fn, model, bright, overlays), superimposed_entropy(model, bright, overlays),
                      "saturated inputs (every blend clamps to all-ones)", atol=1e-4)
        return "random inputs and saturated ones"
    return run_check("superimposed_entropy", body)
