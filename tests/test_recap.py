"""Recap questions: right, wrong, unanswered and badly typed answers, each recorded for the grader."""

import importlib
import json

import pytest

from course_utils import checks
from course_utils.checks.recap import Question

recap_module = importlib.import_module("course_utils.checks.recap")

BANK = {"99.1": Question(answer="b", explanation="Because b."),
        "99.2": Question(answer=0.5, tolerance=0.05, explanation="Half.")}


@pytest.fixture
def bank(monkeypatch, tmp_path):
    monkeypatch.setattr(recap_module, "questions", lambda lesson: BANK)
    grading = tmp_path / "grades.jsonl"
    monkeypatch.setenv(checks.GRADING_ENV, str(grading))
    return grading


def records(path):
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_right_answers_pass_and_explain(bank, capsys):
    assert checks.recap("99.1", " (B) ") is True
    assert checks.recap("99.2", 0.52) is True
    assert "Because b." in capsys.readouterr().out
    assert [r["status"] for r in records(bank)] == ["passed", "passed"]
    assert records(bank)[0]["exercise"] == "recap 99.1"


def test_wrong_answer_says_the_right_one_and_does_not_raise(bank, capsys):
    assert checks.recap("99.1", "c") is False
    assert checks.recap("99.2", 0.7) is False
    out = capsys.readouterr().out
    assert 'the answer is "b"' in out and "the answer is 0.5" in out
    assert [r["status"] for r in records(bank)] == ["failed", "failed"]


def test_unanswered_and_wrong_type(bank, capsys):
    assert checks.recap("99.1", None) is False
    assert checks.recap("99.1", 2) is False  # a number for a choice question
    assert checks.recap("99.2", "half") is False
    assert checks.recap("99.2", float("nan")) is False
    out = capsys.readouterr().out
    assert "not answered yet" in out and "letter in quotes" in out and "with a number" in out
    assert [r["status"] for r in records(bank)] == ["not implemented", "failed", "failed", "failed"]


def test_unknown_questions_are_clear_errors(bank):
    with pytest.raises(ValueError, match="no recap question '99.9'"):
        checks.recap("99.9", "a")
    with pytest.raises(ValueError, match="look like '01.2'"):
        checks.recap("one", "a")


def test_missing_lesson_bank_is_a_clear_error():
    with pytest.raises(ValueError, match="no recap questions for lesson '98'"):
        recap_module.questions("98")
