"""Record what a lesson measured: execute it headless and write chosen cells' printed output to a file.

    python -m course_tools.record solutions/08_backdoors_where_they_hurt.ipynb \
        --cells l08-train l08-defend l08-vary l08-backbone l08-summary --cold --out results/lesson08-cpu.md

Notebooks are stored without outputs, so a lesson's figures exist only while it runs. This keeps
them: the notebook runs top to bottom (from an empty model cache with ``--cold``), and the text
that the named cells printed goes into a Markdown file with the date, the machine, the seconds
of the whole run and of each recorded cell. The figures are the notebook's own, not retyped.
"""

from __future__ import annotations

import argparse
import datetime
import platform
import sys
import tempfile
from pathlib import Path

import nbformat

from .execute import available_cores, execute_notebook


def cell_text(cell) -> str:
    """The text a code cell printed (stdout and plain-text results), without images or widgets."""
    parts = []
    for out in cell.get("outputs", []):
        if out.get("output_type") == "stream" and out.get("name") == "stdout":
            parts.append(out.get("text", ""))
        elif out.get("output_type") in ("execute_result", "display_data"):
            text = out.get("data", {}).get("text/plain", "")
            if text and not text.startswith(("<Figure", "<IPython")):
                parts.append(text + "\n")
    return "".join(parts).rstrip()


def record(path: Path, cell_ids: list[str], cold: bool, cell_timeout: float = 600) -> str:
    """Run the notebook at `path` and return the Markdown record of the cells `cell_ids`."""
    nb = nbformat.read(path, as_version=4)
    ids = [c.get("id") for c in nb.cells]
    missing = [i for i in cell_ids if i not in ids]
    if missing:
        raise ValueError(f"{path.name} has no cells {missing}; its code cells are "
                         f"{[c.get('id') for c in nb.cells if c.cell_type == 'code']}")
    env = {}
    with tempfile.TemporaryDirectory(prefix="course-record-") as cache:
        if cold:
            env["BACKDOOR_COURSE_CACHE"] = cache
        run = execute_notebook(nb, path.parent, cell_timeout=cell_timeout, env=env, retries=0)
    if run.status != "ok" or run.cell_errors:
        raise RuntimeError(f"{path.name} did not run cleanly: {run.status} {run.message} {run.cell_errors[:3]}")
    code_ids = [c.get("id") for c in run.notebook.cells]
    lines = [f"# What {path.stem} measured", "",
             f"Recorded by `python -m course_tools.record` on {datetime.date.today().isoformat()}, "
             f"{platform.machine()} with {available_cores()} cores, {'from an empty model cache' if cold else 'with the model cache as it was'}: "
             f"the whole notebook ran in {run.seconds:.0f} s. Each block is the output of one cell, as printed.", ""]
    for cell_id in cell_ids:
        index = code_ids.index(cell_id)
        seconds = run.cell_seconds[index] if index < len(run.cell_seconds) else float("nan")
        lines += [f"## cell `{cell_id}` ({seconds:.1f} s)", "", "```", cell_text(run.notebook.cells[index]), "```", ""]
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description="Execute a lesson and record what chosen cells printed.")
    parser.add_argument("notebook", type=Path)
    parser.add_argument("--cells", nargs="+", required=True, help="ids of the cells whose output to keep")
    parser.add_argument("--cold", action="store_true", help="run from an empty model cache (a temporary one)")
    parser.add_argument("--out", type=Path, required=True, help="the Markdown file to write")
    parser.add_argument("--cell-timeout", type=float, default=600)
    args = parser.parse_args(argv)
    text = record(args.notebook, args.cells, args.cold, args.cell_timeout)
    args.out.write_text(text + "\n")
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
