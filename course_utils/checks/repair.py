"""Checks for lesson 05: the distillation loss (warm-up), the fine-pruning loop and NAD's attention loss (core)."""

from __future__ import annotations

import copy

import torch
import torch.nn.functional as F
from torch import nn

from ..data import as_float
from ..models import small_cnn
from ..repair import attention_loss, distillation_loss, prune_dormant
from ..train import fit
from .core import call_learner, expect_unchanged, run_check


def _scalar(got, what: str) -> torch.Tensor:
    if not isinstance(got, torch.Tensor):
        raise AssertionError(f"{what}: expected a scalar torch.Tensor, got {type(got).__name__}")
    if got.numel() != 1:
        raise AssertionError(f"{what}: expected a scalar (one number, averaged over the batch), got shape "
                             f"{tuple(got.shape)}")
    return got.detach().reshape(())


def check_distillation_loss(fn) -> bool:
    """fn(student_logits, teacher_logits, labels, temperature, alpha) -> Hinton's distillation loss (a scalar)."""
    def body():
        g = torch.Generator().manual_seed(0)
        s, t = torch.randn(6, 4, generator=g) * 2, torch.randn(6, 4, generator=g) * 3
        y = torch.randint(0, 4, (6,), generator=g)
        for temperature, alpha in ((4.0, 0.9), (1.0, 0.5), (2.0, 1.0), (3.0, 0.0)):
            s0, t0 = s.clone(), t.clone()
            got = _scalar(call_learner(fn, s, t, y, temperature, alpha), f"T={temperature}, alpha={alpha}")
            expect_unchanged(s0, s, "student_logits")
            expect_unchanged(t0, t, "teacher_logits")
            want = distillation_loss(s0, t0, y, temperature, alpha)
            if torch.isclose(got, want, atol=1e-4):
                continue
            soft = distillation_loss(s0, t0, y, temperature, 1.0)
            hard = F.cross_entropy(s0, y)
            hints = {
                "the soft term lacks the factor T^2": alpha * soft / temperature ** 2 + (1 - alpha) * hard,
                "alpha weighs the wrong term (alpha belongs to the soft, teacher term)": (1 - alpha) * soft + alpha * hard,
                "the KL divergence is reversed (it is KL(teacher || student))":
                    alpha * temperature ** 2 * F.kl_div(F.log_softmax(t0 / temperature, 1),
                                                        F.log_softmax(s0 / temperature, 1), reduction="batchmean",
                                                        log_target=True) + (1 - alpha) * hard,
                "the KL divergence is summed over the batch instead of averaged (reduction='batchmean')":
                    alpha * soft * len(s0) + (1 - alpha) * hard,
            }
            named = [name for name, value in hints.items() if torch.isclose(got, value, atol=1e-4)]
            hint = f" Likely cause: {named[0]}." if named else ""
            raise AssertionError(f"with T={temperature}, alpha={alpha}: expected {want.item():.5f}, got "
                                 f"{got.item():.5f} (off by {abs(got - want).item():.3g}).{hint}")
        return "4 temperature/alpha pairs"
    return run_check("distillation_loss", body)


# ---------------------------------------------------------------- fine-pruning (core)
def pruning_fixture(seed: int = 0, n: int = 120) -> tuple[nn.Module, torch.Tensor, torch.Tensor]:
    """A tiny trained CourseModel (8x8 inputs, 4 classes, 16 last-block channels) and its uint8 clean set.

    Class c brightens quadrant c; 40 full-batch Adam steps of `fit` train it; 10 % of the labels are then flipped so the
    starting accuracy is below 1 (a bound read as an absolute accuracy then gives another answer).
    Uint8 images, as `cu.repair.clean_subset` hands them to the notebook.
    """
    g = torch.Generator().manual_seed(seed)
    y = torch.randint(0, 4, (n,), generator=g)
    x = torch.rand(n, 1, 8, 8, generator=g) * 0.5
    for i, c in enumerate(y.tolist()):
        r, col = divmod(c, 2)
        x[i, 0, 4 * r:4 * r + 4, 4 * col:4 * col + 4] += 0.4 * torch.rand(4, 4, generator=g) + 0.1
    x = (x.clamp(0, 1) * 255).to(torch.uint8)
    torch.manual_seed(seed)
    model = small_cnn(in_shape=(1, 8, 8), num_classes=4, width=4)
    fit(model, x, y, epochs=40, batch_size=n, lr=1e-2, optimizer="adam", augment="none", seed=seed, device="cpu",
        progress=False)  # full-batch: one step per epoch
    flip = torch.rand(n, generator=g) < 0.1
    y = torch.where(flip, (y + 1) % 4, y)
    return model.eval(), x, y


@torch.no_grad()
def prune_variant(model: nn.Module, x, y, max_acc_drop: float = 0.04, max_fraction: float = 0.9, *,
                  most_active_first: bool = False, keep_going: bool = False, keep_breaker: bool = False,
                  absolute: bool = False, cap: bool = True) -> int:
    """Fine-pruning's loop with the usual mistakes as switches (defaults: `cu.repair.prune_dormant`).

    In place on model.channel_mask; returns the number of channels off. most_active_first: rank
    the wrong way round; keep_going: skip a channel that breaks the bound and try the next
    (greedy) instead of stopping; keep_breaker: also switch off the channel that broke the bound;
    absolute: read the bound as accuracy >= 1 - max_acc_drop; cap False: ignore max_fraction.
    """
    xf = as_float(x)
    h = xf
    for block in model.blocks:
        h = block(h)
    activity = h.mean(dim=(0, 2, 3))
    order = torch.sort(-activity if most_active_first else activity, stable=True).indices.tolist()
    if cap:
        order = order[: int(max_fraction * len(order))]

    def acc() -> float:
        return (model(xf).argmax(1) == y).float().mean().item()

    floor = 1 - max_acc_drop if absolute else acc() - max_acc_drop
    for channel in order:
        model.channel_mask[channel] = 0
        if acc() < floor:
            if not keep_breaker:
                model.channel_mask[channel] = 1
            if not keep_going:
                break
    return int((model.channel_mask == 0).sum())


_PRUNE_MISTAKES = {
    "most_active_first": "you switched off the *most* active channels first: fine-pruning ranks by increasing mean "
                         "clean activation (the dormant ones first)",
    "keep_going": "after the first channel that broke the bound you kept trying the next ones: fine-pruning stops at "
                  "the first channel that takes the accuracy below the bound",
    "keep_breaker": "the channel that took the accuracy below the bound stayed off: switch it back on before stopping",
    "absolute": "the bound is relative to the starting accuracy (stop below start - max_acc_drop), not an absolute "
                "accuracy of 1 - max_acc_drop",
    "cap": "more than max_fraction of the channels are off: try at most int(max_fraction * C) channels",
}


def _weights_unchanged(model: nn.Module, before: dict[str, torch.Tensor]) -> None:
    changed = [k for k, v in model.state_dict().items() if k != "channel_mask" and not torch.equal(v, before[k])]
    if changed:
        raise AssertionError(f"the model's weights or buffers changed ({', '.join(changed[:3])}); fine-pruning only "
                             "writes model.channel_mask (was the model run in training mode?)")
    if model.training:
        raise AssertionError("the model was left in training mode; it came in eval mode (measure in eval mode)")


def check_prune_dormant(fn) -> bool:
    """fn(model, x, y, max_acc_drop, max_fraction) -> channels off; in place on model.channel_mask."""
    def body():
        base, x, y = pruning_fixture()
        for drop, fraction in ((0.04, 0.9), (0.15, 0.9), (1.0, 0.5), (0.0, 0.9)):
            what = f"max_acc_drop={drop}, max_fraction={fraction}"
            model, want_model = copy.deepcopy(base), copy.deepcopy(base)
            x0, y0, state = x.clone(), y.clone(), {k: v.clone() for k, v in model.state_dict().items()}
            got = call_learner(fn, model, x, y, max_acc_drop=drop, max_fraction=fraction)
            expect_unchanged(x0, x, "x")
            expect_unchanged(y0, y, "y")
            _weights_unchanged(model, state)
            want = prune_dormant(want_model, x0, y0, max_acc_drop=drop, max_fraction=fraction)
            mask, want_mask = model.channel_mask, want_model.channel_mask
            if isinstance(got, torch.Tensor) and got.numel() == 1:
                got = got.item()
            if isinstance(got, bool) or not isinstance(got, int):
                raise AssertionError(f"return the number of channels switched off (an int), got {got!r}")
            if got != int((mask == 0).sum()):
                raise AssertionError(f"with {what}: you returned {got} but model.channel_mask has "
                                     f"{int((mask == 0).sum())} channels off; return how many are off")
            if not torch.equal(mask, want_mask):
                _name_prune_mistake(base, x0, y0, drop, fraction, mask, what)
                wrong = [c for c in range(len(mask)) if mask[c] != want_mask[c]]
                raise AssertionError(f"with {what}: expected {want} channels off, got {got}; channels set wrongly: "
                                     f"{wrong[:8]} (off: yours {_off(mask)}, expected {_off(want_mask)})")
        return "4 bounds on 16 channels, uint8 images, weights untouched"
    return run_check("prune_dormant", body)


def _off(mask: torch.Tensor) -> list[int]:
    return torch.nonzero(mask == 0).flatten().tolist()


def _name_prune_mistake(base, x, y, drop, fraction, mask, what) -> None:
    if bool((mask == 0).all()) or not bool(((mask == 0) | (mask == 1)).all()):
        raise AssertionError(f"with {what}: channel_mask should hold 1 (on) and 0 (off), got {mask.tolist()}")
    for switch, message in _PRUNE_MISTAKES.items():
        variant = copy.deepcopy(base)
        prune_variant(variant, x, y, drop, fraction, **{switch: switch != "cap"})
        if torch.equal(variant.channel_mask, mask):
            raise AssertionError(f"with {what}: {message}")


# ---------------------------------------------------------------- NAD's attention loss (core)
def _attention_variant(fm: torch.Tensor, p: float, *, absolute: bool = True, per_map: bool = True,
                       normalise: bool = True) -> torch.Tensor:
    am = (fm.abs() if absolute else fm).pow(p).sum(1).flatten(1)
    if not normalise:
        return am
    norm = am.norm(dim=1, keepdim=True) if per_map else am.norm()
    return am / (norm + 1e-6)


def nad_variant(student, teacher, betas, p: float = 2.0, *, distance: str = "mse", combine: str = "sum",
                **attention) -> torch.Tensor:
    """NAD's loss with the usual mistakes as switches (defaults: `cu.repair.attention_loss`).

    distance: "mse" (mean squared difference, NAD's code), "sse" (summed), "l2" (the paper's
    L2 norm of the difference, per image, averaged); combine: "sum" over layers, "mean", or
    "first" (one beta for all); attention: absolute/per_map/normalise switches of the map.
    """
    terms = []
    for b, s, t in zip(betas, student, teacher):
        diff = _attention_variant(s, p, **attention) - _attention_variant(t, p, **attention)
        value = {"mse": diff.pow(2).mean(), "sse": diff.pow(2).sum(), "l2": diff.norm(dim=1).mean()}[distance]
        terms.append((betas[0] if combine == "first" else b) * value)
    total = sum(terms)
    return total / len(terms) if combine == "mean" else total


_NAD_MISTAKES = [
    ({"normalise": False}, "the maps are not normalised: divide each flattened map by its own L2 norm (+ 1e-6)"),
    ({"per_map": False}, "the maps are normalised over the whole batch: divide each image's map by its own L2 norm"),
    ({"absolute": False}, "the map takes F^p without the absolute value: use |F|^p (odd p and negative "
                          "activations differ)"),
    ({"distance": "sse"}, "the squared differences are summed: take their mean over the batch and the pixels "
                          "(F.mse_loss)"),
    ({"distance": "l2"}, "this is the paper's L2 norm of the difference; the course follows NAD's code: the mean "
                         "squared difference of the normalised maps"),
    ({"combine": "mean"}, "the layers are averaged: NAD sums beta_l * distance_l over the layers"),
    ({"combine": "first"}, "one beta is used for every layer: each layer l has its own beta_l"),
]


def _feature_pairs(g: torch.Generator):
    shapes = [(3, 4, 6, 6), (3, 5, 3, 3), (3, 2, 2, 2)]  # three "blocks", smaller deeper, like the model's
    student = [torch.randn(s, generator=g).requires_grad_(True) for s in shapes]
    teacher = [torch.randn(s, generator=g) * 1.5 + 0.3 for s in shapes]
    return student, teacher


def check_nad_loss(fn) -> bool:
    """fn(student_maps, teacher_maps, betas, p) -> NAD's attention loss, a scalar with gradients to the student."""
    def body():
        g = torch.Generator().manual_seed(4)
        for betas, p in (((500.0, 1000.0, 1000.0), 2.0), ((1.0, 0.0, 3.0), 1.0), ((2.0, 5.0, 0.5), 3.0)):
            student, teacher = _feature_pairs(g)
            kept = [s.detach().clone() for s in student] + [t.clone() for t in teacher]
            what = f"betas={betas}, p={p}"
            got = call_learner(fn, student, teacher, betas, p)
            for before, after in zip(kept, student + teacher):
                expect_unchanged(before, after.detach(), "a feature map")
            value = _scalar(got, what)
            want = attention_loss(student, teacher, betas, p).detach()
            if not torch.isclose(value, want, rtol=1e-4, atol=1e-6):
                for switches, message in _NAD_MISTAKES:
                    wrong = nad_variant(student, teacher, betas, p, **switches).detach()
                    if torch.isclose(value, wrong, rtol=1e-4, atol=1e-6) and not torch.isclose(wrong, want, rtol=1e-4):
                        raise AssertionError(f"with {what}: {message} (got {value.item():.5g}, expected "
                                             f"{want.item():.5g})")
                raise AssertionError(f"with {what}: expected {want.item():.5g}, got {value.item():.5g} (off by a "
                                     f"factor {value.item() / want.item():.3g})")
            if not got.requires_grad:
                raise AssertionError("no gradient reaches the student's feature maps (a .detach() or torch.no_grad() "
                                     "in the way?): the loss must train the student")
        return "3 sets of betas and powers p, a zero beta, gradients reach the student"
    return run_check("nad_loss", body)
