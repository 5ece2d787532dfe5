import copy

import pytest
import torch
import torch.nn.functional as F

from course_utils import metrics, repair
from course_utils.models import small_cnn


def test_clean_subset_is_seeded_nested_and_sized(digits):
    x1, y1 = repair.clean_subset(digits, 0.01, seed=3)
    x5, y5 = repair.clean_subset(digits, 0.05, seed=3)
    assert x5.shape == (100, 1, 28, 28) and y5.shape == (100,) and x5.dtype == torch.uint8
    assert torch.equal(x5[:20], x1) and torch.equal(y5[:20], y1)
    assert torch.equal(repair.clean_subset(digits, 0.05, seed=3)[0], x5)
    assert not torch.equal(repair.clean_subset(digits, 0.05, seed=4)[0], x5)
    assert len(repair.clean_subset(digits, 1.0)[0]) == len(digits.x_train)
    assert len(repair.clean_subset(digits, 1e-9)[0]) == 1


@pytest.mark.parametrize("fraction", [0, -0.1, 1.5, 5, True, "0.05", None, float("nan")])
def test_clean_subset_rejects_bad_fractions(digits, fraction):
    with pytest.raises(ValueError, match=r"fraction must be in \(0, 1\]"):
        repair.clean_subset(digits, fraction)


def test_distillation_loss_matches_hinton():
    g = torch.Generator().manual_seed(0)
    s, t, y = torch.randn(5, 4, generator=g), torch.randn(5, 4, generator=g), torch.randint(0, 4, (5,), generator=g)
    T = 3.0
    p_t = F.softmax(t / T, 1)
    kl = (p_t * (p_t.log() - F.log_softmax(s / T, 1))).sum(1).mean()
    want = 0.7 * T * T * kl + 0.3 * F.cross_entropy(s, y)
    assert repair.distillation_loss(s, t, y, T, 0.7) == pytest.approx(want.item(), rel=1e-5)
    assert repair.distillation_loss(s, t, y, T, 0.0) == pytest.approx(F.cross_entropy(s, y).item())
    assert repair.distillation_loss(t, t, y, T, 1.0) == pytest.approx(0.0, abs=1e-6)


@pytest.mark.parametrize("kwargs, match", [
    ({"temperature": 0}, "temperature must be a number > 0"),
    ({"temperature": -2.0}, "temperature must be a number > 0"),
    ({"temperature": True}, "temperature"),
    ({"alpha": 1.5}, "alpha"),
])
def test_distillation_loss_bad_arguments(kwargs, match):
    s = torch.randn(2, 3)
    with pytest.raises(ValueError, match=match):
        repair.distillation_loss(s, s, torch.zeros(2, dtype=torch.long), **kwargs)
    with pytest.raises(ValueError, match="number of classes"):
        repair.distillation_loss(torch.randn(2, 3), torch.randn(2, 4), torch.zeros(2, dtype=torch.long))


def test_attention_map_shape_and_norm():
    fm = torch.randn(3, 8, 5, 4)
    am = repair.attention_map(fm)
    assert am.shape == (3, 5, 4)
    assert torch.allclose(am.flatten(1).norm(dim=1), torch.ones(3), atol=1e-4)
    assert torch.allclose(am, repair.attention_map(fm * 7))  # scale-free
    assert repair.attention_loss([fm], [fm], betas=[1000.0]) == 0
    with pytest.raises(ValueError, match=r"\(N, C, H, W\)"):
        repair.attention_map(torch.randn(8, 5, 4))


def test_channel_activity_and_pruning(backdoored_badnets, digits):
    model, _ = backdoored_badnets
    model = copy.deepcopy(model)
    x, y = digits.x_train[:200], digits.y_train[:200]
    # the order must come from the same images prune_dormant ranks on: near-tied channels swap
    # places between two different image sets
    activity = repair.channel_activity(model, x)
    assert activity.shape == (64,) and (activity >= 0).all()
    order = repair.dormant_order(activity)
    assert torch.all(activity[order][:-1] <= activity[order][1:])
    before = metrics.accuracy(model, x, y)
    pruned = repair.prune_dormant(model, x, y, max_acc_drop=0.02)
    assert 0 < pruned <= int(0.9 * 64) and int((model.channel_mask == 0).sum()) == pruned
    assert metrics.accuracy(model, x, y) >= before - 0.02 - 1e-9
    assert set(torch.nonzero(model.channel_mask == 0).flatten().tolist()) == set(order[:pruned].tolist())


@pytest.mark.parametrize("name", sorted(repair.REPAIRS))
def test_every_defense_keeps_the_interface(backdoored_badnets, digits, name):
    model, _ = backdoored_badnets
    before = {k: v.clone() for k, v in model.state_dict().items()}
    x, y = digits.x_train[:40], digits.y_train[:40]
    repaired = repair.REPAIRS[name](model, x, y, seed=0)
    assert repaired is not model and not repaired.training and not model.training
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items()), "the input model changed"
    assert repaired(torch.rand(2, 1, 28, 28)).shape == (2, 10)
    assert sorted(repair.REPAIRS) == ["adv-unlearning", "fine-pruning", "fine-tuning", "kd", "nad", "pgd-at"]


def test_fine_prune_keeps_its_channels_off(backdoored_badnets, digits):
    model, _ = backdoored_badnets
    repaired = repair.fine_prune(model, digits.x_train[:100], digits.y_train[:100], seed=0, epochs=2)
    assert int((repaired.channel_mask == 0).sum()) > 0 and not hasattr(repaired, "pruned_channels")
    assert model.channel_mask.min() == 1


def test_distill_trains_a_fresh_student_and_checks_its_size(backdoored_badnets, digits):
    model, attack = backdoored_badnets
    x, y = digits.x_train[:100], digits.y_train[:100]
    student = repair.distill(model, x, y, seed=0)
    assert metrics.attack_success_rate(student, digits, attack) < 0.2
    assert metrics.clean_accuracy(student, digits) > 0.8
    with pytest.raises(ValueError, match="student has 7 outputs but the teacher has 10"):
        repair.distill(model, x, y, student=small_cnn(num_classes=7), epochs=1)
    with pytest.raises(ValueError, match="temperature"):
        repair.distill(model, x, y, temperature=0, epochs=1)
    fresh = repair.fresh_copy(model, seed=1)
    assert not torch.equal(fresh.head.weight, model.head.weight)


def test_nad_checks_its_betas(backdoored_badnets, digits):
    model, _ = backdoored_badnets
    with pytest.raises(ValueError, match="one beta per block"):
        repair.nad(model, digits.x_train[:8], digits.y_train[:8], betas=(1.0,))


def test_defenses_reject_bad_input(backdoored_badnets, digits):
    model, _ = backdoored_badnets
    with pytest.raises(ValueError, match="shape"):
        repair.fine_tune(model, digits.x_train[:8], digits.y_train[:7])
    with pytest.raises(TypeError, match="CourseModel"):
        repair.fine_prune(torch.nn.Linear(2, 2), torch.rand(2, 1, 28, 28), torch.zeros(2, dtype=torch.long))
    with pytest.raises(ValueError, match="epochs"):
        repair.fine_tune(model, digits.x_train[:8], digits.y_train[:8], epochs=0)


def test_budget_sweep_and_summarize(backdoored_badnets, digits):
    def identity(model, x, y, *, seed=0):
        return copy.deepcopy(model)

    model, attack = backdoored_badnets
    rows = repair.budget_sweep(digits, attack, {"none": identity}, fractions=(0.05,), seeds=(0,), models={0: model},
                               progress=False, pgd_n=20)
    assert len(rows) == 1 and set(rows[0]) == {"method", "fraction", "seed", "seconds", "cached", "ca", "asr", "ra",
                                               "pgd_accuracy"}
    assert rows[0]["cached"] is False  # a function, on a model passed in: run and timed every time
    table = metrics.summarize_rows(rows + [dict(rows[0], seed=1, ca=rows[0]["ca"] - 0.1)])
    mean, std = table[("none", 0.05)]["ca"]
    assert mean == pytest.approx(rows[0]["ca"] - 0.05) and std > 0
    with pytest.raises(ValueError, match="unknown defense"):
        repair.budget_sweep(digits, attack, ["fine-tuning", "magic"])
    with pytest.raises(ValueError, match="fraction"):
        repair.budget_sweep(digits, attack, ["fine-tuning"], fractions=(0.0,))
    with pytest.raises(ValueError, match="does not run"):
        repair.budget_sweep(digits, attack, ["fine-tuning"], defense_kwargs={"kd": {"epochs": 3}})


def test_named_repairs_of_the_course_models_are_cached_and_shared_with_the_matrix(digits):
    """Lessons 04-05 sweep repairs of the course's own models; a rerun, and lesson 06's matrix, load them."""
    from course_utils import evaluation, make_attack

    attack = make_attack("badnets")

    def sweep():
        return repair.budget_sweep(digits, attack, ["fine-tuning"], fractions=(0.01,), seeds=(0,), progress=False,
                                   pgd_n=10, keep_models=True)

    first, again = sweep(), sweep()
    assert first[0]["cached"] is False and again[0]["cached"] is True
    assert again[0]["seconds"] == pytest.approx(first[0]["seconds"])  # the cost measured when it was made
    assert (again[0]["ca"], again[0]["asr"]) == (first[0]["ca"], first[0]["asr"])
    tuned = repair.budget_sweep(digits, attack, ["fine-tuning"], fractions=(0.01,), seeds=(0,), progress=False,
                                pgd_n=10, defense_kwargs={"fine-tuning": {"epochs": 2}})
    assert tuned[0]["cached"] is False  # other hyperparameters: another model
    matrix_model, _, info = evaluation.defended(digits, "badnets", "fine-tuning", 0, clean_fraction=0.01)
    assert info["cached"] is True
    for a, b in zip(matrix_model.state_dict().values(), first[0]["model"].state_dict().values()):
        assert torch.equal(a, b)


def test_backdoorbench_reference_is_labelled():
    table = repair.BACKDOORBENCH_CIFAR10_BADNETS
    assert table["no defense"]["asr"] > 90 and table["kd"] is None
    assert set(repair.REPAIRS) <= set(table)
    assert "BackdoorBench" in repair.BACKDOORBENCH_SOURCE

