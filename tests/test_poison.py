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


def test_poison_samples_relabels_only_the_chosen(xy):
    x, y = xy
    px, py = poison.poison_samples(x, y, torch.tensor([0, 5]), triggers.patch_trigger, 9)
    assert py[[0, 5]].tolist() == [9, 9] and torch.equal(py[1:5], y[1:5])
    assert not torch.equal(px[0], x[0]) and torch.equal(px[1], x[1])


@pytest.mark.parametrize("name", ["badnets", "blended", "wanet", "clean-label"])
def test_every_attack_has_defaults_and_applies(name):
    atk = poison.make_attack(name)
    assert atk.target == 0 and atk.mode == "all-to-one"
    x = torch.rand(4, 1, 28, 28, generator=torch.Generator().manual_seed(0))
    out = atk.apply(x)
    assert out.shape == x.shape and not torch.equal(out, x)
    assert atk.config() == poison.make_attack(name, **atk.params).config()  # defaults spelled out


def test_wanet_noise_mode_keeps_labels():
    g = torch.Generator().manual_seed(0)
    x, y = torch.rand(100, 1, 28, 28, generator=g), torch.arange(100) % 10
    atk = poison.make_attack("wanet", cross_ratio=2.0)
    assert atk.config()["cross_ratio"] == 2.0
    p = atk.poison(x, y, 0.1)
    assert p.poisoned.sum() == 10 and (p.y[p.poisoned] == 0).all()
    changed = (p.x != x).flatten(1).any(1)
    assert changed.sum() == 30  # 10 poisoned + 20 noise-mode samples
    assert torch.equal(p.y[~p.poisoned], y[~p.poisoned])  # noise samples keep their true labels
    none = poison.make_attack("wanet", cross_ratio=0).poison(x, y, 0.1)
    assert (none.x != x).flatten(1).any(1).sum() == 10
    with pytest.raises(ValueError, match="cross_ratio"):
        poison.make_attack("wanet", cross_ratio=-1)


def test_clean_label_poisons_only_the_target_class_and_keeps_labels(digits):
    x, y = digits.x_train[:300], digits.y_train[:300]
    atk = poison.make_attack("clean-label", eps=0.1, steps=2, surrogate_epochs=1)
    p = atk.poison(x, y, 0.05, seed=0)
    assert p.poisoned.sum() == 15 and (y[p.poisoned] == 0).all()
    assert torch.equal(p.y, y)  # labels are never changed
    xf = x.float() / 255
    assert torch.equal(p.x[~p.poisoned], xf[~p.poisoned])
    delta = (p.x[p.poisoned] - xf[p.poisoned])[:, :, :20, :20]  # away from the 5x5 patch
    assert 0 < delta.abs().max() <= 0.1 + 1e-6
    assert (p.x[p.poisoned][:, :, 22:27, 22:27] == 1).all()
    capped = atk.poison(x, y, 0.5, seed=0)  # more than the target class holds: all of it
    assert capped.poisoned.sum() == (y == 0).sum()


def test_clean_label_bad_arguments():
    with pytest.raises(ValueError, match="all-to-one"):
        poison.make_attack("clean-label", mode="all-to-all")
    with pytest.raises(ValueError, match="eps"):
        poison.make_attack("clean-label", eps=2.0)
    with pytest.raises(ValueError, match="steps"):
        poison.make_attack("clean-label", steps=0)
    with pytest.raises(ValueError, match="no parameter.*eps"):
        poison.make_attack("clean-label", epsilon=0.1)
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        poison.make_attack("clean-label").poison(torch.rand(4, 1, 8, 8), torch.zeros(4, dtype=torch.long), 1.5)


def test_pgd_away_raises_the_loss_within_eps():
    from course_utils import make_model

    model = make_model("small-cnn", seed=0).eval()
    x = torch.rand(6, 1, 28, 28, generator=torch.Generator().manual_seed(0))
    y = torch.zeros(6, dtype=torch.long)
    adv = poison.pgd_away(model, x, y, eps=0.1, steps=5)
    assert (adv - x).abs().max() <= 0.1 + 1e-6 and 0 <= adv.min() and adv.max() <= 1
    loss = torch.nn.functional.cross_entropy
    with torch.no_grad():
        assert loss(model(adv), y) > loss(model(x), y)
    with pytest.raises(ValueError, match="eval"):
        poison.pgd_away(model.train(), x, y, 0.1, 2)
