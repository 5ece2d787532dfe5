"""Lesson 04's exercise checks: the reference passes, a stub is "not implemented", each mistake is named."""

import pytest
import torch
import torch.nn.functional as F

from course_utils import checks, robust
from course_utils.checks.robustness import _cases, pgd_variant, tiny_model


def stub(*args, **kwargs):
    raise NotImplementedError()


def learner_pgd(model, x, y, eps, step, steps, seed=0):
    """What a learner writes: random start, signed ascent, projection, clipping; mean loss, autograd.grad."""
    noise = torch.rand(x.shape, generator=torch.Generator().manual_seed(seed))
    x_adv = (x + (2 * noise - 1) * eps).clamp(0, 1)
    for _ in range(steps):
        x_adv = x_adv.detach().requires_grad_(True)
        (grad,) = torch.autograd.grad(F.cross_entropy(model(x_adv), y), x_adv)
        x_adv = torch.min(torch.max(x_adv + step * grad.sign(), x - eps), x + eps).clamp(0, 1)
    return x_adv.detach()


def test_references_pass_and_stubs_are_reported(capsys):
    assert checks.check_fgsm(robust.fgsm) is True
    assert checks.check_pgd(robust.pgd) is True
    assert checks.check_pgd(learner_pgd) is True  # a mean loss, a different code path: same answer
    assert checks.check_fgsm(stub) is False and checks.check_pgd(stub) is False
    assert "not implemented yet" in capsys.readouterr().out


def test_pgd_variant_with_defaults_is_the_library_pgd():
    model, (x, y) = tiny_model(3, batchnorm=True), _cases(3)
    for eps, step, steps, seed in [(0.1, 0.025, 10, 0), (0.05, 0.2, 3, 1), (0.0, 0.01, 2, 0)]:
        assert torch.equal(pgd_variant(model, x, y, eps, step, steps, seed), robust.pgd(model, x, y, eps, step, steps,
                                                                                       seed=seed))


def _wrong(**switches):
    def fn(model, x, y, eps, step, steps, seed=0):
        return pgd_variant(model, x, y, eps, step, steps, seed, **switches)
    return fn


@pytest.mark.parametrize("switches, match", [
    ({"project": False}, "project back into"),
    ({"clip": False}, "clip to"),
    ({"direction": -1.0}, r"\*down\* the loss"),
    ({"start": "none"}, "no random start"),
    ({"start": "positive"}, r"\[-eps, eps\]"),
    ({"signed": False}, "raw gradient"),
])
def test_pgd_mistakes_are_named(switches, match):
    with pytest.raises(AssertionError, match=match):
        checks.check_pgd(_wrong(**switches))


def test_pgd_that_changes_the_model_is_named():
    def train_mode(model, x, y, eps, step, steps, seed=0):
        model.train()
        return learner_pgd(model, x, y, eps, step, steps, seed)

    def train_then_eval(model, x, y, eps, step, steps, seed=0):
        model.train()
        model(x)
        model.eval()
        return learner_pgd(model, x, y, eps, step, steps, seed)

    def backward(model, x, y, eps, step, steps, seed=0):
        noise = torch.rand(x.shape, generator=torch.Generator().manual_seed(seed))
        x_adv = (x + (2 * noise - 1) * eps).clamp(0, 1)
        for _ in range(steps):
            x_adv = x_adv.detach().requires_grad_(True)
            F.cross_entropy(model(x_adv), y).backward()
            x_adv = torch.min(torch.max(x_adv + step * x_adv.grad.sign(), x - eps), x + eps).clamp(0, 1)
        return x_adv.detach()

    for wrong, match in [(train_mode, "left in training mode"), (train_then_eval, "buffers changed"),
                         (backward, "gradients accumulated")]:
        with pytest.raises(AssertionError, match=match):
            checks.check_pgd(wrong)


def test_pgd_in_place_and_wrong_type():
    def in_place(model, x, y, eps, step, steps, seed=0):
        x += 0.0 * x  # touches nothing numerically...
        x.clamp_(0.01, 0.99)  # ...but this does
        return learner_pgd(model, x, y, eps, step, steps, seed)

    with pytest.raises(AssertionError, match="changed in place"):
        checks.check_pgd(in_place)
    with pytest.raises(AssertionError, match="expected a torch.Tensor"):
        checks.check_pgd(lambda model, x, y, eps, step, steps, seed=0: x.tolist())


def test_fgsm_mistakes_are_named():
    def in_place(model, x, y, eps):
        x += eps
        return x.clamp(0, 1)

    def descends(model, x, y, eps):
        return (x - eps * robust.input_gradient(model, x, y).sign()).clamp(0, 1)

    def unclipped(model, x, y, eps):
        return x + eps * robust.input_gradient(model, x, y).sign()

    def too_far(model, x, y, eps):
        return (x + 2 * eps * robust.input_gradient(model, x, y).sign()).clamp(0, 1)

    for wrong, match in [(in_place, "changed in place"), (descends, "down"), (unclipped, "clip the result"),
                         (too_far, "more than eps")]:
        with pytest.raises(AssertionError, match=match):
            checks.check_fgsm(wrong)
