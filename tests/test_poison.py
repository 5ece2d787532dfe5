import pytest
import torch

from course_utils import poison, triggers


@pytest.fixture
def xy():
    g = torch.Generator().manual_seed(0)
    return torch.rand(100, 1, 8, 8, generator=g), torch.arange(100) % 10


def test_all_to_one(xy):
    x, y = xy
    p = poison.poison_dataset(x, y, lambda im: triggers.patch_trigger(im, 2), rate=0.1, target=3)
    assert p.poisoned.sum() == 10 and p.rate == pytest.approx(0.1)
    assert (p.y[p.poisoned] == 3).all() and (y[p.poisoned] != 3).all()
    assert torch.equal(p.y[~p.poisoned], y[~p.poisoned]) and torch.equal(p.x[~p.poisoned], x[~p.poisoned])
    assert (p.x[p.poisoned][:, :, 5:7, 5:7] == 1).all()
    assert torch.equal(y, torch.arange(100) % 10)  # inputs untouched


def test_all_to_all_and_seeds(xy):
    x, y = xy
    trig = triggers.patch_trigger
    p = poison.poison_dataset(x, y, trig, rate=0.2, mode="all-to-all", seed=1)
    assert torch.equal(p.y[p.poisoned], (y[p.poisoned] + 1) % 10)
    q = poison.poison_dataset(x, y, trig, rate=0.2, mode="all-to-all", seed=1)
    r = poison.poison_dataset(x, y, trig, rate=0.2, mode="all-to-all", seed=2)
    assert torch.equal(p.poisoned, q.poisoned) and not torch.equal(p.poisoned, r.poisoned)


def test_uint8_input_is_converted():
    x = torch.zeros(10, 1, 8, 8, dtype=torch.uint8)
    p = poison.poison_dataset(x, torch.arange(10), triggers.patch_trigger, rate=0.5, target=0)
    assert p.x.dtype == torch.float32


def test_bad_arguments(xy):
    x, y = xy
    trig = triggers.patch_trigger
    for rate in (-0.1, 1.5, "10%"):
        with pytest.raises(ValueError, match=r"\[0, 1\]"):
            poison.poison_dataset(x, y, trig, rate=rate)
    with pytest.raises(ValueError, match="only 90"):
        poison.poison_dataset(x, y, trig, rate=0.95)
    with pytest.raises(ValueError, match="Unknown target mode"):
        poison.poison_dataset(x, y, trig, rate=0.1, mode="one-to-one")
    with pytest.raises(ValueError, match="class index"):
        poison.poison_dataset(x, y, trig, rate=0.1, target=10)
    with pytest.raises(ValueError, match="shape"):
        poison.poison_dataset(x[0], y, trig, rate=0.1)
    with pytest.raises(TypeError, match="int64"):
        poison.poison_dataset(x, y.float(), trig, rate=0.1)


def test_make_attack(xy):
    x, y = xy
    atk = poison.make_attack("badnets", size=2, position="top-left", target=1)
    assert atk.config() == {"name": "badnets", "params": {"size": 2, "position": "top-left", "color": 1.0},
                            "target": 1, "mode": "all-to-one"}
    assert poison.make_attack("badnets").config() == poison.make_attack("badnets", size=3).config()
    with pytest.raises(ValueError, match="no parameter"):
        poison.make_attack("badnets", sise=3)
    assert (atk.apply(x)[:, :, 1:3, 1:3] == 1).all()
    assert atk.poison(x, y, 0.1).poisoned.sum() == 10
    assert torch.equal(atk.target_labels(y), torch.ones_like(y))
    with pytest.raises(ValueError, match="available"):
        poison.make_attack("badnetz")
    with pytest.raises(ValueError, match="mode"):
        poison.make_attack("badnets", mode="some")
