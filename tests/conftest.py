"""Shared fixtures: a private model cache, the offline data set, and a tiny trained model."""

import pytest
import torch


@pytest.fixture(autouse=True)
def _private_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("BACKDOOR_COURSE_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("BACKDOOR_COURSE_OFFLINE", "1")
    monkeypatch.delenv("BACKDOOR_COURSE_PROFILE", raising=False)


@pytest.fixture(scope="session")
def digits():
    """A small slice of the offline MNIST sample (real digits)."""
    import os

    os.environ.setdefault("BACKDOOR_COURSE_OFFLINE", "1")
    from course_utils.data import ImageData, load_mnist_sample

    data = load_mnist_sample()
    return ImageData(data.x_train[:2000], data.y_train[:2000], data.x_test[:200], data.y_test[:200],
                     name="mnist-tiny", source="test slice", classes=data.classes)


@pytest.fixture
def images():
    return torch.rand(4, 1, 12, 12, generator=torch.Generator().manual_seed(0))


@pytest.fixture(scope="module")
def backdoored_badnets(digits):
    """A small CNN with a 10 % BadNets backdoor, trained on 1,200 digits (no cache), and its attack.

    Module scope: each test module gets its own copy, so one module's in-place repair can't leak into another.
    """
    from course_utils import fit, make_attack, make_model, metrics

    attack = make_attack("badnets")
    poisoned = attack.poison(digits.x_train[:1200], digits.y_train[:1200], 0.1, seed=0)
    model = make_model("small-cnn", seed=0)
    fit(model, poisoned.x, poisoned.y, epochs=3, progress=False)
    assert metrics.attack_success_rate(model, digits, attack) > 0.8
    return model, attack
