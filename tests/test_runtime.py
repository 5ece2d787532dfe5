import os

import pytest
import torch

from course_utils import runtime


def test_try_device_on_cpu_machine():
    assert runtime.try_device().type in {"cpu", "cuda", "mps"}


def test_profile_default_and_env(monkeypatch):
    expected = "gpu" if torch.cuda.is_available() else "cpu"
    assert runtime.get_profile().name == expected
    monkeypatch.setenv(runtime.PROFILE_ENV, "gpu")
    assert runtime.get_profile().dataset == "cifar10"
    monkeypatch.setenv(runtime.PROFILE_ENV, "cpu")
    assert runtime.get_profile().model == "small-cnn"


def test_unknown_profile_says_what_to_do(monkeypatch):
    monkeypatch.setenv(runtime.PROFILE_ENV, "tpu")
    with pytest.raises(ValueError, match="BACKDOOR_COURSE_PROFILE=cpu"):
        runtime.get_profile()


def test_seed_everything_is_reproducible():
    runtime.seed_everything(3, threads=1)
    a = torch.rand(3)
    runtime.seed_everything(3, threads=1)
    assert torch.equal(a, torch.rand(3))
    assert torch.get_num_threads() == 1
    with pytest.raises(ValueError):
        runtime.seed_everything(-1)


def test_environment_report_is_short():
    text = runtime.environment_report("offline sample")
    assert 3 <= len(text.splitlines()) <= 5
    assert "offline sample" in text and "torch" in text


def test_seed_everything_takes_threads_from_omp_num_threads(monkeypatch):
    """The grader gives each of its kernels OMP_NUM_THREADS = cores // jobs; a lesson must keep it."""
    import torch

    before = torch.get_num_threads()
    try:
        monkeypatch.setenv("OMP_NUM_THREADS", "1")
        runtime.seed_everything(0)
        assert torch.get_num_threads() == 1
        monkeypatch.setenv("OMP_NUM_THREADS", "not a number")
        runtime.seed_everything(0)
        assert torch.get_num_threads() == (os.cpu_count() or 1)
    finally:
        torch.set_num_threads(before)
