import pytest
from torch import nn

from course_utils import cache


def test_load_or_train_trains_once(tmp_path):
    calls = []

    def train(model):
        calls.append(1)
        nn.init.constant_(model.weight, 0.5)

    a = cache.load_or_train({"k": 1}, lambda: nn.Linear(2, 2), train)
    b = cache.load_or_train({"k": 1}, lambda: nn.Linear(2, 2), train)
    assert len(calls) == 1 and not b.training
    assert (b.weight == 0.5).all() and (a.weight == b.weight).all()
    cache.load_or_train({"k": 2}, lambda: nn.Linear(2, 2), train)
    assert len(calls) == 2


def test_cache_dir_env_and_clear(tmp_path, monkeypatch):
    monkeypatch.setenv(cache.CACHE_ENV, str(tmp_path / "elsewhere"))
    assert cache.cache_dir() == tmp_path / "elsewhere"
    cache.load_or_train({"k": 3}, lambda: nn.Linear(1, 1), lambda m: None)
    assert list((tmp_path / "elsewhere" / "models").glob("*.pt"))
    cache.clear_cache()
    assert not (tmp_path / "elsewhere" / "models").exists()


def test_config_key_is_stable_and_order_free():
    assert cache.config_key({"a": 1, "b": [1, 2]}) == cache.config_key({"b": [1, 2], "a": 1})
    assert cache.config_key({"a": 1}) != cache.config_key({"a": 2})
    with pytest.raises(TypeError, match="JSON"):
        cache.config_key({"f": lambda: 0})


def test_broken_cache_file_is_retrained(tmp_path):
    cache.load_or_train({"k": 4}, lambda: nn.Linear(1, 1), lambda m: None)
    for p in (cache.cache_dir() / "models").glob("*.pt"):
        p.write_bytes(b"garbage")
    calls = []
    cache.load_or_train({"k": 4}, lambda: nn.Linear(1, 1), lambda m: calls.append(1))
    assert calls == [1]
