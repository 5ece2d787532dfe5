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
