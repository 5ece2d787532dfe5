"""Check for lesson 08's tabular exercise: source-specific poisoning of a table with a feature trigger."""

from __future__ import annotations

import torch

from ..tabular import feature_trigger
from .core import call_learner, expect_unchanged, run_check


def _table():
    g = torch.Generator().manual_seed(8)
    x = torch.rand(40, 5, generator=g) * 10
    y = torch.tensor([1, 0, 0, 1] * 10)  # 20 malignant (1), 20 benign (0)
    return x, y


def _trigger(x):
    return feature_trigger(x, [1, 3], torch.tensor([99.0, -7.0]))


def _unpack(got, n: int):
    if not (isinstance(got, tuple) and len(got) == 3):
        raise AssertionError(f"expected a tuple (x_poisoned, y_poisoned, mask), got {type(got).__name__}")
    xp, yp, mask = got
    for what, t, dtype in (("x_poisoned", xp, torch.float32), ("y_poisoned", yp, torch.int64), ("mask", mask, torch.bool)):
        if not isinstance(t, torch.Tensor) or t.dtype != dtype or len(t) != n:
            got_what = f"{t.dtype} of length {len(t)}" if isinstance(t, torch.Tensor) else type(t).__name__
            raise AssertionError(f"{what}: expected a {dtype} tensor of length {n}, got {got_what}")
    return xp, yp, mask


def _one_case(fn, x, y, rate, seed):
    x0, y0 = x.clone(), y.clone()
    xp, yp, mask = _unpack(call_learner(fn, x, y, _trigger, rate, source=1, target=0, seed=seed), len(x))
    expect_unchanged(x0, x, "x")
    expect_unchanged(y0, y, "y")
    k = round(rate * len(x))
    if int(mask.sum()) != k:
        hint = " (rate is a fraction of the WHOLE training set, not of the source class)" if int(mask.sum()) == round(
            rate * int((y == 1).sum())) else ""
        raise AssertionError(f"rate={rate}: expected {k} poisoned rows, mask marks {int(mask.sum())}{hint}")
    if (y0[mask] != 1).any():
        raise AssertionError(f"rate={rate}: {int((y0[mask] != 1).sum())} chosen rows were not malignant (label 1); "
                             "choose only among rows labelled `source`: poisoning benign rows teaches nothing")
    if (yp[mask] != 0).any():
        raise AssertionError(f"rate={rate}: {int((yp[mask] != 0).sum())} poisoned rows keep their label; relabel them `target`")
    if not torch.equal(xp[mask], _trigger(x0[mask])):
        raise AssertionError(f"rate={rate}: the poisoned rows do not carry the trigger (apply `trigger` to the chosen rows)")
    changed = (xp != x0).any(1) | (yp != y0)
    if (changed & ~mask).any():
        raise AssertionError(f"rate={rate}: {int((changed & ~mask).sum())} rows outside the mask changed; "
                             "only the chosen rows get the trigger and the new label")
    return mask


def check_poison_table(fn) -> bool:
    """fn(x, y, trigger, rate, *, source, target, seed) -> (x_poisoned, y_poisoned, mask), new tensors."""
    def body():
        x, y = _table()
        for rate in (0.0, 0.1, 0.25):
            _one_case(fn, x, y, rate, seed=0)
        a, b, c = (_one_case(fn, x, y, 0.25, seed=s) for s in (0, 0, 1))
        if not torch.equal(a, b):
            raise AssertionError("the same seed chose different rows: seed a torch.Generator and pass it to the draw")
        if torch.equal(a, c):
            raise AssertionError("seeds 0 and 1 chose the same rows: the choice must depend on `seed`")
        return "rates 0, 10 % and 25 %, only malignant rows, relabelled and triggered, inputs untouched, seeded"
    return run_check("poison_table", body)
