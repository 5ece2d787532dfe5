"""Checks for lesson 02: the blended trigger and the visibility distances."""

from __future__ import annotations

import torch

from ..stealth import l2_distance, linf_distance
from ..triggers import blend, patch_trigger
from .core import call_learner, expect_tensor, expect_unchanged, run_check


def check_blend(fn) -> bool:
    """fn(images, pattern, alpha) -> (1 - alpha) * images + alpha * pattern, a new tensor."""
    def body():
        g = torch.Generator().manual_seed(0)
        cases = [(torch.zeros(2, 1, 4, 4), torch.ones(1, 4, 4), 0.25),
                 (torch.rand(3, 1, 6, 6, generator=g), torch.rand(1, 6, 6, generator=g), 0.2),
                 (torch.rand(2, 3, 5, 5, generator=g), torch.rand(3, 5, 5, generator=g), 0.0),
                 (torch.rand(2, 3, 5, 5, generator=g), torch.rand(3, 5, 5, generator=g), 1.0)]
        for images, pattern, alpha in cases:
            before, pattern_before = images.clone(), pattern.clone()
            got = call_learner(fn, images, pattern, alpha)
            want = blend(before, pattern_before, alpha)
            expect_unchanged(before, images, "the input images")
            expect_unchanged(pattern_before, pattern, "the pattern")
            expect_tensor(got, want, f"images {tuple(images.shape)}, alpha={alpha}")
        return f"{len(cases)} cases, including alpha = 0 and 1"
    return run_check("blend", body)


def check_distances(fn) -> bool:
    """fn(clean, triggered) -> (l2, linf): per-image L2 norm and largest absolute change, each (N,)."""
    def body():
        g = torch.Generator().manual_seed(2)
        clean = torch.rand(3, 1, 5, 5, generator=g)
        colour = torch.rand(2, 3, 4, 4, generator=g)
        cases = [("a 2x2 white patch", clean, patch_trigger(clean, size=2, position=(1, 1))),
                 ("a faint blend", clean, blend(clean, torch.ones(1, 5, 5), 0.1)),
                 ("no change at all", clean, clean.clone()),
                 ("3-channel noise", colour, torch.rand(2, 3, 4, 4, generator=g))]
        for what, base, triggered in cases:
            b0, t0 = base.clone(), triggered.clone()
            got = call_learner(fn, base, triggered)
            if not (isinstance(got, tuple) and len(got) == 2):
                raise AssertionError(f"{what}: expected a tuple (l2, linf), got {type(got).__name__}")
            expect_unchanged(b0, base, "clean")
            expect_unchanged(t0, triggered, "triggered")
            expect_tensor(got[0], l2_distance(b0, t0), f"{what}: l2 (one value per image)", atol=1e-4)
            expect_tensor(got[1], linf_distance(b0, t0), f"{what}: linf (one value per image)", atol=1e-5)
        return "patch, blend, no change and colour images"
    return run_check("distances", body)
