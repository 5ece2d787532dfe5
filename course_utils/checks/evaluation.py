"""Checks for lesson 06: the defense effectiveness rating, a confidence interval, CUSUM."""

from __future__ import annotations

import math

import numpy as np
from scipy import stats

from ..metrics import der, mean_ci
from ..monitor import cusum
from .core import call_learner, run_check


def _number(got, what: str) -> float:
    if isinstance(got, bool) or not isinstance(got, (int, float, np.floating)):
        raise AssertionError(f"{what}: expected a float, got {type(got).__name__}")
    return float(got)


def check_der(fn) -> bool:
    """fn(ca_before, asr_before, ca_after, asr_after) -> DER in [0, 1]."""
    cases = [  # (ca_before, asr_before, ca_after, asr_after, what it tests)
        (0.98, 1.00, 0.95, 0.05, "a good defense (ASR 100 % -> 5 %, CA -3 points)"),
        (0.98, 1.00, 0.98, 1.00, "no effect at all"),
        (0.98, 0.90, 0.99, 0.20, "CA goes UP: a CA gain is not a bonus, max(0, dCA) = 0"),
        (0.98, 0.10, 0.90, 0.60, "ASR goes UP: no gain, max(0, dASR) = 0"),
        (0.98, 1.00, 0.10, 0.00, "ASR gone, but so is the model"),
    ]

    def body():
        for ca_b, asr_b, ca_a, asr_a, what in cases:
            got = _number(call_learner(fn, ca_b, asr_b, ca_a, asr_a), what)
            want = der(ca_b, asr_b, ca_a, asr_a)
            if not math.isclose(got, want, abs_tol=1e-9):
                hint = ""
                if math.isclose(got, 2 * want - 1, abs_tol=1e-9) or math.isclose(got, 2 * want, abs_tol=1e-9):
                    hint = " (did you forget the + 1 and / 2 that map the rating into [0, 1]?)"
                raise AssertionError(f"{what}: CA {ca_b} -> {ca_a}, ASR {asr_b} -> {asr_a}: expected DER "
                                     f"{want:.4f}, got {got:.4f} (off by {got - want:+.4f}){hint}")
        return f"{len(cases)} cases, including a CA gain and an ASR rise"
    return run_check("der", body)


def check_mean_ci(fn) -> bool:
    """fn(values, confidence=0.95) -> (mean, half_width) of the Student-t interval."""
    cases = [[0.97, 0.98, 0.99], [0.10, 0.30, 0.20, 0.25], [0.5, 0.5, 0.5], [0.951, 0.962, 0.978, 0.940, 0.955]]

    def body():
        for values in cases:
            got = call_learner(fn, list(values))
            if not (isinstance(got, tuple) and len(got) == 2):
                raise AssertionError(f"values {values}: expected a tuple (mean, half_width), got {type(got).__name__}")
            mean, half = (_number(v, f"values {values}") for v in got)
            want_mean, want_half = mean_ci(values)
            if not math.isclose(mean, want_mean, abs_tol=1e-9):
                raise AssertionError(f"values {values}: expected mean {want_mean:.5f}, got {mean:.5f}")
            if not math.isclose(half, want_half, rel_tol=1e-6, abs_tol=1e-12):
                n, std0 = len(values), float(np.std(values))
                z = 1.959964 * float(np.std(values, ddof=1)) / math.sqrt(n)
                t0 = stats.t.ppf(0.975, n - 1) * std0 / math.sqrt(n)
                hint = (" (that is 1.96 * s / sqrt(n): with so few seeds use Student's t with n - 1 degrees of "
                        "freedom, scipy.stats.t.ppf(0.975, n - 1))" if math.isclose(half, z, rel_tol=1e-4) else
                        " (that uses the population std; use the sample std, ddof=1)" if math.isclose(half, t0, rel_tol=1e-4)
                        else "")
                raise AssertionError(f"values {values}: expected half-width {want_half:.5f}, got {half:.5f} "
                                     f"(off by {half - want_half:+.5f}){hint}")
        return f"{len(cases)} cases, n = 3 to 5"
    return run_check("mean_ci", body)


def check_cusum(fn) -> bool:
    """fn(z, slack) -> array S with S_t = max(0, S_{t-1} + z_t - slack), S_0 = 0."""
    rng = np.random.default_rng(0)
    cases = [(np.array([0.0, 1.0, 2.0, -5.0, 1.0]), 0.5), (rng.normal(size=30), 0.5),
             (np.concatenate([rng.normal(size=20), rng.normal(1.5, 1, size=20)]), 0.75), (np.zeros(4), 0.0)]

    def body():
        for z, slack in cases:
            before = z.copy()
            got = call_learner(fn, z, slack)
            if not np.array_equal(before, z):
                raise AssertionError("z was changed in place; compute a new array")
            got = np.asarray(got, dtype=float)
            want = cusum(before, slack)
            if got.shape != want.shape:
                raise AssertionError(f"{len(z)} scores: expected {want.shape[0]} statistics (one per step), got shape {got.shape}")
            wrong = np.flatnonzero(~np.isclose(got, want, atol=1e-9))
            if wrong.size:
                t = int(wrong[0])
                hint = " (the statistic must never go below 0: max(0, ...))" if got.min() < -1e-9 else ""
                raise AssertionError(f"z = {np.round(before[:6], 3).tolist()}..., slack = {slack}: first wrong at step {t}: "
                                     f"expected {want[t]:.4f}, got {got[t]:.4f}{hint}")
        return f"{len(cases)} streams"
    return run_check("cusum", body)
