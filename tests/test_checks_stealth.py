"""Lesson 02 checks: the reference passes, a stub is "not implemented", each plausible slip fails by name."""

import pytest
import torch
import torch.nn.functional as F

from course_utils import checks, triggers


def not_done(*args, **kwargs):
    raise NotImplementedError()


def test_blend_warm_up(capsys):
    assert checks.check_blend(triggers.blend) is True
    assert checks.check_blend(not_done) is False
    assert "not implemented yet" in capsys.readouterr().out


def in_place(images, pattern, alpha):
    return images.mul_(1 - alpha).add_(alpha * pattern)


def pattern_in_place(images, pattern, alpha):
    return (1 - alpha) * images + pattern.mul_(alpha)


@pytest.mark.parametrize("wrong, message", [
    (lambda images, pattern, alpha: alpha * images + (1 - alpha) * pattern, "alpha=0.25: alpha and 1 - alpha are swapped"),
    (lambda images, pattern, alpha: images + alpha * pattern, r"alpha=0.2: you added alpha \* pattern .* above 1"),
    (lambda images, pattern, alpha: (images + alpha * pattern).clamp(0, 1), "alpha=0.2: .* and clipped the result"),
    (lambda images, pattern, alpha: (1 - alpha) * images + pattern, "the pattern must be weighted by alpha"),
    (lambda images, pattern, alpha: (images + pattern) / 2, "alpha is ignored"),
    (in_place, "`images` was changed in place"),
    (pattern_in_place, "`pattern` was changed in place"),
    (lambda images, pattern, alpha: triggers.blend(images, pattern, alpha).double(), "float64, the images are"),
    (lambda images, pattern, alpha: (triggers.blend(images, pattern, alpha) * 255).round().to(torch.uint8),
     "do not round it or convert it to 0..255"),
])
def test_blend_slips_are_named(wrong, message):
    with pytest.raises(AssertionError, match=message):
        checks.check_blend(wrong)


def make_warp(signed=True, normalise=True, mode="bicubic", scale=True, xy=True, seeded=True, align=True):
    """A WaNet warp with one step switched off or done differently."""
    def wanet_warp(images, k=4, s=0.5, seed=0):
        n, _, h, w = images.shape
        gen = torch.Generator().manual_seed(seed) if seeded else None
        control = torch.rand(1, 2, k, k, generator=gen)
        control = control * 2 - 1 if signed else control
        control = control / control.abs().mean() if normalise else control
        field = F.interpolate(control, size=(h, w), mode=mode, align_corners=True).permute(0, 2, 3, 1)
        field = field if xy else field.flip(-1)
        rows, cols = torch.meshgrid(torch.linspace(-1, 1, h), torch.linspace(-1, 1, w), indexing="ij")
        identity = torch.stack((cols, rows), dim=-1).unsqueeze(0)
        grid = (identity + s * field / (h if scale else 1)).clamp(-1, 1).expand(n, h, w, 2)
        return F.grid_sample(images, grid, mode="bilinear", padding_mode="border", align_corners=align).clamp(0, 1)
    return wanet_warp


def test_wanet_reference_a_rewrite_and_stub(capsys):
    assert checks.check_wanet_warp(triggers.wanet_trigger) is True
    assert checks.check_wanet_warp(make_warp()) is True  # the notebook's solution, written out
    assert checks.check_wanet_warp(not_done) is False
    assert "not implemented yet" in capsys.readouterr().out


@pytest.mark.parametrize("slip, message", [
    ({"signed": False}, r"in \[-1, 1\]"),
    ({"normalise": False}, "mean absolute value"),
    ({"mode": "bilinear"}, "bicubic"),
    ({"scale": False}, "s / H"),
    ({"xy": False}, r"\(x, y\)"),
    ({"align": False}, "align_corners=True"),
    ({"seeded": False}, "times as far|values differ"),
])
def test_wanet_slips_are_named(slip, message):
    with pytest.raises(AssertionError, match=message):
        checks.check_wanet_warp(make_warp(**slip))


def test_wanet_in_place_and_wrong_type():
    def in_place(images, k=4, s=0.5, seed=0):
        images.copy_(triggers.wanet_trigger(images, k, s, seed))
        return images

    with pytest.raises(AssertionError, match="changed in place"):
        checks.check_wanet_warp(in_place)
    with pytest.raises(AssertionError, match="expected a torch.Tensor"):
        checks.check_wanet_warp(lambda images, k=4, s=0.5, seed=0: triggers.wanet_grid(28, 28, k, s, seed).numpy())
