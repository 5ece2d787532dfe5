import numpy as np
import pytest
import torch

from course_utils import make_attack, make_model, monitor


def cusum_loop(z, slack):
    s, out = 0.0, []
    for v in z:
        s = max(0.0, s + v - slack)
        out.append(s)
    return np.array(out)


def test_cusum_matches_the_recursion():
    rng = np.random.default_rng(0)
    for z in (rng.normal(size=50), rng.normal(1, 1, size=20), np.zeros(3), np.array([5.0, -10, 1, 1])):
        assert np.allclose(monitor.cusum(z, 0.5), cusum_loop(z, 0.5))
    two = rng.normal(size=(3, 40))  # batched over a leading axis
    assert np.allclose(monitor.cusum(two, 0.2)[1], cusum_loop(two[1], 0.2))
    with pytest.raises(ValueError, match="axis"):
        monitor.cusum(np.float64(1.0))


def test_make_stream(images):
    y = torch.arange(4) % 3
    atk = make_attack("badnets", size=2)
    s = monitor.make_stream(images, y, atk, length=300, start=100, fraction=0.5, seed=0)
    assert s.x.shape == (300, 1, 12, 12) and s.start == 100
    assert not s.triggered[:100].any() and 60 < s.triggered[100:].sum() < 140
    assert torch.all(s.x[s.triggered][:, :, -3:-1, -3:-1] == 1)  # the patch is there
    clean = monitor.make_stream(images, y, None, length=50, start=10)
    assert clean.start == 50 and not clean.triggered.any()
    again = monitor.make_stream(images, y, atk, length=300, start=100, fraction=0.5, seed=0)
    assert torch.equal(again.x, s.x)
    with pytest.raises(ValueError, match="start"):
        monitor.make_stream(images, y, atk, length=10, start=20)
    with pytest.raises(ValueError, match="fraction"):
        monitor.make_stream(images, y, atk, fraction=20)
    with pytest.raises(ValueError, match="same length"):
        monitor.make_stream(images, y[:2], atk)


def test_drift_scores_are_standardised():
    p = torch.full((4,), 0.25)
    preds = torch.randint(0, 4, (20000,), generator=torch.Generator().manual_seed(0))
    z = monitor.drift_scores(preds, p)
    assert z.shape == (4, 20000)
    assert np.allclose(z.mean(axis=1), 0, atol=0.03) and np.allclose(z.std(axis=1), 1, atol=0.03)


def test_alarm_on_a_shift_and_threshold():
    rng = np.random.default_rng(1)
    clean = [monitor.score_statistic(rng.normal(size=200), rng.normal(size=500)) for _ in range(20)]
    h = monitor.threshold_for_false_alarms(clean, rate=0.1)
    assert sum(c.max() > h for c in clean) <= 2
    scores = np.concatenate([rng.normal(size=100), rng.normal(2.0, 1, size=100)])
    stream = monitor.Stream(torch.zeros(200, 1, 2, 2), torch.zeros(200, dtype=torch.long),
                            torch.arange(200) >= 100, start=100, index=torch.arange(200))
    stat = monitor.score_statistic(scores, rng.normal(size=500))
    out = monitor.alarm_summary(stream, stat, h)
    assert not out["false_alarm"] and 0 <= out["delay"] < 30 and out["triggered_seen"] == out["delay"] + 1
    assert monitor.first_alarm(np.zeros(5), 1.0) is None
    never = monitor.alarm_summary(stream, np.zeros(200), 1.0)
    assert never == {"alarm": None, "false_alarm": False, "delay": None, "triggered_seen": None}
    with pytest.raises(ValueError, match="steps"):
        monitor.alarm_summary(stream, stat[:10], h)
    with pytest.raises(ValueError, match="rate"):
        monitor.threshold_for_false_alarms(clean, rate=5)
    with pytest.raises(ValueError, match="two clean"):
        monitor.score_statistic([1.0], [1.0])


def test_prediction_drift_alarm_and_frequencies(images):
    rng = np.random.default_rng(0)
    p = torch.full((10,), 0.1)
    preds = torch.as_tensor(np.concatenate([rng.integers(0, 10, 300), np.where(rng.random(300) < 0.3, 0,
                                                                              rng.integers(0, 10, 300))]))
    stat = monitor.prediction_drift_statistic(preds, p)
    assert stat.shape == (600,) and (stat >= 0).all()
    assert stat[300:].max() > 2 * stat[:300].max()  # class 0 suddenly twice as frequent
    model = make_model("small-cnn", in_shape=(1, 12, 12), seed=0).eval()
    freq = monitor.class_frequencies(model, images)
    assert freq.shape == (10,) and freq.sum().item() == pytest.approx(1.0)


def test_per_input_looks_values_up(images):
    y = torch.arange(4)
    s = monitor.make_stream(images, y, make_attack("badnets", size=2), length=50, start=10, fraction=0.5, seed=3)
    clean, trig = np.arange(4) * 1.0, np.arange(4) + 100.0
    values = monitor.per_input(s, clean, trig)
    assert np.array_equal(values, np.where(s.triggered.numpy(), trig[s.index], clean[s.index]))
    with pytest.raises(ValueError, match="same length"):
        monitor.per_input(s, clean, trig[:2])
    with pytest.raises(ValueError, match="pool"):
        monitor.per_input(s, clean[:2], trig[:2])


def test_bootstrapped_thresholds_control_false_alarms():
    g = torch.Generator().manual_seed(0)
    population = torch.multinomial(torch.tensor([0.2, 0.3, 0.5]), 20000, replacement=True, generator=g)
    sample = population[:200]  # what the defender holds
    h = monitor.drift_threshold(sample, 3, rate=0.1, length=300, streams=100)
    baseline = torch.bincount(sample, minlength=3).double() / 200
    alarms = [monitor.prediction_drift_statistic(population[300 * i + 200:300 * (i + 1) + 200], baseline).max() > h
              for i in range(40)]
    assert h > 0 and sum(alarms) <= 12  # about 10 %, loosely
    scores = np.random.default_rng(0).normal(size=200)
    hs = monitor.score_threshold(scores, rate=0.1, length=300, streams=100)
    assert hs > 0 and hs < monitor.score_threshold(scores, rate=0.01, length=300, streams=100)
    with pytest.raises(ValueError, match="at least two"):
        monitor.drift_threshold(torch.tensor([1]))
    with pytest.raises(ValueError, match="at least two"):
        monitor.score_threshold([0.5])


def test_cusum_alarm_is_the_first_alarm_of_the_score_statistic():
    rng = np.random.default_rng(2)
    clean = rng.normal(3.0, 2.0, size=300)
    scores = np.concatenate([rng.normal(3.0, 2.0, size=200), rng.normal(7.0, 2.0, size=100)])
    stat = monitor.score_statistic(scores, clean, 0.5)
    alarm = monitor.cusum_alarm(scores, clean, 5.0, 0.5)
    assert alarm == monitor.first_alarm(stat, 5.0) and 200 <= alarm < 215
    assert stat[alarm] > 5.0 and stat[alarm - 1] <= 5.0
    assert monitor.cusum_alarm(-scores, -clean, 5.0, 0.5) is None  # one-sided: a drop is not suspicious
    assert monitor.cusum_alarm(np.array([100.0]), clean, 5.0) == 0
    assert monitor.cusum_alarm(np.array([], dtype=float), clean, 5.0) is None
    with pytest.raises(ValueError, match="threshold"):
        monitor.cusum_alarm(scores, clean, -1.0)
    with pytest.raises(ValueError, match="1-D"):
        monitor.cusum_alarm(scores.reshape(2, -1), clean, 5.0)
    with pytest.raises(ValueError, match="slack"):
        monitor.cusum_alarm(scores, clean, 5.0, slack=-0.5)


def test_calibration_statistics_give_the_score_threshold():
    scores = np.random.default_rng(0).normal(size=150)
    stats = monitor.calibration_statistics(scores, length=200, streams=30, slack=0.5, seed=1)
    assert stats.shape == (30, 200) and (stats >= 0).all()
    h = monitor.score_threshold(scores, rate=0.1, length=200, streams=30, slack=0.5, seed=1)
    assert h == monitor.threshold_for_false_alarms(stats, 0.1) == monitor.threshold_for_false_alarms(list(stats), 0.1)
    assert (stats.max(axis=1) > h).sum() == 3
    with pytest.raises(ValueError, match="positive ints"):
        monitor.calibration_statistics(scores, length=0)
    with pytest.raises(ValueError, match="at least one"):
        monitor.threshold_for_false_alarms(np.zeros((0, 5)))


def test_alarm_outcome_from_an_index():
    stream = monitor.Stream(torch.zeros(10, 1, 2, 2), torch.zeros(10, dtype=torch.long),
                            torch.arange(10) >= 6, start=4, index=torch.arange(10))
    assert monitor.alarm_outcome(stream, 2) == {"alarm": 2, "false_alarm": True, "delay": None, "triggered_seen": None}
    assert monitor.alarm_outcome(stream, 7) == {"alarm": 7, "false_alarm": False, "delay": 3, "triggered_seen": 2}
    assert monitor.alarm_outcome(stream, None)["alarm"] is None
    with pytest.raises(ValueError, match="index into the stream"):
        monitor.alarm_outcome(stream, 10)
