"""A learner's wrong answer in lesson 01's student copy: the later cells run on the reference and say so.

The copy gets a RIGHT patch trigger (so `passed` is True) and then a WRONG poisoning routine (it
rounds the count down): the core's check cell raises and leaves `passed` at True, which is the case
`learner_or_reference` must not trust. The notebook runs up to the cell that compares the poisoned
set with the library's, in a real kernel (nbclient). It uses the model cache the notebooks use
(captured before the test fixtures redirect it), so it takes seconds once lesson 00 or 01 has run;
on an empty cache the three clean models of the first cell are trained first.
"""

import os
import subprocess
from pathlib import Path

import nbformat

ROOT = Path(__file__).resolve().parent.parent
STUDENT = ROOT / "notebooks" / "01_badnets_poisoning.ipynb"
USER_CACHE = os.environ.get("BACKDOOR_COURSE_CACHE")  # read at import, before conftest's private cache
STOP_AFTER = "f676babd"  # the cell that compares the learner's poisoned set with the library's
STUB = "    # YOUR CODE HERE\n    raise NotImplementedError()"

RIGHT_PATCH = """    out = images.clone()
    out[:, :, row : row + size, col : col + size] = color
    return out"""

WRONG_POISON = """    candidates = torch.nonzero(y != target).flatten() if mode == "all-to-one" else torch.arange(len(y))
    count = int(rate * len(y))  # wrong: rounds down
    order = torch.randperm(len(candidates), generator=torch.Generator().manual_seed(seed))
    chosen = candidates[order[:count]]
    x_out, y_out = cu.as_float(x).clone(), y.clone()
    x_out[chosen] = trigger(x_out[chosen])
    y_out[chosen] = target if mode == "all-to-one" else (y[chosen] + 1) % num_classes
    poisoned = torch.zeros(len(y), dtype=torch.bool)
    poisoned[chosen] = True
    return cu.poison.PoisonedData(x_out, y_out, poisoned)"""


def _answered(nb):
    """The student copy up to STOP_AFTER, with the two exercises answered (one right, one wrong)."""
    cells = []
    for cell in nb.cells:
        if cell.cell_type == "code" and STUB in cell.source:
            answer = RIGHT_PATCH if "def add_patch_trigger" in cell.source else WRONG_POISON
            cell.source = cell.source.replace(STUB, answer)
        cells.append(cell)
        if cell.get("id") == STOP_AFTER:
            break
    nb.cells = cells
    return nb


def _text(cell) -> str:
    parts = []
    for out in cell.get("outputs", []):
        if out.output_type == "stream":
            parts.append(out.text)
        elif out.output_type == "error":
            parts.append(f"{out.ename}: {out.evalue}")
    return "".join(parts)


def test_a_wrong_core_answer_falls_back_to_the_reference(monkeypatch):
    from nbclient import NotebookClient

    nb = _answered(nbformat.read(STUDENT, as_version=4))
    assert nb.cells[-1].get("id") == STOP_AFTER and sum("# YOUR CODE HERE" in c.source for c in nb.cells) == 0
    if USER_CACHE:
        monkeypatch.setenv("BACKDOOR_COURSE_CACHE", USER_CACHE)
    else:
        monkeypatch.delenv("BACKDOOR_COURSE_CACHE", raising=False)  # the course's default cache folder
    client = NotebookClient(nb, kernel_name="python3", allow_errors=True, timeout=600,
                            resources={"metadata": {"path": str(STUDENT.parent)}})
    with client.setup_kernel(stderr=subprocess.DEVNULL):
        for index, cell in enumerate(nb.cells):
            client.execute_cell(cell, index)
    text = {cell.get("id"): _text(cell) for cell in nb.cells if cell.cell_type == "code"}

    assert "add_patch_trigger: all checks passed" in text["09f4637f"]
    assert "Later cells use your add_patch_trigger." in text["9c4ae712"]
    assert "AssertionError" in text["0d7a3e01"] and "int() rounds down" in text["0d7a3e01"]
    assert "Later cells use the reference poison_dataset (yours failed its latest check)." in text["5d56df45"]
    assert "400 of 4000 training images poisoned" in text["4cf276ec"]
    assert "identical to your poisoned set (images, labels, mask): True" in text["f676babd"]
    errors = [i for i, c in enumerate(nb.cells) if "AssertionError" in _text(c) or "Error:" in _text(c)]
    assert errors == [next(i for i, c in enumerate(nb.cells) if c.get("id") == "0d7a3e01")], \
        "only the wrong answer's check cell may fail"

