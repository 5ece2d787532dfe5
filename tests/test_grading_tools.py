"""The course with the field's grading and publishing tools: nbgrader, otter-grader, Jupyter Book.

The round trips run the real tools on lesson 00, the quickest lesson with autograded exercises
(nbgrader, otter, the site): the solutions notebook must score full marks and the student copy zero on
the autograded parts. They execute notebooks, so they are marked `tools` and `make test` runs them in a
second pytest pass, after the notebooks have filled the model cache: they use that cache (the user's, not
conftest's private empty one), so lesson 00's models are loaded, not trained again. `make test-tools`
runs them alone. Lesson 01's otter master notebook is still checked below (`test_otter_tests_print_nothing`).
"""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

from course_tools import nbgrader as nbg
from course_tools import otter, site

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
LESSON = ROOT / "solutions" / "01_badnets_poisoning.ipynb"
USER_CACHE = os.environ.get("BACKDOOR_COURSE_CACHE")  # read at import, before conftest's private cache


@pytest.fixture(autouse=True)
def _shared_model_cache(_private_cache, monkeypatch):
    """The tools execute whole lessons: give them the run's model cache, not an empty private one."""
    if USER_CACHE:
        monkeypatch.setenv("BACKDOOR_COURSE_CACHE", USER_CACHE)
    else:
        monkeypatch.delenv("BACKDOOR_COURSE_CACHE", raising=False)  # the course's default cache folder


def _env():
    # nbgrader runs `alembic` by name when it creates its gradebook: without the venv's bin on PATH the
    # first `generate_assignment` in a new course folder fails (and a second one, finding the db, works).
    return {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}"}


def _run(args, cwd, timeout=1500):
    result = subprocess.run(args, cwd=cwd, env=_env(), capture_output=True, text=True, timeout=timeout)
    assert result.returncode == 0, f"{' '.join(map(str, args))} failed:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
    return result


def test_nbgrader_metadata():
    nb = nbg.nbgrader_notebook(nbformat.read(LESSON, as_version=4))
    meta = [c.metadata["nbgrader"] for c in nb.cells if "nbgrader" in c.metadata]
    tests = [m for m in meta if m["grade"] and not m["solution"]]
    assert tests and all(m["points"] == 1 for m in tests)
    assert len({m["grade_id"] for m in meta}) == len(meta), "grade_ids must be unique"
    checks = [c.source for c in nb.cells if "cu.checks.check_" in c.source]
    assert all("assert passed" in s for s in checks), "an unfinished exercise must fail nbgrader's test"
    with pytest.raises(ValueError, match="no lesson"):
        nbg.export(Path("/nonexistent"), ["42"])


@pytest.mark.tools
def test_nbgrader_round_trip(tmp_path):
    course = tmp_path / "course"
    (source,) = nbg.export(course, ["00"])
    _run([BIN / "nbgrader", "generate_assignment", "lesson00"], course)  # first try in a new folder
    release = course / "release" / "lesson00" / source.name
    for student, notebook in {"solver": source, "learner": release}.items():
        folder = course / "submitted" / student / "lesson00"
        folder.mkdir(parents=True)
        shutil.copy(notebook, folder / source.name)
    _run([BIN / "nbgrader", "autograde", "lesson00", "--create"], course)
    from nbgrader.api import Gradebook

    with Gradebook(f"sqlite:///{course / 'gradebook.db'}") as gradebook:
        solved = gradebook.find_submission("lesson00", "solver")
        unsolved = gradebook.find_submission("lesson00", "learner")
        assert solved.max_code_score > 0
        assert solved.code_score == solved.max_code_score
        assert unsolved.code_score == 0


@pytest.mark.tools
def test_otter_round_trip(tmp_path):
    (master,) = otter.export(tmp_path / "otter", ["00"])
    dist = master.parent / "dist"
    _run([BIN / "otter", "assign", master, dist], master.parent)
    (autograder,) = (dist / "autograder").glob("*.zip")
    scores = {}
    for name, notebook in {"solved": dist / "autograder" / master.name, "unsolved": dist / "student" / master.name}.items():
        out = tmp_path / name
        out.mkdir()
        shutil.copy(notebook, out / master.name)
        _run([BIN / "otter", "run", "-a", autograder, "-o", out, out / master.name], out)
        results = json.loads((out / "results.json").read_text())
        tests = results["test_case_results"] if "test_case_results" in results else results["tests"]
        scores[name] = results
        assert tests
    solved, unsolved = (_score(scores["solved"]), _score(scores["unsolved"]))
    assert solved[0] == solved[1] > 0, f"solutions scored {solved}"
    assert unsolved[0] == 0, f"an unsolved notebook scored {unsolved}"


def _score(results: dict) -> tuple[float, float]:
    """(points earned, points possible) of the auto-graded questions in otter's results.json."""
    earned = possible = 0.0
    for test in results.get("tests", []):
        possible += test.get("max_score", 0) or 0
        earned += test.get("score", 0) or 0
    return earned, possible


@pytest.mark.tools
def test_site_builds_one_lesson(tmp_path):
    index = site.build(tmp_path / "site", ["00"], timeout=900)
    html = index.parent
    assert index.exists()
    lesson = html / "notebooks" / "00_setup_and_threat_models.html"
    assert lesson.exists() and (html / "glossary.html").exists()
    text = lesson.read_text()
    assert "colab.research.google.com" in text and "mybinder.org" in text, "launch buttons are missing"
    home = index.read_text()
    assert "notebooks/00_setup_and_threat_models.html" in home and "glossary.html" in home


def test_otter_tests_print_nothing():
    """otter's tests are doctests, which fail on any output: the checks' printed feedback must be captured."""
    nb = otter.master_notebook(nbformat.read(LESSON, as_version=4), "lesson01")
    tests = [c.source for c in nb.cells if c.cell_type == "code" and "_passed = cu.checks." in c.source]
    assert len(tests) >= 2 and all("redirect_stdout" in t and "assert _passed" in t for t in tests)


def test_site_home_links_only_to_built_lessons():
    readme = "[a](notebooks/00_x.ipynb) [b](notebooks/01_y.ipynb) [c](CONTRIBUTING.md)"
    home = site._home(readme, {"00_x.ipynb"}, "https://github.com/o/r")
    assert "](notebooks/00_x.ipynb)" in home and "](https://github.com/o/r/blob/main/notebooks/01_y.ipynb)" in home
    assert "](contributing.md)" in home
