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


def training_config(data, *, model: str, seed: int, epochs: int, version: int, attack=None,
                    poison_rate: float = 0.0, **extra) -> dict:
    """The one cache config of a trained model: everything that changes its weights.

    data: an ImageData (its name and training-set size); model: the architecture's name;
    attack: a BackdoorAttack or None (clean); version: the trainer's CACHE_VERSION; the
    profile's batch size and learning rate are added. extra: what a defense adds (its name,
    hyperparameters, ...). Pass the result to `load_or_train`.
    """
    from .runtime import get_profile

    profile = get_profile()
    return {"version": version, "data": data.name, "n_train": len(data.x_train), "model": model,
            "attack": attack.config() if attack is not None else None,
            "poison_rate": poison_rate if attack is not None else 0.0, "seed": seed, "epochs": epochs,
            "batch_size": profile.batch_size, "lr": profile.lr, **extra}


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
