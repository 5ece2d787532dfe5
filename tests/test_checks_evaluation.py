"""Lesson 06's checks: the reference passes, a stub is 'not implemented', each plausible wrong answer fails
with a message that names it."""

import numpy as np
import pytest

from course_utils import checks, monitor


def not_done(*args, **kwargs):
    raise NotImplementedError()


def standardised(scores, clean):
    clean = np.asarray(clean, dtype=float)
    return (np.asarray(scores, dtype=float) - clean.mean()) / clean.std()


def first(statistic, threshold):
    above = np.flatnonzero(statistic > threshold)
    return int(above[0]) if above.size else None


def loop_alarm(scores, clean, threshold, slack=0.5, *, reset=True, slack_used=True, sample_std=False, late=0):
    """A learner's loop, with switches for the classic mistakes."""
    clean = np.asarray(clean, dtype=float)
    std = clean.std(ddof=1 if sample_std else 0)
    s = 0.0
    for t, score in enumerate(scores):
        s = s + (float(score) - clean.mean()) / std - (slack if slack_used else 0.0)
        if reset:
            s = max(0.0, s)
        if s > threshold:
            return t + late
    return None


def test_reference_and_a_loop_pass_and_a_stub_is_not_done(capsys):
    assert checks.check_cusum_alarm(monitor.cusum_alarm)
    assert checks.check_cusum_alarm(loop_alarm)
    assert checks.check_cusum_alarm(lambda *a: loop_alarm(*a, sample_std=True))  # n - 1 is fine too
    assert checks.check_cusum_alarm(lambda *a: np.int64(monitor.cusum_alarm(*a)) if monitor.cusum_alarm(*a)
                                    is not None else None)
    assert checks.check_cusum_alarm(not_done) is False
    assert "not implemented yet" in capsys.readouterr().out


@pytest.mark.parametrize("wrong, message", [
    (lambda *a: loop_alarm(*a, reset=False), "never reset to 0"),
    (lambda *a: loop_alarm(*a, slack_used=False), "slack is not subtracted"),
    (lambda *a: loop_alarm(*a, late=1), "one past the alarm"),
    (lambda *a: loop_alarm(*a, late=-1), "one before the alarm"),
    (lambda s, c, h, k: first(np.maximum(monitor.cusum(standardised(s, c), k), monitor.cusum(-standardised(s, c), k)),
                              h), "go DOWN"),
    (lambda s, c, h, k: first(monitor.cusum(np.abs(standardised(s, c)), k), h), r"\|z\|"),
    (lambda s, c, h, k: first(monitor.cusum(standardised(s, s), k), h), "STREAM's own mean"),
    (lambda s, c, h, k: first(monitor.cusum(np.asarray(s, dtype=float), k), h), "not standardised"),
])
def test_each_wrong_monitor_fails_with_its_message(wrong, message):
    with pytest.raises(AssertionError, match=message):
        checks.check_cusum_alarm(wrong)


def test_wrong_types_and_in_place_edits():
    with pytest.raises(AssertionError, match="int index or None"):
        checks.check_cusum_alarm(lambda s, c, h, k: monitor.score_statistic(s, c, k))  # the statistic, not an index
    with pytest.raises(AssertionError, match="int index or None"):
        checks.check_cusum_alarm(lambda s, c, h, k: monitor.cusum_alarm(s, c, h, k) is not None)
    with pytest.raises(AssertionError, match=r"expected no alarm \(None\), got an alarm at input -1"):
        checks.check_cusum_alarm(lambda s, c, h, k: -1 if (a := monitor.cusum_alarm(s, c, h, k)) is None else a)

    def in_place(scores, clean, threshold, slack):
        scores -= np.mean(clean)
        return monitor.cusum_alarm(scores + np.mean(clean), clean, threshold, slack)

    with pytest.raises(AssertionError, match="in place"):
        checks.check_cusum_alarm(in_place)


def test_threshold_check(capsys):
    assert checks.check_threshold_for_rate(monitor.threshold_for_false_alarms)
    assert checks.check_threshold_for_rate(lambda s, r: float(np.quantile(s.max(axis=1), 1 - r, method="higher")))
    assert checks.check_threshold_for_rate(lambda s, r: float(np.quantile(s.max(axis=1), 1 - r, method="lower")))
    assert checks.check_threshold_for_rate(not_done) is False
    assert "not implemented yet" in capsys.readouterr().out


@pytest.mark.parametrize("wrong, message", [
    (lambda s, r: float(np.quantile(s, 1 - r)), "quantile over every step"),
    (lambda s, r: float(np.quantile(s.max(axis=1), r)), "you want the one at 1 - rate"),
    (lambda s, r: float(s.max()), "higher than it needs to be"),
    (lambda s, r: float(np.mean(s.max(axis=1)) + 2 * np.std(s.max(axis=1))), "streams raise a false alarm|higher than"),
    (lambda s, r: np.quantile(s.max(axis=1), [1 - r]), "expected a float"),
])
def test_each_wrong_threshold_fails_with_its_message(wrong, message):
    with pytest.raises(AssertionError, match=message):
        checks.check_threshold_for_rate(wrong)


def test_threshold_in_place():
    def sorts(stats, rate):
        stats.sort(axis=0)
        return monitor.threshold_for_false_alarms(stats, rate)

    with pytest.raises(AssertionError, match="in place"):
        checks.check_threshold_for_rate(sorts)
