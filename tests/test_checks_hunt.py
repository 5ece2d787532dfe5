"""Lesson 07's checks: each reference passes, a stub is 'not implemented', plausible wrong answers fail with a message."""

import pytest
import torch

from course_utils import checks, predict, zoo


def stub(*args, **kwargs):
    raise NotImplementedError()


@pytest.mark.parametrize("check", [checks.check_patch_scan, checks.check_invert_triggers, checks.check_detector])
def test_stub_is_not_implemented(check, capsys):
    assert check(stub) is False
    assert "not implemented" in capsys.readouterr().out


# ---------------------------------------------------------------- exercise 1: the patch scan
def test_patch_scan_reference_passes():
    assert checks.check_patch_scan(zoo.patch_scan_score)


def _scan(model, x, size, stride, color, as_float=True, own_class_too=False, divide=True):
    from course_utils import as_float as to_float

    x = to_float(x) if as_float else x.float()
    masks = zoo.patch_masks(tuple(x.shape[-2:]), size, stride)[:, None, None]
    pred = predict(model, torch.where(masks, torch.tensor(float(color)), x.unsqueeze(0)).flatten(0, 1)).view(len(masks), -1)
    own = predict(model, x)
    best = max(torch.bincount(p if own_class_too else p[p != own], minlength=10).max().item() for p in pred)
    return best / len(x) if divide else best


@pytest.mark.parametrize("wrong, message", [
    (lambda m, x, size=4, stride=3, color=1.0: _scan(m, x, size, stride, color, own_class_too=True), "CHANGES"),
    (lambda m, x, size=4, stride=3, color=1.0: _scan(m, x, size, stride, color, as_float=False), "uint8"),
    (lambda m, x, size=4, stride=3, color=1.0: _scan(m, x, size, stride, color, divide=False), "expected"),
])
def test_patch_scan_wrong_answers_fail(wrong, message):
    with pytest.raises(AssertionError, match=message):
        checks.check_patch_scan(wrong)


# ---------------------------------------------------------------- exercise 2: trigger inversion
def test_invert_triggers_reference_passes():
    assert checks.check_invert_triggers(zoo.invert_triggers)


def _invert(model, x_fit, radius=3.0, steps=30, batch_size=20, lr=0.5, seed=0, project=True, sign=1.0,
            restore=True, seeded=True):
    from course_utils import as_float

    x = as_float(x_fit)
    k = model.num_classes
    g = torch.Generator().manual_seed(seed) if seeded else None
    delta = torch.zeros(k, *x.shape[1:], requires_grad=True)
    opt = torch.optim.Adam([delta], lr=lr)
    targets = torch.arange(k).repeat_interleave(min(batch_size, len(x)))
    for p in model.parameters():
        p.requires_grad_(False)
    for _ in range(steps):
        batch = x[torch.randperm(len(x), generator=g)[:batch_size]]
        loss = sign * torch.nn.functional.cross_entropy(
            model((batch.unsqueeze(0) + delta.unsqueeze(1)).clamp(0, 1).flatten(0, 1)), targets)
        opt.zero_grad()
        loss.backward()
        opt.step()
        if project:
            with torch.no_grad():
                delta.mul_((radius / delta.flatten(1).norm(dim=1).clamp_min(1e-12)).clamp(max=1).view(-1, 1, 1, 1))
    if restore:
        for p in model.parameters():
            p.requires_grad_(True)
    return delta.detach()


@pytest.mark.parametrize("kwargs, message", [
    (dict(project=False), "project"),
    (dict(sign=-1.0), "TOWARDS"),
    (dict(restore=False), "requires_grad"),
    (dict(seeded=False), "same seed"),
])
def test_invert_triggers_wrong_answers_fail(kwargs, message):
    with pytest.raises(AssertionError, match=message):
        checks.check_invert_triggers(lambda *a, **kw: _invert(*a, **kw, **kwargs))


def test_invert_triggers_wrong_shape_fails():
    with pytest.raises(AssertionError, match="one perturbation per class"):
        checks.check_invert_triggers(lambda m, x, **kw: _invert(m, x, **kw).mean(0))


# ---------------------------------------------------------------- exercise 3: the detector
def test_detector_reference_passes():
    assert checks.check_detector(zoo.reference_detector)


def _trains(model, x):
    model.train()
    return zoo.to_probability(zoo.patch_scan_score(model, x))


@pytest.mark.parametrize("wrong, message", [
    (lambda m, x: 0.5, "coin"),  # a constant earns nothing
    (lambda m, x: 3.0 * zoo.patch_scan_score(m, x), r"probability in \[0, 1\]"),
    (lambda m, x: float(torch.rand(1)), "reproduced"),
    (_trains, "training mode"),
    (lambda m, x: float("nan"), "finite"),
    (lambda m, x: "high", "number"),
    (lambda m, x: 1.0 - zoo.to_probability(zoo.patch_scan_score(m, x)), "higher probability"),
])
def test_detector_wrong_answers_fail(wrong, message):
    with pytest.raises(AssertionError, match=message):
        checks.check_detector(wrong)
