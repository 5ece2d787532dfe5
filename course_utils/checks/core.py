"""The machinery behind every exercise check.

A check runs the learner's function on small fixed inputs and compares with the
reference. It passes with one line; a wrong answer raises an AssertionError that says
what is wrong and how far off; an unfinished exercise (NotImplementedError) is reported
as "not implemented yet" and later cells use the reference. When
``BACKDOOR_COURSE_GRADING_FILE`` is set (the grader does), each result is also appended
there as a JSON line.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable

import torch

GRADING_ENV = "BACKDOOR_COURSE_GRADING_FILE"


class NotDoneYet(Exception):
    """The learner's function still raises NotImplementedError."""


# The latest verdict on each learner function object, so that `learner_or_reference` trusts only a
# function whose most recent check passed: a wrong answer after a right one (the check cell raises,
# so a `passed = ...` variable keeps its old True) still sends later cells to the reference.
_verdicts: dict[int, tuple[Callable, str]] = {}
_checked_now: list[Callable] = []


def call_learner(fn: Callable, *args, **kwargs):
    """Call the learner's function; turn its errors into messages a learner can act on."""
    name = getattr(fn, "__name__", "your function")
    if not callable(fn):
        raise AssertionError(f"expected your function, got {type(fn).__name__} {fn!r}")
    _checked_now.append(fn)
    try:
        return fn(*args, **kwargs)
    except NotImplementedError:
        raise NotDoneYet(name) from None
    except Exception as err:  # any other crash is a failed check with the reason
        raise AssertionError(f"{name} raised {type(err).__name__}: {err}") from err


def expect_tensor(got, want: torch.Tensor, what: str, atol: float = 1e-5) -> None:
    """Assert `got` equals `want` (type, shape, dtype, values), naming the first differences."""
    if not isinstance(got, torch.Tensor):
        raise AssertionError(f"{what}: expected a torch.Tensor, got {type(got).__name__}")
    if tuple(got.shape) != tuple(want.shape):
        raise AssertionError(f"{what}: expected shape {tuple(want.shape)}, got {tuple(got.shape)}")
    if got.dtype != want.dtype:
        raise AssertionError(f"{what}: expected dtype {want.dtype}, got {got.dtype}")
    if want.is_floating_point():
        wrong = ~torch.isclose(got, want, atol=atol, rtol=0)
    else:
        wrong = got != want
    if wrong.any():
        where = [tuple(i) for i in torch.nonzero(wrong)[:5].tolist()]
        far = (got.double() - want.double()).abs().max().item()
        raise AssertionError(
            f"{what}: {int(wrong.sum())} of {want.numel()} values differ (largest difference {far:.4g}); "
            f"first wrong positions {where}: got {[got[w].item() for w in where]}, "
            f"expected {[want[w].item() for w in where]}"
        )


def differences(got: torch.Tensor, want: torch.Tensor, atol: float = 1e-5) -> str:
    """How far a float tensor is from the expected one of the same shape, in words (for slip messages)."""
    wrong = ~torch.isclose(got, want, atol=atol, rtol=0)
    far = (got.double() - want.double()).abs().max().item()
    return f"{int(wrong.sum())} of {want.numel()} values differ, largest difference {far:.4g}"


def expect_unchanged(before: torch.Tensor, after: torch.Tensor, what: str) -> None:
    """Assert an input was not modified in place."""
    if not torch.equal(before, after):
        raise AssertionError(f"{what} was changed in place; work on a copy (tensor.clone()) and return it")


def _record(exercise: str, status: str, message: str) -> None:
    path = os.environ.get(GRADING_ENV)
    if path:
        with open(path, "a") as f:
            f.write(json.dumps({"exercise": exercise, "status": status, "message": message}) + "\n")


def run_check(exercise: str, body: Callable[[], str | None]) -> bool:
    """Run a check body: True if it passed, False if not implemented yet, AssertionError if wrong."""
    _checked_now.clear()
    try:
        detail = body()
    except NotDoneYet as err:
        message = f"{err} is not implemented yet; later cells use the reference implementation."
        _remember("not implemented")
        _record(exercise, "not implemented", message)
        print(f"… {message}")
        return False
    except AssertionError as err:
        _remember("failed")
        _record(exercise, "failed", str(err))
        raise AssertionError(f"{exercise}: {err}") from None
    message = f"{exercise}: all checks passed" + (f" ({detail})" if detail else "")
    _remember("passed")
    _record(exercise, "passed", message)
    print(f"✓ {message}")
    return True


def _remember(status: str) -> None:
    """Store the verdict of the check that just ran for every learner function it called."""
    for fn in _checked_now:
        _verdicts[id(fn)] = (fn, status)
    _checked_now.clear()


def verdict(learner: Callable) -> str:
    """The status of the latest check on this very function object ("not checked" if none ran)."""
    found = _verdicts.get(id(learner))
    return found[1] if found and found[0] is learner else "not checked"


def learner_or_reference(passed: bool, learner: Callable, reference: Callable) -> Callable:
    """The learner's function if its latest check passed, else the reference, saying which and why.

    `passed` is what the check cell returned; it is trusted only together with the check's own record of
    this function object, so a function redefined after its check, or failing on a re-run, is not used.
    """
    name = getattr(learner, "__name__", "function")
    status = verdict(learner)
    if passed and status == "passed":
        print(f"Later cells use your {name}.")
        return learner
    why = {"passed": "", "failed": " (yours failed its latest check)",
           "not implemented": " (yours is not implemented yet)",
           "not checked": " (this version of yours has not been checked: run its check cell)"}[status]
    print(f"Later cells use the reference {name}{why}.")
    return reference
