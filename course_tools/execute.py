"""Execute a notebook headless with a time limit per cell, naming the cell that ran out, and one retry.

    from course_tools.execute import execute_notebook
    run = execute_notebook("solutions/01_badnets_poisoning.ipynb", cell_timeout=300)
    run.status, run.message, run.seconds, run.cell_seconds

The grader (`course_tools.grade`), the benchmark's notebook timing and any site build run
notebooks with nbclient. A cell that never returns (an infinite loop, or a widget round trip
that nbclient never answers, jupyter/nbclient#312) must cost at most `cell_timeout` seconds:
nbclient then raises, this module says which cell (number, id and first line), and the whole
notebook is run once more in a fresh kernel before the failure is reported. The kernel gets
``BACKDOOR_COURSE_HEADLESS=1``, so the course's explorers draw their static view instead of a
live widget (`course_utils.widgets`).
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

import nbformat

ROOT = Path(__file__).resolve().parent.parent
HEADLESS_ENV = "BACKDOOR_COURSE_HEADLESS"  # read by course_utils.widgets


@dataclass
class Execution:
    """What happened when a notebook ran. status: ok | timeout | kernel died | error."""

    status: str = "ok"
    message: str = ""
    seconds: float = 0.0
    attempts: int = 1
    cell: int | None = None  # the cell (0-based, markdown included) where execution stopped
    cell_errors: list[str] = field(default_factory=list)  # "cell 7: NameError: ..." for cells that raised
    cell_seconds: list[float] = field(default_factory=list)  # wall time of each cell of the last attempt
    notebook: object = None  # the executed nbformat notebook of the last attempt (with outputs)


def stop_on_sigterm() -> None:
    """Turn SIGTERM into KeyboardInterrupt, so `kill PID` still shuts the running kernel down (no orphan)."""
    import signal

    def interrupt(signum, frame):
        raise KeyboardInterrupt(f"signal {signum}")

    signal.signal(signal.SIGTERM, interrupt)


def describe_cell(nb, index: int, offset: int = 0) -> str:
    """'cell 12 (id eb4aeda2: `cu.widgets.trigger_explorer(...`)': enough to find it in JupyterLab.

    offset: cells the tool put in front of the notebook's own (numbers count from the notebook's first).
    """
    cell = nb.cells[index]
    first = next((line.strip() for line in cell.source.splitlines() if line.strip()), "")
    first = first if len(first) <= 60 else first[:57] + "..."
    return f"cell {index - offset} (id {cell.get('id', '?')}: `{first}`)"


def cell_error(index: int, cell) -> str | None:
    """'cell 7: NameError: ...' if the cell's outputs hold an error, else None."""
    for out in cell.get("outputs", []):
        if out.get("output_type") == "error":
            return f"cell {index}: {out.get('ename')}: {str(out.get('evalue'))[:200]}"
    return None


def available_cores() -> int:
    """The CPU cores this process may run on (its affinity where the system tells it, else all)."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


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


# nbclient's own per-cell timeout covers the wait for the kernel's reply, but not every wait after it:
# with live ipywidgets a cell was seen to block for good with the kernel idle (jupyter/nbclient#312;
# reproduced here with course_tools.hangcheck --live-widgets). A watchdog around the whole cell bounds
# it: past the cell limit plus this grace, the cell counts as timed out.
WATCHDOG_GRACE = 15


def _execute_cell_bounded(client, cell, index: int, seconds: float) -> None:
    """client.execute_cell, but never longer than `seconds`: CellTimeoutError past it."""
    import asyncio

    from jupyter_core.utils import run_sync
    from nbclient.exceptions import CellTimeoutError

    async def bounded():
        try:
            await asyncio.wait_for(client.async_execute_cell(cell, index,
                                                             execution_count=client.code_cells_executed + 1), seconds)
        except asyncio.TimeoutError:
            raise CellTimeoutError(f"cell {index} was still waiting after {seconds:g} s (watchdog)") from None

    run_sync(bounded)()


def run_once(nb, cwd: Path, cell_timeout: float, total_timeout: float | None = None, on_kernel=None,
             keep_outputs: bool = True, offset: int = 0) -> Execution:
    """Run `nb` (modified in place) top to bottom in a fresh python3 kernel; never waits longer than the limits.

    cell_timeout: seconds one cell may take; total_timeout: seconds for the whole notebook
    (counted from a started kernel). on_kernel(pid) runs once the kernel is up (the grader
    sets a memory limit there). Errors in cells are allowed and listed; later cells still run.
    offset: leading cells that are the tool's own, not counted in the cell numbers reported.
    """
    from nbclient import NotebookClient
    from nbclient.exceptions import CellTimeoutError, DeadKernelError

    client = NotebookClient(nb, kernel_name="python3", allow_errors=True, timeout=max(1, int(cell_timeout)),
                            startup_timeout=120, resources={"metadata": {"path": str(cwd)}},
                            interrupt_on_timeout=False, record_timing=False)
    run, start, index = Execution(notebook=nb), time.monotonic(), 0
    try:
        client.reset_execution_trackers()
        with client.setup_kernel(cwd=str(cwd), stderr=subprocess.DEVNULL):  # kernel log noise
            if on_kernel is not None:
                on_kernel(client.km.provisioner.process.pid)
            deadline = time.monotonic() + (total_timeout or float("inf"))
            for index, cell in enumerate(nb.cells):
                left = deadline - time.monotonic()
                if left <= 0:
                    raise CellTimeoutError("the notebook's total time limit was reached")
                # the tool's own cells (offset) import torch: they get at least 2 minutes on a busy machine
                limit = max(cell_timeout, 120) if index < offset else cell_timeout
                client.timeout = max(1, int(min(limit, left)))
                began = time.monotonic()
                _execute_cell_bounded(client, cell, index, client.timeout + WATCHDOG_GRACE)
                run.cell_seconds.append(round(time.monotonic() - began, 2))
                error = cell_error(index - offset, cell)
                if error:
                    run.cell_errors.append(error)
                if not keep_outputs and cell.cell_type == "code":
                    cell.outputs = []  # keeps memory flat on megabytes of output
    except CellTimeoutError:
        total = total_timeout is not None and time.monotonic() - start >= total_timeout
        limit = f"the notebook's limit of {total_timeout:g} s" if total else f"the limit of {cell_timeout:g} s per cell"
        run.status, run.cell = "timeout", index
        run.message = f"{describe_cell(nb, index, offset)} did not finish within {limit}; later cells did not run"
    except DeadKernelError:
        run.status, run.cell = "kernel died", index
        run.message = f"the kernel died in {describe_cell(nb, index, offset)} (a crash, os._exit or out of memory)"
    except Exception as err:  # anything else nbclient or the kernel throws: report it
        run.status, run.cell = "error", index
        run.message = f"execution stopped at {describe_cell(nb, index, offset)}: {type(err).__name__}: {str(err)[:300]}"
    run.seconds = round(time.monotonic() - start, 1)
    return run


def execute_notebook(notebook, cwd=None, cell_timeout: float = 300, total_timeout: float | None = None,
                     retries: int = 1, env: dict | None = None, on_kernel=None, keep_outputs: bool = True,
                     offset: int = 0, on_retry=None) -> Execution:
    """Execute a notebook (a path or an nbformat node) headless; retry `retries` times on a timeout or dead kernel.

    The kernel runs in `cwd` (default: the notebook's folder, or the current one), imports this
    repository's course_utils (PYTHONPATH) and sees ``BACKDOOR_COURSE_HEADLESS=1`` plus `env`.
    A cell that raises is not retried: that is the notebook's own error. on_retry() runs before
    each retry (the grader empties its grading file there). Returns an `Execution` whose message
    names the cell that timed out and says how many attempts ran.
    """
    if isinstance(notebook, (str, Path)):
        path = Path(notebook)
        source, cwd = nbformat.read(path, as_version=4), cwd or path.parent.resolve()
    else:
        source = notebook
    cwd = Path(cwd or Path.cwd())
    pythonpath = os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH")) if p)
    with environment(**{HEADLESS_ENV: "1", "PYTHONPATH": pythonpath, **(env or {})}):
        first = ""
        for attempt in range(1, retries + 2):
            run = run_once(nbformat.from_dict(source), cwd, cell_timeout, total_timeout, on_kernel, keep_outputs,
                           offset)
            run.attempts = attempt
            if run.status not in ("timeout", "kernel died"):
                break
            first = first or run.message
            if on_retry is not None and attempt <= retries:  # only when another attempt follows
                on_retry()
    if run.attempts > 1:  # say that a retry happened and why, whatever the outcome
        run.message = "; ".join(m for m in (run.message, f"attempt {run.attempts}; attempt 1: {first}") if m)
    return run
