import pytest
import torch

from course_utils import triggers


def test_patch_trigger_stamps_square_and_leaves_input(images):
    before = images.clone()
    out = triggers.patch_trigger(images, size=3, position="bottom-right")
    assert torch.equal(images, before)
    assert (out[:, :, 8:11, 8:11] == 1).all()
    mask = torch.ones_like(out, dtype=torch.bool)
    mask[:, :, 8:11, 8:11] = False
    assert torch.equal(out[mask], images[mask])


@pytest.mark.parametrize("position,corner", [("top-left", (1, 1)), ("top-right", (1, 8)), ("bottom-left", (8, 1)),
                                             ("center", (4, 4)), ((2, 5), (2, 5))])
def test_positions(position, corner):
    assert triggers.patch_corner((12, 12), 3, position) == corner


def test_colour_per_channel():
    out = triggers.patch_trigger(torch.zeros(1, 3, 8, 8), size=2, position=(0, 0), color=(1.0, 0.5, 0.0))
    assert out[0, :, 0, 0].tolist() == [1.0, 0.5, 0.0]


def test_bad_arguments(images):
    with pytest.raises(ValueError, match="does not fit"):
        triggers.patch_trigger(images, size=12)
    with pytest.raises(ValueError, match="does not fit"):
        triggers.patch_trigger(images, size=3, position=(11, 0))
    with pytest.raises(ValueError, match="Unknown trigger position"):
        triggers.patch_trigger(images, position="middle")
    with pytest.raises(ValueError, match="positive int"):
        triggers.patch_trigger(images, size=0)
    with pytest.raises(ValueError, match="channels"):
        triggers.patch_trigger(images, color=(1.0, 1.0))
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        triggers.patch_trigger(images, color=2.0)
    with pytest.raises(ValueError, match="unsqueeze"):
        triggers.patch_trigger(images[0])
    with pytest.raises(TypeError, match="as_float"):
        triggers.patch_trigger((images * 255).to(torch.uint8))
    with pytest.raises(TypeError, match="torch.Tensor"):
        triggers.patch_trigger(images.numpy())


def test_stamp_patch_matches_named_position(images):
    assert torch.equal(triggers.stamp_patch(images, 3, 8, 8), triggers.patch_trigger(images, 3, "bottom-right"))
    with pytest.raises(ValueError, match="does not fit"):
        triggers.stamp_patch(images, 3, 10, 0)


def test_blend_mixes_and_checks_alpha(images):
    before = images.clone()
    pattern = torch.ones(1, 12, 12)
    out = triggers.blend(images, pattern, 0.25)
    assert torch.equal(images, before)
    assert torch.allclose(out, 0.75 * images + 0.25)
    assert torch.equal(triggers.blend(images, pattern, 0.0), images)
    for alpha in (-0.1, 1.5, True, "0.2"):
        with pytest.raises(ValueError, match=r"alpha.*\[0, 1\]"):
            triggers.blend(images, pattern, alpha)
    with pytest.raises(ValueError, match=r"shape of one image, \(1, 12, 12\)"):
        triggers.blend(images, torch.ones(1, 10, 10), 0.2)
    with pytest.raises(TypeError, match="pattern"):
        triggers.blend(images, 0.5, 0.2)


def test_blended_trigger_patterns(images):
    noisy = triggers.blended_trigger(images, alpha=0.2, pattern="noise", seed=3)
    assert torch.equal(noisy, triggers.blended_trigger(images, alpha=0.2, pattern="noise", seed=3))
    assert not torch.equal(noisy, triggers.blended_trigger(images, alpha=0.2, pattern="noise", seed=4))
    assert (noisy - images).abs().max() <= 0.2 + 1e-6
    board = triggers.blend_pattern("checkerboard", (1, 4, 4))
    assert board[0, 0].tolist() == [0, 1, 0, 1]
    assert torch.equal(triggers.blended_trigger(images, 1.0, pattern=torch.zeros(1, 12, 12)), torch.zeros_like(images))
    with pytest.raises(ValueError, match="Unknown blend pattern"):
        triggers.blended_trigger(images, pattern="kitty")


def test_wanet_is_a_small_smooth_fixed_warp():
    x = torch.rand(3, 1, 28, 28, generator=torch.Generator().manual_seed(0))
    assert torch.allclose(triggers.warp(x, triggers.wanet_grid(28, 28, s=0.0)), x, atol=1e-5)  # s=0: identity
    out = triggers.wanet_trigger(x, k=4, s=0.5, seed=0)
    assert out.shape == x.shape and 0 <= out.min() and out.max() <= 1
    assert torch.equal(out, triggers.wanet_trigger(x, k=4, s=0.5, seed=0))
    assert 0 < (out - x).abs().mean() < 0.2
    grid = triggers.wanet_grid(28, 28, k=4, s=0.5)
    shift = (grid - triggers.wanet_grid(28, 28, s=0.0)) * 27 / 2  # in pixels
    assert 0.1 < shift.abs().mean() < 0.6
    noisy = triggers.wanet_noise_warp(x, noise_seed=1)
    assert not torch.equal(noisy, out) and (noisy - out).abs().max() < 0.6


def test_wanet_bad_arguments(images):
    with pytest.raises(ValueError, match="k"):
        triggers.wanet_trigger(images, k=1)
    with pytest.raises(ValueError, match="strength"):
        triggers.wanet_trigger(images, s=-1)
    with pytest.raises(ValueError, match="grid must have shape"):
        triggers.warp(images, torch.zeros(1, 5, 5, 2))


def test_every_trigger_is_registered_and_pure(images):
    for name, fn in triggers.TRIGGERS.items():
        before = images.clone()
        out = fn(images)
        assert torch.equal(images, before), name
        assert out.shape == images.shape and out.dtype == images.dtype, name
