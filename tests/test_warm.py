"""make warm: the lessons in course order, one warm run at a time, every lesson reported."""

import nbformat
import pytest

from course_tools import warm


def test_lessons_are_every_solution_in_course_order():
    paths = warm.lessons()
    names = [p.name for p in paths]
    assert names == sorted(names) and names[0].startswith("00_") and len(names) >= 9
    assert [p.name[:2] for p in warm.lessons(["03", "07"])] == ["03", "07"]
    with pytest.raises(SystemExit, match="no lesson"):
        warm.lessons(["99"])


def test_a_second_warm_run_is_refused_while_one_holds_the_lock(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(warm, "cache_folder", lambda: tmp_path)
    (tmp_path / "warm.lock").write_text("12345")
    assert warm.main(["--lessons", "00"]) == 1
    assert "another warm run" in capsys.readouterr().out
    assert (tmp_path / "warm.lock").exists()  # the other run's lock is left alone


def test_warm_runs_each_notebook_and_reports_errors(tmp_path):
    good, bad = tmp_path / "00_good.ipynb", tmp_path / "01_bad.ipynb"
    nbformat.write(nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("x = 1")]), good)
    nbformat.write(nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("1 / 0")]), bad)
    lines = warm.warm([good, bad], log=lambda line: None)
    assert lines[0].startswith("00_good.ipynb: ok in")
    assert lines[1].startswith("01_bad.ipynb: ok in") and "1 cell(s) raised" in lines[1] and "ZeroDivisionError" in lines[1]
    assert not list(tmp_path.glob("*.nbconvert.ipynb"))  # nothing written beside the notebooks
