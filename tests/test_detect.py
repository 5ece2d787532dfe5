import pytest
import torch
from torch import nn

from course_utils import checks, detect, make_attack, make_model, train


def test_mad_anomaly_index_by_hand():
    values = torch.tensor([3.0, 40.0, 42.0, 45.0, 48.0, 38.0, 44.0, 47.0, 41.0, 39.0])
    median = 41.5  # numpy's convention: the mean of the two middle values
    mad = 3.0  # deviations 38.5, 1.5, .5, 3.5, 6.5, 3.5, 2.5, 5.5, .5, 2.5 -> median 3.0
    index = detect.mad_anomaly_index(values)
    assert torch.allclose(index, (values - median).abs() / (1.4826 * mad))
    assert index[0] > 2 and (index[1:] < 2).all()
    same = detect.mad_anomaly_index(torch.tensor([5.0, 5.0, 5.0, 9.0]))
    assert same[:3].tolist() == [0, 0, 0] and same[3] == float("inf")


def test_mad_anomaly_index_bad_input():
    with pytest.raises(TypeError, match="float"):
        detect.mad_anomaly_index(torch.tensor([1, 2, 3]))
    with pytest.raises(ValueError, match="1-D"):
        detect.mad_anomaly_index(torch.ones(2, 3))
    with pytest.raises(ValueError, match="at least 2"):
        detect.mad_anomaly_index(torch.ones(1))


def test_apply_mask_and_its_shape_errors():
    x = torch.rand(2, 1, 6, 6)
    mask = torch.zeros(1, 6, 6)
    mask[:, :2, :2] = 1
    out = detect.apply_mask(x, mask, torch.ones(1, 6, 6))
    assert (out[:, :, :2, :2] == 1).all() and torch.equal(out[:, :, 2:, 2:], x[:, :, 2:, 2:])
    with pytest.raises(ValueError, match=r"mask must have shape \(1, 6, 6\)"):
        detect.apply_mask(x, torch.zeros(6, 6), torch.ones(1, 6, 6))
    with pytest.raises(ValueError, match="mask must have shape"):
        detect.apply_mask(x, torch.zeros(1, 5, 5), torch.ones(1, 6, 6))
    with pytest.raises(ValueError, match="pattern must have shape"):
        detect.apply_mask(x, mask, torch.ones(3, 6, 6))


@pytest.fixture(scope="module")
def backdoored(digits):
    """A small CNN trained on 1,200 digits with 5 % BadNets poison (target 0), and the poisoned set."""
    attack = make_attack("badnets")
    poisoned = attack.poison(digits.x_train[:1200], digits.y_train[:1200], 0.05, seed=0)
    model = make_model("small-cnn", seed=0)
    train.fit(model, poisoned.x, poisoned.y, epochs=3, progress=False)
    return model, poisoned, attack


def test_neural_cleanse_finds_the_small_trigger(backdoored, digits):
    model, _, _ = backdoored
    result = detect.neural_cleanse(model, digits.x_test[:100], steps=60, batch_size=8, seed=0)
    k = 10
    assert result.masks.shape == (k, 1, 28, 28) and result.patterns.shape == (k, 1, 28, 28)
    assert result.l1_norms.shape == (k,) and result.anomaly_index.shape == (k,)
    assert 0 <= result.masks.min() and result.masks.max() <= 1
    assert int(result.l1_norms.argmin()) == 0  # the target's trigger is the smallest
    assert result.success[0] > 0.8
    below = result.l1_norms < result.l1_norms.quantile(0.5)
    assert result.score == pytest.approx(float(result.anomaly_index[below].max()))
    assert all(below[i] for i in result.flagged)
    assert all(p.requires_grad for p in model.parameters())  # the caller's model is left as it was


def test_neural_cleanse_bad_input(backdoored):
    model, _, _ = backdoored
    with pytest.raises(ValueError, match="eval"):
        detect.neural_cleanse(model.train(), torch.rand(20, 1, 28, 28))
    model.eval()
    with pytest.raises(ValueError, match="few hundred"):
        detect.neural_cleanse(model, torch.rand(4, 1, 28, 28))
    with pytest.raises(ValueError, match="shape"):
        detect.neural_cleanse(model, torch.rand(20, 28, 28))
    with pytest.raises(ValueError, match="steps"):
        detect.neural_cleanse(model, torch.rand(20, 1, 28, 28), steps=0)


def test_data_level_scores_rank_the_poison_high(backdoored):
    model, poisoned, _ = backdoored
    x, y, truth = poisoned.x, poisoned.y, poisoned.poisoned
    feats = detect.layer_features(model, x)
    assert feats.shape == (len(x), 64 * 7 * 7)
    assert detect.layer_features(model, x[:3], layer="embed").shape == (3, 128)
    ac = detect.activation_clustering_scores(model, x, y, features=feats)
    ss = detect.spectral_signature_scores(model, x, y, features=feats)
    target = y == 0
    for scores in (ac, ss):
        assert scores.shape == (len(x),) and scores.dtype == torch.float32
        assert detect.roc(scores[target], truth[target])[2] > 0.9
    size = detect.activation_clustering_scores(model, x, y, rule="size", features=feats)
    assert ((size >= 0) & (size < 1)).all()
    assert torch.equal(ac, detect.activation_clustering_scores(model, x, y))  # features= is only a shortcut


def test_removal_sets_and_precision_recall():
    scores = torch.tensor([0.9, 0.1, 0.8, 0.2, 0.7, 0.3])
    y = torch.tensor([0, 0, 0, 1, 1, 1])
    removed = detect.remove_top_per_class(scores, y, 1 / 3)
    assert removed.tolist() == [True, False, False, False, True, False]
    assert detect.remove_above(scores, 0.75).tolist() == [True, False, True, False, False, False]
    poisoned = torch.tensor([True, False, True, False, False, False])
    assert detect.precision_recall(removed, poisoned) == (0.5, 0.5)
    assert detect.precision_recall(torch.zeros(6, dtype=torch.bool), poisoned) == (0.0, 0.0)
    with pytest.raises(ValueError, match="bool"):
        detect.precision_recall(removed.float(), poisoned)
    with pytest.raises(ValueError, match="fraction"):
        detect.remove_top_per_class(scores, y, 1.5)


def test_data_level_bad_input(backdoored):
    model, poisoned, _ = backdoored
    with pytest.raises(ValueError, match="int64"):
        detect.activation_clustering_scores(model, poisoned.x[:10], poisoned.y[:9])
    with pytest.raises(ValueError, match="rule"):
        detect.activation_clustering_scores(model, poisoned.x[:10], poisoned.y[:10], rule="biggest")
    with pytest.raises(ValueError, match="layer"):
        detect.spectral_signature_scores(model, poisoned.x[:10], poisoned.y[:10], layer="fc9")
    with pytest.raises(ValueError, match="features"):
        detect.spectral_signature_scores(model, poisoned.x[:10], poisoned.y[:10], features=torch.zeros(3, 4))


def test_strip_separates_triggered_inputs(backdoored, digits):
    model, _, attack = backdoored
    x = digits.x_test[digits.y_test != 0][:100]
    pool = digits.x_train[:300]
    clean = detect.strip_entropy(model, x, pool, n=6, seed=0)
    trig = detect.strip_entropy(model, attack.apply(x), pool, n=6, seed=0)
    assert clean.shape == (100,) and (clean >= 0).all()
    assert trig.mean() < clean.mean()
    scores = torch.cat([-clean, -trig])
    positive = torch.cat([torch.zeros(100, dtype=torch.bool), torch.ones(100, dtype=torch.bool)])
    fpr, tpr, auroc = detect.roc(scores, positive)
    assert auroc > 0.9 and fpr[0] == 0 and tpr[-1] == 1
    threshold = detect.strip_threshold(clean, frr=0.05)
    assert (clean < threshold).float().mean() <= 0.06
    assert torch.equal(detect.strip_entropy(model, x[:5], pool, n=6, seed=0), clean[:5])  # seeded


def test_strip_bad_input(backdoored):
    model, _, _ = backdoored
    x = torch.rand(4, 1, 28, 28)
    with pytest.raises(ValueError, match="n .* >= 2"):
        detect.strip_entropy(model, x, x, n=1)
    with pytest.raises(ValueError, match="fewer than n"):
        detect.strip_entropy(model, x, x[:2], n=3)
    with pytest.raises(ValueError, match="eval"):
        detect.strip_entropy(model.train(), x, x, n=2)
    model.eval()
    with pytest.raises(ValueError, match="overlays must have shape"):
        detect.superimposed_entropy(model, x, torch.rand(3, 1, 10, 10))
    with pytest.raises(ValueError, match="frr"):
        detect.strip_threshold(torch.rand(10), frr=1.5)
    with pytest.raises(ValueError, match="both classes"):
        detect.roc(torch.rand(3), torch.ones(3, dtype=torch.bool))


def test_superimposed_entropy_matches_a_hand_computation():
    model = nn.Sequential(nn.Flatten(), nn.Linear(4, 3)).eval()
    x, overlays = torch.rand(2, 1, 2, 2), torch.rand(3, 1, 2, 2)
    got = detect.superimposed_entropy(model, x, overlays)
    with torch.no_grad():
        blends = (x[:, None] + overlays[None]).clamp(0, 1)
        p = model(blends.flatten(0, 1)).softmax(1)
        want = (-(p * p.log()).sum(1)).view(2, 3).mean(1)
    assert torch.allclose(got, want, atol=1e-6)
    per_input = detect.superimposed_entropy(model, x, overlays.unsqueeze(0).expand(2, -1, -1, -1, -1))
    assert torch.allclose(per_input, got)


def test_strip_overhead_reports_a_ratio(backdoored, digits):
    model, _, _ = backdoored
    cost = detect.strip_overhead(model, digits.x_test[:32], digits.x_train[:50], n=4, batch_size=32, repeats=2)
    assert set(cost) == {"plain_ms", "strip_ms", "plain_per_s", "strip_per_s", "ratio"}
    assert cost["ratio"] > 1 and cost["plain_per_s"] > cost["strip_per_s"]


def test_retrain_without_is_cached(digits):
    attack = make_attack("badnets")
    small = type(digits)(digits.x_train[:120], digits.y_train[:120], digits.x_test, digits.y_test, "tiny", "t",
                         digits.classes)
    poisoned = attack.poison(small.x_train, small.y_train, 0.1, seed=0)
    m1 = detect.retrain_without(small, poisoned, poisoned.poisoned, seed=0)
    m2 = detect.retrain_without(small, poisoned, poisoned.poisoned, seed=0)
    assert not m1.training
    assert all(torch.equal(a, b) for a, b in zip(m1.state_dict().values(), m2.state_dict().values()))
    with pytest.raises(ValueError, match="bool"):
        detect.retrain_without(small, poisoned, poisoned.poisoned[:5], seed=0)


def test_detection_checks():
    assert checks.check_mad_anomaly_index(detect.mad_anomaly_index) is True
    assert checks.check_superimposed_entropy(detect.superimposed_entropy) is True

    def mean_not_median(values):
        return (values - values.mean()).abs() / (1.4826 * (values - values.mean()).abs().mean())

    with pytest.raises(AssertionError, match="MAD is the MEDIAN"):
        checks.check_mad_anomaly_index(mean_not_median)

    def max_prob(model, x, overlays):
        blends = (x[:, None] + overlays[None]).clamp(0, 1).flatten(0, 1)
        with torch.no_grad():
            return model(blends).softmax(1).amax(1).view(len(x), -1).mean(1)

    with pytest.raises(AssertionError, match="entropy"):
        checks.check_superimposed_entropy(max_prob)

    def not_done(*args):
        raise NotImplementedError()

    assert checks.check_mad_anomaly_index(not_done) is False
