import pytest
import torch
from torch import nn

from course_utils import detect, make_attack, make_model, train


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


def test_neural_cleanse_caches_the_courses_run_and_always_runs_a_learners(backdoored, digits, monkeypatch):
    import course_utils as cu

    model, _, _ = backdoored
    x = digits.x_test[:40]
    first = detect.neural_cleanse(model, x, steps=8, batch_size=4, seed=0)
    ran, original = [], detect._recover_triggers
    monkeypatch.setattr(detect, "_recover_triggers", lambda *a, **k: ran.append(1) or original(*a, **k))
    with cu.cost_timer() as timer:
        again = detect.neural_cleanse(model, x, steps=8, batch_size=4, seed=0, log_scale=False)  # the verdict only
    assert ran == [] and torch.equal(first.masks, again.masks) and again.seconds == first.seconds
    assert timer.seconds == pytest.approx(first.seconds, abs=0.05)  # counted at what the run cost
    assert again.log_scale is False
    detect.neural_cleanse(model, x, steps=8, batch_size=4, seed=1)  # another seed: runs
    assert ran == [1]
    for _ in range(2):  # a learner's objective (even one that calls the reference) runs every time
        mine = detect.neural_cleanse(model, x, steps=8, batch_size=4, seed=0,
                                     objective=lambda *a: detect.nc_objective(*a))
    assert ran == [1, 1, 1] and torch.allclose(mine.masks, first.masks)
    with torch.no_grad():
        next(model.parameters())[0] += 0.01  # other weights: runs
    try:
        detect.neural_cleanse(model, x, steps=8, batch_size=4, seed=0)
    finally:
        with torch.no_grad():
            next(model.parameters())[0] -= 0.01
    assert ran == [1, 1, 1, 1]


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


def test_nc_objective_batches_all_labels():
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(16, 3)).eval().requires_grad_(False)
    x = torch.rand(4, 1, 4, 4)
    ml, pl = torch.randn(3, 1, 4, 4, requires_grad=True), torch.randn(3, 1, 4, 4, requires_grad=True)
    cost = torch.tensor([0.0, 0.1, 1.0])
    keep = torch.ones(3, 4, dtype=torch.bool)
    keep[1, :2] = False
    loss, success = detect.nc_objective(net, x, ml, pl, cost, keep)
    for k in range(3):  # one label at a time, by hand
        m, p = torch.sigmoid(ml[k]), torch.sigmoid(pl[k])
        xs = x[keep[k]]
        logits = net((1 - m) * xs + m * p)
        ce = torch.nn.functional.cross_entropy(logits, torch.full((len(xs),), k))
        assert torch.isclose(loss[k], ce + cost[k] * m.sum(), atol=1e-5)
        assert torch.isclose(success[k], (logits.argmax(1) == k).float().mean())
    loss.sum().backward()
    assert ml.grad is not None and ml.grad.abs().sum() > 0


def test_nc_update_costs_patience_and_reset():
    costs, streak = torch.full((3,), 1e-3), torch.tensor([1, -1, 0])
    success = torch.tensor([0.995, 0.5, 0.99])
    new_costs, new_streak = detect.nc_update_costs(costs, streak, success, threshold=0.99, patience=2)
    assert torch.allclose(new_costs, torch.tensor([1.5e-3, 1e-3 / 1.5 ** 1.5, 1e-3]))
    assert new_streak.tolist() == [0, 0, 1]
    assert streak.tolist() == [1, -1, 0]  # inputs untouched
    flipped = detect.nc_update_costs(costs, torch.tensor([3, 3, -3]), torch.tensor([0.0, 1.0, 1.0]), patience=5)[1]
    assert flipped.tolist() == [-1, 4, 1]


def test_neural_cleanse_paper_schedule_option(digits):
    model = make_model(in_shape=(1, 28, 28), num_classes=10, seed=0).eval()
    result = detect.neural_cleanse(model, digits.x_test[:40], steps=20, success_threshold=0.99, patience=5)
    assert result.l1_norms.shape == (10,)
    with pytest.raises(ValueError, match="patience"):
        detect.neural_cleanse(model, digits.x_test[:40], steps=2, patience=0)


def _planted(seed=0):
    """Features of 6 classes x 60; 12 samples of class 0 shifted along one direction (the 'poison')."""
    g = torch.Generator().manual_seed(seed)
    feats = torch.randn(360, 20, generator=g)
    y = torch.arange(360) // 60
    poisoned = torch.zeros(360, dtype=torch.bool)
    poisoned[:12] = True
    feats[:12, 0] += 12.0
    x = torch.zeros(360, 1, 2, 2)
    return x, y, feats, poisoned


def test_data_level_removal_rules_find_planted_group():
    x, y, feats, poisoned = _planted()
    for rule in ("course", "paper"):
        removed = detect.activation_clustering_remove(None, x, y, features=feats, rule=rule)
        assert detect.precision_recall(removed, poisoned) == (1.0, 1.0)
    # ICA's unit-variance components weigh the 9 noise directions like the shifted one: the split is worse
    ica = detect.activation_clustering_remove(None, x, y, features=feats, reduce="ica")
    assert ica.dtype == torch.bool and ica.shape == (360,)
    ss = detect.spectral_signatures_remove(None, x, y, features=feats, z=3.0)
    precision, recall = detect.precision_recall(ss, poisoned)
    assert recall == 1.0 and precision > 0.8
    paper = detect.spectral_signatures_remove(None, x, y, rule="paper", epsilon=0.2, features=feats)
    assert int(paper.sum()) == 6 * 18  # 1.5 * 0.2 * 60 from every class
    with pytest.raises(ValueError, match="rule"):
        detect.activation_clustering_remove(None, x, y, features=feats, rule="smaller")
    with pytest.raises(ValueError, match="reduce"):
        detect.activation_clustering_scores(None, x, y, features=feats, reduce="tsne")
    with pytest.raises(ValueError, match="epsilon"):
        detect.spectral_signatures_remove(None, x, y, rule="paper", epsilon=0.9, features=feats)


def test_spectral_signature_class_scores_matches_svd():
    feats = torch.randn(15, 40, dtype=torch.float64)
    centred = feats - feats.mean(0)
    v = torch.linalg.svd(centred, full_matrices=False).Vh[0]
    assert torch.allclose(detect.spectral_signature_class_scores(feats), (centred @ v) ** 2)
    with pytest.raises(ValueError, match="rows"):
        detect.spectral_signature_class_scores(feats[:1])


def test_strip_never_blends_an_input_with_itself(digits):
    model = make_model(in_shape=(1, 28, 28), num_classes=10, seed=0).eval()
    pool = digits.x_test[:10]
    g = torch.Generator().manual_seed(0)
    picks = detect._avoid_self(cu_float(pool), cu_float(pool), torch.randint(10, (10, 8), generator=g), g)
    assert not (picks == torch.arange(10).view(-1, 1)).any()
    h = detect.strip_entropy(model, pool, pool, n=8)
    assert h.shape == (10,)
    with pytest.raises(ValueError, match="fewer than n"):
        detect.strip_entropy(model, pool, pool[:8], n=8)


def test_strip_two_tailed_rule():
    clean = torch.linspace(1.0, 2.0, 101)
    low, high = detect.strip_thresholds(clean, 0.1, two_tailed=True)
    assert low == pytest.approx(1.05) and high == pytest.approx(1.95)
    assert detect.strip_thresholds(clean, 0.1)[1] == float("inf")
    rejected = detect.strip_reject(torch.tensor([0.5, 1.5, 2.5]), (low, high))
    assert rejected.tolist() == [True, False, True]
    score = detect.strip_two_tailed_score(torch.tensor([0.5, 1.5, 2.5]), clean)
    assert score[1] == 0 and score[0] == pytest.approx(score[2].item())


def cu_float(x):
    from course_utils.data import as_float

    return as_float(x)


def test_gram_decompositions_are_reused_only_for_equal_rows(monkeypatch):
    """Several rules on one class's activations share its decomposition; other rows never get it."""
    detect._GRAM_MEMO.clear()
    calls = []
    eigh = torch.linalg.eigh
    monkeypatch.setattr(torch.linalg, "eigh", lambda a: calls.append(1) or eigh(a))
    r = torch.randn(40, 300, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    r -= r.mean(0)
    first = detect.principal_components(r, 3)
    same = detect.principal_components(r.clone(), 3)  # equal rows: the very same numbers, no new eigh
    assert torch.equal(same[0], first[0]) and torch.equal(same[1], first[1])
    fewer = detect.principal_components(r.clone(), 2)
    assert len(calls) == 1 and torch.allclose(fewer[0], first[0][:, :2]) and torch.allclose(fewer[1], first[1][:2])
    r[0, 0] += 1e-9  # changed in place: decomposed again
    detect.principal_components(r, 3)
    assert len(calls) == 2
    monkeypatch.setattr(detect, "GRAM_MEMO_BYTES", 4 * 40 * 40 * 8)  # room for four such classes
    for seed in range(5):
        detect.principal_components(torch.randn(40, 300, generator=torch.Generator().manual_seed(seed + 1),
                                                dtype=torch.float64), 2)
    assert len(detect._GRAM_MEMO) == 4  # the oldest went first
