"""Checks for lesson 05: the distillation loss and NAD's attention map."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from ..repair import attention_map, distillation_loss
from .core import call_learner, expect_tensor, expect_unchanged, run_check


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


def check_attention_map(fn) -> bool:
    """fn(feature_map, p) -> (N, H, W) attention maps: sum over channels of |F|^p, unit L2 norm per map."""
    def body():
        g = torch.Generator().manual_seed(1)
        for shape, p in (((2, 3, 4, 4), 2.0), ((3, 5, 2, 3), 1.0), ((1, 4, 3, 3), 3.0)):
            fm = torch.randn(shape, generator=g)
            fm0 = fm.clone()
            got = call_learner(fn, fm, p)
            expect_unchanged(fm0, fm, "the feature map")
            want = attention_map(fm0, p)
            if isinstance(got, torch.Tensor) and got.shape == want.shape:
                got = got.detach()
                norms = got.flatten(1).norm(dim=1)
                if not torch.allclose(norms, torch.ones_like(norms), atol=1e-3):
                    raise AssertionError(f"each map should have L2 norm 1 over its H x W pixels, got norms "
                                         f"{[round(v, 3) for v in norms.tolist()]}")
            elif isinstance(got, torch.Tensor) and got.ndim == 4 and got.shape[1] == 1:
                raise AssertionError(f"expected shape {tuple(want.shape)} (N, H, W), got {tuple(got.shape)}: "
                                     "squeeze the channel dimension after summing over it")
            expect_tensor(got, want, f"feature map {shape}, p={p}", atol=1e-4)
        return "3 shapes and powers p"
    return run_check("attention_map", body)
