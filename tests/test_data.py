import pytest
import torch

from course_utils import data


def test_offline_fallback_is_real_mnist_and_announced_once(capsys):
    data._load.cache_clear()
    data._announced.clear()
    d = data.load_data()
    assert d.name == "mnist-sample"
    assert d.x_train.dtype == torch.uint8 and d.x_train.shape == (4000, 1, 28, 28)
    assert d.x_test.shape == (1000, 1, 28, 28) and d.y_test.dtype == torch.int64
    assert set(d.y_train.tolist()) == set(range(10))
    assert d.x_train.float().mean() > 20  # real strokes, not zeros
    data._load.cache_clear()
    data.load_data()
    out = capsys.readouterr().out
    assert out.count("5,000-digit sample") == 1


def test_split_is_fixed_and_disjoint():
    a, b = data.load_mnist_sample(), data.load_mnist_sample()
    assert torch.equal(a.x_test, b.x_test)
    train_rows = {bytes(x.numpy()) for x in a.x_train[:500]}
    assert not any(bytes(x.numpy()) in train_rows for x in a.x_test)


def test_cifar_without_network_fails_fast_with_advice():
    data._load.cache_clear()
    with pytest.raises(data.DataUnavailableError, match="BACKDOOR_COURSE_PROFILE=cpu"):
        data.load_data("cifar10")


def test_unknown_dataset():
    with pytest.raises(ValueError, match="choose one of"):
        data.load_data("imagenet")


def test_tampered_sample_is_refused(monkeypatch, tmp_path):
    fake = tmp_path / "mnist_5k.csv.gz"
    fake.write_bytes(b"not the sample")
    monkeypatch.setattr(data, "mnist_sample_path", lambda: fake)
    with pytest.raises(data.DataUnavailableError, match="SHA-256"):
        data.load_mnist_sample()


def test_as_float():
    x = torch.tensor([[[[0, 255]]]], dtype=torch.uint8)
    assert torch.equal(data.as_float(x), torch.tensor([[[[0.0, 1.0]]]]))
    y = torch.rand(1, 1, 2, 2)
    assert data.as_float(y) is y
    with pytest.raises(TypeError, match="uint8"):
        data.as_float(torch.ones(1, 1, 2, 2, dtype=torch.int64))


class _FakeTorchvisionSet:
    def __init__(self, n, shape):
        import numpy as np

        self.data = np.random.default_rng(0).integers(0, 256, (n, *shape), dtype=np.uint8)
        self.targets = list(range(10)) * (n // 10)


def test_torchvision_path_converts_layout_and_caps_training_size(monkeypatch):
    """When torchvision has the files, images come back as uint8 NCHW, capped to the profile's max_train."""
    data._load.cache_clear()
    monkeypatch.setattr(data, "_torchvision_dataset", lambda name, root: (
        _FakeTorchvisionSet(20_000, (32, 32, 3)), _FakeTorchvisionSet(100, (32, 32, 3))))
    d = data.load_data("cifar10")
    assert d.x_train.shape == (12_000, 3, 32, 32) and d.x_train.dtype == torch.uint8
    assert d.name == "cifar10-12000" and d.classes[0] == "airplane"
    assert d.y_test.dtype == torch.int64 and len(d.x_test) == 100
    data._load.cache_clear()
    monkeypatch.setattr(data, "_torchvision_dataset", lambda name, root: (
        _FakeTorchvisionSet(50, (28, 28)), _FakeTorchvisionSet(20, (28, 28))))
    d = data.load_data("mnist")
    assert d.x_train.shape == (50, 1, 28, 28) and d.name == "mnist"
    data._load.cache_clear()


def test_offline_with_nothing_on_disk_does_not_import_torchvision(tmp_path):
    """Every lesson's first cell loads the data: offline, with no torchvision files in the cache, the
    fallback must not pay for importing torchvision (about 1 s of every kernel start). Nor may the
    exercise checks import scikit-learn (1.5 s) before a lesson uses it."""
    import os
    import subprocess
    import sys

    code = ("import sys, course_utils as cu; data = cu.load_data(); "
            "assert 'torchvision' not in sys.modules, 'torchvision was imported'; "
            "cu.checks; assert 'sklearn' not in sys.modules, 'cu.checks imported scikit-learn'; print(data.name)")
    env = {**os.environ, "BACKDOOR_COURSE_CACHE": str(tmp_path / "empty"), "BACKDOOR_COURSE_OFFLINE": "1"}
    result = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().endswith("mnist-sample")


def test_parsed_sample_is_kept_and_a_damaged_copy_parsed_again(monkeypatch):
    first = data.load_mnist_sample()  # parses the CSV (conftest gives each test an empty cache)
    [kept] = (data.cache_dir() / "data").glob("mnist_5k-*.pt")

    def no_parsing(*args, **kwargs):
        raise AssertionError("the CSV was parsed again although its tensors were kept")

    with monkeypatch.context() as m:
        m.setattr(data.np, "loadtxt", no_parsing)
        again = data.load_mnist_sample()
    assert torch.equal(first.x_train, again.x_train) and torch.equal(first.y_test, again.y_test)
    kept.write_bytes(b"truncated")
    third = data.load_mnist_sample()  # parsed again and kept again
    assert torch.equal(first.x_test, third.x_test) and kept.stat().st_size > 1_000_000
