"""The numbers the course reports: CA, ASR, RA, DER, and their spread over seeds (mean, std, CI).

`evaluate` is the one evaluation of a model against an attack: it returns `Scores` (CA, ASR,
RA and, when asked, the accuracy under PGD), used by lessons 04-06, `repair.budget_sweep`,
`evaluation.attack_defense_matrix` and the benchmark. `sweep` is the one runner for sweeps
over seeds, budgets and methods; `summarize_rows` and `summarize` aggregate over seeds.
"""

from __future__ import annotations

import itertools
import math
import numbers
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING

import torch
from torch import nn
from tqdm.auto import tqdm

from .data import ImageData, as_float
from .robust import pgd_accuracy
from .train import accuracy, predict

if TYPE_CHECKING:
    from .poison import BackdoorAttack


def _check_attack(attack) -> None:
    if not (hasattr(attack, "apply") and hasattr(attack, "target_labels")):
        raise TypeError(f"attack must be a BackdoorAttack (from cu.make_attack), got {type(attack).__name__}")


def _triggered(data: ImageData, attack: BackdoorAttack, n_test: int | None = None):
    """(test labels, attacker's labels, mask of the images that count): only images whose true label
    differs from the attacker's label count, since a "7" classified as 7 with the trigger on says
    nothing about the backdoor."""
    _check_attack(attack)
    if not (hasattr(data, "x_test") and hasattr(data, "y_test")):
        raise TypeError(f"data must be an ImageData (from cu.load_data) with a test set, got {type(data).__name__}")
    y = data.y_test[:n_test]
    wanted = attack.target_labels(y, data.num_classes)
    keep = wanted != y
    if not keep.any():
        raise ValueError("no test image has a true label different from the attack's target")
    return y, wanted, keep


def clean_accuracy(model: nn.Module, data: ImageData) -> float:
    """CA: accuracy on the clean test set, in [0, 1]."""
    return accuracy(model, data.x_test, data.y_test)


def attack_success_rate(model: nn.Module, data: ImageData, attack: BackdoorAttack) -> float:
    """ASR: the fraction of triggered test images classified as the attacker's label, in [0, 1].

    Only test images whose true label differs from the attacker's label count: a "7"
    classified as 7 with the trigger on says nothing about the backdoor.
    """
    _, wanted, keep = _triggered(data, attack)
    return (predict(model, attack.apply(data.x_test[keep])) == wanted[keep]).float().mean().item()


def mean_std(values: Sequence[float]) -> tuple[float, float]:
    """Mean and sample standard deviation (0 for a single value)."""
    if isinstance(values, (str, bytes)) or not hasattr(values, "__iter__"):
        raise TypeError(f"values must be a list of numbers (one per seed), got {type(values).__name__}")
    values = [v.item() if isinstance(v, torch.Tensor) and v.numel() == 1 else v for v in values]
    wrong = [v for v in values if isinstance(v, bool) or not isinstance(v, numbers.Real)]
    if wrong:
        raise TypeError(f"values must be a list of numbers (one per seed), got {wrong[0]!r} in it")
    values = [float(v) for v in values]
    if not values:
        raise ValueError("values is empty: need at least one number")
    if not all(math.isfinite(v) for v in values):
        raise ValueError(f"values must be finite numbers, got {values}")
    t = torch.tensor(values, dtype=torch.float64)
    return t.mean().item(), (t.std().item() if len(values) > 1 else 0.0)


def mean_ci(values: Sequence[float], confidence: float = 0.95) -> tuple[float, float]:
    """Mean and the half-width of its Student-t confidence interval; needs at least two values."""
    if isinstance(confidence, bool) or not isinstance(confidence, (int, float)) or not 0 < confidence < 1:
        raise ValueError(f"confidence must be a number in (0, 1), like 0.95, got {confidence!r}")
    mean, std = mean_std(values)
    n = len(values)
    if n < 2:
        raise ValueError(f"values must hold at least two numbers (one per seed) for a confidence interval, got {n}; "
                         "one value says nothing about the spread")
    from scipy import stats  # here, not at the top: scipy.stats takes half a second to import, on every kernel start

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
    `course_utils.robust.pgd_accuracy`, which uses PGD perturbations instead of a trigger.)
    """
    _, _, keep = _triggered(data, attack)
    return (predict(model, attack.apply(data.x_test[keep])) == data.y_test[keep]).float().mean().item()


def der(ca_before: float, asr_before: float, ca_after: float, asr_after: float) -> float:
    """Defense effectiveness rating, in [0, 1]: (max(0, dASR) - max(0, dCA) + 1) / 2.

    dASR = asr_before - asr_after (how much the defense lowers the ASR) and
    dCA = ca_before - ca_after (how much clean accuracy it costs); all four are fractions
    in [0, 1]. 0.5 = no effect (or gain and cost equal), 0 = no gain and all accuracy lost.
    From Zhu et al., "Enhancing Fine-Tuning Based Backdoor Defense with Sharpness-Aware
    Minimization" (FT-SAM), ICCV 2023. Its ceiling is (1 + asr_before) / 2 (backdoor gone at no
    cost), so it depends on the ASR before the defense: DER is not comparable across attacks
    whose pre-defense ASR differs; compare defenses on one attack.
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
    half = mean_ci(values, confidence)[1] if len(values) > 1 else math.nan
    return {"mean": mean, "std": std, "ci_low": mean - half, "ci_high": mean + half, "n": len(values)}


# ---------------------------------------------------------------- one evaluation, one sweep runner
@dataclass(frozen=True)
class Scores:
    """What `evaluate` measures, each a fraction in [0, 1].

    ca: clean accuracy; asr: attack success rate; ra: robust accuracy in the backdoor sense
    (BackdoorBench: triggered inputs classified as their TRUE label); pgd_accuracy: accuracy
    under an L-inf PGD attack (Madry et al.'s robust accuracy), None when not measured.
    """

    ca: float
    asr: float
    ra: float
    pgd_accuracy: float | None = None

    def as_dict(self) -> dict:
        return asdict(self)


def evaluate(model: nn.Module, data: ImageData, attack: BackdoorAttack, *,
             accept: Callable[[torch.Tensor], torch.Tensor] | None = None, n_test: int | None = None,
             pgd_eps: float | None = None, pgd_n: int = 200, pgd_steps: int = 5) -> Scores:
    """CA, ASR and RA of `model` on the first `n_test` test images (default: all of them), and the
    accuracy under PGD-`pgd_steps` (random start) of radius `pgd_eps` on the first `pgd_n` test
    images when `pgd_eps` is given (a small sample, to stay fast: about +/- 3 points at 200).

    accept: an input filter (images -> bool (N,), True = accepted, e.g. STRIP at inference); a
    rejected input counts as neither correct nor attacked: the defense abstains.
    """
    if n_test is not None and not (isinstance(n_test, int) and n_test > 0):
        raise ValueError(f"n_test must be a positive int (how many test images to use) or None, got {n_test!r}")
    y_test, wanted, keep = _triggered(data, attack, n_test)
    x_clean, x_trig = as_float(data.x_test[:n_test]), attack.apply(data.x_test[:n_test][keep])
    pred_clean, pred_trig = predict(model, x_clean), predict(model, x_trig)
    ok_clean = torch.ones(len(x_clean), dtype=torch.bool) if accept is None else accept(x_clean)
    ok_trig = torch.ones(len(x_trig), dtype=torch.bool) if accept is None else accept(x_trig)
    pgd = None
    if pgd_eps is not None:
        pgd = pgd_accuracy(model, data.x_test[:pgd_n], data.y_test[:pgd_n], eps=pgd_eps, steps=pgd_steps)
    return Scores(ca=((pred_clean == y_test) & ok_clean).float().mean().item(),
                  asr=((pred_trig == wanted[keep]) & ok_trig).float().mean().item(),
                  ra=((pred_trig == y_test[keep]) & ok_trig).float().mean().item(), pgd_accuracy=pgd)


def sweep(run: Callable[..., dict], grid: dict[str, Sequence], *, progress: bool = True,
          desc: str = "sweep") -> list[dict]:
    """The one runner for sweeps: `run(**point)` at every point of the grid, in order.

    grid: {name: values}; the points are the product of the value lists, the first name
    varying slowest (e.g. {"seed": (0, 1, 2), "fraction": (0.01, 0.05), "method": [...]}).
    Returns one row per point: the point's values, then the dict `run` returned.
    """
    if not grid or not all(len(values) for values in grid.values()):
        raise ValueError(f"every entry of grid needs at least one value, got {grid!r}")
    names = list(grid)
    points = list(itertools.product(*grid.values()))
    rows = []
    for values in tqdm(points, desc=desc, disable=not progress, leave=False):
        point = dict(zip(names, values))
        rows.append({**point, **run(**point)})
    return rows


def summarize_rows(rows: list[dict], keys: Sequence[str] = ("method", "fraction"),
                   metrics: Sequence[str] = ("ca", "asr", "pgd_accuracy", "seconds")) -> dict[tuple, dict[str, tuple[float, float]]]:
    """Group rows (of `sweep`) by `keys`; for each group, the (mean, std) over its rows (seeds) of every metric."""
    groups: dict[tuple, list[dict]] = {}
    for row in rows:
        groups.setdefault(tuple(row[k] for k in keys), []).append(row)
    return {key: {m: mean_std([r[m] for r in group]) for m in metrics if m in group[0]}
            for key, group in groups.items()}
