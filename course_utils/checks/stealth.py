"""Checks for lesson 02: the blended trigger and the WaNet warping field."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from ..triggers import blend, wanet_grid, wanet_trigger, warp
from .core import call_learner, differences, expect_tensor, expect_unchanged, run_check


def _name_blend_slip(got, images: torch.Tensor, pattern: torch.Tensor, alpha: float, want: torch.Tensor) -> str:
    """Which common slip explains the learner's blend, or "" if none does."""
    if not (isinstance(got, torch.Tensor) and got.shape == want.shape):
        return ""  # expect_tensor names the type or shape
    if got.dtype != want.dtype:
        why = ("the blend of two float images is a float in [0, 1]; do not round it or convert it to 0..255"
               if not got.is_floating_point() else "compute in the images' dtype")
        return f"your result is {got.dtype}, the images are {want.dtype}: {why}"
    if torch.allclose(got, want, atol=1e-5, rtol=0):
        return ""
    slips = [
        ("alpha and 1 - alpha are swapped: alpha is the pattern's share, 1 - alpha the image's",
         alpha * images + (1 - alpha) * pattern),
        (f"you added alpha * pattern on top of the image: your values reach {got.max().item():.3g}, above 1; a "
         "blend also takes alpha away from the image, and then stays in [0, 1] without any clipping",
         images + alpha * pattern),
        ("you added alpha * pattern on top of the image and clipped the result; a blend also takes alpha away "
         "from the image, so that the two shares add up to 1", (images + alpha * pattern).clamp(0, 1)),
        ("the pattern must be weighted by alpha too; you added all of it", (1 - alpha) * images + pattern),
        ("alpha is ignored: you mixed image and pattern half and half", 0.5 * images + 0.5 * pattern),
    ]
    for message, variant in slips:
        if torch.allclose(got, variant, atol=1e-5, rtol=0):
            return f"{message}; {differences(got, want)}"
    if got.max() > 1 + 1e-5 or got.min() < -1e-5:
        return (f"your values run from {got.min().item():.3g} to {got.max().item():.3g}, outside [0, 1]; a blend "
                f"of two images in [0, 1] with shares 1 - alpha and alpha stays in [0, 1]; {differences(got, want)}")
    return ""


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
            what = f"images {tuple(images.shape)}, alpha={alpha}"
            expect_unchanged(before, images, f"{what}: `images`")
            expect_unchanged(pattern_before, pattern, f"{what}: `pattern`")
            slip = _name_blend_slip(got, before, pattern_before, alpha, want)
            if slip:
                raise AssertionError(f"{what}: {slip}")
            expect_tensor(got, want, what)
        return f"{len(cases)} cases, including alpha = 0 and 1"
    return run_check("blend", body)


def _field(size: int, k: int, s: float, seed: int, *, signed=True, normalise=True, mode="bicubic",
           scale_by_size=True, xy=True) -> torch.Tensor:
    """A WaNet sampling grid (1, size, size, 2) with one step optionally done wrong: the check's catalogue of slips."""
    control = torch.rand(1, 2, k, k, generator=torch.Generator().manual_seed(seed))
    control = control * 2 - 1 if signed else control
    control = control / control.abs().mean() if normalise else control
    field = F.interpolate(control, size=(size, size), mode=mode, align_corners=True).permute(0, 2, 3, 1)
    field = field if xy else field.flip(-1)
    identity = wanet_grid(size, size, k, 0.0, seed)
    return (identity + s * field / (size if scale_by_size else 1)).clamp(-1, 1)


_SLIPS = {  # what a learner may get wrong -> how to say it
    "signed": "the control offsets must be in [-1, 1] (torch.rand gives [0, 1]: stretch and shift it)",
    "normalise": "divide the control grid by its mean absolute value before upsampling",
    "mode": "upsample with bicubic interpolation (align_corners=True); bilinear gives a different, kinked field",
    "scale_by_size": "scale the field by s / H (the image size), not by s alone: pixels moved far too much",
    "xy": "the last dimension of a grid_sample grid is (x, y), i.e. (column, row); yours is (row, column)",
}


def _ramp(size: int) -> torch.Tensor:
    """A 2-channel image whose pixels hold their own (x, y) position in [0, 1]: warping it reveals the grid."""
    line = torch.linspace(0, 1, size)
    return torch.stack((line.view(1, -1).expand(size, size), line.view(-1, 1).expand(size, size))).unsqueeze(0)


def _name_the_slip(got: torch.Tensor, images: torch.Tensor, k: int, s: float, seed: int) -> str:
    """Which known slip reproduces the learner's output, or how far its pixels moved compared with WaNet's."""
    size = images.shape[-1]
    for slip, message in _SLIPS.items():
        variant = _field(size, k, s, seed, **{slip: {"mode": "bilinear"}.get(slip, False)})
        if torch.allclose(got, warp(images, variant), atol=1e-4):
            return message
    if torch.allclose(got, F.grid_sample(images, wanet_grid(size, size, k, s, seed).expand(len(images), -1, -1, -1),
                                         mode="bilinear", padding_mode="border", align_corners=False), atol=1e-4):
        return "call grid_sample with align_corners=True (the identity grid from linspace(-1, 1) assumes it)"
    return ""


def check_wanet_warp(fn) -> bool:
    """fn(images, k, s, seed) -> images warped by WaNet's fixed field, as `cu.triggers.wanet_trigger`."""
    def body():
        g = torch.Generator().manual_seed(3)
        cases = [(torch.rand(3, 1, 28, 28, generator=g), 4, 0.5, 0), (torch.rand(2, 3, 12, 12, generator=g), 3, 1.0, 7),
                 (_ramp(16), 4, 2.0, 1), (torch.rand(2, 1, 10, 10, generator=g), 4, 0.0, 0)]
        for images, k, s, seed in cases:
            before = images.clone()
            got = call_learner(fn, images, k=k, s=s, seed=seed)
            want = wanet_trigger(before, k=k, s=s, seed=seed)
            what = f"images {tuple(images.shape)}, k={k}, s={s}, seed={seed}"
            expect_unchanged(before, images, "the input images")
            if isinstance(got, torch.Tensor) and got.shape == want.shape and got.dtype == want.dtype:
                if not torch.allclose(got, want, atol=1e-4):
                    slip = _name_the_slip(got, before, k, s, seed)
                    if slip:
                        raise AssertionError(f"{what}: {slip}")
                    if images.shape[1] == 2:  # the ramp: its warped pixels are the sampling positions
                        moved = (got - before).abs().mean().item() / (want - before).abs().mean().clamp_min(1e-12).item()
                        raise AssertionError(f"{what}: your pixels move {moved:.2f} times as far as WaNet's on average "
                                             "(1.00 would be right); compare each step with the spec")
            expect_tensor(got, want, what, atol=1e-4)
        return f"{len(cases)} cases: sizes 10-28, 1 and 3 channels, k 3-4, s 0-2"
    return run_check("wanet_warp", body)
