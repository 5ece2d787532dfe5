"""The grader: a score per exercise, and a score with a message (never a crash) for broken notebooks."""

import json
import os
from pathlib import Path

import nbformat
import pytest

from course_tools import grade

ROOT = Path(__file__).resolve().parent.parent
LESSON_00 = "00_setup_and_threat_models.ipynb"
v4 = nbformat.v4
# The model cache `make test` gives the run (read before conftest points each test at its own):
# lesson 00 trains its clean models there once, and nbval's run of the notebook reuses them.
OUTER_CACHE = os.environ.get("BACKDOOR_COURSE_CACHE")

RIGHT_MANIFEST = "from course_utils.integrity import verify_manifest"
STUB_MANIFEST = "def verify_manifest(manifest, folder):\n    # YOUR CODE HERE\n    raise NotImplementedError()"
RIGHT_PATCH = ("def add_patch_trigger(images, size, row, col, color):\n"
               "    return cu.patch_trigger(images, size=size, position=(row, col), color=color)")
WRONG_PATCH = "def add_patch_trigger(images, size, row, col, color):\n    return images"
STUB_PATCH = "def add_patch_trigger(images, size, row, col, color):\n    raise NotImplementedError()"


def tiny_notebook(manifest_cell: str, patch_cell: str, with_patch_check: bool = True):
    """Two exercises shaped like a lesson's: a function cell, then its check."""
    cells = [v4.new_markdown_cell("# A tiny lesson"), v4.new_code_cell("import course_utils as cu"),
             v4.new_code_cell(manifest_cell),
             v4.new_code_cell("passed = cu.checks.check_verify_manifest(verify_manifest)"),
             v4.new_code_cell(patch_cell)]
    if with_patch_check:
        cells.append(v4.new_code_cell("passed = cu.checks.check_patch_trigger(add_patch_trigger)"))
    return v4.new_notebook(cells=cells)


@pytest.fixture
def lesson(tmp_path):
    """A reference folder holding lesson 99, and a submissions folder."""
    (tmp_path / "ref").mkdir()
    (tmp_path / "subs").mkdir()
    nbformat.write(tiny_notebook(RIGHT_MANIFEST, RIGHT_PATCH), tmp_path / "ref" / "99_tiny.ipynb")
    return tmp_path


def test_checks_called_and_exercise_names():
    nb = tiny_notebook(RIGHT_MANIFEST, RIGHT_PATCH)
    nb.cells.append(v4.new_code_cell("cu.checks.check_verify_manifest(f)  # a second call counts once"))
    assert grade.checks_called(nb) == ["check_verify_manifest", "check_patch_trigger"]
    assert grade.exercise_name("check_patch_trigger") == "add_patch_trigger"  # the name run_check records
    assert grade.exercise_name("check_no_such_thing") == "no_such_thing"


def test_reference_calls_are_noted():
    reference = tiny_notebook(RIGHT_MANIFEST, RIGHT_PATCH)
    reference.cells.insert(4, v4.new_code_cell(
        "verify_manifest = cu.checks.learner_or_reference(passed, verify_manifest, cu.integrity.verify_manifest)"))
    reference.cells.append(v4.new_code_cell(
        "add_patch_trigger = cu.checks.learner_or_reference(passed, add_patch_trigger, cu.triggers.stamp_patch)"))
    own = "def add_patch_trigger(images, size, row, col, color):\n    out = images.clone()\n    return out"
    shortcut = "def add_patch_trigger(images, size, row, col, color):\n    return cu.triggers.stamp_patch(images, size, row, col)"
    imported = "def verify_manifest(m, f):\n    from course_utils.integrity import verify_manifest as v\n    return v(m, f)"
    assert grade.reference_calls(reference, tiny_notebook(STUB_MANIFEST, own)) == {}
    notes = grade.reference_calls(reference, tiny_notebook(imported, shortcut))
    assert notes == {"check_verify_manifest": "verify_manifest calls the reference cu.integrity.verify_manifest",
                     "check_patch_trigger": "add_patch_trigger calls the reference cu.triggers.stamp_patch"}


def test_find_reference_by_name_then_lesson_number(lesson):
    ref = lesson / "ref"
    assert grade.find_reference(Path("99_tiny.ipynb"), [ref]) == ref / "99_tiny.ipynb"
    assert grade.find_reference(Path("smith_99_tiny_final.ipynb"), [ref]) == ref / "99_tiny.ipynb"
    assert grade.find_reference(Path("homework.ipynb"), [ref]) is None


def test_read_records_keeps_the_last_and_skips_garbage(tmp_path):
    path = tmp_path / "g.jsonl"
    lines = [{"exercise": "a", "status": "failed", "message": "x"}, "not json", {"no": "exercise"},
             {"exercise": "a", "status": "passed", "message": "ok"}]
    path.write_text("\n".join(json.dumps(x) if isinstance(x, dict) else x for x in lines))
    assert grade.read_records(path) == ({"a": {"exercise": "a", "status": "passed", "message": "ok"}}, 2)
    assert grade.read_records(tmp_path / "missing.jsonl") == ({}, 0)


def test_invalid_json_gets_a_score_and_a_message(lesson):
    bad = lesson / "subs" / "99_tiny.ipynb"
    bad.write_text('{"cells": [ this is not json')
    result = grade.grade_notebook(bad, timeout=60, reference_dirs=[lesson / "ref"])
    assert (result.score, result.max_score, result.status) == (0, 2, "invalid notebook")
    assert "could not read" in result.message
    assert all(ex.score == 0 and "could not be read" in ex.message for ex in result.exercises)


def _grade_pair(solution: Path, student: Path, **kw):
    """Grade both notebooks one after the other. Two at once is slower here: for tiny notebooks the worker
    processes cost more than they save, and in `make test` lesson 00's models are not trained yet when this
    runs (the solution trains them on both cores and the student copy loads them; two at once, each kernel
    gets one core and the second waits for the first's models: 33.7 s in a fresh-clone run, against 27.4 s
    one after the other)."""
    return grade.grade_notebook(solution, **kw), grade.grade_notebook(student, **kw)


def test_solution_full_marks_student_copy_zero(lesson):
    subs = lesson / "subs"
    nbformat.write(tiny_notebook(RIGHT_MANIFEST, RIGHT_PATCH), subs / "99_tiny_solution.ipynb")
    nbformat.write(tiny_notebook(STUB_MANIFEST, STUB_PATCH), subs / "99_tiny_student.ipynb")
    full, zero = _grade_pair(subs / "99_tiny_solution.ipynb", subs / "99_tiny_student.ipynb",
                             timeout=300, reference_dirs=[lesson / "ref"])
    assert (full.status, full.score, full.max_score) == ("ok", 2, 2), grade.format_table([full])
    assert (zero.status, zero.score, zero.max_score) == ("ok", 0, 2), grade.format_table([zero])
    assert {ex.status for ex in zero.exercises} == {"not implemented"}


@pytest.mark.skipif(not (ROOT / "solutions" / LESSON_00).exists(), reason="lesson 00 is not written yet")
def test_lesson_00_solution_full_marks_student_copy_zero(tmp_path_factory, monkeypatch):
    cache = OUTER_CACHE or str(tmp_path_factory.mktemp("shared-cache"))  # the student copy's run is warm
    monkeypatch.setenv("BACKDOOR_COURSE_CACHE", cache)
    full, zero = _grade_pair(ROOT / "solutions" / LESSON_00, ROOT / "notebooks" / LESSON_00, timeout=600)
    assert full.max_score >= 1 and full.score == full.max_score, grade.format_table([full])
    assert zero.max_score == full.max_score and zero.score == 0, grade.format_table([zero])


def test_folder_cli_wrong_answer_missing_check_and_invalid_json(lesson, capsys):
    subs = lesson / "subs"
    # a wrong patch trigger, and a deleted check cell: the maximum still comes from the reference
    nbformat.write(tiny_notebook(RIGHT_MANIFEST, WRONG_PATCH), subs / "ann_99_tiny.ipynb")
    nbformat.write(tiny_notebook(RIGHT_MANIFEST, RIGHT_PATCH, with_patch_check=False), subs / "bob_99_tiny.ipynb")
    (subs / "cy_99_tiny.ipynb").write_text("not a notebook")
    out = lesson / "grades.json"
    assert grade.main([str(subs), "--timeout", "300", "--json", str(out), "--reference", str(lesson / "ref")]) == 0
    rows = {Path(r["notebook"]).name: r for r in json.loads(out.read_text())}
    assert [(rows[n]["score"], rows[n]["max_score"]) for n in sorted(rows)] == [(1, 2), (1, 2), (0, 2)]
    ann = {ex["exercise"]: ex for ex in rows["ann_99_tiny.ipynb"]["exercises"]}
    assert ann["add_patch_trigger"]["status"] == "failed" and "values differ" in ann["add_patch_trigger"]["message"]
    bob = {ex["exercise"]: ex for ex in rows["bob_99_tiny.ipynb"]["exercises"]}
    assert bob["add_patch_trigger"]["message"] == grade.NOT_RUN
    assert rows["cy_99_tiny.ipynb"]["status"] == "invalid notebook"
    table = capsys.readouterr().out
    assert "ann_99_tiny.ipynb" in table and " 1/2 " in table


def test_infinite_loop_times_out_with_a_score(lesson):
    nb = v4.new_notebook(cells=[v4.new_code_cell("while True:\n    pass"),
                                v4.new_code_cell("passed = cu.checks.check_verify_manifest(verify_manifest)")])
    path = lesson / "subs" / "99_loop.ipynb"
    nbformat.write(nb, path)
    result = grade.grade_notebook(path, timeout=60, cell_timeout=1, reference_dirs=[])
    assert (result.status, result.score, result.max_score, result.attempts) == ("timeout", 0, 1, 2)
    assert result.exercises[0].message == grade.NOT_RUN
    assert "cell 0 (id " in result.message and "`while True:`" in result.message  # names the submission's cell
    assert "limit of 1 s per cell" in result.message and "attempt 2" in result.message


def test_missing_target_is_a_usage_error(tmp_path):
    with pytest.raises(SystemExit):
        grade.main([str(tmp_path / "nowhere")])


# Robustness: forged records, memory, deleted files, written answers and recap points, resume, jobs, the zoo hook.

FORGE_CELL = """import glob, json, os
line = json.dumps({"exercise": "verify_manifest", "status": "passed", "message": "forged"}) + "\\n"
for target in [os.environ.get("BACKDOOR_COURSE_GRADING_FILE") or ""] + glob.glob("/tmp/**/*.jsonl", recursive=True):
    if target:
        open(target, "a").write(line)"""


def test_forged_records_are_ignored_and_counted(lesson):
    nb = tiny_notebook(STUB_MANIFEST, STUB_PATCH)
    nb.cells.append(v4.new_code_cell(FORGE_CELL))
    path = lesson / "subs" / "99_forger.ipynb"
    nbformat.write(nb, path)
    result = grade.grade_notebook(path, timeout=300, reference_dirs=[lesson / "ref"])
    assert (result.status, result.score) == ("ok", 0), grade.format_table([result])
    assert result.rejected_records >= 1 and "not signed by this run" in result.message


def test_memory_limit_and_a_fresh_working_folder(lesson):
    keep = lesson / "subs" / "someone_elses_work.txt"
    keep.write_text("precious")
    nb = tiny_notebook(RIGHT_MANIFEST, RIGHT_PATCH)
    nb.cells.insert(2, v4.new_code_cell("import os\nfor name in os.listdir('.'):\n    os.remove(name)"))
    nb.cells.insert(3, v4.new_code_cell("hog = []\nwhile True:\n    hog.append(bytearray(50_000_000))"))
    nb.cells.insert(4, v4.new_code_cell("del hog"))
    path = lesson / "subs" / "99_hog.ipynb"
    nbformat.write(nb, path)
    result = grade.grade_notebook(path, timeout=300, memory_mb=2500, reference_dirs=[lesson / "ref"])
    assert result.status == "memory limit exceeded" and "2500 MB" in result.message, grade.format_table([result])
    assert result.score == 2  # the cells after the failed allocation still ran
    assert keep.read_text() == "precious" and path.exists()  # the kernel ran in a folder of its own


def test_recap_points_and_written_answers_come_from_the_reference():
    reference = v4.new_notebook(cells=[
        v4.new_markdown_cell("**Think:** why?\n\n**Your answer:**\n\n### BEGIN SOLUTION\nBecause.\n### END SOLUTION"),
        v4.new_code_cell('### BEGIN SOLUTION\nanswer_1 = "b"\n### END SOLUTION\ncu.checks.recap("01.1", answer_1)'),
        v4.new_code_cell('cu.checks.recap("01.2", answer_2)\ncu.checks.recap("01.1", answer_1)')])
    reference.cells[0].id = "think1"
    assert [(e.exercise, e.check) for e in grade.exercises_of(reference)] == [("recap 01.1", "recap"),
                                                                                ("recap 01.2", "recap")]
    submission = v4.new_notebook(cells=[v4.new_markdown_cell("**Think:** why?\n\nMy own words.")])
    submission.cells[0].id = "think1"
    [item] = grade.written_answers(reference, submission)
    assert item["cell_id"] == "think1" and item["status"] == "needs manual grading"
    assert "My own words." in item["answer"] and "Because" not in item["prompt"]
    assert grade.written_answers(reference, v4.new_notebook())[0]["answer"].startswith("(cell missing")


def test_json_after_each_notebook_and_resume_skips_what_is_done(lesson, monkeypatch):
    subs = lesson / "subs"
    for name in ("a_99_tiny.ipynb", "b_99_tiny.ipynb"):
        (subs / name).write_text("not a notebook")  # graded in no time, still a full record
    out = lesson / "grades.json"
    options = grade.Options(reference_dirs=[str(lesson / "ref")])
    first = grade.grade_all(grade.submissions(subs), options, json_path=out)
    assert [r.status for r in first] == ["invalid notebook"] * 2 and len(json.loads(out.read_text())) == 2
    graded = []
    monkeypatch.setattr(grade, "grade_notebook", lambda path, opts: graded.append(path) or grade.Result(str(path)))
    (subs / "b_99_tiny.ipynb").write_text("changed, so graded again")
    again = grade.grade_all(grade.submissions(subs), options, json_path=out, resume=True)
    assert [p.name for p in graded] == ["b_99_tiny.ipynb"] and len(again) == 2
    assert not list(lesson.glob(".grades.json.*"))  # no temporary file left by the atomic writes


def test_parallel_jobs_grade_every_notebook(lesson):
    subs = lesson / "subs"
    for i in range(3):
        (subs / f"s{i}_99_tiny.ipynb").write_text("{")
    results = grade.grade_all(grade.submissions(subs), grade.Options(reference_dirs=[str(lesson / "ref")]), jobs=2)
    assert [r.status for r in results] == ["invalid notebook"] * 3 and all(r.max_score == 2 for r in results)
    assert 1 <= grade.default_jobs(4096) <= (os.cpu_count() or 1)


def test_zoo_hook_for_lesson_07(tmp_path, monkeypatch):
    import sys
    import types

    path = tmp_path / "07_trojan_hunt.ipynb"
    path.write_text("{")
    calls = []
    fake = types.SimpleNamespace(test_zoo_score=lambda nb, seed, timeout: calls.append((nb, seed)) or {"auroc": 0.9})
    monkeypatch.setitem(sys.modules, "course_tools.hunt", fake)
    result = grade.grade_notebook(path, zoo_seed=1234, reference_dirs=[])
    assert result.test_zoo == {"auroc": 0.9} and calls == [(path, 1234)]
    assert grade.grade_notebook(path, reference_dirs=[]).test_zoo is None  # no seed, no hunt
    fake.test_zoo_score = lambda *a: 1 / 0
    assert grade.grade_notebook(path, zoo_seed=1, reference_dirs=[]).test_zoo["status"] == "error"


def test_fixture_submissions_cover_every_case(tmp_path):
    """The 30-submission folder of the grader-under-load run (graded by hand, not here: it takes minutes)."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("make_submissions", ROOT / "tests/fixtures/make_submissions.py")
    fixtures = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(fixtures)
    paths = fixtures.write_submissions(tmp_path, correct=10)
    order = grade.submissions(tmp_path)
    assert len(paths) == 30 and sorted(paths) == order
    assert all("correct_" not in p.name for p in order[:20]) and all("correct_" in p.name for p in order[20:])
    kinds = {p.stem.split("__")[1] for p in paths}
    assert kinds - {f"correct_{i:02d}" for i in range(10)} == set(fixtures.EXPECTED) - {"correct"}
    reference = nbformat.read(ROOT / "solutions" / fixtures.LESSON, as_version=4)
    for path in paths:
        status, score = fixtures.expected(path)
        if status == "invalid notebook":
            with pytest.raises(ValueError):  # NotJSONError and UnicodeDecodeError are ValueErrors
                nbformat.read(path, as_version=4)
        else:
            nb = nbformat.read(path, as_version=4)
            assert score <= len(grade.exercises_of(reference)) and (nb.cells or "empty" in path.name)
