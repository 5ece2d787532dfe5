import pytest
import torch

from course_utils import make_model, shift


def test_shifts_keep_shape_range_and_input(images):
    before = images.clone()
    for name, levels in shift.SEVERITIES.items():
        for level in levels:
            out = shift.apply_shift(images, name, level)
            assert out.shape == images.shape and out.dtype == images.dtype
            assert out.min() >= 0 and out.max() <= 1
    assert torch.equal(images, before)


def test_shift_semantics(images):
    assert torch.allclose(shift.rotate(images, 0), images, atol=1e-6)
    assert torch.allclose(shift.contrast(images, 1.0), images)
    flat = shift.contrast(images, 0.0)
    assert torch.allclose(flat, images.mean(dim=(1, 2, 3), keepdim=True).expand_as(images))
    assert torch.equal(shift.gaussian_noise(images, 0.0), images)
    assert torch.equal(shift.gaussian_noise(images, 0.2, seed=1), shift.gaussian_noise(images, 0.2, seed=1))
    blurred = shift.blur(images, 1.0)
    assert blurred.std() < images.std()  # blur smooths
    assert shift.apply_shift((images * 255).to(torch.uint8), "blur", 1.0).is_floating_point()


def test_shift_bad_input(images):
    with pytest.raises(ValueError, match="Unknown shift"):
        shift.apply_shift(images, "fog", 1)
    with pytest.raises(ValueError, match="sigma"):
        shift.blur(images, 0)
    with pytest.raises(ValueError, match="sigma"):
        shift.gaussian_noise(images, -1)
    with pytest.raises(ValueError, match="factor"):
        shift.contrast(images, -0.5)
    with pytest.raises(ValueError, match=r"\(N, C, H, W\)"):
        shift.rotate(images[0], 10)


def test_sklearn_digits_look_like_mnist():
    x, y = shift.sklearn_digits()
    assert x.shape == (1797, 1, 28, 28) and x.dtype == torch.uint8
    assert y.dtype == torch.int64 and sorted(y.unique().tolist()) == list(range(10))
    assert x[:, :, :4].max() == 0 and x[:, :, -4:].max() == 0  # a black frame around the digit
    assert x.float().mean() < 80  # mostly black background, white ink
    with pytest.raises(ValueError, match="box"):
        shift.sklearn_digits(size=8, box=20)


def test_shift_report_rows(digits):
    from course_utils import make_attack

    model = make_model("small-cnn", seed=0).eval()
    x, y = digits.x_test[:40], digits.y_test[:40]
    rows = shift.shift_report({"a": model, "b": model}, x, y, make_attack("badnets"),
                              severities={"rotation": (10,), "noise": (0.1, 0.2)}, extra={"same": (x, y)})
    assert len(rows) == 2 * (1 + 3 + 1)
    assert [r["shift"] for r in rows[::2]] == ["none", "rotation", "noise", "noise", "same"]
    assert all(0 <= r["accuracy"] <= 1 and 0.1 <= r["confidence"] <= 1 and 0 <= r["asr"] <= 1 for r in rows)
    assert rows[0]["accuracy"] == rows[-1]["accuracy"]
    with pytest.raises(ValueError, match="Unknown shift"):
        shift.shift_report({"a": model}, x, y, severities={"fog": (1,)})
    with pytest.raises(ValueError, match="at least one model"):
        shift.shift_report({}, x, y)
