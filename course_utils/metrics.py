"""The numbers the course reports: CA, ASR, robust accuracy, DER, and spread over seeds (mean, std, CI)."""

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


def robust_accuracy(model: nn.Module, data: ImageData, attack: BackdoorAttack) -> float:
    """RA: accuracy on triggered test images measured against their TRUE labels, in [0, 1].

    The same images as `attack_success_rate` (true label != the attacker's label), but a
    hit is the correct class. A repaired model should have RA close to CA. (BackdoorBench,
    Wu et al., 2022, calls it robust accuracy; it is not the adversarial robust accuracy of
    `course_utils.robust`, which uses PGD perturbations instead of a trigger.)
    """
    wanted = attack.target_labels(data.y_test, data.num_classes)
    keep = wanted != data.y_test
    if not keep.any():
        raise ValueError("no test image has a true label different from the attack's target")
    return (predict(model, attack.apply(data.x_test[keep])) == data.y_test[keep]).float().mean().item()


def der(ca_before: float, asr_before: float, ca_after: float, asr_after: float) -> float:
    """Defense effectiveness rating, in [0, 1]: (max(0, dASR) - max(0, dCA) + 1) / 2.

    dASR = asr_before - asr_after (how much the defense lowers the ASR) and
    dCA = ca_before - ca_after (how much clean accuracy it costs); all four are fractions
    in [0, 1]. 1 = backdoor gone at no cost, 0.5 = no effect (or gain and cost equal),
    0 = no gain and all accuracy lost. (BackdoorBench, Wu et al., NeurIPS 2022.)
    """
    values = {"ca_before": ca_before, "asr_before": asr_before, "ca_after": ca_after, "asr_after": asr_after}
    for name, v in values.items():
        if not isinstance(v, (int, float)) or not 0.0 <= v <= 1.0:
            raise ValueError(f"{name} must be a fraction in [0, 1] (0.95 means 95 %), got {v!r}")
    gain = max(0.0, asr_before - asr_after)
    cost = max(0.0, ca_before - ca_after)
    return (gain - cost + 1.0) / 2.0


def summarize(values: Sequence[float], confidence: float = 0.95) -> dict:
    """{"mean", "std", "ci_low", "ci_high", "n"}: mean, sample std and Student-t interval over seeds.

    With one value the std is 0 and the interval is (nan, nan): one seed says nothing about spread.
    """
    mean, std = mean_std(values)
    _, half = mean_ci(values, confidence)
    return {"mean": mean, "std": std, "ci_low": mean - half, "ci_high": mean + half, "n": len(values)}


def format_mean_ci(values: Sequence[float], percent: bool = True, confidence: float = 0.95) -> str:
    """'97.9 % [96.1, 99.7]' style text: the mean and its confidence interval."""
    s = summarize(values, confidence)
    scale, unit = (100, " %") if percent else (1, "")
    return f"{s['mean'] * scale:.1f}{unit} [{s['ci_low'] * scale:.1f}, {s['ci_high'] * scale:.1f}]"
