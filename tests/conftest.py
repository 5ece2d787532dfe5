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
