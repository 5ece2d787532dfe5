import pytest
import torch
import torch.nn.functional as F

from course_utils import as_float, make_model, metrics, repair, robust, train
from course_utils.checks.robustness import tiny_model


@pytest.fixture
def batch():
    g = torch.Generator().manual_seed(0)
    return torch.rand(8, 1, 6, 6, generator=g), torch.randint(0, 3, (8,), generator=g)


def loss_of(model, x, y):
    with torch.no_grad():
        return F.cross_entropy(model(x), y).item()


def test_fgsm_stays_in_the_ball_and_raises_the_loss(batch):
    model, (x, y) = tiny_model(0), batch
    before = x.clone()
    adv = robust.fgsm(model, x, y, 0.1)
    assert torch.equal(x, before)
    assert adv.shape == x.shape and adv.dtype == torch.float32
    assert (adv - x).abs().max() <= 0.1 + 1e-6 and adv.min() >= 0 and adv.max() <= 1
    assert loss_of(model, adv, y) > loss_of(model, x, y)
    assert torch.equal(robust.fgsm(model, x, y, 0.0), x)


def test_pgd_is_seeded_projected_and_at_least_as_strong_as_fgsm(batch):
    model, (x, y) = tiny_model(1), batch
    a = robust.pgd(model, x, y, eps=0.1, step=0.03, steps=10, seed=3)
    b = robust.pgd(model, x, y, eps=0.1, step=0.03, steps=10, seed=3)
    assert torch.equal(a, b)
    assert (a - x).abs().max() <= 0.1 + 1e-6 and a.min() >= 0 and a.max() <= 1
    assert loss_of(model, a, y) >= loss_of(model, robust.fgsm(model, x, y, 0.1), y) - 1e-4
    no_start = robust.pgd(model, x, y, eps=0.1, step=0.03, steps=1, random_start=False)
    assert torch.equal(no_start, robust.pgd_step(model, x, x, y, 0.1, 0.03))


def test_uint8_images_are_accepted(batch):
    model, (x, y) = tiny_model(0), batch
    x8 = (x * 255).round().to(torch.uint8)
    assert robust.pgd(model, x8, y, eps=0.05, step=0.02, steps=2).dtype == torch.float32


@pytest.mark.parametrize("kwargs, match", [
    ({"eps": -0.1}, "eps must be a number >= 0"),
    ({"eps": float("nan")}, "eps must be a number >= 0"),
    ({"steps": 0}, "steps must be an int >= 1"),
    ({"steps": 2.5}, "steps must be an int >= 1"),
    ({"step": -0.01}, "step must be a number >= 0"),
])
def test_pgd_bad_arguments(batch, kwargs, match):
    model, (x, y) = tiny_model(0), batch
    args = {"eps": 0.1, "step": 0.01, "steps": 3} | kwargs
    with pytest.raises(ValueError, match=match):
        robust.pgd(model, x, y, **args)


def test_bad_inputs(batch):
    model, (x, y) = tiny_model(0), batch
    with pytest.raises(ValueError, match="eps"):
        robust.fgsm(model, x, y, -1)
    with pytest.raises(ValueError, match="shape"):
        robust.fgsm(model, x[0], y, 0.1)
    with pytest.raises(TypeError, match="int64"):
        robust.fgsm(model, x, y.float(), 0.1)
    with pytest.raises(TypeError, match="nn.Module"):
        robust.fgsm(lambda z: z, x, y, 0.1)
    with pytest.raises(ValueError, match="steps"):
        robust.pgd_accuracy(model, x, y, eps=0.1, steps=0)
    with pytest.raises(RuntimeError, match="eval"):
        robust.pgd_accuracy(tiny_model(0).train(), x, y)
    with pytest.raises(ValueError, match="epochs"):
        repair.adversarial_training(make_model("small-cnn"), torch.rand(4, 1, 28, 28), torch.zeros(4, dtype=torch.long),
                                    epochs=0)


def test_robust_accuracy_falls_with_eps(backdoored_badnets, digits):
    model, _ = backdoored_badnets
    x, y = digits.x_test[:100], digits.y_test[:100]
    accs = [robust.pgd_accuracy(model, x, y, eps=e, steps=5) for e in (0.0, 0.05, 0.15)]
    assert accs[0] == pytest.approx(metrics.accuracy(model, x, y))
    assert accs[0] > accs[1] > accs[2]


def test_evaluate_measures_pgd_accuracy_only_when_asked(backdoored_badnets, digits):
    model, attack = backdoored_badnets
    out = metrics.evaluate(model, digits, attack, pgd_eps=0.1, pgd_n=50)
    assert set(out.as_dict()) == {"ca", "asr", "ra", "pgd_accuracy"}
    assert all(0 <= v <= 1 for v in out.as_dict().values()) and out.asr > 0.8
    assert out.pgd_accuracy == robust.pgd_accuracy(model, digits.x_test[:50], digits.y_test[:50], eps=0.1, steps=5)
    assert metrics.evaluate(model, digits, attack).pgd_accuracy is None


def test_pgd_away_is_robust_pgd_without_a_random_start(backdoored_badnets, digits):
    """The clean-label attack's PGD is the course's one PGD."""
    from course_utils.poison import pgd_away

    model, _ = backdoored_badnets
    x, y = as_float(digits.x_test[:20]), digits.y_test[:20]
    away = pgd_away(model, x, y, eps=0.1, steps=3, batch_size=8)
    assert torch.equal(away, robust.pgd(model, x, y, 0.1, 2.5 * 0.1 / 3, 3, random_start=False))
    assert torch.equal(pgd_away(model, x, y, eps=0.0, steps=3), x)


def test_random_shift_moves_content_and_keeps_shape():
    x = torch.zeros(3, 1, 8, 8)
    x[:, :, 4, 4] = 1
    g = torch.Generator().manual_seed(0)
    shifted = train.random_shift(x, g, pixels=2)
    assert shifted.shape == x.shape and torch.allclose(shifted.sum((1, 2, 3)), torch.ones(3))
    assert torch.equal(train.random_shift(x, g, pixels=0), x)


def test_adversarial_training_makes_a_model_more_robust(digits):
    x, y = digits.x_train[:400], digits.y_train[:400]
    xt, yt = digits.x_test[:100], digits.y_test[:100]
    plain = repair.adversarial_training(make_model("small-cnn", seed=0), x, y, eps=0.0, epochs=3, progress=False)
    hardened = repair.adversarial_training(make_model("small-cnn", seed=0), x, y, eps=0.2, steps=2, epochs=3,
                                           progress=False)
    assert not hardened.training and not hasattr(hardened, "train_seconds")
    robust_plain = robust.pgd_accuracy(plain, xt, yt, eps=0.15, steps=5)
    assert robust.pgd_accuracy(hardened, xt, yt, eps=0.15, steps=5) > robust_plain + 0.05


def test_universal_perturbation_respects_its_radius(backdoored_badnets, digits):
    model, _ = backdoored_badnets
    delta = repair.universal_perturbation(model, digits.x_train[:100], radius=2.0, steps=3)
    assert delta.shape == (1, 1, 28, 28) and delta.norm() <= 2.0 + 1e-4
    assert not model.training
    with pytest.raises(ValueError, match="radius"):
        repair.universal_perturbation(model, digits.x_train[:10], radius=-1)
    assert repair.project_l2(torch.full((1, 4), 3.0), 1.0).norm() == pytest.approx(1.0)
    assert torch.equal(repair.project_l2(torch.full((1, 4), 0.1), 1.0), torch.full((1, 4), 0.1))


@pytest.mark.parametrize("defense", [repair.pgd_at, repair.adversarial_unlearning])
def test_robust_defenses_keep_the_interface(backdoored_badnets, digits, defense):
    model, _ = backdoored_badnets
    before = {k: v.clone() for k, v in model.state_dict().items()}
    repaired = defense(model, digits.x_train[:64], digits.y_train[:64], seed=0, **(
        {"epochs": 1} if defense is repair.pgd_at else {"rounds": 1, "inner_steps": 2, "outer_epochs": 1}))
    assert repaired is not model and not repaired.training
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    assert repaired(torch.rand(2, 1, 28, 28)).shape == (2, 10)
    with pytest.raises(ValueError, match="rounds|eps"):
        defense(model, digits.x_train[:8], digits.y_train[:8], **({"eps": -1} if defense is repair.pgd_at
                                                                    else {"rounds": 0}))


def test_adversarial_unlearning_removes_the_backdoor(backdoored_badnets, digits):
    model, attack = backdoored_badnets
    repaired, found = repair.adversarial_unlearning(model, digits.x_train[:200], digits.y_train[:200], seed=0,
                                                    return_perturbations=True)
    assert found.shape == (5, 1, 28, 28) and not hasattr(repaired, "perturbations")
    assert metrics.attack_success_rate(repaired, digits, attack) < 0.3
    assert metrics.clean_accuracy(repaired, digits) > metrics.clean_accuracy(model, digits) - 0.08

