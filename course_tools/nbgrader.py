"""Export the lessons as an nbgrader course: ``source/<assignment>/<notebook>.ipynb`` with nbgrader's metadata.

    python -m course_tools.nbgrader [--out nbgrader-course] [--lessons 01 03]   (make nbgrader)

The solutions already use nbgrader's ``### BEGIN SOLUTION`` / ``### END SOLUTION`` markers; what
nbgrader needs on top is per-cell metadata, which this adds (``grade_id`` = the cell's stable id):

- a cell with a solution block: an autograded answer (``solution``), or, for a markdown cell
  (a written answer), a manually graded answer worth 1 point;
- a check cell (``passed = cu.checks.check_x(fn)``): an autograder test worth 1 point. Our checks
  *return* False for an unfinished exercise, where nbgrader needs an exception, so the cell gets
  ``assert passed, ...`` appended;
- a recap cell (answer block + ``cu.checks.recap(...)``): split in two, the answer (a solution cell)
  and a test cell that asserts the recap check, since ``recap`` prints rather than raises.

It also writes ``nbgrader_config.py`` (the per-cell time limit; the course root). Then:
``cd nbgrader-course && nbgrader generate_assignment lesson01`` and, after collecting,
``nbgrader autograde lesson01``.
"""

from __future__ import annotations

import argparse
import copy
import re
import sys
from pathlib import Path

import nbformat

from .student import lesson_sources

ROOT = Path(__file__).resolve().parent.parent
BEGIN = "### BEGIN SOLUTION"
CHECK = re.compile(r"^(\s*)passed = (cu\.checks\.check_\w+\(.*\))\s*$", re.M)
RECAP = re.compile(r"^(\s*)(cu\.checks\.recap\(.*\))\s*$", re.M)
CELL_TIMEOUT = 900  # seconds per cell; the course's slowest cells take about a minute on a laptop

CONFIG = f'''"""nbgrader settings for the Backdoor Attacks in Deep Learning course (written by course_tools.nbgrader)."""
c = get_config()  # noqa: F821 (nbgrader provides it)
c.CourseDirectory.root = "."
# The lessons train small models: allow a slow laptop per cell, never wait forever.
c.ExecutePreprocessor.timeout = {CELL_TIMEOUT}
c.Execute.timeout = {CELL_TIMEOUT}
# Checks print what is wrong; keep that output in the feedback.
c.ClearOutput.enabled = True
'''


def _meta(cell_id: str, *, solution: bool, grade: bool, points: int = 0) -> dict:
    meta = {"solution": solution, "grade": grade, "locked": not solution, "grade_id": cell_id,
            "schema_version": 3, "task": False}
    if grade:
        meta["points"] = points
    return meta


def nbgrader_notebook(nb):
    """A copy of a solutions notebook with nbgrader's metadata on every answer, test and written answer."""
    nb = copy.deepcopy(nb)
    cells = []
    for cell in nb.cells:
        cell.metadata.pop("nbgrader", None)
        if cell.cell_type == "markdown" and BEGIN in cell.source:  # written answer, graded by hand
            cell.metadata["nbgrader"] = _meta(cell.id, solution=True, grade=True, points=1)
        elif cell.cell_type == "code" and BEGIN in cell.source and RECAP.search(cell.source):
            answer, test = cell.source[: RECAP.search(cell.source).start()], RECAP.search(cell.source).group(2)
            cell.source = answer.rstrip()
            cell.metadata["nbgrader"] = _meta(cell.id, solution=True, grade=False)
            cells.append(cell)
            check = nbformat.v4.new_code_cell(f"assert {test}, 'answer the question above'")
            check.id = f"{cell.id}-test"[:64]
            check.metadata["nbgrader"] = _meta(check.id, solution=False, grade=True, points=1)
            cell = check
        elif cell.cell_type == "code" and BEGIN in cell.source:  # the learner's function
            cell.metadata["nbgrader"] = _meta(cell.id, solution=True, grade=False)
        elif cell.cell_type == "code" and CHECK.search(cell.source):  # the check: 1 point
            cell.source = CHECK.sub(r"\1passed = \2\n\1assert passed, 'not implemented yet'", cell.source)
            cell.metadata["nbgrader"] = _meta(cell.id, solution=False, grade=True, points=1)
        cells.append(cell)
    nb.cells = cells
    return nb


def assignment_name(notebook: Path) -> str:
    """'lesson01' for solutions/01_badnets_poisoning.ipynb."""
    return f"lesson{notebook.name[:2]}"


def export(out: Path, lessons: list[str] | None = None, root: Path = ROOT) -> list[Path]:
    """Write nbgrader's source folder (one assignment per lesson) and config into `out`; return the notebooks."""
    sources = lesson_sources(lessons, root)
    out.mkdir(parents=True, exist_ok=True)
    (out / "nbgrader_config.py").write_text(CONFIG)
    written = []
    for path in sources:
        target = out / "source" / assignment_name(path) / path.name
        target.parent.mkdir(parents=True, exist_ok=True)
        nbformat.write(nbgrader_notebook(nbformat.read(path, as_version=4)), target)
        written.append(target)
    return written


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT / "nbgrader-course")
    parser.add_argument("--lessons", nargs="*", help="lesson numbers, e.g. 01 03 (default: all)")
    args = parser.parse_args(argv)
    for path in export(args.out, args.lessons):
        print(f"wrote {path}")
    print(f"next: cd {args.out} && nbgrader generate_assignment <lessonNN>")
    return 0


if __name__ == "__main__":
    sys.exit(main())
