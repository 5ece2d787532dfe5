import pytest
import torch

from course_utils import checks, stealth, triggers


@pytest.fixture
def pair():
    clean = torch.rand(3, 1, 16, 16, generator=torch.Generator().manual_seed(0))
    return clean, triggers.patch_trigger(clean, size=2, position=(0, 0))


def test_identical_images_are_invisible(pair):
    clean, _ = pair
    assert torch.equal(stealth.l2_distance(clean, clean), torch.zeros(3))
    assert torch.equal(stealth.linf_distance(clean, clean), torch.zeros(3))
    assert torch.allclose(stealth.ssim(clean, clean), torch.ones(3))


def test_distances_of_a_patch(pair):
    clean, patched = pair
    delta = (patched - clean)[:, :, :2, :2]
    assert torch.allclose(stealth.l2_distance(clean, patched), delta.flatten(1).norm(dim=1))
    assert torch.allclose(stealth.linf_distance(clean, patched), delta.flatten(1).abs().amax(1))
    assert (stealth.ssim(clean, patched) < 1).all()
    v = stealth.visibility(clean, patched)
    assert set(v) == {"l2", "linf", "ssim"} and 0 < v["ssim"] < 1


def test_ssim_ranks_a_faint_blend_as_less_visible_than_noise():
    clean = torch.zeros(2, 1, 28, 28)
    clean[:, :, 8:20, 12:16] = 1.0  # a stroke
    faint = triggers.blend(clean, torch.full((1, 28, 28), 0.5), 0.05)
    noisy = (clean + 0.3 * torch.randn(2, 1, 28, 28, generator=torch.Generator().manual_seed(0))).clamp(0, 1)
    assert stealth.ssim(clean, faint).mean() > stealth.ssim(clean, noisy).mean()


def test_uint8_and_bad_shapes(pair):
    clean, patched = pair
    as_uint8 = (clean * 255).round().to(torch.uint8)
    assert stealth.l2_distance(as_uint8, as_uint8).sum() == 0
    with pytest.raises(ValueError, match="same shape"):
        stealth.l2_distance(clean, patched[:2])
    with pytest.raises(ValueError, match="unsqueeze"):
        stealth.ssim(clean[0], patched[0])


def test_plot_visibility_vs_asr():
    import matplotlib

    matplotlib.use("Agg")
    ax = stealth.plot_visibility_vs_asr({"badnets": (0.1, 0.99, 0.01), "blended": (0.05, 0.95, 0.02)})
    assert len(ax.texts) == 2


def test_check_blend():
    assert checks.check_blend(triggers.blend) is True
    assert checks.check_blend(lambda images, pattern, alpha: (_ for _ in ()).throw(NotImplementedError())) is False
    with pytest.raises(AssertionError, match="values differ"):
        checks.check_blend(lambda images, pattern, alpha: alpha * images + (1 - alpha) * pattern)

    def in_place(images, pattern, alpha):
        return images.mul_(1 - alpha).add_(alpha * pattern)

    with pytest.raises(AssertionError, match="changed in place"):
        checks.check_blend(in_place)
