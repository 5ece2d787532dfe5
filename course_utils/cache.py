"""A model cache: load a model if it was trained before with the same config, else train it.

Keys are the SHA-256 of the config as canonical JSON, so any change in data, model,
attack, seed or epochs trains a new model; later notebooks reuse what earlier ones
trained. The folder is ``~/.cache/backdoor-course`` (``$XDG_CACHE_HOME`` respected);
set ``BACKDOOR_COURSE_CACHE`` to move it, and call `clear_cache()` to empty it.

Some analyses cost as much as training a model (Neural Cleanse, the capstone's trigger searches).
`cached_result` keeps their results the same way, keyed by the weights and images they ran on (by
hash) and their settings, together with how long they took; `cost_timer` times a block of work at
what it cost, counting a result loaded from the cache at the seconds it took when it was computed.
Only the course's own implementations are cached: a learner's function always runs.

Faults are handled, never a crash and never a silently wrong model. Each model file
``models/<key>.pt`` has a record ``models/<key>.json`` with the cache version, the config and
the file's SHA-256. A file whose hash, version, config or architecture does not match is
reported in one sentence and trained again. Two kernels that need the same model take turns
(a lock per key; the second waits, then loads what the first saved). A cache folder that is
read-only or full is reported once and the model is kept in memory for this session.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import torch
from torch import nn

from .integrity import sha256_file

CACHE_ENV = "BACKDOOR_COURSE_CACHE"
CACHE_VERSION = 2  # 1: a .pt file and a .json of the bare config; 2: the .json record holds version, config, hash
LOCK_TIMEOUT_S = 900.0  # how long a kernel waits for another one training the same model
_MEMORY: dict[str, dict] = {}  # key -> state_dict of models that could not be saved (this session only)


def cache_dir() -> Path:
    """The course's cache folder (created if missing)."""
    base = os.environ.get(CACHE_ENV)
    if base:
        path = Path(base).expanduser()
    else:
        xdg = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
        path = Path(xdg) / "backdoor-course"
    path.mkdir(parents=True, exist_ok=True)
    return path


def config_key(config: dict) -> str:
    """A short, stable hash of a JSON-serialisable config."""
    try:
        text = json.dumps(config, sort_keys=True, separators=(",", ":"))
    except TypeError as err:
        raise TypeError(f"A cache config must be JSON-serialisable (numbers, strings, lists, dicts): {err}") from None
    return hashlib.sha256(text.encode()).hexdigest()[:20]


def training_config(data, *, model: str, seed: int, epochs: int, version: int | None = None, attack=None,
                    poison_rate: float = 0.0, batch_size: int | None = None, lr: float | None = None,
                    **extra) -> dict:
    """The one cache config of a trained model: everything that changes its weights.

    Every model the course caches gets its key from here (the lessons' models, the defenses'
    retrained models, the test zoo, the sign and diagnosis models), so a change to training
    (the trainer's CACHE_VERSION) retires all of them at once.
    data: an ImageData or TabularData (its name and training-set size); model: the architecture's
    name; attack: a BackdoorAttack or None (clean); version: the trainer's CACHE_VERSION (the
    default); batch_size, lr: the profile's unless the caller trains with its own.
    extra: what else changes the weights (a defense's name and hyperparameters, a zoo model's
    spec, a hash of the training set, ...). Pass the result to `load_or_train`.
    """
    from .runtime import get_profile
    from .train import CACHE_VERSION

    profile = get_profile()
    return {"version": CACHE_VERSION if version is None else version, "data": data.name,
            "n_train": len(data.x_train), "model": model,
            "attack": attack.config() if attack is not None else None,
            "poison_rate": poison_rate if attack is not None else 0.0, "seed": seed, "epochs": epochs,
            "batch_size": profile.batch_size if batch_size is None else batch_size,
            "lr": profile.lr if lr is None else lr, **extra}


def _say(sentence: str) -> None:
    """Tell the learner what the cache did, in one plain sentence (printed, so a notebook shows it)."""
    print(f"Model cache: {sentence}", flush=True)


def _try_load(model: nn.Module, path: Path, config: dict) -> str | None:
    """Load `path` into `model`: None if it worked, "" if there is no file, else why it cannot be used."""
    record_path, name = path.with_suffix(".json"), f"the cached model {path.stem}"
    if not path.exists():
        return ""
    try:
        record = json.loads(record_path.read_text())
    except (OSError, ValueError):
        return f"{name} has no readable record of its version and hash (an older or interrupted cache)"
    version = record.get("cache_version", 1) if isinstance(record, dict) else 1
    saved_config = record if version == 1 else record.get("config")  # version 1 stored the bare config
    if version not in (1, CACHE_VERSION):
        return f"{name} was saved by cache version {version}, this is version {CACHE_VERSION}"
    if saved_config != json.loads(json.dumps(config)):
        return f"{name} was saved for another config (its record does not match)"
    try:
        if version == CACHE_VERSION and sha256_file(path) != record.get("sha256"):
            return f"{name} is damaged (its SHA-256 does not match its record: truncated or overwritten)"
        model.load_state_dict(torch.load(path, map_location="cpu", weights_only=True))
    except Exception as err:  # torch.load of a damaged file raises many kinds (RuntimeError, UnpicklingError, ...)
        problem = "was saved by cache version 1 and " if version == 1 else ""
        return f"{name} {problem}cannot be loaded ({type(err).__name__}: {str(err).splitlines()[0][:120]})"
    if version == 1:  # it loaded cleanly into the right architecture: keep it, with a version 2 record
        with contextlib.suppress(OSError):
            _write_record(path, config)
            _say(f"{name} was saved by cache version 1; it loaded cleanly and now has a version {CACHE_VERSION} record.")
    return None


def _write_record(path: Path, config: dict) -> None:
    """Write the record of the model file `path` (version, config, SHA-256) atomically."""
    record = {"cache_version": CACHE_VERSION, "config": config, "sha256": sha256_file(path)}
    tmp = path.with_name(f"{path.stem}.{os.getpid()}.{uuid.uuid4().hex[:8]}.json.tmp")
    try:
        tmp.write_text(json.dumps(record, indent=1, sort_keys=True))
        tmp.replace(path.with_suffix(".json"))
    finally:
        tmp.unlink(missing_ok=True)


@contextlib.contextmanager
def _lock(path: Path, timeout: float):
    """Hold an exclusive lock on `path`'s key while training it; yields False if it could not be had in time.

    flock is released by the kernel when a process dies, so a crashed kernel never leaves a stale
    lock. Without fcntl (Windows) there is no lock; saving is still atomic.
    """
    try:
        import fcntl
    except ImportError:
        yield False
        return
    try:
        handle = open(path.with_suffix(".lock"), "a")
    except OSError:  # read-only folder: nobody can save here, so there is nothing to take turns on
        yield False
        return
    with handle:
        start, told = time.monotonic(), False
        while True:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except OSError:
                if time.monotonic() - start >= timeout:
                    _say(f"another kernel has been training {path.stem} for over {timeout:.0f} s; training it here too.")
                    yield False
                    return
                if not told:
                    _say(f"another kernel is training {path.stem}; waiting for it (up to {timeout:.0f} s).")
                    told = True
                time.sleep(0.5)
        try:
            yield True
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def save_atomically(value, path: Path) -> None:
    """`torch.save(value)` to `path` through a uniquely named temporary file and a rename, so a reader never
    sees a half-written file and two kernels writing at once never mix. Creates the folder; raises OSError
    or RuntimeError when it cannot be written."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f"{path.stem}.{os.getpid()}.{uuid.uuid4().hex[:8]}.tmp")
    try:
        torch.save(value, tmp)
        tmp.replace(path)
    finally:
        tmp.unlink(missing_ok=True)


def _save(model: nn.Module, config: dict, path: Path) -> None:
    """Write the model and its record atomically (unique temporary names, then rename)."""
    save_atomically(model.state_dict(), path)  # the model first, then its record: a half-written pair reads
    _write_record(path, config)  # as "damaged", never as valid


def _models_folder() -> Path | None:
    try:
        folder = cache_dir() / "models"
        folder.mkdir(parents=True, exist_ok=True)
        return folder
    except OSError as err:
        _say(f"cannot use the cache folder ({type(err).__name__}: {err}); models are kept in memory for this session.")
        return None


def load_or_train(config: dict, build: Callable[[], nn.Module], train: Callable[[nn.Module], None]) -> nn.Module:
    """The model for `config`: loaded from the cache if there, else `train(build())` and saved.

    build: makes a fresh model with the right architecture.
    train: trains that model in place.
    The model comes back in eval mode on the CPU. A damaged, outdated or mismatched file is
    reported and trained again; if the cache cannot be written, the model is kept in memory.
    """
    key = config_key(config)
    model = build()
    if key in _MEMORY:
        model.load_state_dict(_MEMORY[key])
        return model.eval()
    folder = _models_folder()
    path = folder / f"{key}.pt" if folder else None
    if path is not None and _try_load(model, path, config) is None:
        return model.eval()
    with _lock(path, LOCK_TIMEOUT_S) if path is not None else contextlib.nullcontext(False):
        problem = _try_load(model, path, config) if path is not None else ""
        if problem is None:  # another kernel saved it while this one waited
            return model.eval()
        if problem:
            _say(f"{problem}; training it again.")
        model = build()  # a failed load may have filled part of the weights
        train(model)
        model = model.cpu().eval()
        if path is not None:
            try:
                _save(model, config, path)
                return model
            except (OSError, RuntimeError) as err:  # torch reports a full disk as a RuntimeError
                _say(f"could not save {key} ({type(err).__name__}: {str(err).splitlines()[0][:120]}); "
                     "it is kept in memory for this session.")
        _MEMORY[key] = {k: v.clone() for k, v in model.state_dict().items()}
    return model


def clear_cache(models_only: bool = True) -> None:
    """Delete the cached models and results (and the downloaded data too with ``models_only=False``)."""
    _MEMORY.clear()
    if models_only:
        for folder in ("models", "results"):
            shutil.rmtree(cache_dir() / folder, ignore_errors=True)
    else:
        shutil.rmtree(cache_dir(), ignore_errors=True)


# ---------------------------------------------------------------- results of the course's own analyses
RESULTS_VERSION = 1  # bump when a cached analysis changes, so its old results are computed again
_TIMERS: list[CostTimer] = []  # the cost timers now open (nested blocks each count what they contain)


class CostTimer:
    """Seconds spent in a `cost_timer` block so far, a cached result counted at what it cost to compute."""

    def __init__(self):
        self._start, self._end, self._credit = time.perf_counter(), None, 0.0

    @property
    def seconds(self) -> float:
        end = time.perf_counter() if self._end is None else self._end
        return end - self._start + self._credit


@contextlib.contextmanager
def cost_timer():
    """Time a block of work at its cost: wall-clock seconds, where a result that `cached_result` loaded
    instead of computing counts the seconds it took when it was computed (as the repairs' costs do).

        with cu.cost_timer() as timer:
            scores = cu.zoo.score_all(zoo, cu.zoo.warp_trigger_score, x_clean)
        print(f"{timer.seconds / len(zoo):.2f} s per model")
    """
    timer = CostTimer()
    _TIMERS.append(timer)
    try:
        yield timer
    finally:
        timer._end = time.perf_counter()
        _TIMERS.remove(timer)


def fingerprint(value) -> str:
    """A short SHA-256 of what a result depends on: tensors (dtype, shape and values, whatever the memory
    layout), a model's weights and buffers, and lists, tuples or dicts of them and plain JSON values."""
    digest = hashlib.sha256()

    def feed(item):
        if isinstance(item, nn.Module):
            feed(item.state_dict())
        elif isinstance(item, torch.Tensor):
            t = item.detach().cpu().contiguous()
            digest.update(f"tensor {t.dtype} {tuple(t.shape)};".encode())
            digest.update(t.reshape(-1).view(torch.uint8).numpy().tobytes())
        elif isinstance(item, dict):
            digest.update(b"{")
            for key in item:
                digest.update(f"{key}:".encode())
                feed(item[key])
            digest.update(b"}")
        elif isinstance(item, (list, tuple)):
            digest.update(b"[")
            for element in item:
                feed(element)
            digest.update(b"]")
        else:
            digest.update(json.dumps(item).encode() + b";")

    feed(value)
    return digest.hexdigest()[:20]


def cached_result(name: str, config: dict, compute: Callable[[], object]):
    """`compute()`'s result, saved under the course cache's results/ folder and loaded the next time the same
    analysis (`name`) runs with the same `config`, which must hold the fingerprints of the models and images
    it ran on. The result must be what torch.save keeps and torch.load(weights_only=True) reads back: tensors,
    numbers, strings, and lists or dicts of them. A damaged or mismatched file is computed again; a cache
    that cannot be written only means computing it next time too."""
    config = {"results_version": RESULTS_VERSION, "analysis": name, "torch": torch.__version__, **config}
    key = config_key(config)
    path = cache_dir() / "results" / f"{key}.pt"
    start = time.perf_counter()
    if path.exists():
        try:
            record = torch.load(path, map_location="cpu", weights_only=True)
            if record["config"] == json.loads(json.dumps(config)):
                for timer in _TIMERS:  # count the work at what it cost, not at the time the load took
                    timer._credit += record["seconds"] - (time.perf_counter() - start)
                return record["value"]
        except Exception:  # a truncated, overwritten or foreign file: compute it again (below)
            pass
    value = compute()
    record = {"config": json.loads(json.dumps(config)), "value": value, "seconds": time.perf_counter() - start}
    try:
        save_atomically(record, path)
    except (OSError, RuntimeError):  # read-only or full: the result is still right, it is just not kept
        pass
    return value
