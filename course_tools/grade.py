"""Grade student notebooks: run each in a fresh kernel and score one point per exercise check passed.

    python -m course_tools.grade SUBMISSION.ipynb|FOLDER [--json grades.json] [--jobs N] [--resume]
        [--cell-timeout S] [--timeout S] [--memory-mb MB] [--zoo-seed SEED]

Every exercise check and recap question in `course_utils.checks` records {exercise, status,
message}; the grader collects those records, executes the notebook top to bottom with nbclient
(errors allowed; a limit per cell and one per notebook; a notebook that times out or kills
its kernel is run once more before it is scored), and scores one point per check passed.
The exercises of a notebook are the checks (``cu.checks.check_<name>(``) and recap questions
(``cu.checks.recap("NN.k"``, exercise "recap NN.k") of the matching reference notebook
(``solutions/`` or ``notebooks/``, by file name or lesson number), so deleting a check cell
does not shrink the maximum; a check that never ran scores 0. Markdown cells with a model
answer (tagged ``written-answer``) are listed as "needs manual grading" with their cell id.

Robustness. Each notebook runs in an empty working folder of its own (a notebook that
deletes files in its folder deletes nothing of anyone else's), under a memory limit
(RLIMIT_DATA of the kernel: a clear "memory limit exceeded"), with `--jobs` kernels at once
(default: what the cores and memory allow). The JSON is rewritten atomically after every
notebook, so an interrupted run loses nothing, and ``--resume`` skips notebooks already
graded (same file content). A notebook that is not JSON, crashes, loops or floods its output
gets a score and a message; the grader carries on.

Records cannot be forged by writing lines into the grading file: the grader puts a setup
cell of its own in front of the notebook that reads a random per-run key from a file (then
deletes the file) and signs every record with HMAC-SHA256; unsigned or wrongly signed lines
are ignored and counted. Limit: the key lives in the kernel's memory, so a notebook written
to dig it out of course_utils' internals (or to patch the checks themselves) can still cheat;
that needs a reading of the code, which the grader's notes help with, or grading in a
separate process with hidden tests.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import hashlib
import hmac
import importlib
import inspect
import json
import multiprocessing
import os
import re
import secrets
import shutil
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import nbformat

from .execute import available_cores, execute_notebook, stop_on_sigterm

ROOT = Path(__file__).resolve().parent.parent
GRADING_ENV = "BACKDOOR_COURSE_GRADING_FILE"  # the same name as course_utils.checks.core.GRADING_ENV
CHECK_CALL = re.compile(r"\b(?:cu|course_utils)\.checks\.(check_\w+)\s*\(")
RECAP_CALL = re.compile(r"\b(?:cu|course_utils)\.checks\.recap\(\s*[\"'](\d{2}\.\d+)[\"']")
RUN_CHECK_NAME = re.compile(r"run_check\(\s*[\"']([^\"']+)[\"']")
LESSON_NUMBER = re.compile(r"(?<!\d)(\d{2})_")
CHECKED_FUNCTION = re.compile(r"\b(?:cu|course_utils)\.checks\.(check_\w+)\s*\(\s*(\w+)")
FALLBACK = re.compile(r"learner_or_reference\(\s*\w+\s*,\s*(\w+)\s*,\s*([\w.]+)\s*\)")
NOT_RUN = "not run (an earlier cell failed or timed out)"
WRITTEN_TAG = "written-answer"
# Spelled in two parts: the student bundle ships this file, and `make release` refuses any file holding the marker.
MODEL_ANSWER = "### BEGIN " + "SOLUTION"
MEMORY_ERRORS = ("MemoryError", "can't allocate memory", "Cannot allocate memory", "std::bad_alloc")

# The grader's own first cell: sign every record with a key only this run knows (see the module docstring).
SETUP_CELL = """def _grading_setup(key_file, grading_file, env_name):
    import hashlib, hmac, json, os, sys
    import course_utils.checks.core
    with open(key_file, "rb") as f:
        key = f.read()
    os.unlink(key_file)
    fd = os.open(grading_file, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    original, count = course_utils.checks.core._record, [0]
    def _record(exercise, status, message):
        count[0] += 1
        body = json.dumps({"exercise": exercise, "status": status, "message": message, "n": count[0]})
        line = json.dumps({"body": body, "sig": hmac.new(key, body.encode(), hashlib.sha256).hexdigest()})
        os.write(fd, (line + "\\n").encode())
    for name, module in list(sys.modules.items()):
        if name.startswith("course_utils.checks") and getattr(module, "_record", None) is original:
            module._record = _record
    os.environ.pop(env_name, None)
_grading_setup(KEY_FILE, GRADING_FILE, ENV_NAME)
del _grading_setup"""


def setup_cell(key_file: Path, grading_file: Path) -> str:
    """The grader's first cell for one run (its files named, as Python literals)."""
    return (SETUP_CELL.replace("KEY_FILE", repr(str(key_file))).replace("GRADING_FILE", repr(str(grading_file)))
            .replace("ENV_NAME", repr(GRADING_ENV)))


@dataclass
class Exercise:
    """One exercise of one notebook: 1 point if its check passed."""

    exercise: str  # the name the check records (e.g. "add_patch_trigger", "recap 01.2")
    check: str  # the check function called in the notebook (e.g. "check_patch_trigger", "recap")
    score: int = 0
    status: str = "not run"  # passed | failed | not implemented | not run
    message: str = NOT_RUN
    note: str = ""  # e.g. that the learner's function calls the reference implementation


@dataclass
class Result:
    """The grade of one notebook.

    status: ok | timeout | kernel died | memory limit exceeded | invalid notebook | error.
    """

    notebook: str
    score: int = 0
    max_score: int = 0
    status: str = "ok"
    message: str = ""
    seconds: float = 0.0
    attempts: int = 0
    sha256: str = ""  # of the submission file: --resume regrades a file that changed
    reference: str | None = None
    exercises: list[Exercise] = field(default_factory=list)
    manual: list[dict] = field(default_factory=list)  # written answers: {"cell_id", "prompt", "answer", "status"}
    cell_errors: list[str] = field(default_factory=list)  # the first few cells that raised, "cell 7: NameError: ..."
    rejected_records: int = 0  # lines in the grading file not signed by this run (ignored)
    test_zoo: dict | None = None  # lesson 07 with --zoo-seed: course_tools.hunt.test_zoo_score(...)


@dataclass
class Options:
    """How to run each notebook."""

    timeout: float = 600  # seconds for the whole notebook (one attempt)
    cell_timeout: float = 300  # seconds for one cell
    memory_mb: int = 4096  # RLIMIT_DATA of the kernel; 0 = no limit
    retries: int = 1
    threads: int = 0  # torch/BLAS threads in the kernel; 0 = leave as is
    cwd: str | None = None  # working folder of the kernel; default: a fresh empty one per notebook
    reference_dirs: list[str] | None = None
    zoo_seed: int | None = None


def _first_uses(nb, pattern: re.Pattern) -> list[str]:
    """What `pattern` captures in the notebook's code cells, each once, in order of first use."""
    found: list[str] = []
    for cell in nb.cells:
        if cell.cell_type == "code":
            found += [name for name in pattern.findall(cell.source) if name not in found]
    return found


def checks_called(nb) -> list[str]:
    """The check functions a notebook calls, in order of first use."""
    return _first_uses(nb, CHECK_CALL)


def recaps_called(nb) -> list[str]:
    """The recap questions a notebook answers ("01.1", ...), in order."""
    return _first_uses(nb, RECAP_CALL)


def exercises_of(nb) -> list[Exercise]:
    """One Exercise per check called and per recap question answered in `nb`."""
    return ([Exercise(exercise_name(c), c) for c in checks_called(nb)]
            + [Exercise(f"recap {q}", "recap") for q in recaps_called(nb)])


def written_answers(reference_nb, submission_nb) -> list[dict]:
    """The written-answer cells (tag or model answer in the reference), with the learner's text, for a human."""
    by_id = {c.get("id"): c for c in submission_nb.cells} if submission_nb is not None else {}
    found = []
    for cell in reference_nb.cells:
        tags = cell.get("metadata", {}).get("tags", [])
        if cell.cell_type != "markdown" or (WRITTEN_TAG not in tags and MODEL_ANSWER not in cell.source):
            continue
        prompt = cell.source.split(MODEL_ANSWER)[0].strip().splitlines()
        answer = by_id.get(cell.get("id"))
        found.append({"cell_id": cell.get("id"), "prompt": " ".join(prompt)[:300], "status": "needs manual grading",
                      "answer": answer.source if answer is not None else "(cell missing from the submission)"})
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


def read_records(path: Path, key: bytes | None = None) -> tuple[dict[str, dict], int]:
    """({exercise: its last record}, lines rejected) from a grading file.

    With `key`, only lines signed by it (HMAC-SHA256 of the record's body) count; without one,
    plain JSON lines are read (the format of ``course_utils.checks.core``).
    """
    records: dict[str, dict] = {}
    rejected = 0
    if not path.exists():
        return records, rejected
    for line in path.read_text(errors="replace").splitlines():
        try:
            record = json.loads(line)
            if key is not None:
                body, sig = record["body"], record["sig"]
                if not hmac.compare_digest(hmac.new(key, body.encode(), hashlib.sha256).hexdigest(), str(sig)):
                    raise ValueError("bad signature")
                record = json.loads(body)
            records[str(record["exercise"])] = record
        except (ValueError, KeyError, TypeError, AttributeError):
            rejected += bool(line.strip())
    return records, rejected


def _memory_limit(megabytes: int):
    """on_kernel(pid) that caps the kernel's data segment (heap and private mappings) at `megabytes`.

    RLIMIT_DATA, not RLIMIT_AS: importing torch alone reserves about 4 GB of address space.
    """
    def limit(pid: int) -> None:
        if megabytes > 0:
            import psutil

            if not hasattr(psutil, "RLIMIT_DATA"):  # psutil sets limits on Linux and FreeBSD only
                _warn_once("no memory limit per kernel on this system (psutil cannot set RLIMIT_DATA here); "
                           "the time limits still apply")
                return
            size = int(megabytes) * 2**20
            psutil.Process(pid).rlimit(psutil.RLIMIT_DATA, (size, size))
    return limit


_WARNED: set[str] = set()


def _warn_once(message: str) -> None:
    if message not in _WARNED:
        _WARNED.add(message)
        print(f"grade: {message}", file=sys.stderr)


def _submission_sha(path: Path) -> str:
    try:
        return hashlib.sha256(path.read_bytes()).hexdigest()
    except OSError:
        return ""


def grade_notebook(path, options: Options | None = None, **overrides) -> Result:
    """Grade one notebook file; never raises for a bad notebook, the Result says what went wrong.

    options (or keyword overrides of its fields, e.g. ``timeout=120``) say how to run it.
    """
    options = options or Options()
    for name, value in overrides.items():
        setattr(options, name, value)
    path = Path(path)
    start = time.monotonic()
    reference_dirs = options.reference_dirs or [ROOT / "solutions", ROOT / "notebooks"]
    reference = find_reference(path, [Path(d) for d in reference_dirs])
    result = Result(notebook=str(path), reference=str(reference) if reference else None, sha256=_submission_sha(path))
    reference_nb = nbformat.read(reference, as_version=4) if reference is not None else None
    if reference_nb is not None:
        result.exercises = exercises_of(reference_nb)
    try:
        nb = nbformat.read(path, as_version=4)
        if reference_nb is None:
            result.exercises = exercises_of(nb)
            result.message = "no reference notebook found; exercises taken from the submission itself"
    except Exception as err:  # not JSON, not a notebook, cells without source, unreadable
        result.status = "invalid notebook"
        result.message = f"could not read the notebook ({type(err).__name__}: {str(err)[:200]}); nothing was run"
        for ex in result.exercises:
            ex.message = "not run (the notebook could not be read)"
        nb = None
    result.manual = written_answers(reference_nb, nb) if reference_nb is not None else []
    if nb is not None:
        try:
            _run_and_score(nb, reference_nb, result, options)
        except Exception as err:  # a notebook nbclient cannot handle at all: report it, keep grading the rest
            result.status = "error"
            result.message = f"could not run the notebook ({type(err).__name__}: {str(err)[:200]})"
    _zoo_hook(path, result, options)
    result.max_score = len(result.exercises)
    result.score = sum(ex.score for ex in result.exercises)
    result.seconds = round(time.monotonic() - start, 1)
    return result


def _zoo_hook(path: Path, result: Result, options: Options) -> None:
    """Lesson 07 with a secret seed: score the learner's detector on the hidden test zoo (course_tools.hunt)."""
    if options.zoo_seed is None or not path.name.startswith("07_"):
        return
    try:
        hunt = importlib.import_module("course_tools.hunt")
    except ModuleNotFoundError:
        result.test_zoo = {"status": "unavailable", "message": "course_tools/hunt.py is not installed"}
        return
    try:
        result.test_zoo = dict(hunt.test_zoo_score(path, options.zoo_seed, options.timeout))
    except Exception as err:  # the hunt's own failure must not cost the rest of the grade
        result.test_zoo = {"status": "error", "message": f"{type(err).__name__}: {str(err)[:300]}"}


def _run_and_score(nb, reference_nb, result: Result, options: Options) -> None:
    """Execute `nb` (after the grader's signing cell) and fill in status, message, errors and scores."""
    notes = reference_calls(reference_nb or nb, nb)
    for ex in result.exercises:
        ex.note = notes.get(ex.check, "")
    with tempfile.TemporaryDirectory(prefix="grade-") as private:  # the grader's: outside the notebook's folder
        grading_file, key_file, key = Path(private) / f"{secrets.token_hex(8)}.jsonl", Path(private) / "key", b""

        def fresh_run() -> None:  # before each attempt: a new key and an empty grading file
            nonlocal key
            key = secrets.token_bytes(32)
            key_file.write_bytes(key)
            grading_file.unlink(missing_ok=True)

        fresh_run()
        signed = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(setup_cell(key_file, grading_file))]
                                          + list(nb.cells), metadata=nb.metadata)
        workdir = Path(options.cwd) if options.cwd else Path(private) / "work"
        workdir.mkdir(exist_ok=True)
        env = {"OMP_NUM_THREADS": str(options.threads), "MKL_NUM_THREADS": str(options.threads)} if options.threads else {}
        run = execute_notebook(signed, workdir, options.cell_timeout, options.timeout, options.retries, env=env,
                               on_kernel=_memory_limit(options.memory_mb), keep_outputs=False, offset=1,
                               on_retry=fresh_run)
        records, result.rejected_records = read_records(grading_file, key)
        if not options.cwd:  # the notebook may have left large files there
            shutil.rmtree(workdir, ignore_errors=True)
    result.status, result.attempts, result.cell_errors = run.status, run.attempts, run.cell_errors[:10]
    if any(e.startswith("cell -1") for e in run.cell_errors):  # the grader's own cell failed: say so plainly
        result.status = "error"
        result.message = "the grader's setup cell failed (is course_utils importable?): " + run.cell_errors[0]
    elif any(marker in e for e in run.cell_errors for marker in MEMORY_ERRORS):
        result.status = "memory limit exceeded"
        first = next(e for e in run.cell_errors if any(m in e for m in MEMORY_ERRORS))
        run.message = "; ".join(m for m in (f"memory limit exceeded: the kernel may use {options.memory_mb} MB "
                                             f"({first[:120]})", run.message) if m)
    if result.rejected_records:
        run.message += (f"; {result.rejected_records} line(s) in the grading file were not signed by this run "
                        "and were ignored (possible tampering)")
    result.message = "; ".join(m.strip("; ") for m in (run.message, result.message) if m)
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
        for item in r.manual:
            lines.append(f"{'':<{width}}   -    written answer (cell {item['cell_id']}): {item['status']}")
        if r.test_zoo is not None:
            lines.append(f"{'':<{width}}   -    test zoo: {json.dumps(r.test_zoo)[:200]}")
        for error in r.cell_errors[:3]:
            lines.append(f"{'':<{width}}        ! {error}")
    return "\n".join(lines)


def write_json(path: Path, results: list[Result]) -> None:
    """Write all results so far atomically: a reader (or a crash) never sees half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps([asdict(r) for r in sorted(results, key=lambda r: r.notebook)], indent=1) + "\n")
    os.replace(tmp, path)


def load_done(path: Path | None) -> dict[str, Result]:
    """{notebook: Result} from an earlier JSON (for --resume); an unreadable file counts as nothing done."""
    if path is None or not path.exists():
        return {}
    try:
        rows = json.loads(path.read_text())
        return {row["notebook"]: Result(**{**row, "exercises": [Exercise(**e) for e in row["exercises"]]})
                for row in rows}
    except (ValueError, TypeError, KeyError) as err:
        print(f"could not read {path} ({type(err).__name__}); grading everything again", file=sys.stderr)
        return {}


def default_jobs(memory_mb: int) -> int:
    """Kernels at once: one per core, no more than the free memory holds at `memory_mb` each (at least 1)."""
    cores = available_cores()
    try:
        import psutil

        by_memory = int(psutil.virtual_memory().available // (max(memory_mb, 1024) * 2**20))
    except ImportError:
        by_memory = cores
    return max(1, min(cores, by_memory))


def grade_all(paths: list[Path], options: Options, jobs: int = 1, json_path: Path | None = None,
              resume: bool = False, log=sys.stderr) -> list[Result]:
    """Grade `paths` with `jobs` kernels at once, writing `json_path` after each notebook."""
    done = load_done(json_path) if resume else {}
    results = {p: r for p, r in done.items() if p in {str(q) for q in paths}}
    todo = [p for p in paths if str(p) not in results or results[str(p)].sha256 != _submission_sha(p)]
    if resume:
        print(f"resuming: {len(paths) - len(todo)} already graded, {len(todo)} to go", file=log, flush=True)
    if not options.threads:
        options.threads = max(1, available_cores() // max(1, jobs))  # jobs x threads = cores: no oversubscription

    def finished(result: Result) -> None:
        results[result.notebook] = result
        print(f"graded {result.notebook}: {result.score}/{result.max_score} {result.status} ({result.seconds:.0f} s)",
              file=log, flush=True)
        if json_path:
            write_json(json_path, list(results.values()))

    if jobs <= 1:
        for path in todo:
            finished(grade_notebook(path, options))
    else:  # processes, not threads: each kernel's environment and nbclient's event loop stay separate
        pool = concurrent.futures.ProcessPoolExecutor(jobs, mp_context=multiprocessing.get_context("spawn"),
                                                      initializer=stop_on_sigterm)
        try:
            futures = [pool.submit(grade_notebook, path, options) for path in todo]
            for future in concurrent.futures.as_completed(futures):
                finished(future.result())
        except BaseException:  # Ctrl-C or kill: stop the workers, whose kernels shut down with them
            for process in list(getattr(pool, "_processes", {}).values()):
                process.terminate()
            raise
        finally:
            pool.shutdown(wait=True, cancel_futures=True)
    return sorted(results.values(), key=lambda r: r.notebook)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description="Grade student notebooks: a score per exercise check.")
    parser.add_argument("target", type=Path, help="a notebook, or a folder of notebooks (searched recursively)")
    parser.add_argument("--timeout", type=float, default=600, help="seconds allowed per notebook (default 600)")
    parser.add_argument("--cell-timeout", type=float, default=300, help="seconds allowed per cell (default 300)")
    parser.add_argument("--memory-mb", type=int, default=4096, help="memory limit per kernel in MB (default 4096; 0: none)")
    parser.add_argument("--jobs", type=int, default=0, help="notebooks graded at once (default: cores and memory allow)")
    parser.add_argument("--retries", type=int, default=1, help="reruns of a notebook that timed out or died (default 1)")
    parser.add_argument("--json", type=Path, help="write the results here as JSON, after every notebook")
    parser.add_argument("--resume", action="store_true", help="skip notebooks already in --json (same content)")
    parser.add_argument("--cwd", type=Path, help="working folder of the kernel (default: a fresh empty one each)")
    parser.add_argument("--reference", type=Path, action="append",
                        help="folder of reference notebooks (default: solutions/ then notebooks/)")
    parser.add_argument("--zoo-seed", type=int, help="lesson 07: also score the detector on the test zoo of this seed")
    args = parser.parse_args(argv)
    stop_on_sigterm()
    if args.resume and not args.json:
        parser.error("--resume needs --json (the file that holds what is done)")
    try:
        paths = submissions(args.target)
    except FileNotFoundError as err:
        parser.error(str(err))
    if not paths:
        parser.error(f"no .ipynb files under {args.target}")
    options = Options(timeout=args.timeout, cell_timeout=args.cell_timeout, memory_mb=args.memory_mb,
                      retries=args.retries, cwd=str(args.cwd) if args.cwd else None,
                      reference_dirs=[str(d) for d in args.reference] if args.reference else None,
                      zoo_seed=args.zoo_seed)
    jobs = args.jobs or default_jobs(args.memory_mb)
    start = time.monotonic()
    try:
        results = grade_all(paths, options, min(jobs, len(paths)), args.json, args.resume)
    except KeyboardInterrupt:  # Ctrl-C or SIGTERM: what was graded is already on disk
        done = len(load_done(args.json)) if args.json else 0
        print(f"interrupted: {done} graded notebooks are in {args.json}; run the same command with --resume to "
              "grade the rest" if args.json else "interrupted (without --json nothing was kept)", file=sys.stderr)
        return 130
    print(format_table(results))
    minutes = (time.monotonic() - start) / 60
    print(f"{len(results)} notebooks, {jobs} at once, {minutes:.1f} min" + (f"; wrote {args.json}" if args.json else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())
