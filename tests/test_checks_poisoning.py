"""Lesson 00-01 checks: the reference passes, a stub is "not implemented", each plausible slip fails by name."""

import hashlib

import pytest
import torch

from course_utils import checks, integrity, poison, triggers
from course_utils.data import as_float
from course_utils.poison import PoisonedData


def not_done(*args, **kwargs):
    raise NotImplementedError()


def test_hash_warm_ups():
    assert checks.check_sha256_file(integrity.sha256_file) is True
    assert checks.check_sha256_file(not_done) is False
    with pytest.raises(AssertionError, match="MD5"):
        checks.check_sha256_file(lambda p: hashlib.md5(open(p, "rb").read()).hexdigest())
    with pytest.raises(AssertionError, match="hexdigest"):
        checks.check_sha256_file(lambda p: hashlib.sha256(open(p, "rb").read()).digest())
    with pytest.raises(AssertionError, match="3 MB file"):  # hashes only the first chunk
        checks.check_sha256_file(lambda p: hashlib.sha256(open(p, "rb").read(1 << 20)).hexdigest())
    assert checks.check_verify_manifest(integrity.verify_manifest) is True
    assert checks.check_verify_manifest(not_done) is False
    with pytest.raises(AssertionError, match="model.pt rewritten"):
        checks.check_verify_manifest(lambda manifest, folder: [])
    with pytest.raises(AssertionError, match="FileNotFoundError"):  # forgets missing files
        checks.check_verify_manifest(lambda m, f: sorted(n for n, d in m.items() if integrity.sha256_file(f / n) != d))


def changed_or_missing(manifest, folder):
    return [n for n, d in manifest.items() if not (folder / n).is_file() or integrity.sha256_file(folder / n) != d]


@pytest.mark.parametrize("wrong, message", [
    (changed_or_missing, "right names in another order; sort them"),  # the manifest's order, not sorted
    (lambda m, f: set(changed_or_missing(m, f)), r"got set \(a set has no order\)"),
    (lambda m, f: sorted(n for n, d in m.items() if (f / n).is_file() and integrity.sha256_file(f / n) == d),
     "nothing changed: .* files that still match"),
    (lambda m, f: sorted(f / n for n in changed_or_missing(m, f)), "Path items: return the keys"),
    (lambda m, f: sorted(str(f / n) for n in changed_or_missing(m, f)), "not the paths of the files"),
    (lambda m, f: sorted(n for n in m if not (f / n).is_file()), "you missed model.pt, still there but no longer"),
    (lambda m, f: sorted(n for n, d in m.items() if (f / n).is_file() and integrity.sha256_file(f / n) != d),
     "you missed train.bin, which was deleted"),
])
def test_verify_manifest_slips_are_named(wrong, message):
    with pytest.raises(AssertionError, match=message):
        checks.check_verify_manifest(wrong)


def patch(images, size=3, row=24, col=24, color=1.0):
    return triggers.stamp_patch(images, size, row, col, color)


def square(images, size, row, col, value, add=False):
    """A square by plain slicing, as a learner writes it."""
    out = images.clone()
    region = out[:, :, row:row + size, col:col + size]
    out[:, :, row:row + size, col:col + size] = region + value if add else value
    return out


def test_patch_trigger_warm_up():
    assert checks.check_patch_trigger(patch) is True
    assert checks.check_patch_trigger(not_done) is False


def one_short(images, size=3, row=24, col=24, color=1.0):  # row:row + size - 1
    return square(images, size - 1, row, col, color)


def one_too_many(images, size=3, row=24, col=24, color=1.0):  # row:row + size + 1
    return square(images, size + 1, row, col, color)


def one_based(images, size=3, row=24, col=24, color=1.0):
    return square(images, size, row + 1, col + 1, color)


def in_place(images, size=3, row=24, col=24, color=1.0):
    images[:, :, row:row + size, col:col + size] = color
    return images


def swapped(images, size=3, row=24, col=24, color=1.0):
    return triggers.stamp_patch(images, size, col, row, color)


def white_always(images, size=3, row=24, col=24, color=1.0):
    return square(images, size, row, col, 1.0)


def added(images, size=3, row=24, col=24, color=1.0):
    return square(images, size, row, col, color, add=True).clamp(0, 1)


def no_square(images, size=3, row=24, col=24, color=1.0):
    out = images.clone()
    out[:, :, torch.arange(row, row + size)][..., col:col + size] = color  # indexing with a tensor makes a copy
    return out


@pytest.mark.parametrize("wrong, message", [
    (one_short, "size=3, .* your square is 2x2 pixels, one too small"),
    (one_too_many, "size=2, .* your square is 3x3 pixels, one too big"),
    (one_based, r"starts at \(6, 6\), one pixel too far down and right"),
    (in_place, "`images` was changed in place"),
    (swapped, "row 7, column 0: row and column are swapped"),
    (white_always, "value 1.0, expected color=0.5"),
    (added, "you added `color` to the pixels"),
    (no_square, "without any square.*values differ"),
])
def test_patch_trigger_slips_are_named(wrong, message):
    with pytest.raises(AssertionError, match=message):
        checks.check_patch_trigger(wrong)


def chosen(y, rate, target, mode, seed):
    return poison.choose_poison_indices(y, rate, target, mode, seed)


def finish(x, y, idx, trigger, new_labels):
    """The rest of a right answer, given the learner's (possibly wrong) choice of indices and labels."""
    px, py = poison.apply_poison(x, y, idx, trigger, new_labels)
    mask = torch.zeros(len(y), dtype=torch.bool)
    mask[idx] = True
    return PoisonedData(px, py, mask)


def labels(y, idx, target, mode, num_classes):
    return torch.full_like(y[idx], target) if mode == "all-to-one" else (y[idx] + 1) % num_classes


def floors_the_count(x, y, trigger, *, rate, target=0, mode="all-to-one", seed=0, num_classes=10):
    cand = torch.arange(len(y)) if mode == "all-to-all" else torch.nonzero(y != target).flatten()
    if int(rate * len(y)) > len(cand):
        raise ValueError("too many")
    idx = cand[torch.randperm(len(cand), generator=torch.Generator().manual_seed(seed))[: int(rate * len(y))]]
    return finish(x, y, idx, trigger, labels(y, idx, target, mode, num_classes))


def includes_the_target(x, y, trigger, *, rate, target=0, mode="all-to-one", seed=0, num_classes=10):
    idx = chosen(y, rate, target, "all-to-all", seed)  # every sample a candidate, even the target's own
    return finish(x, y, idx, trigger, labels(y, idx, target, mode, num_classes))


def global_random(x, y, trigger, *, rate, target=0, mode="all-to-one", seed=0, num_classes=10):
    cand = torch.arange(len(y)) if mode == "all-to-all" else torch.nonzero(y != target).flatten()
    count = round(rate * len(y))
    if count > len(cand):
        raise ValueError("too many")
    idx = cand[torch.randperm(len(cand))[:count]]  # no seeded generator
    return finish(x, y, idx, trigger, labels(y, idx, target, mode, num_classes))


def other_draw(x, y, trigger, *, rate, target=0, mode="all-to-one", seed=0, num_classes=10):
    cand = torch.arange(len(y)) if mode == "all-to-all" else torch.nonzero(y != target).flatten()
    count = round(rate * len(y))
    if count > len(cand):
        raise ValueError("too many")
    idx = cand.flip(0)[torch.randperm(len(cand), generator=torch.Generator().manual_seed(seed))[:count]]
    return finish(x, y, idx, trigger, labels(y, idx, target, mode, num_classes))


def no_wrap(x, y, trigger, *, rate, target=0, mode="all-to-one", seed=0, num_classes=10):
    idx = chosen(y, rate, target, mode, seed)
    new = torch.full_like(y[idx], target) if mode == "all-to-one" else y[idx] + 1
    return finish(x, y, idx, trigger, new)


def all_to_target(x, y, trigger, *, rate, target=0, mode="all-to-one", seed=0, num_classes=10):
    idx = chosen(y, rate, target, mode, seed)
    return finish(x, y, idx, trigger, torch.full_like(y[idx], target))


def in_place_on_float(x, y, trigger, *, rate, target=0, mode="all-to-one", seed=0, num_classes=10):
    idx = chosen(y, rate, target, mode, seed)
    x = as_float(x)  # a float input comes back as the very same tensor
    x[idx] = trigger(x[idx])
    mask = torch.zeros(len(y), dtype=torch.bool)
    mask[idx] = True
    yy = y.clone()
    yy[idx] = labels(y, idx, target, mode, num_classes)
    return PoisonedData(x, yy, mask)


def keeps_uint8(x, y, trigger, *, rate, target=0, mode="all-to-one", seed=0, num_classes=10):
    out = poison.poison_dataset(x, y, trigger, rate=rate, target=target, mode=mode, seed=seed, num_classes=num_classes)
    return PoisonedData((out.x * 255).round().to(torch.uint8) if x.dtype == torch.uint8 else out.x, out.y, out.poisoned)


def triggers_everything(x, y, trigger, *, rate, target=0, mode="all-to-one", seed=0, num_classes=10):
    out = poison.poison_dataset(x, y, trigger, rate=rate, target=target, mode=mode, seed=seed, num_classes=num_classes)
    return PoisonedData(trigger(out.x), out.y, out.poisoned)


def never_raises(x, y, trigger, *, rate, target=0, mode="all-to-one", seed=0, num_classes=10):
    cand = torch.arange(len(y)) if mode == "all-to-all" else torch.nonzero(y != target).flatten()
    idx = cand[torch.randperm(len(cand), generator=torch.Generator().manual_seed(seed))[: round(rate * len(y))]]
    return finish(x, y, idx, trigger, labels(y, idx, target, mode, num_classes))


def returns_a_tuple(x, y, trigger, **kw):
    out = poison.poison_dataset(x, y, trigger, **kw)
    return out.x, out.y, out.poisoned


def test_poison_dataset_reference_and_stub(capsys):
    assert checks.check_poison_dataset(poison.poison_dataset) is True
    assert checks.check_poison_dataset(not_done) is False
    assert "not implemented yet" in capsys.readouterr().out


@pytest.mark.parametrize("wrong, message", [
    (floors_the_count, r"int\(\) rounds down"),
    (includes_the_target, "already have the target label"),
    (global_random, "chose different samples"),
    (other_draw, "library's draw"),
    (no_wrap, "must wrap around to 0"),
    (all_to_target, "all-to-all sends class k"),
    (in_place_on_float, "was changed in place"),
    (keeps_uint8, "cu.as_float"),
    (triggers_everything, "did not choose changed"),
    (never_raises, "raise a ValueError"),
    (returns_a_tuple, "PoisonedData"),
])
def test_poison_dataset_slips_are_named(wrong, message):
    with pytest.raises(AssertionError, match=message):
        checks.check_poison_dataset(wrong)
