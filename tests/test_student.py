"""The generated student copies are in sync, hold no solution code, and no notebook stores outputs."""

from pathlib import Path

import nbformat
import pytest

from course_tools import student

ROOT = Path(__file__).resolve().parent.parent
SOLUTIONS = sorted((ROOT / "solutions").glob("*.ipynb"))


def test_strip_keeps_indentation_and_code_around():
    src = "def f(x):\n    y = 1\n    ### BEGIN SOLUTION\n    return x + y\n    ### END SOLUTION\n\nprint(f)"
    assert student.strip_solutions(src) == (
        "def f(x):\n    y = 1\n    # YOUR CODE HERE\n    raise NotImplementedError()\n\nprint(f)")
    assert student.strip_solutions("### BEGIN SOLUTION\nA\n### END SOLUTION", markdown=True) == "YOUR ANSWER HERE"
    with pytest.raises(ValueError, match="unbalanced"):
        student.strip_solutions("### BEGIN SOLUTION\nx = 1")


def test_student_copy_tags_exercise_cells():
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("### BEGIN SOLUTION\nprint(1)\n### END SOLUTION")])
    copy = student.student_copy(nb)
    assert "raises-exception" in copy.cells[0].metadata["tags"]
    assert "print(1)" in nb.cells[0].source  # the original is untouched
    # a stub inside a function body does not raise when the cell runs: no tag
    body = "def f(x):\n    ### BEGIN SOLUTION\n    return x\n    ### END SOLUTION\n"
    defined = student.student_copy(nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(body)]))
    assert "raise NotImplementedError()" in defined.cells[0].source
    assert "raises-exception" not in defined.cells[0].metadata.get("tags", [])


@pytest.mark.parametrize("path", sorted((ROOT / "notebooks").glob("*.ipynb")), ids=lambda p: p.name)
def test_raises_exception_tags_only_cells_that_raise(path):
    for cell in nbformat.read(path, as_version=4).cells:
        if cell.cell_type == "code":
            tagged = "raises-exception" in cell.metadata.get("tags", [])
            assert tagged == student.cell_raises(cell.source), f"{path.name} cell {cell.get('id')}"


def test_there_are_lessons():
    assert SOLUTIONS, "no notebooks in solutions/"


def test_generated_files_are_in_sync():
    assert student.stale(ROOT) == [], "run `make student` and commit the result"


@pytest.mark.parametrize("path", SOLUTIONS, ids=lambda p: p.name)
def test_student_copy_has_no_solution_code(path):
    solution = nbformat.read(path, as_version=4)
    copy = nbformat.read(ROOT / "notebooks" / path.name, as_version=4)
    text = "\n".join(c.source for c in copy.cells)
    assert student.BEGIN not in text and student.END not in text
    hidden = [c.source for c in solution.cells if student.BEGIN in c.source]
    assert hidden, f"{path.name} has no exercise"
    for source in hidden:
        for block in source.split(student.BEGIN)[1:]:
            body = [line.strip() for line in block.split(student.END)[0].splitlines() if line.strip()]
            assert not all(line in text for line in body), f"solution code leaked into notebooks/{path.name}"


@pytest.mark.parametrize("path", SOLUTIONS + sorted((ROOT / "notebooks").glob("*.ipynb")),
                         ids=lambda p: f"{p.parent.name}/{p.name}")
def test_notebooks_are_stored_without_outputs(path):
    nb = nbformat.read(path, as_version=4)
    nbformat.validate(nb)
    for cell in nb.cells:
        if cell.cell_type == "code":
            assert not cell.outputs and cell.execution_count is None, f"{path.name} stores outputs: clear them"


@pytest.mark.parametrize("path", SOLUTIONS, ids=lambda p: p.name)
def test_first_code_cell_installs_on_colab_only(path):
    nb = nbformat.read(path, as_version=4)
    first = next(c for c in nb.cells if c.cell_type == "code")
    assert student.SETUP_TAG in first.metadata.get("tags", [])
    assert 'if "google.colab" in sys.modules' in first.source and student.repository_url() in first.source


def test_recap_answer_block_becomes_none_and_does_not_raise():
    src = 'question = 1\n### BEGIN SOLUTION\nanswer_1 = "b"\n### END SOLUTION\ncu.checks.recap("01.1", answer_1)'
    assert student.strip_solutions(src) == (
        'question = 1\nanswer_1 = None  # YOUR ANSWER HERE\ncu.checks.recap("01.1", answer_1)')
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(src)])
    assert "raises-exception" not in student.student_copy(nb).cells[0].metadata.get("tags", [])
    # a block that computes something is an exercise: it still raises
    assert "raise NotImplementedError()" in student.strip_solutions("### BEGIN SOLUTION\nreturn x\n### END SOLUTION")


def test_written_answers_are_tagged_and_stripped():
    md = "**Think:** why?\n\n**Your answer:**\n\n### BEGIN SOLUTION\nBecause.\n### END SOLUTION"
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_markdown_cell(md)])
    student.tag_written_answers(nb)
    copy = student.student_copy(nb)
    assert student.WRITTEN_TAG in copy.cells[0].metadata["tags"]
    assert "Because" not in copy.cells[0].source and "YOUR ANSWER HERE" in copy.cells[0].source


def test_python_310_fallback_reads_pyproject_with_tomli(monkeypatch):
    """Python 3.10 has no tomllib: student.py must fall back to the tomli package."""
    import importlib
    import sys

    monkeypatch.setitem(sys.modules, "tomllib", None)  # makes `import tomllib` fail as on 3.10
    fallback = importlib.reload(student)
    try:
        assert fallback.tomllib.__name__ == "tomli"
        assert fallback.repository_url(ROOT).startswith("https://")
    finally:
        monkeypatch.undo()
        importlib.reload(student)
