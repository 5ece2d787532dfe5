import json

import pytest

from course_utils import checks, integrity, triggers
from course_utils.checks.core import call_learner


def reference_patch(images, size, row, col, color):
    return triggers.patch_trigger(images, size, (row, col), color)


def not_done(*args, **kwargs):
    raise NotImplementedError()


def test_reference_passes_and_stub_is_reported(capsys):
    assert checks.check_patch_trigger(reference_patch) is True
    assert checks.check_patch_trigger(not_done) is False
    assert "not implemented yet" in capsys.readouterr().out


def test_wrong_pixels_are_named():
    def off_by_one(images, size, row, col, color):
        return triggers.patch_trigger(images, size, (row, max(col - 1, 0)), color)

    with pytest.raises(AssertionError, match="values differ.*first wrong positions"):
        checks.check_patch_trigger(off_by_one)


def test_in_place_and_wrong_type_are_named():
    def in_place(images, size, row, col, color):
        images[:, :, row:row + size, col:col + size] = color
        return images

    with pytest.raises(AssertionError, match="changed in place"):
        checks.check_patch_trigger(in_place)
    with pytest.raises(AssertionError, match="expected a torch.Tensor, got list"):
        checks.check_patch_trigger(lambda images, **kw: [1])
    with pytest.raises(AssertionError, match="dtype"):
        checks.check_patch_trigger(lambda images, **kw: reference_patch(images, **kw).double())
    with pytest.raises(AssertionError, match="raised ZeroDivisionError"):
        checks.check_patch_trigger(lambda images, **kw: 1 / 0)


def test_verify_manifest_check():
    assert checks.check_verify_manifest(integrity.verify_manifest)
    with pytest.raises(AssertionError, match="model.pt rewritten"):
        checks.check_verify_manifest(lambda manifest, folder: [])


def test_results_are_recorded_for_the_grader(tmp_path, monkeypatch):
    log = tmp_path / "grades.jsonl"
    monkeypatch.setenv(checks.GRADING_ENV, str(log))
    checks.check_patch_trigger(reference_patch)
    checks.check_patch_trigger(not_done)
    rows = [json.loads(line) for line in log.read_text().splitlines()]
    assert [r["status"] for r in rows] == ["passed", "not implemented"]


def test_learner_or_reference(capsys):
    def mine():
        pass

    def ref():
        pass

    assert checks.learner_or_reference(True, mine, ref) is ref  # never checked: not trusted
    assert "has not been checked" in capsys.readouterr().out
    assert checks.run_check("demo", lambda: call_learner(mine))
    assert checks.learner_or_reference(True, mine, ref) is mine
    assert checks.learner_or_reference(False, mine, ref) is ref
    assert "reference" in capsys.readouterr().out


def test_a_wrong_answer_after_a_right_one_falls_back(capsys):
    """The check cell raises on the wrong version, so `passed` keeps its old True: the fallback must not trust it."""
    passed = checks.check_patch_trigger(reference_patch)

    def add_patch_trigger(images, size=3, row=24, col=24, color=1.0):
        return images  # forgot the patch

    with pytest.raises(AssertionError):
        passed = checks.check_patch_trigger(add_patch_trigger)
    assert passed is True
    assert checks.learner_or_reference(passed, add_patch_trigger, reference_patch) is reference_patch
    assert "failed its latest check" in capsys.readouterr().out


