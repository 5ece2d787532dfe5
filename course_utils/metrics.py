"""The numbers the course reports: clean accuracy, attack success rate, and spread over seeds."""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from scipy import stats
from torch import nn

from .data import ImageData
from .poison import BackdoorAttack
from .train import accuracy, predict


def clean_accuracy(model: nn.Module, data: ImageData) -> float:
    """CA: accuracy on the clean test set, in [0, 1]."""
    return accuracy(model, data.x_test, data.y_test)


def attack_success_rate(model: nn.Module, data: ImageData, attack: BackdoorAttack) -> float:
    """ASR: the fraction of triggered test images classified as the attacker's label, in [0, 1].

    Only test images whose true label differs from the attacker's label count: a "7"
    classified as 7 with the trigger on says nothing about the backdoor.
    """
    wanted = attack.target_labels(data.y_test, data.num_classes)
    keep = wanted != data.y_test
    if not keep.any():
        raise ValueError("no test image has a true label different from the attack's target")
    return (predict(model, attack.apply(data.x_test[keep])) == wanted[keep]).float().mean().item()


def mean_std(values: Sequence[float]) -> tuple[float, float]:
    """Mean and sample standard deviation (0 for a single value)."""
    values = [float(v) for v in values]
    if not values:
        raise ValueError("need at least one value")
    t = torch.tensor(values, dtype=torch.float64)
    return t.mean().item(), (t.std().item() if len(values) > 1 else 0.0)


def mean_ci(values: Sequence[float], confidence: float = 0.95) -> tuple[float, float]:
    """Mean and the half-width of its Student-t confidence interval (nan for a single value)."""
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must be in (0, 1), got {confidence}")
    mean, std = mean_std(values)
    n = len(values)
    if n < 2:
        return mean, math.nan
    return mean, stats.t.ppf((1 + confidence) / 2, n - 1) * std / math.sqrt(n)


def format_mean_std(values: Sequence[float], percent: bool = True) -> str:
    """'97.9 ± 0.3 %' style text for a list of fractions."""
    mean, std = mean_std(values)
    scale, unit = (100, " %") if percent else (1, "")
    return f"{mean * scale:.1f} ± {std * scale:.1f}{unit}"
