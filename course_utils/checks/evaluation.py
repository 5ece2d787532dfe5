"""Checks for lesson 06: the CUSUM monitor on a stream of scores, and its threshold for a false-alarm rate.

Each wrong answer a learner plausibly writes is computed below (`_WRONG`) and named when the
learner's alarm index matches it on a stream where the right answer differs: that tells the
learner what they did, not only that the number is off.
"""

from __future__ import annotations

import math

import numpy as np

from ..monitor import calibration_statistics, cusum, cusum_alarm, first_alarm, threshold_for_false_alarms
from .core import call_learner, run_check


def _alarm(z: np.ndarray, threshold: float) -> int | None:
    return first_alarm(z, threshold)


def _standardise(scores, clean) -> np.ndarray:
    return (scores - clean.mean()) / clean.std()


# Plausible wrong versions of cusum_alarm(scores, clean, h, k): (what the learner did, how to fix it).
_WRONG = {
    "no_reset": (lambda s, c, h, k: _alarm(np.cumsum(_standardise(s, c) - k), h),
                 "the statistic is never reset to 0: S_t = max(0, S_(t-1) + z_t - slack) forgets a clean past, a plain "
                 "running sum lets a long clean stretch bury the attack"),
    "two_sided": (lambda s, c, h, k: _alarm(np.maximum(cusum(_standardise(s, c), k), cusum(-_standardise(s, c), k)), h),
                  "the monitor also alarms when the scores go DOWN (a two-sided CUSUM); only higher scores are "
                  "suspicious here"),
    "absolute": (lambda s, c, h, k: _alarm(cusum(np.abs(_standardise(s, c)), k), h),
                 "the monitor alarms on large scores in either direction (|z|); only higher scores are suspicious"),
    "no_slack": (lambda s, c, h, k: _alarm(cusum(_standardise(s, c), 0.0), h),
                 "the slack is not subtracted: without it, ordinary clean fluctuations pile up into false alarms"),
    "own_stats": (lambda s, c, h, k: _alarm(cusum((s - s.mean()) / s.std(), k), h),
                  "the scores are standardised with the STREAM's own mean and std; use the clean calibration "
                  "scores: the stream's statistics absorb the very shift you want to see"),
    "raw": (lambda s, c, h, k: _alarm(cusum(s, k), h),
            "the scores are not standardised: subtract the clean mean and divide by the clean std first"),
    "late": (lambda s, c, h, k: None if (a := cusum_alarm(s, c, h, k)) is None else a + 1,
             "one past the alarm: return the index t of the first S_t > threshold (0-based)"),
    "early": (lambda s, c, h, k: None if (a := cusum_alarm(s, c, h, k)) is None else a - 1,
              "one before the alarm: return the index t of the first S_t > threshold (0-based)"),
}


def _streams() -> list[tuple[str, np.ndarray, np.ndarray, float, float]]:
    """(what it tests, scores, clean scores, threshold, slack): streams with a known change point."""
    rng = np.random.default_rng(6)
    clean = rng.normal(size=200)
    shifted = np.concatenate([rng.normal(size=150), rng.normal(1.5, 1.0, size=100)])
    drop = np.concatenate([rng.normal(size=100), rng.normal(-3.0, 1.0, size=100)])
    entropy_clean = rng.normal(5.0, 2.0, size=200)  # STRIP-like: mean 5, std 2
    entropy = np.concatenate([rng.normal(5.0, 2.0, size=60), rng.normal(9.0, 2.0, size=40)])
    spike = np.concatenate([[12.0], rng.normal(size=20)])
    return [
        ("a shift of +1.5 std at input 150 (threshold 5, slack 0.5)", shifted, clean, 5.0, 0.5),
        ("scores that DROP by 3 std at input 100: not suspicious, no alarm", drop, clean, 5.0, 0.5),
        ("a clean stream of 300 inputs (threshold 8, slack 0.5): no alarm", rng.normal(size=300), clean, 8.0, 0.5),
        ("calibration scores with mean 5 and std 2, a shift of +2 std at input 60", entropy, entropy_clean, 4.0, 0.5),
        ("the very first input is 12 std above normal", spike, clean, 5.0, 0.5),
        ("float32 scores, as STRIP entropies come (shift at input 150, slack 1.0)", shifted.astype(np.float32),
         clean.astype(np.float32), 3.0, 1.0),
    ]


def _index(got, what: str) -> int | None:
    if got is None:
        return None
    if isinstance(got, (bool, np.bool_)) or not isinstance(got, (int, np.integer)):
        raise AssertionError(f"{what}: expected an int index or None, got {type(got).__name__} {got!r}")
    return int(got)


def _diagnose(got: int | None, scores, clean, threshold: float, slack: float) -> str:
    s, c = np.asarray(scores, dtype=np.float64), np.asarray(clean, dtype=np.float64)
    for wrong, why in _WRONG.values():
        if wrong(s, c, threshold, slack) == got:
            return f": it looks like {why}"
    return ""


def _describe(index: int | None) -> str:
    return "no alarm (None)" if index is None else f"an alarm at input {index}"


def check_cusum_alarm(fn) -> bool:
    """fn(scores, clean_scores, threshold, slack) -> the index of the first CUSUM alarm, or None."""
    cases = _streams()

    def body():
        for what, scores, clean, threshold, slack in cases:
            before, clean_before = scores.copy(), clean.copy()
            got = _index(call_learner(fn, scores, clean, threshold, slack), what)
            if not (np.array_equal(before, scores) and np.array_equal(clean_before, clean)):
                raise AssertionError(f"{what}: the scores were changed in place; compute new arrays")
            want = cusum_alarm(scores, clean, threshold, slack)
            if got != want:
                off = f" ({got - want:+d} inputs)" if got is not None and want is not None else ""
                raise AssertionError(f"{what}: expected {_describe(want)}, got {_describe(got)}{off}"
                                     f"{_diagnose(got, scores, clean, threshold, slack)}")
        return f"{len(cases)} streams with known change points, a drop, a clean stream and an alarm at input 0"
    return run_check("cusum_alarm", body)


def _calibrations() -> list[tuple[np.ndarray, float]]:
    """(clean statistics (K, T), rate) with rate * K a whole number of streams."""
    rng = np.random.default_rng(60)
    return [(calibration_statistics(rng.normal(size=200), length=300, streams=k, slack=0.5, seed=k), rate)
            for k, rate in ((200, 0.05), (40, 0.1), (100, 0.01), (20, 0.25))]


def _wrong_threshold_hint(h: float, stats: np.ndarray, rate: float) -> str:
    flat, maxima = stats.ravel(), stats.max(axis=1)
    if math.isclose(h, float(np.quantile(flat, 1 - rate)), rel_tol=1e-6):
        return (" (that is a quantile over every step: it bounds the share of STEPS above the threshold, but a "
                "stream alarms if ANY of its steps is above it; take each stream's maximum first)")
    if math.isclose(h, float(np.quantile(maxima, rate)), rel_tol=1e-6) or math.isclose(
            h, float(np.quantile(flat, rate)), rel_tol=1e-6):
        return " (the quantile at `rate` leaves 1 - rate of the streams above it; you want the one at 1 - rate)"
    return ""


def check_threshold_for_rate(fn) -> bool:
    """fn(clean_statistics (K, T), rate) -> a threshold that about `rate` of the K clean streams exceed."""
    cases = _calibrations()

    def body():
        for stats, rate in cases:
            k = len(stats)
            before = stats.copy()
            got = call_learner(fn, stats, rate)
            if not np.array_equal(before, stats):
                raise AssertionError("clean_statistics was changed in place (sorting it?); work on a copy")
            if isinstance(got, bool) or not isinstance(got, (int, float, np.floating, np.integer)):
                raise AssertionError(f"expected a float threshold, got {type(got).__name__} {got!r}")
            h, allowed = float(got), round(rate * k)
            alarms = int((stats.max(axis=1) > h).sum())
            what = f"{k} clean streams of {stats.shape[1]} steps, rate {rate}"
            if alarms > allowed:
                raise AssertionError(f"{what}: with your threshold {h:.3f}, {alarms} streams raise a false alarm, "
                                     f"{alarms - allowed} more than the {allowed} allowed (reference threshold "
                                     f"{threshold_for_false_alarms(stats, rate):.3f})"
                                     f"{_wrong_threshold_hint(h, stats, rate)}")
            if int((stats.max(axis=1) >= h).sum()) < allowed:
                raise AssertionError(f"{what}: with your threshold {h:.3f} only {alarms} streams alarm where {allowed} "
                                     f"may: it is higher than it needs to be, so real attacks are caught later "
                                     f"(reference threshold {threshold_for_false_alarms(stats, rate):.3f})")
        return f"{len(cases)} calibrations, 20 to 200 streams, rates 1 % to 25 %"
    return run_check("threshold_for_rate", body)
