"""A model cache: load a model if it was trained before with the same config, else train it.

Keys are the SHA-256 of the config as canonical JSON, so any change in data, model,
attack, seed or epochs trains a new model; later notebooks reuse what earlier ones
trained. The folder is ``~/.cache/backdoor-course`` (``$XDG_CACHE_HOME`` respected);
set ``BACKDOOR_COURSE_CACHE`` to move it, and call `clear_cache()` to empty it.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from collections.abc import Callable
from pathlib import Path

import torch
from torch import nn

CACHE_ENV = "BACKDOOR_COURSE_CACHE"


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


def load_or_train(config: dict, build: Callable[[], nn.Module], train: Callable[[nn.Module], None]) -> nn.Module:
    """The model for `config`: loaded from the cache if there, else `train(build())` and saved.

    build: makes a fresh model with the right architecture.
    train: trains that model in place.
    The model comes back in eval mode on the CPU.
    """
    path = cache_dir() / "models" / f"{config_key(config)}.pt"
    model = build()
    if path.exists():
        try:
            model.load_state_dict(torch.load(path, map_location="cpu", weights_only=True))
            return model.eval()
        except Exception:  # a stale or broken file: train again rather than fail
            path.unlink(missing_ok=True)
    train(model)
    model = model.cpu().eval()
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    torch.save(model.state_dict(), tmp)
    tmp.replace(path)  # atomic, so an interrupted save never leaves half a model
    path.with_suffix(".json").write_text(json.dumps(config, indent=1, sort_keys=True))
    return model


def clear_cache(models_only: bool = True) -> None:
    """Delete the cached models (and the downloaded data too with ``models_only=False``)."""
    target = cache_dir() / "models" if models_only else cache_dir()
    shutil.rmtree(target, ignore_errors=True)
