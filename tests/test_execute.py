"""Headless execution: a per-cell limit that names the cell, one retry, and the explorer notebook of hangcheck."""

import nbformat
import pytest

from course_tools import execute, hangcheck

v4 = nbformat.v4


def test_a_cell_past_its_limit_is_named_and_the_notebook_retried_once(tmp_path):
    nb = v4.new_notebook(cells=[v4.new_markdown_cell("# title"), v4.new_code_cell("x = 1"),
                                v4.new_code_cell("import time\nwhile True:\n    time.sleep(0.1)"),
                                v4.new_code_cell("y = 2")])
    nb.cells[2].id = "loop42"
    retried = []
    run = execute.execute_notebook(nb, tmp_path, cell_timeout=1, on_retry=lambda: retried.append(1))
    assert (run.status, run.cell, run.attempts, retried) == ("timeout", 2, 2, [1])
    assert run.message.startswith("cell 2 (id loop42: `import time`) did not finish within the limit of 1 s per cell")
    assert "attempt 2" in run.message and len(run.cell_seconds) == 2  # cells 0 and 1 ran, cell 3 did not


def test_errors_are_listed_not_retried_and_the_kernel_is_headless(tmp_path):
    nb = v4.new_notebook(cells=[v4.new_code_cell("1 / 0"),
                                v4.new_code_cell("import os\nprint(os.environ['BACKDOOR_COURSE_HEADLESS'])")])
    run = execute.execute_notebook(nb, tmp_path, cell_timeout=60)
    assert (run.status, run.attempts) == ("ok", 1)
    assert run.cell_errors == ["cell 0: ZeroDivisionError: division by zero"]
    assert run.notebook.cells[1].outputs[0]["text"].strip() == "1"


def test_explorer_notebook_calls_each_explorer_repeat_times():
    nb = hangcheck.explorer_notebook(repeat=3)
    sources = [c.source for c in nb.cells[1:]]
    assert len(nb.cells) == 1 + 9 and "cu.load_data()" in nb.cells[0].source
    for name in ("trigger_explorer", "blend_explorer", "strip_explorer"):
        assert sum(name in s for s in sources) == 3


def test_watchdog_bounds_a_cell_that_never_returns():
    """nbclient#312: with live widgets a cell can block after nbclient's own timeout stopped counting.
    The watchdog turns any wait past the limit into a CellTimeoutError."""
    import asyncio
    import time

    from nbclient.exceptions import CellTimeoutError

    from course_tools.execute import _execute_cell_bounded

    class StuckClient:
        code_cells_executed = 0

        async def async_execute_cell(self, cell, index, execution_count=None):
            await asyncio.sleep(3600)

    start = time.monotonic()
    with pytest.raises(CellTimeoutError, match="watchdog"):
        _execute_cell_bounded(StuckClient(), None, 3, 0.5)
    assert time.monotonic() - start < 10
