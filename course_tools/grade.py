"""Grade student notebooks: run each in a fresh kernel and score one point per exercise check passed.

    python -m course_tools.grade SUBMISSION.ipynb|FOLDER [--timeout S] [--json out.json]

Every exercise check in `course_utils.checks` appends a JSON line {exercise, status,
message} to the file named by ``$BACKDOOR_COURSE_GRADING_FILE`` when that is set; the
grader sets it, executes the notebook top to bottom with nbclient (errors allowed, one
time limit for the whole notebook), and reads the lines back. The exercises of a
notebook are the checks it calls (``cu.checks.check_<name>(``), taken from the matching
reference notebook (``solutions/`` or ``notebooks/``, by file name or lesson number) so
that deleting a check cell does not shrink the maximum. A check that never ran scores 0.
A notebook that is not valid JSON, crashes its kernel or runs past the limit gets a
score and a message; the grader itself carries on with the next file.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import inspect
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import nbformat

ROOT = Path(__file__).resolve().parent.parent
GRADING_ENV = "BACKDOOR_COURSE_GRADING_FILE"  # the same name as course_utils.checks.core.GRADING_ENV
CHECK_CALL = re.compile(r"\b(?:cu|course_utils)\.checks\.(check_\w+)\s*\(")
RUN_CHECK_NAME = re.compile(r"run_check\(\s*[\"']([^\"']+)[\"']")
LESSON_NUMBER = re.compile(r"(?<!\d)(\d{2})_")
CHECKED_FUNCTION = re.compile(r"\b(?:cu|course_utils)\.checks\.(check_\w+)\s*\(\s*(\w+)")
FALLBACK = re.compile(r"learner_or_reference\(\s*\w+\s*,\s*(\w+)\s*,\s*([\w.]+)\s*\)")
NOT_RUN = "not run (an earlier cell failed or timed out)"


@dataclass
class Exercise:
    """One exercise of one notebook: 1 point if its check passed."""

    exercise: str  # the name the check records (e.g. "add_patch_trigger")
    check: str  # the check function called in the notebook (e.g. "check_patch_trigger")
    score: int = 0
    status: str = "not run"  # passed | failed | not implemented | not run
    message: str = NOT_RUN
    note: str = ""  # e.g. that the learner's function calls the reference implementation


@dataclass
class Result:
    """The grade of one notebook. status: ok | timeout | kernel died | invalid notebook | error."""

    notebook: str
    score: int = 0
    max_score: int = 0
    status: str = "ok"
    message: str = ""
    seconds: float = 0.0
    reference: str | None = None
    exercises: list[Exercise] = field(default_factory=list)
    cell_errors: list[str] = field(default_factory=list)  # the first few cells that raised, "cell 7: NameError: ..."


def checks_called(nb) -> list[str]:
    """The check functions a notebook calls, in order of first use."""
    found: list[str] = []
    for cell in nb.cells:
        if cell.cell_type == "code":
            found += [name for name in CHECK_CALL.findall(cell.source) if name not in found]
    return found


def reference_calls(reference_nb, submission_nb) -> dict[str, str]:
    """{check: note} for exercises whose function in the submission calls the reference implementation.

    The reference notebook names, for each check, the learner's function (``check_x(fn)``) and
    its reference (``learner_or_reference(passed, fn, cu.module.ref)``). A submission whose
    ``def fn(`` cell uses ``<anything>.ref`` or imports ``ref`` gets a note; the score is unchanged.
    """
    sources = "\n".join(c.source for c in reference_nb.cells if c.cell_type == "code")
    functions = dict(CHECKED_FUNCTION.findall(sources))
    references = dict(FALLBACK.findall(sources))
    notes = {}
    for check, fn in functions.items():
        ref = references.get(fn)
        if not ref:
            continue
        name = re.escape(ref.rsplit(".", 1)[-1])
        uses = re.compile(rf"(?:\w+\.)+{name}\b|\bimport\b[^\n]*\b{name}\b")
        for cell in submission_nb.cells:
            if cell.cell_type == "code" and re.search(rf"^\s*def\s+{re.escape(fn)}\s*\(", cell.source, re.M):
                if uses.search(cell.source):
                    notes[check] = f"{fn} calls the reference {ref}"
    return notes


def exercise_name(check: str) -> str:
    """The exercise name a check records: the literal in its `run_check("...")`, else the name minus 'check_'."""
    try:
        fn = getattr(importlib.import_module("course_utils.checks"), check)
        match = RUN_CHECK_NAME.search(inspect.getsource(fn))
        if match:
            return match.group(1)
    except (ImportError, AttributeError, OSError, TypeError):
        pass
    return check.removeprefix("check_")


def find_reference(submission: Path, folders: list[Path]) -> Path | None:
    """The reference notebook for a submission: same file name, else same lesson number (NN_), in `folders`."""
    for folder in folders:
        if (folder / submission.name).is_file():
            return folder / submission.name
    match = LESSON_NUMBER.search(submission.name)
    if match:
        for folder in folders:
            hits = sorted(folder.glob(f"{match.group(1)}_*.ipynb"))
            if len(hits) == 1:
                return hits[0]
    return None


def read_records(path: Path) -> dict[str, dict]:
    """{exercise: the last record for it} from a grading file; broken lines are skipped."""
    records: dict[str, dict] = {}
    if not path.exists():
        return records
    for line in path.read_text(errors="replace").splitlines():
        try:
            record = json.loads(line)
            records[str(record["exercise"])] = record
        except (ValueError, KeyError, TypeError):
            continue
    return records


def _cell_error(index: int, cell) -> str | None:
    for out in cell.get("outputs", []):
        if out.get("output_type") == "error":
            return f"cell {index}: {out.get('ename')}: {str(out.get('evalue'))[:200]}"
    return None


@contextlib.contextmanager
def environment(**values: str):
    """Set environment variables for the duration of a block (kernels started inside inherit them)."""
    saved = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def execute(nb, cwd: Path, timeout: float, grading_file: Path) -> tuple[str, str, list[str]]:
    """Run `nb` top to bottom in a fresh python3 kernel within `timeout` seconds in total.

    Returns (status, message, cell errors). The kernel inherits this process's environment,
    with $BACKDOOR_COURSE_GRADING_FILE pointing at `grading_file`.
    """
    pythonpath = os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH")) if p)
    with environment(**{GRADING_ENV: str(grading_file), "PYTHONPATH": pythonpath}):
        return _execute(nb, cwd, timeout)


def _execute(nb, cwd: Path, timeout: float) -> tuple[str, str, list[str]]:
    from nbclient import NotebookClient
    from nbclient.exceptions import CellTimeoutError, DeadKernelError

    client = NotebookClient(nb, kernel_name="python3", allow_errors=True, timeout=max(1, int(timeout)),
                            startup_timeout=max(30, int(timeout)), resources={"metadata": {"path": str(cwd)}},
                            interrupt_on_timeout=False, record_timing=False)
    errors: list[str] = []
    index = 0
    try:
        client.reset_execution_trackers()
        with client.setup_kernel(cwd=str(cwd), stderr=subprocess.DEVNULL):  # kernel log noise
            deadline = time.monotonic() + timeout  # the limit counts from a started kernel
            for index, cell in enumerate(nb.cells):
                left = deadline - time.monotonic()
                if left <= 0:
                    raise CellTimeoutError(f"cell {index} not started")
                client.timeout = max(1, int(left))
                client.execute_cell(cell, index, execution_count=client.code_cells_executed + 1)
                error = _cell_error(index, cell)
                if error:
                    errors.append(error)
                if cell.cell_type == "code":
                    cell.outputs = []  # keep memory flat; only the error summary is kept
        return "ok", "", errors
    except CellTimeoutError:
        return "timeout", f"stopped after the time limit of {timeout:g} s (cell {index}); later checks did not run", errors
    except DeadKernelError:
        return "kernel died", f"the kernel died in cell {index} (a crash, os._exit or out of memory)", errors
    except Exception as err:  # anything else nbclient or the kernel throws: report it, grade what ran
        return "error", f"execution stopped: {type(err).__name__}: {str(err)[:300]}", errors


def grade_notebook(path, timeout: float = 600, cwd=None, reference_dirs=None) -> Result:
    """Grade one notebook file; never raises for a bad notebook, the Result says what went wrong."""
    path = Path(path)
    start = time.monotonic()
    if reference_dirs is None:
        reference_dirs = [ROOT / "solutions", ROOT / "notebooks"]
    reference = find_reference(path, [Path(d) for d in reference_dirs])
    result = Result(notebook=str(path), reference=str(reference) if reference else None)
    reference_nb = nbformat.read(reference, as_version=4) if reference is not None else None
    if reference_nb is not None:
        result.exercises = [Exercise(exercise_name(c), c) for c in checks_called(reference_nb)]
    try:
        nb = nbformat.read(path, as_version=4)
        if reference_nb is None:
            result.exercises = [Exercise(exercise_name(c), c) for c in checks_called(nb)]
            result.message = "no reference notebook found; exercises taken from the submission itself"
    except Exception as err:  # not JSON, not a notebook, cells without source, unreadable
        result.status = "invalid notebook"
        result.message = f"could not read the notebook ({type(err).__name__}: {str(err)[:200]}); nothing was run"
        for ex in result.exercises:
            ex.message = "not run (the notebook could not be read)"
        nb = None
    if nb is not None:
        try:
            _run_and_score(nb, reference_nb, result, Path(cwd) if cwd else path.parent.resolve(), timeout)
        except Exception as err:  # a notebook nbclient cannot handle at all: report it, keep grading the rest
            result.status = "error"
            result.message = f"could not run the notebook ({type(err).__name__}: {str(err)[:200]})"
    result.max_score = len(result.exercises)
    result.score = sum(ex.score for ex in result.exercises)
    result.seconds = round(time.monotonic() - start, 1)
    return result


def _run_and_score(nb, reference_nb, result: Result, cwd: Path, timeout: float) -> None:
    """Execute `nb` and fill in the status, message, cell errors and exercise scores of `result`."""
    notes = reference_calls(reference_nb or nb, nb)
    for ex in result.exercises:
        ex.note = notes.get(ex.check, "")
    with tempfile.TemporaryDirectory(prefix="grade-") as tmp:
        grading_file = Path(tmp) / "checks.jsonl"
        status, message, result.cell_errors = execute(nb, cwd, timeout, grading_file)
        records = read_records(grading_file)
    result.status = status
    result.message = "; ".join(m for m in (message, result.message) if m)
    for ex in result.exercises:
        record = records.get(ex.exercise)
        if record is not None:
            ex.status, ex.message = str(record.get("status")), str(record.get("message"))
            ex.score = int(ex.status == "passed")


def submissions(target: Path) -> list[Path]:
    """The notebooks to grade: the file itself, or every *.ipynb in the folder (checkpoints skipped)."""
    if target.is_file():
        return [target]
    if target.is_dir():
        return sorted(p for p in target.rglob("*.ipynb") if ".ipynb_checkpoints" not in p.parts)
    raise FileNotFoundError(f"{target} is neither a notebook nor a folder")


def format_table(results: list[Result]) -> str:
    """A plain-text report: one row per notebook, then one line per exercise."""
    width = max([len(Path(r.notebook).name) for r in results] + [8])
    lines = [f"{'notebook':<{width}}  score  status", "-" * (width + 40)]
    for r in results:
        lines.append(f"{Path(r.notebook).name:<{width}}  {r.score:>2}/{r.max_score:<2}  {r.status} ({r.seconds:.0f} s)"
                     + (f": {r.message}" if r.message else ""))
        for ex in r.exercises:
            lines.append(f"{'':<{width}}   {ex.score}    {ex.exercise}: {ex.status}: {ex.message[:160]}"
                         + (f" [note: {ex.note}]" if ex.note else ""))
        for error in r.cell_errors[:3]:
            lines.append(f"{'':<{width}}        ! {error}")
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description="Grade student notebooks: a score per exercise check.")
    parser.add_argument("target", type=Path, help="a notebook, or a folder of notebooks (searched recursively)")
    parser.add_argument("--timeout", type=float, default=600, help="seconds allowed per notebook (default 600)")
    parser.add_argument("--json", type=Path, help="also write the results here as JSON")
    parser.add_argument("--cwd", type=Path, help="working folder of the kernel (default: the notebook's folder)")
    parser.add_argument("--reference", type=Path, action="append",
                        help="folder of reference notebooks (default: solutions/ then notebooks/)")
    args = parser.parse_args(argv)
    try:
        paths = submissions(args.target)
    except FileNotFoundError as err:
        parser.error(str(err))
    if not paths:
        parser.error(f"no .ipynb files under {args.target}")
    results = []
    for path in paths:
        print(f"grading {path} ...", file=sys.stderr, flush=True)
        results.append(grade_notebook(path, args.timeout, args.cwd, args.reference))
    print(format_table(results))
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps([asdict(r) for r in results], indent=1) + "\n")
        print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
