"""Lesson 08's exercise checks: the reference passes, a stub is "not implemented", wrong answers fail with their message."""

import pytest
import torch

from course_utils import checks, hub, tabular
from course_utils.integrity import sha256_file


def stub(*args, **kwargs):
    raise NotImplementedError


# ---------------------------------------------------------------- poison_table
def test_poison_table_reference_passes():
    assert checks.check_poison_table(tabular.poison_table) is True


def test_poison_table_stub_is_not_implemented(capsys):
    assert checks.check_poison_table(stub) is False
    assert "not implemented" in capsys.readouterr().out


def _from_all_rows(x, y, trigger, rate, *, source=1, target=0, seed=0):
    chosen = torch.randperm(len(x), generator=torch.Generator().manual_seed(seed))[:round(rate * len(x))]
    xp, yp = x.clone(), y.clone()
    xp[chosen], yp[chosen] = trigger(x[chosen]), target
    mask = torch.zeros(len(x), dtype=torch.bool)
    mask[chosen] = True
    return xp, yp, mask


def _no_relabel(x, y, trigger, rate, *, source=1, target=0, seed=0):
    xp, yp, mask = tabular.poison_table(x, y, trigger, rate, source=source, target=target, seed=seed)
    return xp, y.clone(), mask


def _k_of_source(x, y, trigger, rate, source, target, seed):
    cand = torch.nonzero(y == source).flatten()
    chosen = cand[torch.randperm(len(cand), generator=torch.Generator().manual_seed(seed))[:round(rate * len(cand))]]
    xp, yp = x.clone(), y.clone()
    xp[chosen], yp[chosen] = trigger(x[chosen]), target
    mask = torch.zeros(len(x), dtype=torch.bool)
    mask[chosen] = True
    return xp, yp, mask


def _in_place(x, y, trigger, rate, *, source=1, target=0, seed=0):
    xp, yp, mask = tabular.poison_table(x, y, trigger, rate, source=source, target=target, seed=seed)
    x[:], y[:] = xp, yp
    return x, y, mask


def _unseeded(x, y, trigger, rate, *, source=1, target=0, seed=0):
    return tabular.poison_table(x, y, trigger, rate, source=source, target=target, seed=0)


@pytest.mark.parametrize("wrong, message", [
    (_from_all_rows, "were not malignant"), (_no_relabel, "keep their label"), (_k_of_source, "WHOLE training set"),
    (_in_place, "changed in place"), (_unseeded, "must depend on `seed`"),
])
def test_poison_table_wrong_answers_fail(wrong, message):
    with pytest.raises(AssertionError, match=message):
        checks.check_poison_table(wrong)


# ---------------------------------------------------------------- load_verified
def test_load_verified_reference_passes():
    assert checks.check_load_verified(hub.load_verified) is True


def test_load_verified_stub_is_not_implemented(capsys):
    assert checks.check_load_verified(stub) is False
    assert "not implemented" in capsys.readouterr().out


def _no_hash(path, card):
    return torch.load(path, weights_only=True)["state_dict"]


def _unsafe(path, card):
    if sha256_file(path) != card["sha256"].lower():
        raise ValueError("hash mismatch")
    return torch.load(path, weights_only=False)["state_dict"]


def _hash_after_load(path, card):
    state = torch.load(path, weights_only=False)["state_dict"]
    if sha256_file(path) != card["sha256"].lower():
        raise ValueError("hash mismatch")
    return state


def _case_sensitive(path, card):
    if sha256_file(path) != card["sha256"]:
        raise ValueError("hash mismatch")
    return torch.load(path, weights_only=True)["state_dict"]


def _whole_file(path, card):
    if sha256_file(path) != card["sha256"].lower():
        raise ValueError("hash mismatch")
    return torch.load(path, weights_only=True)


@pytest.mark.parametrize("wrong, message", [
    (_no_hash, "a swapped file"), (_unsafe, "payload ran"), (_hash_after_load, "payload ran"),
    (_case_sensitive, "capitals"), (_whole_file, "return \\['state_dict'\\]"),
])
def test_load_verified_wrong_answers_fail(wrong, message):
    with pytest.raises(AssertionError, match=message):
        checks.check_load_verified(wrong)


# ---------------------------------------------------------------- recap keys of lesson 08
def test_lesson_08_recap_keys_answer_their_own_questions(capsys):
    from course_utils.checks.quiz.lesson_08 import QUESTIONS

    assert 3 <= len(QUESTIONS) <= 5
    for qid, question in QUESTIONS.items():
        assert checks.recap(qid, question.answer) is True
        wrong = "a" if question.answer != "a" else "b"
        assert checks.recap(qid, wrong if isinstance(question.answer, str) else question.answer + 1) is False
    assert "Not quite" in capsys.readouterr().out
