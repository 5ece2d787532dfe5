"""Poisoning: turn a clean training set into a backdoored one.

An attack is a trigger plus a label rule (as in IBM ART): *all-to-one* sends every
triggered input to one target class; *all-to-all* sends class k to (k + 1) mod K.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from dataclasses import dataclass, field, fields
from typing import ClassVar

import torch

from .data import as_float
from .models import make_model
from .robust import pgd
from .train import fit
from .triggers import TRIGGERS, wanet_noise_warp

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
    if isinstance(target, bool) or not isinstance(target, int) or not 0 <= target < num_classes:
        raise ValueError(f"target must be a class index (int) in [0, {num_classes - 1}], got {target!r}")
    if mode == "all-to-one":
        return torch.full_like(y, target)
    return (y + 1) % num_classes


def apply_poison(x: torch.Tensor, y: torch.Tensor, indices: torch.Tensor, trigger: Callable, new_labels: torch.Tensor):
    """Copies of (x, y) where the samples at `indices` carry the trigger and get `new_labels`."""
    x, y = as_float(x).clone(), y.clone()
    x[indices] = trigger(x[indices])
    y[indices] = new_labels
    return x, y


def poison_samples(x: torch.Tensor, y: torch.Tensor, indices: torch.Tensor, trigger: Callable, target: int):
    """Copies of (x, y) where the samples at `indices` carry the trigger and have label `target` (all-to-one)."""
    return apply_poison(x, y, indices, trigger, torch.full((len(indices),), target, dtype=y.dtype))


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
    TRIGGER: ClassVar[str | None] = None  # the TRIGGERS entry this attack uses, when it differs from `name`

    def apply(self, images: torch.Tensor) -> torch.Tensor:
        """Triggered copies of `images` (uint8 or float), as float in [0, 1]."""
        return TRIGGERS[self.TRIGGER or self.name](as_float(images), **self.params)

    def target_labels(self, y: torch.Tensor, num_classes: int = 10) -> torch.Tensor:
        return target_labels(y, self.target, self.mode, num_classes)

    def poison(self, x, y, rate: float, seed: int = 0, num_classes: int = 10) -> PoisonedData:
        return poison_dataset(x, y, self.apply, rate=rate, target=self.target, mode=self.mode,
                              seed=seed, num_classes=num_classes)

    def config(self) -> dict:
        return {"name": self.name, "params": self.params, "target": self.target, "mode": self.mode}


def _own_fields(cls) -> list[str]:
    """The fields a BackdoorAttack subclass adds (attack settings that are not trigger parameters)."""
    base = {f.name for f in fields(BackdoorAttack)}
    return [f.name for f in fields(cls) if f.name not in base]


@dataclass(frozen=True)
class WaNetAttack(BackdoorAttack):
    """WaNet (Nguyen & Tran, ICLR 2021) with its noise mode.

    Besides the warped-and-relabelled samples, `cross_ratio` times as many other samples are
    warped with the field plus random noise and keep their TRUE labels, so the model learns
    this one field and not "any warp"; that makes the backdoor harder to find. Those noise
    samples are not counted in `PoisonedData.poisoned` (their labels are right).

    Threat model, paper vs here. In the paper the attacker controls training: every batch, a
    fraction of it is warped and relabelled and `cross_ratio` times as many get the field plus
    noise drawn afresh for that batch. Here the attacker only supplies data: the poisoned and
    the noise samples are made once, before training, and stay fixed, so the model sees the
    same noisy warps every epoch (a data-poisoning version of WaNet, weaker and easier to detect
    than the original).
    """

    cross_ratio: float = 2.0

    def __post_init__(self):
        if isinstance(self.cross_ratio, bool) or not isinstance(self.cross_ratio, (int, float)) or self.cross_ratio < 0:
            raise ValueError(f"cross_ratio must be a non-negative number (2 in the paper), got {self.cross_ratio!r}")

    def poison(self, x, y, rate: float, seed: int = 0, num_classes: int = 10) -> PoisonedData:
        out = super().poison(x, y, rate, seed, num_classes)
        free = torch.nonzero(~out.poisoned).flatten()
        count = min(round(self.cross_ratio * int(out.poisoned.sum())), len(free))
        pick = free[torch.randperm(len(free), generator=torch.Generator().manual_seed(seed + 1))[:count]]
        px = out.x.clone()
        px[pick] = wanet_noise_warp(px[pick], **self.params, noise_seed=seed)
        return PoisonedData(px, out.y, out.poisoned)

    def config(self) -> dict:
        return {**super().config(), "cross_ratio": self.cross_ratio}


def pgd_away(model, x: torch.Tensor, y: torch.Tensor, eps: float, steps: int, batch_size: int = 512) -> torch.Tensor:
    """L-inf PGD from `x` (no random start) that pushes it away from its labels `y`: `robust.pgd`
    with step 2.5 * eps / steps, in batches of `batch_size`, returned on the CPU.

    x: float (N, C, H, W) in [0, 1]; eps: the L-inf budget (0 returns a copy). The model must be
    in eval mode; its weights are not changed.
    """
    if model.training:
        raise ValueError("the model is in training mode; call model.eval() first")
    if eps == 0 or len(x) == 0:
        return x.clone()
    step = 2.5 * eps / steps
    return torch.cat([pgd(model, x[i : i + batch_size], y[i : i + batch_size], eps, step, steps,
                          random_start=False).cpu() for i in range(0, len(x), batch_size)])


@dataclass(frozen=True)
class CleanLabelAttack(BackdoorAttack):
    """Label-consistent (clean-label) backdoor (Turner, Tsipras & Madry, 2019, arXiv:1912.02771).

    Only images of the target class are poisoned and they KEEP their true label, so a human
    auditing the labels finds nothing wrong. To make the model rely on the trigger, their
    natural features are first weakened: an L-inf PGD perturbation of size `eps`, computed
    against a surrogate model trained on the clean data for `surrogate_epochs` epochs, makes
    them hard to classify; then the patch trigger is stamped on. At test time the trigger is the
    patch alone. `rate` is a fraction of the whole training set, capped at the target class's size.

    Defaults for MNIST (measured on the offline sample): a 5x5 patch, as a 3x3 one is rarely
    learnt; eps=0.2, as eps=0 (no weakening) gives ASR under 10 % and large eps makes the
    perturbation itself the feature the model learns (ASR falls again).

    Paper vs here. Turner et al. weaken the images with PGD against an *adversarially trained*
    surrogate (so the perturbation changes the image's semantics) or by interpolating in a
    GAN's latent space, and stamp a small checkerboard trigger in all four corners (a
    reduced-amplitude variant survives inspection better). Here the surrogate is trained
    normally for `surrogate_epochs` epochs on the same data, and the trigger is BadNets' patch
    in one corner; the surrogate is trained by `poison` itself, with the course's `fit`.
    """

    eps: float = 0.2
    steps: int = 10
    surrogate_epochs: int = 2
    TRIGGER: ClassVar[str] = "badnets"
    TRIGGER_DEFAULTS: ClassVar[dict] = {"size": 5}

    def __post_init__(self):
        if self.mode != "all-to-one":
            raise ValueError("a clean-label attack keeps true labels, so it only works all-to-one; use mode='all-to-one'")
        if isinstance(self.eps, bool) or not isinstance(self.eps, (int, float)) or not 0 <= self.eps <= 1:
            raise ValueError(f"eps (the L-inf size of the perturbation) must be in [0, 1], got {self.eps!r}")
        for name in ("steps", "surrogate_epochs"):
            if not isinstance(getattr(self, name), int) or getattr(self, name) < 1:
                raise ValueError(f"{name} must be a positive int, got {getattr(self, name)!r}")

    def poison(self, x, y, rate: float, seed: int = 0, num_classes: int = 10) -> PoisonedData:
        if not isinstance(rate, (int, float)) or not 0.0 <= rate <= 1.0:
            raise ValueError(f"poison rate must be a fraction in [0, 1] (0.1 means 10 %), got {rate!r}")
        candidates = torch.nonzero(y == self.target).flatten()
        count = min(round(rate * len(y)), len(candidates))
        order = torch.randperm(len(candidates), generator=torch.Generator().manual_seed(seed))
        pick = candidates[order[:count]].sort().values
        px = as_float(x).clone()
        if count and self.eps > 0:
            surrogate = make_model(in_shape=tuple(x.shape[1:]), num_classes=num_classes, seed=seed)
            fit(surrogate, x, y, epochs=self.surrogate_epochs, seed=seed, progress=False)
            px[pick] = pgd_away(surrogate, px[pick], y[pick], self.eps, self.steps)
        px[pick] = self.apply(px[pick])
        mask = torch.zeros(len(y), dtype=torch.bool)
        mask[pick] = True
        return PoisonedData(px, y.clone(), mask)

    def config(self) -> dict:
        return {**super().config(), "eps": self.eps, "steps": self.steps, "surrogate_epochs": self.surrogate_epochs}


ATTACK_TYPES = {"wanet": WaNetAttack, "clean-label": CleanLabelAttack}


def make_attack(name: str = "badnets", *, target: int = 0, mode: str = "all-to-one", **params) -> BackdoorAttack:
    """An attack by name: "badnets", "blended", "wanet" or "clean-label" (defaults: target 0, all-to-one).

    `params` are the trigger's parameters (see `course_utils.triggers`) and, for "wanet" and
    "clean-label", the attack's own settings (`cross_ratio`; `eps`, `steps`, `surrogate_epochs`).
    """
    cls = ATTACK_TYPES.get(name, BackdoorAttack)
    if name not in TRIGGERS and name not in ATTACK_TYPES:
        raise ValueError(f"Unknown attack {name!r}; available: {sorted(set(TRIGGERS) | set(ATTACK_TYPES))}")
    if mode not in TARGET_MODES:
        raise ValueError(f"Unknown target mode {mode!r}; use one of {TARGET_MODES}")
    if not isinstance(target, int) or target < 0:
        raise ValueError(f"target must be a class index (a non-negative int), got {target!r}")
    own = {key: params.pop(key) for key in _own_fields(cls) if key in params}
    trigger = TRIGGERS[cls.TRIGGER or name]
    known = inspect.signature(trigger).parameters
    unknown = sorted(set(params) - set(known))
    if unknown:
        takes = [p for p in known if p != "images"] + _own_fields(cls)
        raise ValueError(f"{name} has no parameter(s) {unknown}; it takes {takes}")
    # Spell out every default, so that make_attack("badnets") and make_attack("badnets", size=3)
    # are the same attack with the same cache key.
    full = {k: v.default for k, v in known.items() if k != "images" and v.default is not inspect.Parameter.empty}
    full.update(getattr(cls, "TRIGGER_DEFAULTS", {}))
    full.update(params)
    return cls(name, full, target, mode, **own)
