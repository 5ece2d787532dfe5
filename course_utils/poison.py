"""Poisoning: turn a clean training set into a backdoored one.

An attack is a trigger plus a label rule (as in IBM ART): *all-to-one* sends every
triggered input to one target class; *all-to-all* sends class k to (k + 1) mod K.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from dataclasses import dataclass, field

import torch

from .data import as_float
from .triggers import TRIGGERS

TARGET_MODES = ("all-to-one", "all-to-all")


@dataclass(frozen=True)
class PoisonedData:
    """A training set after poisoning.

    x: float images (N, C, H, W) in [0, 1]; y: int64 labels (N,), poisoned ones changed;
    poisoned: bool (N,), True where the attacker changed the sample (what detectors hunt for).
    """

    x: torch.Tensor
    y: torch.Tensor
    poisoned: torch.Tensor

    @property
    def rate(self) -> float:
        return self.poisoned.float().mean().item()


def target_labels(y: torch.Tensor, target: int = 0, mode: str = "all-to-one", num_classes: int = 10) -> torch.Tensor:
    """The labels an attacker wants for triggered inputs whose true labels are `y`."""
    if mode not in TARGET_MODES:
        raise ValueError(f"Unknown target mode {mode!r}; use one of {TARGET_MODES}")
    if not 0 <= target < num_classes:
        raise ValueError(f"target must be a class index in [0, {num_classes - 1}], got {target}")
    if mode == "all-to-one":
        return torch.full_like(y, target)
    return (y + 1) % num_classes


def apply_poison(x: torch.Tensor, y: torch.Tensor, indices: torch.Tensor, trigger: Callable, new_labels: torch.Tensor):
    """Copies of (x, y) where the samples at `indices` carry the trigger and get `new_labels`."""
    x, y = as_float(x).clone(), y.clone()
    x[indices] = trigger(x[indices])
    y[indices] = new_labels
    return x, y


def choose_poison_indices(y: torch.Tensor, rate: float, target: int, mode: str, seed: int = 0) -> torch.Tensor:
    """Which samples to poison: round(rate * N) of them, drawn (seeded) from those whose label will change."""
    if not isinstance(rate, (int, float)) or not 0.0 <= rate <= 1.0:
        raise ValueError(f"poison rate must be a fraction in [0, 1] (0.1 means 10 %), got {rate!r}")
    candidates = torch.arange(len(y)) if mode == "all-to-all" else torch.nonzero(y != target).flatten()
    count = round(rate * len(y))
    if count > len(candidates):
        raise ValueError(
            f"rate {rate} asks for {count} poisoned samples but only {len(candidates)} are not already of class {target}"
        )
    order = torch.randperm(len(candidates), generator=torch.Generator().manual_seed(seed))
    return candidates[order[:count]].sort().values


def poison_dataset(x, y, trigger: Callable, *, rate: float, target: int = 0, mode: str = "all-to-one",
                   seed: int = 0, num_classes: int = 10) -> PoisonedData:
    """Poison a fraction `rate` of (x, y) with `trigger` and the label rule `mode` (BadNets-style).

    x: images (N, C, H, W), uint8 or float in [0, 1]; y: int64 labels (N,).
    Returns a `PoisonedData` with new tensors; x and y are left as they are.
    """
    if not isinstance(x, torch.Tensor) or not isinstance(y, torch.Tensor):
        raise TypeError("x and y must be torch tensors")
    if x.ndim != 4 or y.ndim != 1 or len(x) != len(y):
        raise ValueError(f"expected x of shape (N, C, H, W) and y of shape (N,), got {tuple(x.shape)} and {tuple(y.shape)}")
    if y.dtype != torch.int64:
        raise TypeError(f"labels must be int64 class indices, got {y.dtype}")
    indices = choose_poison_indices(y, rate, target, mode, seed)
    new_labels = target_labels(y[indices], target, mode, num_classes)
    px, py = apply_poison(x, y, indices, trigger, new_labels)
    mask = torch.zeros(len(y), dtype=torch.bool)
    mask[indices] = True
    return PoisonedData(px, py, mask)


@dataclass(frozen=True)
class BackdoorAttack:
    """A named trigger with its parameters and its label rule; `config()` is its cache key."""

    name: str
    params: dict = field(default_factory=dict)
    target: int = 0
    mode: str = "all-to-one"

    def apply(self, images: torch.Tensor) -> torch.Tensor:
        """Triggered copies of `images` (uint8 or float), as float in [0, 1]."""
        return TRIGGERS[self.name](as_float(images), **self.params)

    def target_labels(self, y: torch.Tensor, num_classes: int = 10) -> torch.Tensor:
        return target_labels(y, self.target, self.mode, num_classes)

    def poison(self, x, y, rate: float, seed: int = 0, num_classes: int = 10) -> PoisonedData:
        return poison_dataset(x, y, self.apply, rate=rate, target=self.target, mode=self.mode,
                              seed=seed, num_classes=num_classes)

    def config(self) -> dict:
        return {"name": self.name, "params": self.params, "target": self.target, "mode": self.mode}


def make_attack(name: str = "badnets", *, target: int = 0, mode: str = "all-to-one", **params) -> BackdoorAttack:
    """An attack by name (see `course_utils.triggers.TRIGGERS`); its parameters are checked when it is first applied."""
    if name not in TRIGGERS:
        raise ValueError(f"Unknown attack {name!r}; available: {sorted(TRIGGERS)}")
    if mode not in TARGET_MODES:
        raise ValueError(f"Unknown target mode {mode!r}; use one of {TARGET_MODES}")
    if not isinstance(target, int) or target < 0:
        raise ValueError(f"target must be a class index (a non-negative int), got {target!r}")
    trigger = TRIGGERS[name]
    known = inspect.signature(trigger).parameters
    unknown = sorted(set(params) - set(known))
    if unknown:
        raise ValueError(f"{name} has no parameter(s) {unknown}; it takes {[p for p in known if p != 'images']}")
    # Spell out every default, so that make_attack("badnets") and make_attack("badnets", size=3)
    # are the same attack with the same cache key.
    full = {k: v.default for k, v in known.items() if k != "images" and v.default is not inspect.Parameter.empty}
    full.update(params)
    return BackdoorAttack(name, full, target, mode)
