"""Evaluating defenses: the attack x defense matrix over seeds, and what each defense costs at inference.

The matrix follows BackdoorBench (Wu et al., NeurIPS 2022): every attack against every
defense, several seeds, clean accuracy (CA), attack success rate (ASR) and robust accuracy
(RA: triggered inputs, true labels), plus the defense effectiveness rating (DER, from Zhu
et al., FT-SAM, ICCV 2023; its ceiling depends on the ASR before the defense, so compare DER
within an attack, not across attacks), each with its spread over seeds. A baseline and
three families of defense:

- "none": the backdoored model as it is (the baseline every DER compares with);
- data-level filters (lesson 03), registered in `FILTERS`: each is a `DataFilter` with
  `scores(model, x, y)` (higher = more suspicious) and `remove(scores, y, assumed_rate)`
  (the paper's own decision rule); the flagged samples are dropped and a model is trained
  again from scratch on what is left;
- input-level filters at inference (lesson 03), registered in `INPUT_FILTERS`: STRIP
  ("strip", Gao et al., 2019) rejects inputs whose predictions stay confident under
  superimposition;
- model repair (lessons 04-05): every function of `course_utils.repair.REPAIRS`.

A new defense is one registry entry, not a new branch here. Every trained, filtered or
repaired model is cached by its full config (`cache.training_config`), and so is how long it
took to make, so a re-run costs only the evaluation (`metrics.evaluate`); an input filter's
scores, which cost forward passes on every test input, are kept in the results cache.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from . import detect
from .cache import cache_dir, cached_result, config_key, fingerprint, load_or_train, training_config
from .data import ImageData, as_float
from .metrics import der, evaluate, summarize, sweep
from .models import make_model
from .poison import BackdoorAttack, make_attack
from .repair import REPAIRS, clean_subset
from .runtime import get_profile
from .train import CACHE_VERSION, fit, predict, train_model

MATRIX_VERSION = 1  # bump when a defense here changes, so old cached models are not reused


# ---------------------------------------------------------------- caching with timings
def cached_model(config: dict, build: Callable[[], nn.Module], train: Callable[[nn.Module], None]) -> tuple[nn.Module, float, bool]:
    """`load_or_train(config, build, train)` that also remembers how long `train` took.

    Returns (model in eval mode, seconds the training took when it was done, True if it came from the cache).
    """
    path = cache_dir() / "timings" / f"{config_key(config)}.json"
    spent = {}

    def timed_train(model):
        start = time.perf_counter()
        train(model)
        spent["seconds"] = time.perf_counter() - start

    model = load_or_train(config, build, timed_train)
    if "seconds" in spent:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps({"seconds": spent["seconds"]}))
        return model, spent["seconds"], False
    seconds = json.loads(path.read_text())["seconds"] if path.exists() else float("nan")
    return model, seconds, True


def _base_config(data: ImageData, attack: BackdoorAttack, rate: float, seed: int, epochs: int, **extra) -> dict:
    return training_config(data, model=get_profile().model, attack=attack, poison_rate=rate, seed=seed, epochs=epochs,
                           version=CACHE_VERSION, matrix_version=MATRIX_VERSION, **extra)


def _fresh_model(data: ImageData, seed: int) -> Callable[[], nn.Module]:
    return lambda: make_model(in_shape=data.image_shape, num_classes=data.num_classes, seed=seed)


# ---------------------------------------------------------------- the defenses of the matrix
@dataclass(frozen=True)
class DataFilter:
    """A data-level defense: score every training sample, then remove some with a decision rule.

    scores(model, x, y) -> float (N,), higher = more suspicious.
    remove(scores, y, assumed_rate) -> bool (N,), True = removed (assumed_rate: the poison rate
        the defender assumes, for rules that need it).
    """

    scores: Callable[[nn.Module, torch.Tensor, torch.Tensor], torch.Tensor]
    remove: Callable[[torch.Tensor, torch.Tensor, float], torch.Tensor]


# Activation Clustering (Chen et al., 2019), with the paper's relative-size rule: a cluster
# under 35 % of its class is poison (score = 1 - relative size, so remove above 0.65).
# Spectral Signatures (Tran et al., 2018): remove 1.5 x the assumed poison rate of every class.
FILTERS: dict[str, DataFilter] = {
    "ac-filter": DataFilter(
        scores=lambda model, x, y: detect.activation_clustering_scores(model, x, y, rule="size"),
        remove=lambda scores, y, rate: detect.remove_above(scores, 0.65)),
    "ss-filter": DataFilter(
        scores=detect.spectral_signature_scores,
        remove=lambda scores, y, rate: detect.remove_top_per_class(scores, y, min(1.0, 1.5 * rate))),
}


def defense_names() -> list[str]:
    """Every defense the matrix knows: "none", the data filters, the input filters, then `repair.REPAIRS` in order."""
    return ["none", *FILTERS, *INPUT_FILTERS, *REPAIRS]


def filtered_model(data: ImageData, attack: BackdoorAttack, rate: float, seed: int, method: str, model: nn.Module,
                   epochs: int, progress: bool = False) -> tuple[nn.Module, float, bool, dict]:
    """Data-level defense: score the poisoned training set with `model`, drop the flagged samples, retrain.

    Returns (new model, seconds, cached, {"removed", "precision", "recall"}).
    """
    if method not in FILTERS:
        raise ValueError(f"Unknown data filter {method!r}; choose one of {list(FILTERS)}")
    config = _base_config(data, attack, rate, seed, epochs, defense=method, assumed_rate=rate)
    info_path = cache_dir() / "timings" / f"{config_key(config)}.info.json"
    info = {}

    def train(fresh):
        poisoned = attack.poison(data.x_train, data.y_train, rate, seed=seed, num_classes=data.num_classes)
        rule = FILTERS[method]
        removed = rule.remove(rule.scores(model, poisoned.x, poisoned.y), poisoned.y, rate)
        precision, recall = detect.precision_recall(removed, poisoned.poisoned)
        info.update(removed=int(removed.sum()), precision=precision, recall=recall)
        fit(fresh, poisoned.x[~removed], poisoned.y[~removed], epochs=epochs, seed=seed, progress=progress,
            desc=f"retraining after {method}")

    new, seconds, cached = cached_model(config, _fresh_model(data, seed), train)
    if info:
        info_path.write_text(json.dumps(info))
    elif info_path.exists():
        info = json.loads(info_path.read_text())
    return new, seconds, cached, info


def repaired_model(data: ImageData, attack: BackdoorAttack, rate: float, seed: int, name: str, model: nn.Module,
                   epochs: int, clean_fraction: float = 0.05, hyper: dict | None = None) -> tuple[nn.Module, float, bool]:
    """Model repair: `repair.REPAIRS[name](model, x_clean, y_clean, seed=seed, **hyper)`, cached.

    model: the backdoored model, trained for `epochs` (part of the cache key). The defender's
    clean set is `repair.clean_subset(data, clean_fraction, seed)`. hyper: the defense's own
    hyperparameters (default: its paper defaults). Returns (repaired model, seconds it took, cached).
    """
    hyper = dict(hyper or {})
    if name not in REPAIRS:
        raise ValueError(f"Unknown repair defense {name!r}; choose one of {sorted(REPAIRS)}")
    config = _base_config(data, attack, rate, seed, epochs, defense=name, clean_fraction=clean_fraction, hyper=hyper)
    x_clean, y_clean = clean_subset(data, clean_fraction, seed)

    def train(fresh):
        fresh.load_state_dict(REPAIRS[name](model, x_clean, y_clean, seed=seed, **hyper).state_dict())

    return cached_model(config, _fresh_model(data, seed), train)


def adversarially_trained_model(data: ImageData, attack: BackdoorAttack, rate: float, seed: int, *, eps: float,
                                steps: int = 3, epochs: int | None = None,
                                progress: bool = True) -> tuple[nn.Module, float, bool]:
    """A model trained from scratch with PGD adversarial training (`repair.adversarial_training`, Madry et
    al.) on `attack`'s poisoned training set at `rate` (`attack.poison(..., seed=seed)`), cached like
    the matrix's models. Returns (model, seconds the training took when it ran, cached)."""
    from .repair import adversarial_training

    epochs = get_profile().epochs if epochs is None else epochs
    config = _base_config(data, attack, rate, seed, epochs, defense="pgd training from scratch",
                          hyper={"eps": eps, "steps": steps})
    poisoned = attack.poison(data.x_train, data.y_train, rate, seed=seed)

    def train(fresh):
        adversarial_training(fresh, poisoned.x, poisoned.y, eps=eps, steps=steps, epochs=epochs, seed=seed,
                             progress=progress)

    return cached_model(config, _fresh_model(data, seed), train)


def strip_filter(model: nn.Module, x_clean: torch.Tensor, frr: float = 0.05, n: int = 8,
                 seed: int = 0) -> Callable[[torch.Tensor], torch.Tensor]:
    """STRIP as a deployed filter: a function images -> bool (N,), True where the input is ACCEPTED.

    The entropy threshold rejects a fraction `frr` of the defender's clean images (Gao et al., 2019).
    """
    threshold = detect.strip_threshold(detect.strip_entropy(model, x_clean, x_clean, n=n, seed=seed), frr)
    return lambda images: detect.strip_entropy(model, images, x_clean, n=n, seed=seed) >= threshold


# Input filters at inference: name -> fn(model, x_clean, seed=..., **hyper) -> accept(images) -> bool (N,).
INPUT_FILTERS: dict[str, Callable[..., Callable[[torch.Tensor], torch.Tensor]]] = {"strip": strip_filter}


# ---------------------------------------------------------------- one cell, then the whole matrix
def defended(data: ImageData, attack_name: str, defense: str, seed: int, *, poison_rate: float = 0.1,
             epochs: int | None = None, clean_fraction: float = 0.05, defense_kwargs: dict | None = None,
             progress: bool = False) -> tuple[nn.Module, Callable | None, dict]:
    """The backdoored model of (`attack_name`, `seed`) after `defense`, from the cache when possible.

    Returns (model, accept or None, info): `accept` is the input filter for those of `INPUT_FILTERS`;
    info holds "seconds" (what the defense cost to set up), "cached" and, for the data
    filters, "removed", "precision" and "recall".
    """
    epochs = epochs or get_profile().epochs
    attack = make_attack(attack_name)
    base = train_model(data, attack, poison_rate, seed=seed, epochs=epochs, progress=progress)
    kwargs = dict((defense_kwargs or {}).get(defense, {}))
    if defense == "none":
        return base, None, {"seconds": 0.0, "cached": True}
    if defense in FILTERS:
        model, seconds, cached, info = filtered_model(data, attack, poison_rate, seed, defense, base, epochs, progress)
        return model, None, {"seconds": seconds, "cached": cached, **info}
    if defense in INPUT_FILTERS:
        start = time.perf_counter()
        accept = INPUT_FILTERS[defense](base, clean_subset(data, clean_fraction, seed)[0], seed=seed, **kwargs)
        return base, accept, {"seconds": time.perf_counter() - start, "cached": False}
    model, seconds, cached = repaired_model(data, attack, poison_rate, seed, defense, base, epochs, clean_fraction,
                                            kwargs)
    return model, None, {"seconds": seconds, "cached": cached}


def attack_defense_matrix(data: ImageData, attacks: Sequence[str], defenses: Sequence[str] | dict[str, Sequence[str]],
                          seeds: Sequence[int] = (0, 1, 2), *, poison_rate: float = 0.1, epochs: int | None = None,
                          clean_fraction: float = 0.05, defense_kwargs: dict | None = None,
                          n_test: int | None = None, progress: bool = True) -> list[dict]:
    """Every attack against every defense over `seeds`: one row per (attack, defense, seed).

    attacks: names for `make_attack` ("badnets", "blended", "wanet", "clean-label"), default
    parameters, target 0, poisoning `poison_rate` of the training set, trained for `epochs`
    (profile default). defenses: names from `defense_names()`, the same for every attack, or
    {attack: names} to run fewer defenses on some attacks; include "none" to get DER.
    defense_kwargs: {defense: {hyperparameter: value}} passed to that defense (part of the cache key).
    clean_fraction: the defender's clean set, as a fraction of the training set.
    n_test: evaluate on the first n_test test images only (default: all), to save time.
    Rows: {"attack", "defense", "seed", "ca", "asr", "ra", "seconds", "cached"} (+ filter
    statistics); ca/asr/ra are fractions, seconds is what making the defense cost (from the
    cache's record when the model was loaded).
    """
    plan = {a: list(defenses.get(a, [])) for a in attacks} if isinstance(defenses, dict) else \
        {a: list(defenses) for a in attacks}
    known = defense_names()
    unknown = sorted({d for names in plan.values() for d in names} - set(known))
    if unknown:
        raise ValueError(f"Unknown defense(s) {unknown}; choose from {known}")
    if not attacks or not any(plan.values()) or not seeds:
        raise ValueError("give at least one attack, one defense and one seed")
    for name in attacks:
        make_attack(name)  # a clear error for an unknown attack, before any training

    def run(attack: str, seed: int, defense: str) -> dict:
        if defense in INPUT_FILTERS:
            return _input_filter_row(data, attack, defense, seed, poison_rate=poison_rate, epochs=epochs,
                                     clean_fraction=clean_fraction, defense_kwargs=defense_kwargs, n_test=n_test)
        model, accept, info = defended(data, attack, defense, seed, poison_rate=poison_rate, epochs=epochs,
                                       clean_fraction=clean_fraction, defense_kwargs=defense_kwargs)
        scores = evaluate(model, data, make_attack(attack), accept=accept, n_test=n_test)
        return {"ca": scores.ca, "asr": scores.asr, "ra": scores.ra, **info}

    rows = []
    for attack in (a for a in attacks if plan[a]):
        rows += sweep(run, {"attack": [attack], "seed": seeds, "defense": plan[attack]}, progress=progress,
                      desc=f"{attack} x defenses")
    return rows


def _input_filter_row(data: ImageData, attack: str, defense: str, seed: int, *, poison_rate: float,
                      epochs: int | None, clean_fraction: float, defense_kwargs: dict | None, n_test: int | None) -> dict:
    """A matrix row of an input filter, through the results cache (`cache.cached_result`).

    A filter such as STRIP runs on every test input (8 forward passes each), the work that loading a
    cached repaired model saves the other rows; so its scores are kept, keyed by the model's weights,
    the defender's clean images, the test images and the filter's settings. "seconds" is what setting
    the filter up cost when it ran; "cached" says whether the scores were loaded.
    """
    computed = []

    def compute() -> dict:
        computed.append(True)
        model, accept, info = defended(data, attack, defense, seed, poison_rate=poison_rate, epochs=epochs,
                                       clean_fraction=clean_fraction, defense_kwargs=defense_kwargs)
        scores = evaluate(model, data, make_attack(attack), accept=accept, n_test=n_test)
        return {"ca": scores.ca, "asr": scores.asr, "ra": scores.ra, "seconds": info["seconds"]}

    base = defended(data, attack, "none", seed, poison_rate=poison_rate, epochs=epochs)[0]  # the filtered model
    config = {"model": fingerprint(base), "attack": attack, "defense": defense, "seed": seed,
              "settings": (defense_kwargs or {}).get(defense, {}),
              "x_clean": fingerprint(clean_subset(data, clean_fraction, seed)[0]),
              "test": fingerprint([data.x_test[:n_test], data.y_test[:n_test]])}
    row = cached_result("input filter in the attack x defense matrix", config, compute)
    return {**row, "cached": not computed}


def summarize_matrix(rows: list[dict], confidence: float = 0.95) -> list[dict]:
    """Mean, std and confidence interval over seeds for every (attack, defense) of `attack_defense_matrix`.

    Returns rows {"attack", "defense", "n", "<m>_mean", "<m>_std", "<m>_ci" (half-width)} for
    m in ca, asr, ra, der, seconds. DER compares each seed with the "none" row of the same
    attack and seed (nan if there is none).
    """
    if not rows:
        raise ValueError("no rows to summarise; run attack_defense_matrix first")
    baseline = {(r["attack"], r["seed"]): r for r in rows if r["defense"] == "none"}
    groups: dict[tuple[str, str], list[dict]] = {}
    for r in rows:
        groups.setdefault((r["attack"], r["defense"]), []).append(r)
    out = []
    for (attack, defense), group in groups.items():
        row = {"attack": attack, "defense": defense, "n": len(group)}
        ders = [der(b["ca"], b["asr"], r["ca"], r["asr"]) for r in group
                if (b := baseline.get((attack, r["seed"]))) is not None]
        for m, values in (("ca", [r["ca"] for r in group]), ("asr", [r["asr"] for r in group]),
                          ("ra", [r["ra"] for r in group]), ("der", ders),
                          ("seconds", [r["seconds"] for r in group])):
            s = summarize(values, confidence) if values else {"mean": float("nan"), "std": float("nan"),
                                                             "ci_high": float("nan")}
            row.update({f"{m}_mean": s["mean"], f"{m}_std": s["std"], f"{m}_ci": s["ci_high"] - s["mean"]})
        out.append(row)
    return out


def pivot(summary: list[dict], value: str = "asr_mean") -> tuple[list[str], list[str], np.ndarray]:
    """(attacks, defenses, table) with table[i, j] = `value` of attack i under defense j (nan if missing)."""
    if summary and value not in summary[0]:
        raise ValueError(f"Unknown value {value!r}; choose one of {sorted(k for k in summary[0] if k.endswith(('_mean', '_std', '_ci')))}")
    attacks = list(dict.fromkeys(r["attack"] for r in summary))
    defenses = list(dict.fromkeys(r["defense"] for r in summary))
    table = np.full((len(attacks), len(defenses)), np.nan)
    for r in summary:
        table[attacks.index(r["attack"]), defenses.index(r["defense"])] = r[value]
    return attacks, defenses, table


def plot_matrix(summary: list[dict], value: str = "asr", ax=None, title: str | None = None):
    """Heatmap of `value` ("ca", "asr", "ra" or "der") mean over seeds, "mean ± std" in every cell (percent)."""
    import matplotlib.pyplot as plt

    attacks, defenses, mean = pivot(summary, f"{value}_mean")
    _, _, std = pivot(summary, f"{value}_std")
    if ax is None:
        _, ax = plt.subplots(figsize=(1.0 * len(defenses) + 1.5, 0.6 * len(attacks) + 1.2))
    cmap = "RdYlGn_r" if value == "asr" else "RdYlGn"
    image = ax.imshow(100 * mean, cmap=cmap, vmin=0, vmax=100, aspect="auto")
    for i in range(len(attacks)):
        for j in range(len(defenses)):
            if np.isfinite(mean[i, j]):
                ax.text(j, i, f"{100 * mean[i, j]:.0f}\n±{100 * std[i, j]:.0f}", ha="center", va="center", fontsize=7)
    ax.set_xticks(range(len(defenses)), defenses, rotation=40, ha="right")
    ax.set_yticks(range(len(attacks)), attacks)
    ax.set_title(title or f"{value.upper()} (%), mean ± std over seeds")
    ax.figure.colorbar(image, ax=ax, fraction=0.03)
    return ax


# ---------------------------------------------------------------- inference cost
def model_predictor(model: nn.Module) -> Callable[[torch.Tensor], torch.Tensor]:
    """images -> predicted classes, as a deployed model would run (eval mode, no gradients)."""
    return lambda images: predict(model, images)


def inference_cost(predictors: dict[str, Callable[[torch.Tensor], object]], x: torch.Tensor, *,
                   baseline: str | None = None, batch_size: int = 256, repeats: int = 9,
                   warmup: int = 2, seed: int = 0) -> list[dict]:
    """Latency per batch and throughput of each way of serving predictions, and ratios to `baseline`.

    predictors: {name: fn(images) -> anything}; the timed call is fn on one batch of `batch_size`
    float images. The predictors take turns, in a new random order (seeded) every round, for
    `repeats` rounds, so that a busy machine slows them all alike and no one always runs first;
    each is reported by its fastest round (as `timeit` advises: slower rounds measure the other
    programs on the machine, not the predictor). baseline: the name to compare with (default:
    the first). Rows {"defense", "latency_ms", "throughput", "latency_ratio", "throughput_ratio"}.
    """
    if not predictors:
        raise ValueError("give at least one predictor: {name: fn(images)}")
    baseline = baseline or next(iter(predictors))
    if baseline not in predictors:
        raise ValueError(f"baseline {baseline!r} is not one of {list(predictors)}")
    if repeats < 1 or batch_size < 1:
        raise ValueError(f"repeats and batch_size must be >= 1, got {repeats} and {batch_size}")
    xb = as_float(x[:batch_size])
    names = list(predictors)
    g = torch.Generator().manual_seed(seed)
    times: dict[str, list[float]] = {name: [] for name in names}
    with torch.inference_mode():
        for fn in predictors.values():
            for _ in range(warmup):
                fn(xb)
        for _ in range(repeats):
            for i in torch.randperm(len(names), generator=g).tolist():
                start = time.perf_counter()
                predictors[names[i]](xb)
                times[names[i]].append(time.perf_counter() - start)
    base = min(times[baseline])
    rows = []
    for name in names:
        best = min(times[name])
        rows.append({"defense": name, "latency_ms": 1000 * best, "throughput": len(xb) / best,
                     "latency_ratio": best / base, "throughput_ratio": base / best})
    return rows
