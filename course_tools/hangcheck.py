"""Count headless hangs at widget cells (jupyter/nbclient#312): run notebooks many times with nbclient.

    python -m course_tools.hangcheck --runs 20 [--repeat 12] [--cell-timeout 60] [--live-widgets]
    python -m course_tools.hangcheck --runs 3 solutions/01_badnets_poisoning.ipynb ...

Without notebook paths it builds a small notebook that loads the course and calls the three
explorers of lessons 01-03 (`trigger_explorer`, `blend_explorer`, `strip_explorer`) `repeat`
times each, so many widget cells run in a few seconds. Every cell has a time limit, so this
script itself never hangs: a cell that runs past it counts as one hang, named in the report.
``--live-widgets`` sets BACKDOOR_COURSE_HEADLESS=0 so the explorers build live widgets (the
behaviour before the headless fix); the default is how the grader and the bench run notebooks.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections import Counter
from pathlib import Path

import nbformat

from .execute import HEADLESS_ENV, environment, run_once, stop_on_sigterm

SETUP = """import torch
import course_utils as cu
data = cu.load_data()
model = cu.make_model(seed=0).eval()  # untrained: the hang is about the widget, not the model
gen = torch.Generator().manual_seed(0)
clean_h, trig_h = torch.rand(200, generator=gen) + 1.0, torch.rand(50, generator=gen)"""
CALLS = ("cu.widgets.trigger_explorer(model, data.x_test[:8], data.y_test[:8], target=0)",
         "cu.widgets.blend_explorer(model, data.x_test[:200], data.y_test[:200], target=0);",
         "cu.widgets.strip_explorer(clean_h, trig_h);")


def explorer_notebook(repeat: int = 12):
    """A notebook: one setup cell, then `repeat` rounds of the three explorer calls."""
    cells = [nbformat.v4.new_code_cell(SETUP)]
    cells += [nbformat.v4.new_code_cell(call) for _ in range(repeat) for call in CALLS]
    nb = nbformat.v4.new_notebook(cells=cells)
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    return nb


def hangcheck(notebooks: dict, runs: int, cell_timeout: float, live_widgets: bool, log=sys.stderr,
              after_run=None) -> dict:
    """Run each {name: notebook} `runs` times; returns {name: {"runs", "hangs", "other", "where", "seconds",
    "slowest_cell"}} (per run: the index and seconds of its slowest cell). after_run(report so far) runs
    after every run (main writes the JSON there, so an interrupted check keeps what it counted)."""
    report = {}
    with environment(**{HEADLESS_ENV: "0" if live_widgets else "1"}):
        for name, nb in notebooks.items():
            row = {"runs": 0, "hangs": 0, "other": 0, "where": Counter(), "seconds": [], "slowest_cell": []}
            for i in range(runs):
                run = run_once(nbformat.from_dict(nb), Path.cwd(), cell_timeout, keep_outputs=False)
                row["runs"] += 1
                row["seconds"].append(run.seconds)
                if run.cell_seconds:  # [cell index, seconds] of the run's slowest cell: explains a slow run
                    slowest = max(range(len(run.cell_seconds)), key=run.cell_seconds.__getitem__)
                    row["slowest_cell"].append([slowest, run.cell_seconds[slowest]])
                if run.status == "timeout":
                    row["hangs"] += 1
                    row["where"][run.message.split(" did not finish")[0]] += 1
                elif run.status != "ok" or run.cell_errors:
                    row["other"] += 1
                    row["where"][(run.message or run.cell_errors[0])[:120]] += 1
                print(f"{name} run {i + 1}/{runs}: {run.status} in {run.seconds:.1f} s {run.message}", file=log, flush=True)
                report[name] = {**row, "where": dict(row["where"])}
                if after_run is not None:
                    after_run(report)
    return report


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description="Count headless hangs at widget cells (nbclient).")
    parser.add_argument("notebooks", nargs="*", type=Path, help="notebooks to run (default: the small explorer notebook)")
    parser.add_argument("--runs", type=int, default=20, help="runs per notebook (default 20)")
    parser.add_argument("--repeat", type=int, default=12, help="rounds of the three explorers in the small notebook")
    parser.add_argument("--cell-timeout", type=float, default=60, help="seconds per cell before it counts as a hang")
    parser.add_argument("--live-widgets", action="store_true", help="build live widgets (BACKDOOR_COURSE_HEADLESS=0)")
    parser.add_argument("--json", type=Path, help="also write the counts here")
    args = parser.parse_args(argv)
    stop_on_sigterm()
    if args.notebooks:
        notebooks = {str(p): nbformat.read(p, as_version=4) for p in args.notebooks}
    else:
        notebooks = {f"explorers x{args.repeat}": explorer_notebook(args.repeat)}
    start = time.monotonic()
    mode = "live widgets" if args.live_widgets else "headless (static view)"

    def save(report):
        if args.json:
            args.json.write_text(json.dumps({"mode": mode, "cell_timeout": args.cell_timeout, "report": report}, indent=1))

    report = hangcheck(notebooks, args.runs, args.cell_timeout, args.live_widgets, after_run=save)
    print(f"{mode}, {args.cell_timeout:g} s per cell, {time.monotonic() - start:.0f} s in all")
    for name, row in report.items():
        print(f"{name}: {row['hangs']} hangs and {row['other']} other failures in {row['runs']} runs "
              f"(median run {sorted(row['seconds'])[len(row['seconds']) // 2]:.1f} s) {row['where'] or ''}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
