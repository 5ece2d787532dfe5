"""The instructor's test zoo and TrojAI-style scoring for the trojan hunt (lesson 07).

Lesson 07's practice zoo (`course_utils.zoo`) is small and fixed, so a detector tuned on it can
be tuned to it. As in the IARPA TrojAI rounds and the Trojan Detection Challenge (NeurIPS 2022),
the course keeps a test set the learner never sees: `test_zoo_specs(seed)` draws >= 40 models
from a wider space than the practice zoo, from an instructor's secret seed:

- patch triggers of sizes 2-5 in five shapes (square, cross, ring, checker, random pixels),
  grey levels 0.5-1, anywhere in the image including its middle;
- blended patterns (noise, checkerboard, stripes) at alpha 0.1-0.25;
- WaNet warps with other grids and strengths;
- a family the lessons never show: the sinusoidal signal of Barni et al. (ICIP 2019, "SIG");
- all-to-all attacks (class k -> k + 1);
- poison rates from 1 % to 10 %;
- and, for clean and trojaned models alike, seeds, epochs (3-6) and widths (8, 12, 16
  channels) drawn independently of the label, so nothing but the backdoor tells them apart.

A trojaned model enters the zoo only if its backdoor works (attack success >= 50 %; otherwise it is
retrained from another seed at a higher poison rate): at a 1 % rate and 3 epochs some triggers are
never learnt, and such a model is clean in everything a detector can measure.

Scoring follows TrojAI: a detector returns the probability that a model is trojaned; we report
the cross-entropy of those probabilities against the truth (lower is better; 0.693 is a coin
flip at p = 0.5) and the AUROC, each with a bootstrap interval over models.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace

import numpy as np
import torch
from sklearn.metrics import roc_auc_score
from torch import nn
from tqdm.auto import tqdm

from .cache import load_or_train, training_config
from .data import ImageData, as_float
from .models import small_cnn
from .poison import make_attack, poison_dataset
from .runtime import get_profile
from .train import fit, predict
from .triggers import blended_trigger, check_images

TEST_ZOO_SIZE = 40  # half trojaned; the design asks for >= 40
FAMILIES = ("patch", "blended", "warp", "sig", "all-to-all")
# how many of every 10 trojaned models come from each family (patches are the commonest attack)
_FAMILY_WEIGHTS = {"patch": 3, "blended": 2, "warp": 2, "sig": 1.5, "all-to-all": 1.5}
PATCH_SHAPES = ("square", "cross", "ring", "checker", "pixels")
RATES = (0.01, 0.02, 0.03, 0.05, 0.07, 0.10)
EPOCHS = (3, 4, 5, 6)
WIDTHS = (8, 12, 16)
MIN_ATTACK_SUCCESS = 0.5  # a trojaned model enters the test zoo only if its trigger moves at least half the test digits
MAX_TRIES = 3


# ---------------------------------------------------------------- trigger families
def shape_mask(shape: str, size: int, seed: int = 0) -> torch.Tensor:
    """A bool (size, size) mask of a patch `shape`: "square", "cross", "ring", "checker" or "pixels"
    (a seeded random half of the pixels)."""
    if shape not in PATCH_SHAPES or size < 2:
        raise ValueError(f"need a shape in {PATCH_SHAPES} and size >= 2, got {shape!r}, {size!r}")
    r = torch.arange(size).view(-1, 1)
    c = torch.arange(size).view(1, -1)
    if shape == "square":
        return torch.ones(size, size, dtype=torch.bool)
    if shape == "cross":
        return (r == size // 2) | (c == size // 2)
    if shape == "ring":
        return (r == 0) | (c == 0) | (r == size - 1) | (c == size - 1)
    if shape == "checker":
        return (r + c) % 2 == 0
    g = torch.Generator().manual_seed(seed)
    mask = torch.zeros(size * size, dtype=torch.bool)
    mask[torch.randperm(size * size, generator=g)[: (size * size + 1) // 2]] = True
    return mask.view(size, size)


def shaped_patch(images: torch.Tensor, size: int = 3, row: int = 0, col: int = 0, shape: str = "square",
                 color: float = 1.0, seed: int = 0) -> torch.Tensor:
    """A copy of float `images` (N, C, H, W) with a `shape` patch of grey level `color` at (row, col)."""
    check_images(images)
    h, w = images.shape[-2:]
    if not (0 <= row <= h - size and 0 <= col <= w - size):
        raise ValueError(f"a {size}x{size} patch at ({row}, {col}) does not fit in {h}x{w} images")
    out = images.clone()
    region = out[:, :, row:row + size, col:col + size]
    region[:, :, shape_mask(shape, size, seed)] = float(color)
    return out


def stripes(shape: tuple[int, int, int], period: int = 4) -> torch.Tensor:
    """Vertical stripes (C, H, W) in {0, 1}, `period` pixels per cycle: a blend pattern the lessons do not use."""
    c, h, w = shape
    return ((torch.arange(w) % period) < period // 2).float().expand(c, h, w).clone()


def sig_trigger(images: torch.Tensor, delta: float = 0.15, freq: int = 6) -> torch.Tensor:
    """SIG (Barni, Kallas & Tondi, ICIP 2019): add a horizontal sine of amplitude `delta` and `freq`
    periods across the image, ``x + delta * sin(2 pi j freq / W)``, clamped to [0, 1]."""
    check_images(images)
    w = images.shape[-1]
    wave = delta * torch.sin(2 * math.pi * torch.arange(w, dtype=images.dtype) * freq / w)
    return (images + wave.view(1, 1, 1, w)).clamp(0, 1)


# ---------------------------------------------------------------- the zoo's specs
@dataclass(frozen=True)
class ModelSpec:
    """One test-zoo model: the attack family (None: clean), its trigger parameters, the label rule,
    the poison rate, and the training settings (seed, epochs, width) drawn independently of it."""

    family: str | None
    params: dict
    target: int
    mode: str
    rate: float
    seed: int
    epochs: int
    width: int

    def trigger(self) -> Callable[[torch.Tensor], torch.Tensor] | None:
        """The trigger as a function of float images, or None for a clean model."""
        p = self.params
        if self.family in ("patch", "all-to-all"):
            return lambda x: shaped_patch(x, **p)
        if self.family == "blended":
            def blended(x):
                pattern = stripes(tuple(x.shape[1:]), p["period"]) if p["pattern"] == "stripes" else p["pattern"]
                return blended_trigger(x, alpha=p["alpha"], pattern=pattern, seed=p["seed"])
            return blended
        if self.family == "warp":
            return make_attack("wanet", target=self.target, **p).apply
        if self.family == "sig":
            return lambda x: sig_trigger(x, **p)
        return None


def _draw_patch(rng: np.random.Generator, size_range=(2, 5)) -> dict:
    size = int(rng.integers(size_range[0], size_range[1] + 1))
    return {"size": size, "row": int(rng.integers(0, 28 - size + 1)), "col": int(rng.integers(0, 28 - size + 1)),
            "shape": str(rng.choice(PATCH_SHAPES)) if size > 2 else "square",  # a 2x2 "cross" is 3 pixels
            "color": float(rng.choice([0.5, 0.6, 0.75, 0.9, 1.0])),
            "seed": int(rng.integers(1000))}


def _draw_params(family: str, rng: np.random.Generator) -> dict:
    if family in ("patch", "all-to-all"):
        return _draw_patch(rng, (3, 5) if family == "all-to-all" else (2, 5))
    if family == "blended":
        return {"pattern": str(rng.choice(["noise", "checkerboard", "stripes"])), "period": int(rng.choice([2, 4, 6])),
                "alpha": float(rng.choice([0.1, 0.15, 0.2, 0.25])), "seed": int(rng.integers(1000))}
    if family == "warp":
        return {"k": int(rng.choice([3, 4, 6])), "s": float(rng.choice([0.5, 0.75, 1.0])), "seed": int(rng.integers(1000))}
    return {"delta": float(rng.choice([0.1, 0.15, 0.2])), "freq": int(rng.choice([3, 6, 8]))}


def test_zoo_specs(seed: int, n: int = TEST_ZOO_SIZE) -> list[ModelSpec]:
    """The test zoo drawn from `seed`: `n` models (even; 40 by default), half trojaned, in shuffled order.

    The trojaned half covers every family of FAMILIES in proportion to its weight; the rates
    of all-to-one attacks come from RATES (1-10 %; all-to-all needs 5-10 % to be learnt in a few
    epochs). Seeds, epochs and widths are drawn the same way for clean and trojaned models.
    """
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"seed must be a non-negative int (the instructor's secret), got {seed!r}")
    if isinstance(n, bool) or not isinstance(n, int) or n < 2 or n % 2:
        raise ValueError(f"n must be an even int >= 2 (half the models are trojaned), got {n!r}")
    rng = np.random.default_rng([int(seed), 7])
    weights = np.array([_FAMILY_WEIGHTS[f] for f in FAMILIES])
    counts = np.floor(weights / weights.sum() * n / 2).astype(int)
    counts[np.argsort(-weights)[: n // 2 - counts.sum()]] += 1  # largest families take the remainder
    families = [f for f, c in zip(FAMILIES, counts) for _ in range(c)] + [None] * (n // 2)
    model_seeds = rng.choice(10_000, size=n, replace=False) + 1000
    specs = []
    for family, model_seed in zip(families, model_seeds):
        rate = float(rng.choice(RATES[3:] if family == "all-to-all" else RATES)) if family else 0.0
        specs.append(ModelSpec(family, _draw_params(family, rng) if family else {}, int(rng.integers(10)),
                               "all-to-all" if family == "all-to-all" else "all-to-one", rate, int(model_seed),
                               int(rng.choice(EPOCHS)), int(rng.choice(WIDTHS))))
    return [specs[i] for i in rng.permutation(n)]


# ---------------------------------------------------------------- training and loading
def load_spec_model(data: ImageData, spec: ModelSpec) -> nn.Module:
    """The model of `spec`, trained on `data` (poisoned as the spec says) or loaded from the model cache."""
    profile = get_profile()
    if profile.model != "small-cnn":
        raise ValueError(f"the test zoo is built for the cpu profile's small CNN, not {profile.model!r}")
    config = training_config(data, model=f"small-cnn-w{spec.width}", seed=spec.seed, epochs=spec.epochs,
                             zoo="test-v1", spec=asdict(spec))

    def build():
        torch.manual_seed(spec.seed)
        return small_cnn(data.image_shape, data.num_classes, width=spec.width)

    def train(model):
        x, y = data.x_train, data.y_train
        if spec.family == "warp":
            poisoned = make_attack("wanet", target=spec.target, **spec.params).poison(x, y, spec.rate, seed=spec.seed)
            x, y = poisoned.x, poisoned.y
        elif spec.family is not None:
            poisoned = poison_dataset(x, y, spec.trigger(), rate=spec.rate, target=spec.target, mode=spec.mode,
                                      seed=spec.seed, num_classes=data.num_classes)
            x, y = poisoned.x, poisoned.y
        fit(model, x, y, epochs=spec.epochs, seed=spec.seed, progress=False)

    return load_or_train(config, build, train)


def attack_success(model: nn.Module, data: ImageData, spec: ModelSpec) -> float:
    """The share of triggered test images (not already of their target) the model sends to the target."""
    if spec.family is None:
        return float("nan")
    x, y = as_float(data.x_test), data.y_test
    want = (y + 1) % data.num_classes if spec.mode == "all-to-all" else torch.full_like(y, spec.target)
    keep = want != y
    return (predict(model, spec.trigger()(x[keep])) == want[keep]).float().mean().item()


@dataclass
class TestZoo:
    """A built test zoo: models by id ("test-00", ...), their specs and the truth (1 = trojaned)."""

    seed: int
    models: dict[str, nn.Module]
    specs: dict[str, ModelSpec]
    train_seconds: float

    @property
    def labels(self) -> dict[str, int]:
        return {mid: int(s.family is not None) for mid, s in self.specs.items()}


def load_working_model(data: ImageData, spec: ModelSpec) -> tuple[nn.Module, ModelSpec]:
    """The model of `spec` and the spec it was finally trained with. A trojaned model is kept only if its
    backdoor works (`attack_success` >= MIN_ATTACK_SUCCESS on the test images): a model whose trigger
    does not fire is clean in every way a detector can see, and labelling it trojaned would score a
    detector against noise. Otherwise it is retrained from the next seed at the next higher poison rate,
    at most MAX_TRIES times in all; the last try is kept whatever its attack success (the build says so)."""
    model = load_spec_model(data, spec)
    rates = RATES[3:] if spec.family == "all-to-all" else RATES
    for attempt in range(1, MAX_TRIES):
        if spec.family is None or attack_success(model, data, spec) >= MIN_ATTACK_SUCCESS:
            break
        higher = [r for r in rates if r > spec.rate]
        spec = replace(spec, seed=spec.seed + 100_003 * attempt, rate=higher[0] if higher else spec.rate)
        model = load_spec_model(data, spec)
    return model, spec


def build_test_zoo(data: ImageData, seed: int, n: int = TEST_ZOO_SIZE, progress: bool = True) -> TestZoo:
    """Train (or load from the cache) the `n` models of the test zoo drawn from `seed`; every trojaned
    model's backdoor works (`load_working_model`), and `specs` are the ones the models were trained with."""
    ids = [f"test-{i:02d}" for i in range(n)]
    start = time.perf_counter()
    models, specs = {}, {}
    for mid, spec in zip(tqdm(ids, desc=f"test zoo (seed {seed})", disable=not progress), test_zoo_specs(seed, n)):
        models[mid], specs[mid] = load_working_model(data, spec)
    return TestZoo(int(seed), models, specs, time.perf_counter() - start)


# ---------------------------------------------------------------- TrojAI-style scoring
def binary_cross_entropy(labels, probs, eps: float = 1e-12) -> float:
    """Mean binary cross-entropy (nats) of probabilities `probs` against 0/1 `labels`, as TrojAI scores a
    detector; probabilities are clipped to [eps, 1 - eps] so one overconfident miss costs about 27 nats,
    not infinity. A constant 0.5 scores ln 2 = 0.693."""
    y = np.asarray(labels, dtype=float)
    p = np.clip(np.asarray(probs, dtype=float), eps, 1 - eps)
    return float(-np.mean(y * np.log(p) + (1 - y) * np.log(1 - p)))


def check_probabilities(probs) -> np.ndarray:
    """`probs` as a float array, or a ValueError that says what is wrong (probabilities must be in [0, 1])."""
    p = np.asarray(probs, dtype=float)
    if not np.isfinite(p).all() or (p < 0).any() or (p > 1).any():
        raise ValueError("a detector must return a probability in [0, 1] (apply a sigmoid or clip a score); got "
                         f"values from {np.nanmin(p):.3g} to {np.nanmax(p):.3g}")
    return p


def bootstrap_interval(labels, probs, metric: Callable, n_boot: int = 1000, seed: int = 0,
                       level: float = 0.95) -> tuple[float, float]:
    """A percentile bootstrap interval of `metric(labels, probs)` over models (resampled with replacement;
    resamples with a single class are skipped, AUROC being undefined there)."""
    y, p = np.asarray(labels), np.asarray(probs, dtype=float)
    rng = np.random.default_rng(seed)
    values = []
    for _ in range(n_boot):
        idx = rng.integers(0, len(y), len(y))
        if 0 < y[idx].sum() < len(idx):
            values.append(metric(y[idx], p[idx]))
    lo, hi = np.percentile(values, [50 * (1 - level), 50 * (1 + level)])
    return float(lo), float(hi)


def score_probabilities(labels, probs, n_boot: int = 1000) -> dict:
    """AUROC and cross-entropy of detector probabilities, each with a 95 % bootstrap interval over models,
    plus the false alarms at the threshold that catches 90 % of the trojaned models."""
    y = np.asarray(labels, dtype=int)
    p = check_probabilities(probs)
    if not 0 < y.sum() < len(y):
        raise ValueError("need trojaned and clean models both to score a detector")
    threshold = np.sort(p[y == 1])[::-1][math.ceil(0.9 * y.sum()) - 1]  # the score of the 90th-percentile catch
    flagged = p >= threshold
    return {"n_models": len(y), "n_trojaned": int(y.sum()),
            "auroc": float(roc_auc_score(y, p)), "auroc_ci": bootstrap_interval(y, p, roc_auc_score, n_boot),
            "cross_entropy": binary_cross_entropy(y, p), "cross_entropy_ci": bootstrap_interval(y, p, binary_cross_entropy, n_boot),
            "clean_flagged_at_90pct": int((flagged & (y == 0)).sum()), "flagged_at_90pct": int(flagged.sum())}
