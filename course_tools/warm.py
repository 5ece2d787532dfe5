"""Fill the model cache ahead of the learner: run every lesson once, in course order, headless.

    make warm                          # in the background; returns at once, progress in <cache>/warm.log
    python -m course_tools.warm        # the same in the foreground (--lessons 03 07 for some only)

A lesson's first run trains its models and later runs load them from the cache (lesson 06's
matrix alone trains dozens). Running the reference notebooks (solutions/) once, the way the grader
and `make test` run them, trains exactly the models the lessons use, with no separate list to keep
in step with the notebooks; the learner's own notebooks then find them there. Nothing is written
next to the notebooks: their outputs stay in memory and are dropped.

While it runs it shares the CPU with anything else you do: on 2 cores, two lessons training at once
are much slower than one after the other, so start it before you begin (a coffee's worth: about the
course's own time in order). A lock file keeps two warm runs from racing; a lesson that stops
(a cell past its time limit, a dead kernel) is reported and the next one runs.
"""

from __future__ import annotations

import argparse
import datetime
import os
import subprocess
import sys
from pathlib import Path

from .execute import execute_notebook, stop_on_sigterm

ROOT = Path(__file__).resolve().parent.parent
CELL_TIMEOUT = 900  # a cold lesson's slowest cell takes a few minutes on 2 cores


def lessons(only=None) -> list[Path]:
    """The lessons in course order (their names start with the lesson number), or those whose names
    start with one of `only` ("03", "07_trojan"...): solutions/ in the instructor's repository,
    notebooks/ in the student bundle (an unfinished exercise raises there and the lesson goes on
    with the reference, which trains the same models)."""
    folder = ROOT / "solutions" if (ROOT / "solutions").is_dir() else ROOT / "notebooks"
    found = sorted(folder.glob("[0-9][0-9]_*.ipynb"))
    if only:
        found = [p for p in found if p.name.startswith(tuple(only))]
        if not found:
            raise SystemExit(f"no lesson in solutions/ starts with {' or '.join(only)}")
    return found


def cache_folder() -> Path:
    import course_utils

    return Path(course_utils.cache_dir())


def warm(paths: list[Path], log=print) -> list[str]:
    """Run each notebook once (the model cache fills as it goes); one line per lesson, also passed to `log`."""
    lines = []
    for path in paths:
        run = execute_notebook(path, cwd=path.parent, cell_timeout=CELL_TIMEOUT, retries=0, keep_outputs=False)
        line = f"{path.name}: {run.status} in {run.seconds:.0f} s"
        if run.message:
            line += f" ({run.message})"
        elif run.cell_errors:  # the lesson still ran to its end; say which cells raised
            line += f"; {len(run.cell_errors)} cell(s) raised, first {run.cell_errors[0]}"
        lines.append(line)
        log(line)
    return lines


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lessons", nargs="+", help="only these lessons (name prefixes, e.g. 03 07)")
    parser.add_argument("--background", action="store_true", help="start in the background and return at once")
    args = parser.parse_args(argv)
    paths = lessons(args.lessons)
    folder = cache_folder()
    folder.mkdir(parents=True, exist_ok=True)
    log_path, lock = folder / "warm.log", folder / "warm.lock"
    if args.background:
        command = [sys.executable, "-m", "course_tools.warm", *(["--lessons", *args.lessons] if args.lessons else [])]
        with open(log_path, "a") as log:
            subprocess.Popen(command, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        print(f"warming the model cache in the background ({len(paths)} lessons); progress: {log_path}")
        return 0
    try:
        fd = os.open(lock, os.O_CREAT | os.O_EXCL | os.O_WRONLY)  # atomic: only one warm run at a time
    except FileExistsError:
        print(f"another warm run holds {lock} (delete it if no warm run is going on)")
        return 1
    os.write(fd, str(os.getpid()).encode())
    os.close(fd)
    stop_on_sigterm()
    try:
        started = datetime.datetime.now().strftime("%Y-%m-%d %H:%M")
        print(f"{started}: warming {folder} with {len(paths)} lessons", flush=True)
        lines = warm(paths, log=lambda line: print(line, flush=True))
        failed = [line for line in lines if ": ok in" not in line]  # timeouts and dead kernels
        print("done" + (f"; {len(failed)} lesson(s) did not finish: see above" if failed else ""), flush=True)
        return 1 if failed else 0
    finally:
        lock.unlink(missing_ok=True)


if __name__ == "__main__":
    raise SystemExit(main())
