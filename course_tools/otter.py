"""Export a lesson as an otter-grader master notebook: `make otter` -> otter/<lesson>/<lesson>.ipynb.

    python -m course_tools.otter [--out otter] [--lessons 01]

Otter Assign reads raw-cell blocks (``# BEGIN QUESTION`` ... ``# END QUESTION``) around each task,
its own one-``#`` solution markers, and tests written as asserts. This script writes that layout
from a solutions notebook:

- an exercise (its solution cell and the check cell after it) becomes a question worth 1 point whose
  test is ``assert cu.checks.check_x(fn)`` (our checks *return* False for an unfinished exercise, so
  the assert makes that 0 points); the notebook's own check cell stays, so learners keep its feedback;
- a recap answer becomes a question whose test asserts ``cu.checks.recap(...)``;
- a written answer becomes a manually graded question (``manual: true``).

The ASSIGNMENT CONFIG names the course's requirements and ships ``course_utils`` with the autograder.
Then ``otter assign otter/lesson01/lesson01.ipynb dist`` builds the student notebook and the
autograder zip, and ``otter run -a dist/autograder/lesson01-autograder_*.zip SUBMISSION.ipynb``
grades one submission here, without Docker.
"""

from __future__ import annotations

import argparse
import re
import shutil
import sys
from pathlib import Path

import nbformat

from .student import lesson_sources

ROOT = Path(__file__).resolve().parent.parent
BEGIN, END = "### BEGIN SOLUTION", "### END SOLUTION"
CHECK = re.compile(r"^\s*passed = (cu\.checks\.check_(\w+)\(.*\))\s*$", re.M)
RECAP = re.compile(r"^\s*(cu\.checks\.recap\(\s*[\"']([\w.]+)[\"'].*\))\s*$", re.M)


def _raw(text: str):
    return nbformat.v4.new_raw_cell(text)


def _question(name: str, cells: list, test: str | None, manual: bool = False) -> list:
    head = f"# BEGIN QUESTION\nname: {name}\npoints: 1" + ("\nmanual: true" if manual else "")
    block = [_raw(head), _raw("# BEGIN SOLUTION"), *cells, _raw("# END SOLUTION")]
    if test is not None:
        block += [_raw("# BEGIN TESTS"), nbformat.v4.new_code_cell(test), _raw("# END TESTS")]
    return block + [_raw("# END QUESTION")]


def _quiet_test(call: str, message: str) -> str:
    """A test that asserts `call` without printing: otter's tests are doctests, which fail on any output,
    and our checks print their feedback. The feedback becomes the assertion's message instead."""
    return ("import contextlib, io\n"
            "with contextlib.redirect_stdout(io.StringIO()) as _feedback:\n"
            f"    _passed = {call}\n"
            f"assert _passed, _feedback.getvalue().strip() or {message!r}")


def _otter_markers(source: str) -> str:
    return source.replace(BEGIN, "# BEGIN SOLUTION").replace(END, "# END SOLUTION")


def master_notebook(nb, name: str):
    """The otter master notebook for one solutions notebook (a new object; `nb` is untouched)."""
    config = (f"# ASSIGNMENT CONFIG\nname: {name}\nrequirements: requirements.txt\nfiles:\n  - course_utils\n"
              "run_tests: false\nexport_cell: false\ncheck_all_cell: false\ninit_cell: true\n"
              "tests:\n  files: false\n  ok_format: true\n")
    cells, source_cells = [_raw(config)], list(nb.cells)
    written = recaps = 0
    i = 0
    while i < len(source_cells):
        cell = nbformat.from_dict(dict(source_cells[i]))
        nxt = source_cells[i + 1] if i + 1 < len(source_cells) else None
        if cell.cell_type == "markdown" and BEGIN in cell.source:
            written += 1
            question, _, answer = cell.source.partition(BEGIN)
            cells += [nbformat.v4.new_markdown_cell(question.rstrip())]
            answer_cell = nbformat.v4.new_markdown_cell(answer.replace(END, "").strip())
            cells += _question(f"written_{written}", [answer_cell], None, manual=True)
        elif cell.cell_type == "code" and BEGIN in cell.source and RECAP.search(cell.source):
            recaps += 1
            match = RECAP.search(cell.source)
            cell.source = _otter_markers(cell.source[: match.start()].rstrip())
            qid = match.group(2).replace(".", "_")
            cells += _question(f"recap_{qid}", [cell], _quiet_test(match.group(1), "answer the question above"))
            cells.append(nbformat.v4.new_code_cell(match.group(1)))  # the learner's own feedback
        elif cell.cell_type == "code" and BEGIN in cell.source and nxt is not None and CHECK.search(nxt.source):
            call, exercise = CHECK.search(nxt.source).groups()
            cell.source = _otter_markers(cell.source)
            cells += _question(exercise, [cell], _quiet_test(call, "not implemented yet"))
        else:
            cells.append(cell)
        i += 1
    return nbformat.v4.new_notebook(cells=cells, metadata=nb.metadata)


def export(out: Path, lessons: list[str] | None = None, root: Path = ROOT) -> list[Path]:
    """One folder per lesson under `out`: the master notebook, course_utils and requirements.txt."""
    sources = lesson_sources(lessons, root)
    written = []
    for path in sources:
        name = f"lesson{path.name[:2]}"
        folder = out / name
        folder.mkdir(parents=True, exist_ok=True)
        shutil.rmtree(folder / "course_utils", ignore_errors=True)
        shutil.copytree(root / "course_utils", folder / "course_utils", ignore=shutil.ignore_patterns("__pycache__"))
        (folder / "requirements.txt").write_text(_requirements(root))
        target = folder / f"{name}.ipynb"
        nbformat.write(master_notebook(nbformat.read(path, as_version=4), name), target)
        written.append(target)
    return written


def _requirements(root: Path) -> str:
    """The course's runtime dependencies, from pyproject.toml (the autograder image installs them)."""
    from .student import tomllib

    deps = tomllib.loads((root / "pyproject.toml").read_text())["project"]["dependencies"]
    return "\n".join(deps) + "\n"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT / "otter")
    parser.add_argument("--lessons", nargs="*", default=["01"], help="lesson numbers (default: 01)")
    args = parser.parse_args(argv)
    for path in export(args.out, args.lessons):
        print(f"wrote {path}; next: otter assign {path} {path.parent / 'dist'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
