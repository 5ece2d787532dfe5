"""Lesson 03's exercise checks: the reference passes, a stub is 'not implemented', plausible wrong answers fail
with a message that names the mistake."""

import pytest
import torch
import torch.nn.functional as F

from course_utils import checks, detect


def not_done(*args, **kwargs):
    raise NotImplementedError()


# ----------------------------------------------------------------------------- nc_objective


def _objective(squash=True, swap=False, use_keep=True, per_label=True, detach=False):
    """A learner's nc_objective with one mistake switched on."""
    def fn(net, x, mask_logit, pattern_logit, cost, keep):
        k, b = len(mask_logit), len(x)
        mask = torch.sigmoid(mask_logit) if squash else mask_logit
        pattern = torch.sigmoid(pattern_logit) if squash else pattern_logit
        if detach:
            mask, pattern = mask.detach(), pattern.detach()
        if swap:
            stamped = mask[:, None] * x[None] + ((1 - mask) * pattern)[:, None]
        else:
            stamped = (1 - mask[:, None]) * x[None] + (mask * pattern)[:, None]
        logits = net(stamped.flatten(0, 1)).view(k, b, -1)
        labels = torch.arange(k).view(k, 1).expand(k, b)
        ce = F.cross_entropy(logits.flatten(0, 1), labels.flatten(), reduction="none").view(k, b)
        w = keep.float() if use_keep else torch.ones(k, b)
        l1 = mask.flatten(1).sum(1) if per_label else mask.sum().expand(k)
        success = ((logits.argmax(2) == labels).float() * w).sum(1) / w.sum(1)
        return (ce * w).sum(1) / w.sum(1) + cost * l1, success.detach()
    return fn


def test_nc_objective_reference_and_stub():
    assert checks.check_nc_objective(detect.nc_objective) is True
    assert checks.check_nc_objective(_objective()) is True
    assert checks.check_nc_objective(not_done) is False


@pytest.mark.parametrize("flags, message", [
    (dict(squash=False), "without the sigmoid"),
    (dict(swap=True), "wrong side"),
    (dict(use_keep=False), "`keep` is ignored"),
    (dict(per_label=False), "each label pays for its own mask"),
    (dict(detach=True), "no gradient"),
])
def test_nc_objective_wrong_answers(flags, message):
    with pytest.raises(AssertionError, match=message):
        checks.check_nc_objective(_objective(**flags))


def test_nc_objective_wrong_return_type():
    with pytest.raises(AssertionError, match="tuple"):
        checks.check_nc_objective(lambda *args: _objective()(*args)[0])


# ----------------------------------------------------------------------------- nc_update_costs


def test_nc_update_costs_reference_and_stub():
    assert checks.check_nc_update_costs(detect.nc_update_costs) is True
    assert checks.check_nc_update_costs(not_done) is False


def no_patience(costs, streak, success, *, threshold=0.99, patience=5, up=1.5, down=1.5 ** 1.5):
    ok = success >= threshold
    return torch.where(ok, costs * up, costs / down), streak


def strict_threshold(costs, streak, success, *, threshold=0.99, patience=5, up=1.5, down=1.5 ** 1.5):
    ok = success > threshold  # the mistake: reaching the threshold exactly should count
    streak = torch.where(ok, streak.clamp_min(0) + 1, streak.clamp_max(0) - 1)
    raise_, lower = streak >= patience, streak <= -patience
    costs = torch.where(raise_, costs * up, torch.where(lower, costs / down, costs))
    return costs, torch.where(raise_ | lower, torch.zeros_like(streak), streak)


def no_reset(costs, streak, success, *, threshold=0.99, patience=5, up=1.5, down=1.5 ** 1.5):
    ok = success >= threshold
    streak = torch.where(ok, streak.clamp_min(0) + 1, streak.clamp_max(0) - 1)
    costs = torch.where(streak >= patience, costs * up, torch.where(streak <= -patience, costs / down, costs))
    return costs, streak


def never_restarts(costs, streak, success, *, threshold=0.99, patience=5, up=1.5, down=1.5 ** 1.5):
    streak = streak + torch.where(success >= threshold, 1, -1)
    raise_, lower = streak >= patience, streak <= -patience
    costs = torch.where(raise_, costs * up, torch.where(lower, costs / down, costs))
    return costs, torch.where(raise_ | lower, torch.zeros_like(streak), streak)


@pytest.mark.parametrize("fn, message", [
    (no_patience, "every label moved at once"),
    (strict_threshold, "exactly the threshold"),
    (no_reset, "0 after a change"),
    (never_restarts, "restarts at"),
])
def test_nc_update_costs_wrong_answers(fn, message):
    with pytest.raises(AssertionError, match=message):
        checks.check_nc_update_costs(fn)


# ----------------------------------------------------------------------------- Spectral Signatures


def test_spectral_signature_reference_and_stub():
    assert checks.check_spectral_signature_class_scores(detect.spectral_signature_class_scores) is True
    assert checks.check_spectral_signature_class_scores(not_done) is False


def _svd(feats):
    return torch.linalg.svd(feats, full_matrices=False)


@pytest.mark.parametrize("fn, message", [
    (lambda f: (f @ _svd(f).Vh[0]) ** 2, "not centred"),
    (lambda f: (f - f.mean(0)) @ _svd(f - f.mean(0)).Vh[0], "not squared"),
    (lambda f: _svd(f - f.mean(0)).U[:, 0] ** 2, "LEFT singular vector"),
    (lambda f: ((f - f.mean(1, keepdim=True)) @ _svd(f - f.mean(1, keepdim=True)).Vh[0]) ** 2, "per row"),
    (lambda f: ((f - f.mean(0)) @ _svd(f - f.mean(0)).Vh[:, 0]) ** 2, r"Vh\[:, 0\]"),
    (lambda f: ((f - f.mean(0)) @ _svd(f - f.mean(0)).Vh[0]).float() ** 2, "dtype"),
])
def test_spectral_signature_wrong_answers(fn, message):
    with pytest.raises(AssertionError, match=message):
        checks.check_spectral_signature_class_scores(fn)


# ----------------------------------------------------------------------------- STRIP's entropy (warm-up)


def _entropy(clamp=True, log=torch.log, of_mean=False, reduce="mean"):
    def fn(model, x, overlays):
        blends = x[:, None] + overlays[None]
        blends = (blends.clamp(0, 1) if clamp else blends).flatten(0, 1)
        with torch.no_grad():
            p = model(blends).softmax(1)
        if of_mean:
            q = p.view(len(x), len(overlays), -1).mean(1)
            return -(q * log(q)).sum(1)
        h = (-(p * log(p)).sum(1)).view(len(x), -1)
        return h.mean(1) if reduce == "mean" else h.sum(1)
    return fn


def test_superimposed_entropy_reference_and_stub():
    assert checks.check_superimposed_entropy(detect.superimposed_entropy) is True
    assert checks.check_superimposed_entropy(_entropy()) is True
    assert checks.check_superimposed_entropy(not_done) is False


@pytest.mark.parametrize("fn, message", [
    (_entropy(clamp=False), "not clamped"),
    (_entropy(log=torch.log2), "base 2"),
    (_entropy(of_mean=True), "MEAN prediction"),
    (_entropy(reduce="sum"), "summed over the n overlays"),
])
def test_superimposed_entropy_wrong_answers(fn, message):
    with pytest.raises(AssertionError, match=message):
        checks.check_superimposed_entropy(fn)
