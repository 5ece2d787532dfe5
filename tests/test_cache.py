import errno
import hashlib
import json
import sys
from pathlib import Path

import pytest
import torch
from torch import nn

from course_utils import cache


@pytest.fixture(autouse=True)
def _forget_models_kept_in_memory():
    yield
    cache._MEMORY.clear()


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


# Faults: each is detected, said in one sentence, and handled (retrain or keep in memory).

def _linear(value: float):
    def train(model):
        nn.init.constant_(model.weight, value)
        nn.init.constant_(model.bias, value)
    return train


def _files(config):
    folder = cache.cache_dir() / "models"
    key = cache.config_key(config)
    return folder / f"{key}.pt", folder / f"{key}.json"


def _retrains(config, capsys, expect: str, value: float = 2.0):
    """Load `config` again: it must be trained again (weights = value), with `expect` in the one sentence said."""
    calls = []
    model = cache.load_or_train(config, lambda: nn.Linear(2, 2), lambda m: (calls.append(1), _linear(value)(m)))
    said = capsys.readouterr().out
    assert calls == [1] and (model.weight == value).all(), said
    assert expect in said and said.count("\n") == 1 and said.startswith("Model cache: "), said
    return said


def test_record_holds_version_config_and_hash():
    config = {"k": "record"}
    cache.load_or_train(config, lambda: nn.Linear(2, 2), _linear(0.5))
    pt, record = _files(config)
    saved = json.loads(record.read_text())
    assert saved["cache_version"] == cache.CACHE_VERSION and saved["config"] == config
    assert saved["sha256"] == hashlib.sha256(pt.read_bytes()).hexdigest()
    assert not list(pt.parent.glob("*.tmp"))


@pytest.mark.parametrize("damage", ["truncate", "flip"])
def test_damaged_file_is_detected_by_hash_and_retrained(capsys, damage):
    config = {"k": damage}
    cache.load_or_train(config, lambda: nn.Linear(2, 2), _linear(0.5))
    pt, _ = _files(config)
    data = bytearray(pt.read_bytes())
    if damage == "truncate":
        pt.write_bytes(data[: len(data) // 2])
    else:  # same length, one weight byte changed: torch.load would accept it, the hash does not
        data[-200] ^= 0xFF
        pt.write_bytes(bytes(data))
    capsys.readouterr()
    _retrains(config, capsys, "damaged")
    assert (cache.load_or_train(config, lambda: nn.Linear(2, 2), _linear(9.0)).weight == 2.0).all()  # saved again


def test_older_cache_version(capsys):
    config = {"k": "v1"}
    cache.load_or_train(config, lambda: nn.Linear(2, 2), _linear(0.5))
    pt, record = _files(config)
    record.write_text(json.dumps(config))  # what version 1 wrote: the bare config, no hash
    capsys.readouterr()
    calls = []
    model = cache.load_or_train(config, lambda: nn.Linear(2, 2), lambda m: calls.append(1))
    said = capsys.readouterr().out
    assert not calls and (model.weight == 0.5).all() and "version 1" in said  # it loads cleanly: kept, record upgraded
    assert json.loads(record.read_text())["cache_version"] == cache.CACHE_VERSION
    record.write_text(json.dumps(config))
    pt.write_bytes(b"not a model")  # a version 1 file that does not load: trained again
    _retrains(config, capsys, "version 1")
    record.write_text(json.dumps({"cache_version": 99, "config": config, "sha256": "0"}))
    _retrains(config, capsys, "version 99")


def test_record_of_another_config_and_wrong_architecture(capsys):
    config = {"k": "other"}
    cache.load_or_train(config, lambda: nn.Linear(2, 2), _linear(0.5))
    pt, record = _files(config)
    saved = json.loads(record.read_text())
    record.write_text(json.dumps({**saved, "config": {"k": "something else"}}))
    capsys.readouterr()
    _retrains(config, capsys, "another config")
    torch.save(nn.Linear(3, 3).state_dict(), pt)  # right hash, wrong shapes
    cache._write_record(pt, config)
    _retrains(config, capsys, "cannot be loaded")
    record.unlink()  # no record at all (an interrupted save)
    _retrains(config, capsys, "no readable record")


@pytest.mark.parametrize("error", [OSError(errno.ENOSPC, "No space left on device"),
                                   PermissionError(errno.EACCES, "Read-only file system"),
                                   RuntimeError("PytorchStreamWriter failed writing file data/0")])
def test_full_or_read_only_folder_keeps_the_model_in_memory(monkeypatch, capsys, error):
    def fail(obj, f, *args, **kwargs):
        Path(f).write_bytes(b"half")  # a partial temporary file that must not be left behind
        raise error
    monkeypatch.setattr(torch, "save", fail)
    config = {"k": f"full-{type(error).__name__}"}
    said = _retrains(config, capsys, "kept in memory")
    assert type(error).__name__ in said
    calls = []
    again = cache.load_or_train(config, lambda: nn.Linear(2, 2), lambda m: calls.append(1))
    assert not calls and (again.weight == 2.0).all()  # from memory, not trained twice
    pt, _ = _files(config)
    assert not pt.exists() and not list(pt.parent.glob("*.tmp"))


def test_cache_folder_that_cannot_be_created(tmp_path, monkeypatch, capsys):
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    monkeypatch.setenv(cache.CACHE_ENV, str(blocker / "cache"))
    _retrains({"k": "nofolder"}, capsys, "kept in memory")


def _train_in_process(config, counter, out, start_at):
    import time as _time

    def train(model):
        with open(counter, "a") as f:
            f.write("trained\n")
        _time.sleep(1.0)
        nn.init.constant_(model.weight, 7.0)

    while _time.time() < start_at:  # start both at once
        _time.sleep(0.01)
    model = cache.load_or_train(config, lambda: nn.Linear(2, 2), train)
    Path(out).write_text(str(model.weight.sum().item()))


@pytest.mark.skipif(sys.platform == "win32", reason="flock is POSIX")
def test_two_kernels_training_the_same_model_take_turns(tmp_path):
    import multiprocessing
    import time

    ctx = multiprocessing.get_context("fork")
    counter, start_at = tmp_path / "count", time.time() + 0.5
    procs = [ctx.Process(target=_train_in_process, args=({"k": "race"}, counter, tmp_path / f"out{i}", start_at))
             for i in range(2)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(60)
    assert [p.exitcode for p in procs] == [0, 0]
    assert counter.read_text() == "trained\n"  # once: the second kernel waited and loaded the first one's model
    assert {(tmp_path / f"out{i}").read_text() for i in range(2)} == {str(7.0 * 4)}


@pytest.mark.skipif(sys.platform == "win32", reason="flock is POSIX")
def test_lock_held_too_long_trains_here_too(monkeypatch, capsys):
    import fcntl

    config = {"k": "stuck"}
    pt, _ = _files(config)
    pt.parent.mkdir(parents=True, exist_ok=True)
    monkeypatch.setattr(cache, "LOCK_TIMEOUT_S", 0.6)
    with open(pt.with_suffix(".lock"), "a") as other:  # another kernel holding the lock
        fcntl.flock(other, fcntl.LOCK_EX)
        calls = []
        model = cache.load_or_train(config, lambda: nn.Linear(2, 2), lambda m: (calls.append(1), _linear(3.0)(m)))
    said = capsys.readouterr().out
    assert calls == [1] and (model.weight == 3.0).all()
    assert "waiting for it" in said and "training it here too" in said and pt.exists()


def test_every_cached_model_keys_through_training_config():
    """One cache-key builder: no module writes its own config dict with the training settings (epochs and
    batch size; a cached analysis's settings, such as Neural Cleanse's steps and batch size, are no model's)."""
    from pathlib import Path

    import course_utils
    from course_utils import cache, train
    from course_utils.data import load_mnist_sample

    package = Path(course_utils.__file__).parent
    ad_hoc = [p.name for p in package.rglob("*.py") if p.name != "cache.py"
              and all(f'"{name}":' in p.read_text() for name in ("epochs", "batch_size"))]
    assert ad_hoc == [], f"these modules build a cache key by hand: {ad_hoc}"
    data = load_mnist_sample()
    config = cache.training_config(data, model="small-cnn", seed=0, epochs=2, batch_size=64, lr=0.1, tag="x")
    assert config["version"] == train.CACHE_VERSION and config["batch_size"] == 64 and config["lr"] == 0.1
    assert config["tag"] == "x" and config["n_train"] == len(data.x_train)


# ---------------------------------------------------------------- cached results and the cost timer
def test_cached_result_computes_once_and_counts_the_recorded_cost(tmp_path, monkeypatch):
    import time

    calls = []

    def slow():
        calls.append(1)
        time.sleep(0.2)
        return {"value": torch.arange(3), "share": 0.5}

    with cache.cost_timer() as first:
        a = cache.cached_result("demo", {"model": "abc", "steps": 3}, slow)
    with cache.cost_timer() as second:
        b = cache.cached_result("demo", {"model": "abc", "steps": 3}, slow)
    assert len(calls) == 1 and torch.equal(a["value"], b["value"]) and b["share"] == 0.5
    assert second.seconds == pytest.approx(first.seconds, abs=0.05)  # the load counts the 0.2 s it cost then
    assert second.seconds >= 0.2
    cache.cached_result("demo", {"model": "abc", "steps": 4}, slow)  # other settings: computed again
    cache.cached_result("other", {"model": "abc", "steps": 3}, slow)  # another analysis: computed again
    assert len(calls) == 3
    cache.clear_cache()
    assert not list((cache.cache_dir() / "results").glob("*.pt"))
    cache.cached_result("demo", {"model": "abc", "steps": 3}, slow)
    assert len(calls) == 4


def test_cached_result_recomputes_a_damaged_file_and_survives_a_read_only_cache(tmp_path):
    calls = []

    def compute():
        calls.append(1)
        return [torch.ones(2), 3.0]

    cache.cached_result("demo", {"k": 1}, compute)
    (path,) = (cache.cache_dir() / "results").glob("*.pt")
    path.write_bytes(path.read_bytes()[:20])  # truncated
    value = cache.cached_result("demo", {"k": 1}, compute)
    assert len(calls) == 2 and torch.equal(value[0], torch.ones(2)) and value[1] == 3.0
    assert cache.cached_result("demo", {"k": 1}, compute)[1] == 3.0 and len(calls) == 2  # rewritten whole
    folder = cache.cache_dir() / "results"
    folder.chmod(0o500)
    try:
        assert cache.cached_result("demo", {"k": 2}, compute)[1] == 3.0  # not kept, still right
    finally:
        folder.chmod(0o700)


def test_fingerprint_sees_values_not_layout():
    x = torch.rand(4, 3, 5, 5, generator=torch.Generator().manual_seed(0))
    assert cache.fingerprint(x) == cache.fingerprint(x.contiguous(memory_format=torch.channels_last))
    assert cache.fingerprint(x) != cache.fingerprint(x.clone().index_put_((torch.tensor([0]),), torch.tensor(0.0)))
    assert cache.fingerprint(x) != cache.fingerprint(x.double())
    assert cache.fingerprint(x) != cache.fingerprint(x.view(4, 75))
    a, b = nn.Linear(2, 2), nn.Linear(2, 2)
    b.load_state_dict(a.state_dict())
    assert cache.fingerprint(a) == cache.fingerprint(b)
    with torch.no_grad():
        b.bias += 1e-6
    assert cache.fingerprint(a) != cache.fingerprint(b)
    assert cache.fingerprint([x, {"seed": 1}]) != cache.fingerprint([x, {"seed": 2}])


def test_cost_timers_nest_and_stop():
    import time

    with cache.cost_timer() as outer:
        with cache.cost_timer() as inner:
            time.sleep(0.05)
        time.sleep(0.05)
    assert inner.seconds == pytest.approx(0.05, abs=0.04) and outer.seconds >= inner.seconds + 0.04
    stopped = outer.seconds
    time.sleep(0.02)
    assert outer.seconds == stopped
