"""Recap questions at the end of each lesson: a choice or a number, checked at once.

A lesson's questions live in ``checks/quiz/lesson_NN.py`` as ``QUESTIONS = {"NN.1": Question(...)}``.
The notebook asks in markdown and answers in code::

    answer_1 = "b"
    cu.checks.recap("01.1", answer_1)

`recap` never raises on a wrong answer (a quiz should not stop the notebook): it prints a tick or a
cross with the explanation, "not answered yet" for ``None``, and records the result for the grader
(exercise ``"recap 01.1"``) like every exercise check.
"""

from __future__ import annotations

import importlib
import math
import numbers
from dataclasses import dataclass

from .core import _record


@dataclass(frozen=True)
class Question:
    """The key to one recap question: a choice letter ("a"-"e") or a number within `tolerance`."""

    answer: str | float
    explanation: str
    tolerance: float = 0.0


def questions(lesson: str) -> dict[str, Question]:
    """The recap questions of lesson `lesson` ("00"-"99")."""
    try:
        module = importlib.import_module(f".quiz.lesson_{lesson}", __package__)
    except ModuleNotFoundError:
        raise ValueError(f"no recap questions for lesson {lesson!r} (expected course_utils/checks/quiz/"
                         f"lesson_{lesson}.py)") from None
    return module.QUESTIONS


def _judge(question: Question, answer) -> tuple[bool | None, str]:
    """(right?, why not) for one answer; None when the answer's type is wrong."""
    if isinstance(question.answer, str):
        if not isinstance(answer, str):
            return None, f"answer with a letter in quotes, like \"{question.answer}\" (got {type(answer).__name__})"
        letter = answer.strip().strip("()").lower()
        return letter == question.answer.lower(), ""
    if isinstance(answer, bool) or not isinstance(answer, numbers.Real) or not math.isfinite(answer):
        return None, f"answer with a number, like 0.5 (got {answer!r})"
    return abs(float(answer) - float(question.answer)) <= question.tolerance, ""


def recap(question_id: str, answer) -> bool:
    """Check the learner's answer to recap question `question_id` ("NN.k"); True if right."""
    if not isinstance(question_id, str) or "." not in question_id:
        raise ValueError(f"question_id must look like '01.2' (lesson.number), got {question_id!r}")
    bank = questions(question_id.split(".")[0])
    if question_id not in bank:
        raise ValueError(f"no recap question {question_id!r}; this lesson has {sorted(bank)}")
    question, exercise = bank[question_id], f"recap {question_id}"
    if answer is None:
        message = f"question {question_id} is not answered yet: set the answer variable above and run the cell again."
        _record(exercise, "not implemented", message)
        print(f"… {message}")
        return False
    right, problem = _judge(question, answer)
    if right is None:
        message = f"question {question_id}: {problem}."
        _record(exercise, "failed", message)
        print(f"✗ {message}")
        return False
    if right:
        _record(exercise, "passed", f"question {question_id}: right")
        print(f"✓ Right. {question.explanation}")
        return True
    shown = f'"{question.answer}"' if isinstance(question.answer, str) else f"{question.answer:g}"
    message = f"question {question_id}: {answer!r} is not right; the answer is {shown}."
    _record(exercise, "failed", message)
    print(f"✗ Not quite: the answer is {shown}. {question.explanation}")
    return False
