"""Continuous monitoring of a deployed model: a stream of inputs, a statistic, an alarm.

A deployed model sees one input after another. At some point an attacker starts to send
triggered inputs. A monitor turns each input into a suspicion score (how unusual its
prediction is, or its STRIP entropy) and accumulates the scores with CUSUM (Page, 1954):

    S_0 = 0,  S_t = max(0, S_{t-1} + z_t - slack),  alarm when S_t > threshold,

where z_t is the standardised score (mean 0, std 1 on clean data). CUSUM is the classic
quickest-change detector: small, persistent shifts add up, isolated outliers do not. The
threshold trades detection delay against false alarms; `threshold_for_false_alarms`
sets it from clean calibration streams. Everything is batched: the recursion is computed
with cumulative sums (S_t = C_t - min(0, min_{s<=t} C_s), C = cumsum(z - slack)).

As in the paper / here: Page's CUSUM adds the log-likelihood ratio of a known post-change
distribution to a known pre-change one. For a shift of the mean of a unit-variance Gaussian by
delta, that increment is delta * (z - delta / 2): the slack is delta / 2, the shift the monitor is
tuned to. Here the clean mean and std are estimated from the defender's small calibration set,
the scores are not Gaussian, and the threshold is set for a false-alarm rate per stream of a
given length (bootstrapped, `score_threshold`) rather than for Page's average run length.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from .data import as_float
from .poison import BackdoorAttack
from .train import predict


@dataclass(frozen=True)
class Stream:
    """A simulated stream of inputs to a deployed model.

    x: float images (T, C, H, W) in [0, 1], in arrival order; y: true labels (T,);
    triggered: bool (T,), True where the attacker stamped the trigger; start: the first
    index at which triggered inputs may arrive (len(x) if the stream is clean);
    index: int64 (T,), which image of the pool each input was drawn from (see `per_input`).
    """

    x: torch.Tensor
    y: torch.Tensor
    triggered: torch.Tensor
    start: int
    index: torch.Tensor


def make_stream(x: torch.Tensor, y: torch.Tensor, attack: BackdoorAttack | None = None, *, length: int = 1000,
                start: int = 500, fraction: float = 0.2, seed: int = 0) -> Stream:
    """Draw `length` inputs from (x, y) at random (seeded, with replacement); from index `start` on,
    each input is triggered with probability `fraction` (none if `attack` is None).

    x: images (N, C, H, W), uint8 or float; y: int64 labels (N,).
    """
    if not isinstance(length, int) or length < 1:
        raise ValueError(f"length must be a positive int, got {length!r}")
    if not 0 <= start <= length:
        raise ValueError(f"start must be in [0, length={length}], got {start}")
    if not 0.0 <= fraction <= 1.0:
        raise ValueError(f"fraction must be in [0, 1] (0.2 means one input in five), got {fraction}")
    if len(x) != len(y) or len(x) == 0:
        raise ValueError(f"x and y must be non-empty and of the same length, got {len(x)} and {len(y)}")
    g = torch.Generator().manual_seed(seed)
    idx = torch.randint(len(x), (length,), generator=g)
    xs, ys = as_float(x[idx]).clone(), y[idx]
    triggered = torch.zeros(length, dtype=torch.bool)
    if attack is not None:
        triggered[start:] = torch.rand(length - start, generator=g) < fraction
        xs[triggered] = attack.apply(xs[triggered])
    return Stream(xs, ys, triggered, start if attack is not None else length, idx)


def per_input(stream: Stream, clean_values, triggered_values) -> np.ndarray:
    """A per-input quantity along the stream, looked up instead of recomputed, shape (T,).

    clean_values[i] / triggered_values[i]: the quantity (a score, a prediction) for image i of
    the pool the stream was drawn from, without / with the trigger. Computing them once for the
    pool makes many long streams cheap, whatever the monitor costs per input.
    """
    clean, trig = np.asarray(clean_values), np.asarray(triggered_values)
    if clean.shape != trig.shape or clean.ndim != 1:
        raise ValueError(f"clean_values and triggered_values must be 1-D and of the same length, got {clean.shape} and {trig.shape}")
    index = stream.index.numpy()
    if index.max(initial=-1) >= len(clean):
        raise ValueError(f"the stream was drawn from a pool of more than {len(clean)} images")
    return np.where(stream.triggered.numpy(), trig[index], clean[index])


def cusum(z: np.ndarray, slack: float = 0.5) -> np.ndarray:
    """One-sided CUSUM along the last axis: S_t = max(0, S_{t-1} + z_t - slack), S_0 = 0.

    z: array (..., T) of standardised scores (higher = more suspicious). Returns S, same shape.
    """
    z = np.asarray(z, dtype=np.float64)
    if z.ndim == 0:
        raise ValueError("z must have at least one axis (time)")
    c = np.cumsum(z - slack, axis=-1)
    return c - np.minimum(np.minimum.accumulate(c, axis=-1), 0.0)


def drift_scores(preds: torch.Tensor, baseline: torch.Tensor) -> np.ndarray:
    """Per-class standardised indicator of each prediction, shape (K, T).

    z[k, t] = (1[preds[t] == k] - p_k) / sqrt(p_k (1 - p_k)), with p = `baseline`, the class
    frequencies of the model's predictions on clean data (K,). A class that suddenly gets
    predicted more often than usual (an all-to-one backdoor's target) drifts upward.
    """
    p = torch.as_tensor(baseline, dtype=torch.float64).clamp(1e-3, 1 - 1e-3)
    onehot = torch.nn.functional.one_hot(preds.long(), len(p)).double().T  # (K, T)
    return ((onehot - p[:, None]) / (p * (1 - p)).sqrt()[:, None]).numpy()


def prediction_drift_statistic(preds: torch.Tensor, baseline: torch.Tensor, slack: float = 0.5) -> np.ndarray:
    """The drift monitor: max over classes of the per-class CUSUM of `drift_scores`, shape (T,).

    preds: the deployed model's predictions along the stream (T,). Costs nothing beyond the
    prediction the model makes anyway.
    """
    return cusum(drift_scores(torch.as_tensor(preds), baseline), slack).max(axis=0)


def class_frequencies(model: nn.Module, x: torch.Tensor, num_classes: int = 10) -> torch.Tensor:
    """How often the model predicts each class on clean images `x`: float64 (num_classes,), sums to 1."""
    return torch.bincount(predict(model, x), minlength=num_classes).double() / len(x)


def score_statistic(scores, clean_scores, slack: float = 0.5) -> np.ndarray:
    """CUSUM of per-input suspicion `scores` (T,), standardised by clean calibration scores (higher = worse).

    The mean and std come from the clean calibration scores, never from the stream itself: the
    stream's own statistics would absorb the very shift the monitor is looking for.
    For STRIP, pass minus the entropy: low entropy is what a trigger causes.
    """
    clean = np.asarray(clean_scores, dtype=np.float64)
    if clean.size < 2:
        raise ValueError("need at least two clean calibration scores to standardise")
    if slack < 0:
        raise ValueError(f"slack must be >= 0 (in clean standard deviations, e.g. 0.5), got {slack}")
    z = (np.asarray(scores, dtype=np.float64) - clean.mean()) / (clean.std() + 1e-12)
    return cusum(z, slack)


def cusum_alarm(scores, clean_scores, threshold: float, slack: float = 0.5) -> int | None:
    """The score monitor in one call: the index of the first input whose CUSUM exceeds `threshold`, or None.

    scores: per-input suspicion scores in arrival order (T,), higher = more suspicious;
    clean_scores: the defender's clean calibration scores (M,), M >= 2, which set the baseline
    mean and std; threshold: h >= 0, in clean standard deviations; slack: k >= 0 (Page, 1954).
    The alarm goes off at the first t with S_t > h, S_t = max(0, S_{t-1} + z_t - k), S_{-1} = 0.
    """
    if not np.isfinite(threshold) or threshold < 0:
        raise ValueError(f"threshold must be a finite number >= 0 (e.g. from score_threshold), got {threshold}")
    scores = np.asarray(scores, dtype=np.float64)
    if scores.ndim != 1:
        raise ValueError(f"scores must be 1-D (one score per input, in arrival order), got shape {scores.shape}")
    return first_alarm(score_statistic(scores, clean_scores, slack), threshold)


def first_alarm(statistic: np.ndarray, threshold: float) -> int | None:
    """Index of the first step where `statistic` (T,) exceeds `threshold`, or None."""
    above = np.flatnonzero(np.asarray(statistic) > threshold)
    return int(above[0]) if above.size else None


def threshold_for_false_alarms(clean_statistics, rate: float = 0.05) -> float:
    """The threshold that `rate` of the clean calibration streams exceed somewhere (a quantile of their maxima).

    clean_statistics: the monitor's statistic on each clean stream, a list of (T,) arrays or a (K, T) array.
    A stream raises a false alarm if its statistic exceeds the threshold at ANY step, so the quantile is
    taken over the streams' maxima, not over the steps.
    """
    if len(clean_statistics) == 0:
        raise ValueError("give the statistics of at least one clean calibration stream")
    if not 0.0 <= rate < 1.0:
        raise ValueError(f"rate must be in [0, 1), got {rate}")
    maxima = np.array([np.max(s) for s in clean_statistics])
    return float(np.quantile(maxima, 1.0 - rate))


def drift_threshold(clean_preds: torch.Tensor, num_classes: int = 10, *, rate: float = 0.05, length: int = 1000,
                    streams: int = 200, slack: float = 0.5, seed: int = 0) -> float:
    """A threshold for `prediction_drift_statistic` from the defender's clean predictions alone.

    The baseline class frequencies are estimated from only len(clean_preds) predictions, and
    that error alone makes CUSUM drift on real traffic. So each of `streams` calibration streams
    (`length` predictions drawn from clean_preds) is monitored against the baseline of its own
    bootstrap resample of clean_preds (Efron, 1979), and the threshold is the (1 - rate) quantile of
    the streams' maxima: about `rate` of clean streams of that length raise a false alarm.
    """
    preds = torch.as_tensor(clean_preds).long()
    if preds.ndim != 1 or len(preds) < 2:
        raise ValueError("clean_preds must be a 1-D tensor of at least two predicted classes")
    def statistic(stream, boot):
        baseline = torch.bincount(boot, minlength=num_classes).double() / len(boot)
        return prediction_drift_statistic(stream, baseline, slack)

    return _bootstrap_threshold(preds, statistic, rate, length, streams, seed)


def _bootstrap_threshold(clean: torch.Tensor, statistic, rate: float, length: int, streams: int, seed: int) -> float:
    """The (1 - rate) quantile of the maxima of `_bootstrap_statistics`."""
    return threshold_for_false_alarms(_bootstrap_statistics(clean, statistic, length, streams, seed), rate)


def _bootstrap_statistics(clean: torch.Tensor, statistic, length: int, streams: int, seed: int) -> list[np.ndarray]:
    """statistic(stream, boot) for `streams` pairs drawn from `clean`: a bootstrap resample `boot` (the
    baseline the monitor would estimate) and a stream of `length` clean values."""
    if not isinstance(length, int) or length < 1 or not isinstance(streams, int) or streams < 1:
        raise ValueError(f"length and streams must be positive ints, got {length!r} and {streams!r}")
    g = torch.Generator().manual_seed(seed)
    out = []
    for _ in range(streams):
        boot = clean[torch.randint(len(clean), (len(clean),), generator=g)]
        stream = clean[torch.randint(len(clean), (length,), generator=g)]
        out.append(statistic(stream, boot))
    return out


def score_threshold(clean_scores, *, rate: float = 0.05, length: int = 1000, streams: int = 200,
                    slack: float = 0.5, seed: int = 0) -> float:
    """A threshold for `score_statistic` from the defender's clean scores, bootstrapped like `drift_threshold`:
    each calibration stream is standardised by the mean and std of its own resample of the clean scores."""
    return threshold_for_false_alarms(calibration_statistics(clean_scores, length=length, streams=streams,
                                                             slack=slack, seed=seed), rate)


def calibration_statistics(clean_scores, *, length: int = 1000, streams: int = 200, slack: float = 0.5,
                           seed: int = 0) -> np.ndarray:
    """`score_statistic` on `streams` clean calibration streams of `length` scores: float64 (streams, length).

    Each stream is drawn from the defender's clean scores and standardised by the mean and std of
    its own bootstrap resample of them (Efron, 1979), so the spread of the statistic includes how
    little a small clean set says about "normal". A threshold exceeded by `rate` of the rows'
    maxima (`threshold_for_false_alarms`) raises a false alarm on about `rate` of clean streams.
    """
    clean = torch.as_tensor(np.asarray(clean_scores, dtype=np.float64))
    if clean.ndim != 1 or len(clean) < 2:
        raise ValueError("clean_scores must be 1-D with at least two scores")
    return np.stack(_bootstrap_statistics(
        clean, lambda stream, boot: score_statistic(stream.numpy(), boot.numpy(), slack), length, streams, seed))


def alarm_summary(stream: Stream, statistic: np.ndarray, threshold: float) -> dict:
    """What happened on one stream: {"alarm", "false_alarm", "delay", "triggered_seen"}.

    alarm: index of the first alarm or None. false_alarm: it came before `stream.start`.
    delay: inputs between the start of the attack and the alarm (None if no alarm after it).
    triggered_seen: how many triggered inputs had arrived when the alarm went off.
    """
    if len(statistic) != len(stream.triggered):
        raise ValueError(f"statistic has {len(statistic)} steps but the stream has {len(stream.triggered)}")
    return alarm_outcome(stream, first_alarm(statistic, threshold))


def alarm_outcome(stream: Stream, alarm: int | None) -> dict:
    """`alarm_summary` from the index of the first alarm (None: no alarm), e.g. from `cusum_alarm`."""
    if alarm is not None and not 0 <= alarm < len(stream.triggered):
        raise ValueError(f"alarm must be None or an index into the stream (0 to {len(stream.triggered) - 1}), "
                         f"got {alarm}")
    false_alarm = alarm is not None and alarm < stream.start
    delay = alarm - stream.start if alarm is not None and not false_alarm else None
    seen = int(stream.triggered[: alarm + 1].sum()) if delay is not None else None
    return {"alarm": alarm, "false_alarm": false_alarm, "delay": delay, "triggered_seen": seen}
