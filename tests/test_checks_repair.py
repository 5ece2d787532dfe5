"""Lesson 05's exercise checks: the reference passes, a stub is "not implemented", each mistake is named."""

import copy

import pytest
import torch
import torch.nn.functional as F

from course_utils import as_float, checks, repair
from course_utils.checks.repair import _feature_pairs, nad_variant, prune_variant, pruning_fixture


def stub(*args, **kwargs):
    raise NotImplementedError()


def learner_prune(model, x, y, max_acc_drop=0.04, max_fraction=0.9):
    """What a learner writes: activity, ascending order, prune while within the bound, stop at the first miss."""
    with torch.no_grad():
        xf = as_float(x)
        h = xf
        for block in model.blocks:
            h = block(h)
        order = torch.argsort(h.mean(dim=(0, 2, 3)), stable=True)
        start = (model(xf).argmax(1) == y).float().mean().item()
        pruned = 0
        for channel in order[: int(max_fraction * len(order))].tolist():
            model.channel_mask[channel] = 0
            if (model(xf).argmax(1) == y).float().mean().item() < start - max_acc_drop:
                model.channel_mask[channel] = 1
                break
            pruned += 1
    return pruned


def learner_nad(student_maps, teacher_maps, betas, p=2.0):
    """Channel *mean* (not sum) of |a|^p: the same after the normalisation."""
    def attention(fm):
        am = fm.abs().pow(p).mean(1).flatten(1)
        return am / (am.norm(dim=1, keepdim=True) + 1e-6)
    return sum(b * (attention(s) - attention(t)).pow(2).mean() for b, s, t in zip(betas, student_maps, teacher_maps))


def test_references_pass_and_stubs_are_reported(capsys):
    assert checks.check_prune_dormant(repair.prune_dormant) is True
    assert checks.check_prune_dormant(learner_prune) is True
    assert checks.check_nad_loss(repair.attention_loss) is True
    assert checks.check_nad_loss(learner_nad) is True
    assert checks.check_distillation_loss(repair.distillation_loss) is True
    for check in (checks.check_prune_dormant, checks.check_nad_loss, checks.check_distillation_loss):
        assert check(stub) is False
    assert capsys.readouterr().out.count("not implemented yet") == 3


def test_prune_variant_with_defaults_is_the_library_step():
    base, x, y = pruning_fixture()
    for drop, fraction in ((0.04, 0.9), (0.15, 0.9), (1.0, 0.5)):
        a, b = copy.deepcopy(base), copy.deepcopy(base)
        assert prune_variant(a, x, y, drop, fraction) == repair.prune_dormant(b, x, y, max_acc_drop=drop,
                                                                             max_fraction=fraction)
        assert torch.equal(a.channel_mask, b.channel_mask)


@pytest.mark.parametrize("switch, match", [
    ({"most_active_first": True}, r"\*most\* active"),
    ({"keep_going": True}, "kept trying the next"),
    ({"keep_breaker": True}, "switch it back on"),
    ({"absolute": True}, "relative to the starting accuracy"),
    ({"cap": False}, "max_fraction"),
])
def test_prune_mistakes_are_named(switch, match):
    def wrong(model, x, y, max_acc_drop=0.04, max_fraction=0.9):
        return prune_variant(model, x, y, max_acc_drop, max_fraction, **switch)

    with pytest.raises(AssertionError, match=match):
        checks.check_prune_dormant(wrong)


def test_prune_other_mistakes_are_named():
    def float_only(model, x, y, max_acc_drop=0.04, max_fraction=0.9):
        return learner_prune(model, x.float(), y, max_acc_drop, max_fraction)  # 0-255, not [0, 1]

    def no_convert(model, x, y, max_acc_drop=0.04, max_fraction=0.9):
        return int(model(x).argmax(1).sum())  # a uint8 batch into the model

    def train_mode(model, x, y, max_acc_drop=0.04, max_fraction=0.9):
        model.train()
        return learner_prune(model, x, y, max_acc_drop, max_fraction)

    def wrong_count(model, x, y, max_acc_drop=0.04, max_fraction=0.9):
        return learner_prune(model, x, y, max_acc_drop, max_fraction) + 1

    def returns_mask(model, x, y, max_acc_drop=0.04, max_fraction=0.9):
        learner_prune(model, x, y, max_acc_drop, max_fraction)
        return model.channel_mask

    for wrong, match in [(float_only, "channels set wrongly"), (no_convert, "as_float"),
                         (train_mode, "weights or buffers changed"), (wrong_count, "you returned"),
                         (returns_mask, "an int")]:
        with pytest.raises(AssertionError, match=match):
            checks.check_prune_dormant(wrong)


@pytest.mark.parametrize("switches, match", [
    ({"normalise": False}, "not normalised"),
    ({"per_map": False}, "whole batch"),
    ({"absolute": False}, r"\|F\|\^p"),
    ({"distance": "sse"}, "summed"),
    ({"distance": "l2"}, "paper's L2 norm"),
    ({"combine": "mean"}, "averaged"),
    ({"combine": "first"}, "one beta"),
])
def test_nad_mistakes_are_named(switches, match):
    with pytest.raises(AssertionError, match=match):
        checks.check_nad_loss(lambda s, t, betas, p=2.0: nad_variant(s, t, betas, p, **switches))


def test_nad_variant_with_defaults_is_the_library_loss():
    student, teacher = _feature_pairs(torch.Generator().manual_seed(0))
    assert torch.isclose(nad_variant(student, teacher, (1.0, 2.0, 3.0)), repair.attention_loss(student, teacher,
                                                                                               (1.0, 2.0, 3.0)))


def test_nad_detached_student_and_non_scalar_are_named():
    def detached(s, t, betas, p=2.0):
        return repair.attention_loss([m.detach() for m in s], t, betas, p)

    def per_layer(s, t, betas, p=2.0):
        return torch.stack([b * F.mse_loss(repair.attention_map(a, p), repair.attention_map(c, p))
                            for b, a, c in zip(betas, s, t)])

    with pytest.raises(AssertionError, match="no gradient reaches the student"):
        checks.check_nad_loss(detached)
    with pytest.raises(AssertionError, match="scalar"):
        checks.check_nad_loss(per_layer)


def test_distillation_mistakes_are_named():
    def no_t2(s, t, y, T, a):
        return a * F.kl_div(F.log_softmax(s / T, 1), F.softmax(t / T, 1), reduction="batchmean") + (1 - a) * F.cross_entropy(s, y)

    def reversed_kl(s, t, y, T, a):
        soft = F.kl_div(F.log_softmax(t / T, 1), F.log_softmax(s / T, 1), reduction="batchmean", log_target=True)
        return a * T * T * soft + (1 - a) * F.cross_entropy(s, y)

    for wrong, match in [(no_t2, r"T\^2"), (lambda s, t, y, T, a: repair.distillation_loss(s, t, y, T, 1 - a), "alpha"),
                         (lambda s, t, y, T, a: F.cross_entropy(s, y, reduction="none"), "scalar"),
                         (reversed_kl, "reversed")]:
        with pytest.raises(AssertionError, match=match):
            checks.check_distillation_loss(wrong)
