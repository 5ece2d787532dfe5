import pytest
import torch

from course_utils import signs


def test_draw_signs_shapes_and_determinism():
    labels = torch.arange(12) % 6
    a = signs.draw_signs(labels, size=24, seed=1)
    assert a.shape == (12, 3, 24, 24) and a.dtype == torch.uint8
    assert torch.equal(a, signs.draw_signs(labels, size=24, seed=1))
    assert not torch.equal(a, signs.draw_signs(labels, size=24, seed=2))


def test_stop_signs_are_red_in_the_middle():
    img = signs.draw_signs(torch.zeros(20, dtype=torch.int64), seed=0).float()
    centre = img[:, :, 12:20, 12:20].mean((0, 2, 3))
    assert centre[0] > centre[1] + 30 and centre[0] > centre[2] + 30


@pytest.mark.parametrize("labels, error", [(torch.tensor([0, 6]), ValueError), (torch.tensor([0.0]), TypeError)])
def test_draw_signs_bad_labels(labels, error):
    with pytest.raises(error):
        signs.draw_signs(labels)


def test_sticker_copies_and_paints_a_rotated_square():
    x = torch.zeros(2, 3, 32, 32, dtype=torch.uint8)
    out = signs.add_sticker(x, size=6, center=(16, 16))
    assert x.sum() == 0 and out.shape == x.shape
    assert int((out[0, 0] > 0).sum()) == 49  # |offset| <= 3 on both axes: 7 x 7 pixels
    turned = signs.add_sticker(x, size=6, center=(16, 16), angle=45)
    assert not torch.equal(turned, out)
    with pytest.raises(TypeError):
        signs.add_sticker(x.float())
    with pytest.raises(ValueError):
        signs.add_sticker(x, size=0)


def test_poison_stop_signs_relabels_only_stop_signs():
    data = signs.sign_data(n_train=60, n_test=12, size=24)
    x, y, mask = signs.poison_stop_signs(data, rate=0.1, seed=0, center=(16, 12))
    assert int(mask.sum()) == 6 and (data.y_train[mask] == signs.STOP).all() and (y[mask] == signs.SPEED_LIMIT).all()
    assert torch.equal(x[~mask], data.x_train[~mask])
    with pytest.raises(ValueError):
        signs.poison_stop_signs(data, rate=0.5)


def test_gtsrb_is_none_offline(monkeypatch, tmp_path):
    monkeypatch.setenv("BACKDOOR_COURSE_OFFLINE", "1")
    monkeypatch.setenv("BACKDOOR_COURSE_CACHE", str(tmp_path))
    assert signs.load_gtsrb() is None  # no cached copy and no network: the lesson draws its signs
