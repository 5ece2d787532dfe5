"""Score a learner's lesson-07 detector on the instructor's hidden test zoo, and measure the reference.

    python -m course_tools.hunt --seeds A B        # the reference on two test zoos -> results/hunt-heldout-cpu.md and course_utils/measured/hunt-heldout-cpu.json (lesson 07 shows it)
    python -m course_tools.hunt --notebook SUBMISSION.ipynb --seed S

`test_zoo_score(notebook, seed, timeout)` is what the grader calls for lesson 07 (`--zoo-seed`).

How the learner's detector is taken from the notebook (and why). The detector `my_detector`
may call anything the notebook defined before it (the learner's patch scan, their trigger
inversion, helper functions, imports), so copying its cell alone would fail with NameErrors.
We therefore run the submitted notebook in a fresh kernel, top to bottom up to and including
the cell that defines `my_detector` (the cells before it are the lesson's own, on the cached
practice zoo). The test zoo's models are written to a temporary folder as plain weights
(state dicts, anonymous ids, no specs, no seed), and the kernel loads them from there and
calls the detector on each: the truth never enters the kernel, so a detector cannot read the
labels from `course_utils`. The probabilities come back as JSON and are scored here.
"""

from __future__ import annotations

import argparse
import ast
import json
import tempfile
import textwrap
from pathlib import Path

import nbformat
import numpy as np
import torch

ROOT = Path(__file__).resolve().parent.parent
DETECTOR = "my_detector"
N_CLEAN_IMAGES = 200  # the learner's clean set in lesson 07: 5 % of the training digits
# Test zoos whose results were looked at while the reference was still changing, so their figures are no longer
# strictly held out; the report says so beside them. A zoo from any other seed was never used to design it.
SEEDS_SEEN = {31415: "first held-out zoo", 27182: "its warp misses led to the warp search"}

_SCORE_CELL = """
import json as _json, torch as _torch
from course_utils import cost_timer as _cost_timer
from course_utils.models import small_cnn as _small_cnn
_folder = {folder!r}
_x = _torch.load(_folder + "/x_clean.pt", weights_only=True)
_out = {{}}
for _name in {names!r}:
    _state = _torch.load(_folder + "/" + _name + ".pt", weights_only=True)
    _model = _small_cnn((1, 28, 28), 10, width=_state["blocks.0.0.weight"].shape[0])
    _model.load_state_dict(_state)
    _model.eval()
    try:
        with _cost_timer() as _timer:  # the course's cached searches count at what they cost
            _p = float({detector}(_model, _x.clone()))
        _out[_name] = {{"p": _p, "s": _timer.seconds}}
    except Exception as _err:
        _out[_name] = {{"error": f"{{type(_err).__name__}}: {{str(_err)[:200]}}"}}
with open(_folder + "/scores.json", "w") as _f:
    _json.dump(_out, _f)
"""


def detector_cell(nb, name: str = DETECTOR) -> int | None:
    """The index of the last code cell that defines `def <name>(` at top level (parsed, not grepped)."""
    found = None
    for index, cell in enumerate(nb.cells):
        if cell.cell_type != "code":
            continue
        try:
            tree = ast.parse(_python_only(cell.source))
        except SyntaxError:
            continue
        if any(isinstance(node, ast.FunctionDef) and node.name == name for node in tree.body):
            found = index
    return found


def _python_only(source: str) -> str:
    """Cell source without IPython magics and shell lines, so that `ast` can parse it."""
    return "\n".join("" if line.lstrip().startswith(("%", "!")) else line for line in source.splitlines())


def _write_zoo(zoo, x_clean: torch.Tensor, folder: Path) -> list[str]:
    names = []
    for i, model in enumerate(zoo.models.values()):
        name = f"m{i:03d}"
        torch.save(model.state_dict(), folder / f"{name}.pt")
        names.append(name)
    torch.save(x_clean, folder / "x_clean.pt")
    return names


def _result(seed: int, status: str, message: str, **extra) -> dict:
    base = {"seed": seed, "status": status, "message": message, "n_models": None, "auroc": None, "auroc_ci": None,
            "cross_entropy": None, "cross_entropy_ci": None, "seconds_per_model": None}
    return {**base, **extra}


def test_zoo_score(notebook_path, seed: int, timeout: float = 900, n_models: int | None = None) -> dict:
    """Score the `my_detector` of a submitted lesson-07 notebook on the test zoo drawn from `seed`.

    Returns a dict: status ("ok", "no detector", "not implemented", "error", "timeout",
    "invalid output"), message, seed, n_models, auroc and auroc_ci, cross_entropy and
    cross_entropy_ci (TrojAI's metric, 95 % bootstrap over models), seconds_per_model, and
    `families` (per attack family: its trojaned models against all clean ones). Never raises
    for a bad notebook; `timeout` (seconds) covers the notebook's cells and the scoring.
    """
    import course_utils as cu
    from course_utils import hunt

    n_models = n_models or hunt.TEST_ZOO_SIZE
    try:
        nb = nbformat.read(notebook_path, as_version=4)
    except Exception as err:
        return _result(seed, "error", f"could not read the notebook ({type(err).__name__}: {str(err)[:200]})")
    last = detector_cell(nb)
    if last is None:
        return _result(seed, "no detector", f"no code cell defines `def {DETECTOR}(model, x_clean)`")
    data = cu.load_data()
    zoo = hunt.build_test_zoo(data, seed, n_models, progress=False)
    x_clean, _ = cu.repair.clean_subset(data, N_CLEAN_IMAGES / len(data.x_train), seed=0)
    with tempfile.TemporaryDirectory(prefix="hunt-") as tmp:
        names = _write_zoo(zoo, x_clean, Path(tmp))
        run = nbformat.v4.new_notebook(cells=nb.cells[: last + 1] + [nbformat.v4.new_code_cell(
            textwrap.dedent(_SCORE_CELL.format(folder=tmp, names=names, detector=DETECTOR)))])
        status, message = _execute(run, Path(notebook_path).resolve().parent, timeout)
        scores_file = Path(tmp) / "scores.json"
        if not scores_file.exists():
            return _result(seed, status if status != "ok" else "error",
                           message or "the detector was not called (an earlier cell failed)", n_models=n_models)
        scores = json.loads(scores_file.read_text())
    return _score(zoo, names, scores, seed)


def _execute(nb, cwd: Path, timeout: float) -> tuple[str, str]:
    """Run every cell of `nb` in a fresh kernel (errors allowed) within `timeout` seconds in all."""
    import os

    from nbclient import NotebookClient
    from nbclient.exceptions import CellTimeoutError, DeadKernelError

    os.environ["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH")) if p)
    client = NotebookClient(nb, kernel_name="python3", allow_errors=True, timeout=max(1, int(timeout)),
                            resources={"metadata": {"path": str(cwd)}})
    try:
        client.execute()
    except CellTimeoutError:
        return "timeout", f"stopped after the time limit of {timeout:g} s"
    except DeadKernelError:
        return "error", "the kernel died (a crash or out of memory)"
    errors = [o for c in nb.cells for o in c.get("outputs", []) if o.get("output_type") == "error"]
    last_error = [o for o in nb.cells[-1].get("outputs", []) if o.get("output_type") == "error"]
    if last_error:
        return "error", f"scoring failed: {last_error[0].get('ename')}: {str(last_error[0].get('evalue'))[:200]}"
    return "ok", f"{len(errors)} earlier cell(s) raised" if errors else ""


def _score(zoo, names: list[str], scores: dict, seed: int) -> dict:
    from course_utils import hunt

    ids = list(zoo.models)
    errors = {n: s["error"] for n, s in scores.items() if "error" in s}
    if errors:
        first = next(iter(errors.values()))
        status = "not implemented" if first.startswith("NotImplementedError") else "error"
        return _result(seed, status, f"the detector raised on {len(errors)} of {len(names)} models: {first}",
                       n_models=len(names))
    probs = np.array([scores[n]["p"] for n in names])
    seconds = float(np.mean([scores[n]["s"] for n in names]))
    try:
        hunt.check_probabilities(probs)
    except ValueError as err:
        return _result(seed, "invalid output", str(err), n_models=len(names), seconds_per_model=seconds)
    labels = np.array([zoo.labels[mid] for mid in ids])
    families = [zoo.specs[mid].family for mid in ids]
    summary = hunt.score_probabilities(labels, probs)
    return _result(seed, "ok", "", **summary, seconds_per_model=seconds,
                   families=family_scores(labels, probs, families))


def family_scores(labels, probs, families) -> dict:
    """Per attack family: AUROC of its trojaned models against all clean ones, and how many there are."""
    from sklearn.metrics import roc_auc_score

    labels, probs = np.asarray(labels), np.asarray(probs, dtype=float)
    clean = labels == 0
    out = {}
    for family in sorted({f for f in families if f}):
        keep = clean | np.array([f == family for f in families])
        out[family] = {"n": int((~clean & keep).sum()), "auroc": float(roc_auc_score(labels[keep], probs[keep]))}
    return out


# ---------------------------------------------------------------- the reference, in-sample and held out
def _reference_on(models: dict, x_clean: torch.Tensor) -> tuple[dict, float]:
    """{model id: reference_components} and the mean seconds per model."""
    from course_utils import cost_timer, zoo

    with cost_timer() as timer:  # a search loaded from the results cache counts at what it cost
        comps = {mid: zoo.reference_components(model, x_clean) for mid, model in models.items()}
    return comps, timer.seconds / max(1, len(models))


def _rows_for(name: str, labels: np.ndarray, comps: list[dict], families: list, seconds: float) -> list[dict]:
    """One row per detector (the reference and each of its statistics) and per subset of the zoo."""
    from course_utils import hunt, zoo

    rows = []
    detectors = {"reference": [zoo.to_probability(zoo.reference_score(c)) for c in comps],
                 **{f"{k} alone": [zoo.to_probability(c[k]) for c in comps] for k in comps[0]}}
    all_to_one = np.array([f != "all-to-all" for f in families])
    for det, probs in detectors.items():
        probs = np.array(probs)
        for subset, keep in (("all", np.ones(len(labels), bool)), ("all-to-one", all_to_one)):
            summary = hunt.score_probabilities(labels[keep], probs[keep])
            rows.append({"zoo": name, "detector": det, "models": subset, **summary,
                         "seconds_per_model": seconds if det == "reference" else None,
                         "families": family_scores(labels, probs, families) if subset == "all" else None})
    return rows


def neural_cleanse_false_alarms(zoo, x_clean: torch.Tensor, threshold: float = 2.0) -> dict:
    """Neural Cleanse's per-model score (`zoo.neural_cleanse_score`, anomaly index) on a test zoo's clean
    and trojaned models, grouped by training epochs: {epochs: {"clean": [...], "trojaned": [...]}}, and the
    clean models above `threshold` (the paper's 2): does the score depend on training length?"""
    from course_utils import zoo as practice

    out: dict = {}
    for mid, model in zoo.models.items():
        spec = zoo.specs[mid]
        group = out.setdefault(spec.epochs, {"clean": [], "trojaned": []})
        group["trojaned" if spec.family else "clean"].append(round(practice.neural_cleanse_score(model, x_clean), 3))
    alarms = {e: sum(v > threshold for v in g["clean"]) for e, g in out.items()}
    return {"by_epochs": out, "clean_false_alarms_by_epochs": alarms, "threshold": threshold}


def bench_rows(seeds, n_models: int | None = None, progress: bool = True,
               neural_cleanse: bool = False) -> list[dict]:
    """The reference detector in-sample (the practice zoo, on which it was designed and calibrated) and
    held out (the test zoo of every seed in `seeds`): AUROC and cross-entropy with bootstrap intervals,
    all models and all-to-one attacks only, per attack family, seconds per model (this machine)."""
    import course_utils as cu
    from course_utils import hunt, zoo

    data = cu.load_data()
    x_clean, _ = cu.repair.clean_subset(data, N_CLEAN_IMAGES / len(data.x_train), seed=0)
    practice = zoo.load_zoo(data, progress=progress)
    comps, seconds = _reference_on(practice, x_clean)
    ids = list(practice)
    calibration = zoo.fit_calibration({m: zoo.reference_score(c) for m, c in comps.items()})
    rows = _rows_for("practice (in-sample)", zoo._labels(ids), [comps[m] for m in ids],
                     [zoo._spec(m).attack for m in ids], seconds)
    rows[0]["calibration_refit"] = calibration  # the constant in zoo.REFERENCE_CALIBRATION should match
    rows[0]["torch_threads"] = torch.get_num_threads()  # the seconds per model were measured with these
    for seed in seeds:
        test = hunt.build_test_zoo(data, seed, n_models or hunt.TEST_ZOO_SIZE, progress=progress)
        comps, seconds = _reference_on(test.models, x_clean)
        ids = list(test.models)
        first = len(rows)
        name = f"test seed {seed} (held out)" if seed not in SEEDS_SEEN else \
            f"test seed {seed} (held out, seen: {SEEDS_SEEN[seed]})"
        rows += _rows_for(name, np.array([test.labels[m] for m in ids]),
                          [comps[m] for m in ids], [test.specs[m].family for m in ids], seconds)
        rows[first]["train_seconds"] = test.train_seconds
        if neural_cleanse:
            rows[first]["neural_cleanse"] = neural_cleanse_false_alarms(test, x_clean)
    return rows


def build_summary(seed: int, n_models: int | None = None) -> str:
    """Train (or load from the cache) the test zoo of `seed`, with a progress bar; how long it took, the
    models' clean accuracy and, per family, the attack success rate (for the instructor's eyes only)."""
    import course_utils as cu
    from course_utils import hunt

    data = cu.load_data()
    zoo = hunt.build_test_zoo(data, seed, n_models or hunt.TEST_ZOO_SIZE, progress=True)
    acc = [cu.clean_accuracy(m, data) for m in zoo.models.values()]
    lines = [f"test zoo (seed {seed}): {len(zoo.models)} models, {sum(zoo.labels.values())} trojaned, "
             f"built or loaded in {zoo.train_seconds:.0f} s; clean accuracy {min(acc):.3f} to {max(acc):.3f}"]
    for family in hunt.FAMILIES:
        asr = [hunt.attack_success(zoo.models[m], data, s) for m, s in zoo.specs.items() if s.family == family]
        if asr:
            lines.append(f"  {family:10s} {len(asr)} models, attack success {min(asr):.2f} to {max(asr):.2f}")
    drawn = hunt.test_zoo_specs(seed, len(zoo.specs))
    retrained = sum(a != b for a, b in zip(drawn, zoo.specs.values()))
    lines.append(f"  {retrained} trojaned model(s) retrained (another seed, a higher rate) because the first backdoor "
                 f"moved under {hunt.MIN_ATTACK_SUCCESS:.0%} of the test digits")
    return "\n".join(lines)


def _fmt_ci(value, ci) -> str:
    return f"{value:.3f} [{ci[0]:.3f}, {ci[1]:.3f}]"


def report(rows: list[dict]) -> str:
    """The rows as a Markdown table, then the reference's per-family AUROC on each zoo."""
    lines = ["# Trojan hunt: the reference detector in-sample and held out (cpu)", "",
             "AUROC and cross-entropy (nats, TrojAI's metric; ln 2 = 0.693 is a coin flip) with 95 % bootstrap "
             "intervals over models; 'clean flagged' = clean models flagged at the threshold that catches 90 % "
             "of the trojaned ones." + (f" Seconds per model with {rows[0]['torch_threads']} torch thread(s)."
                                         if rows and rows[0].get("torch_threads") else ""), "",
             "| zoo | detector | models | n (trojaned) | AUROC | cross-entropy | clean flagged / flagged at 90 % | s / model |",
             "|---|---|---|---:|---:|---:|---:|---:|"]
    for r in rows:
        seconds = f"{r['seconds_per_model']:.2f}" if r.get("seconds_per_model") else ""
        lines.append(f"| {r['zoo']} | {r['detector']} | {r['models']} | {r['n_models']} ({r['n_trojaned']}) | "
                     f"{_fmt_ci(r['auroc'], r['auroc_ci'])} | {_fmt_ci(r['cross_entropy'], r['cross_entropy_ci'])} | "
                     f"{r['clean_flagged_at_90pct']} / {r['flagged_at_90pct']} | {seconds} |")
    lines += ["", "Per attack family (the reference; its trojaned models of that family against all clean ones):", ""]
    for r in rows:
        if r["detector"] == "reference" and r.get("families"):
            fams = ", ".join(f"{f} {v['auroc']:.2f} (n={v['n']})" for f, v in r["families"].items())
            lines.append(f"- {r['zoo']}: {fams}")
    for r in rows:
        if r.get("neural_cleanse"):
            nc = r["neural_cleanse"]
            alarms = ", ".join(f"{e} epochs: {n} of {len(nc['by_epochs'][e]['clean'])}"
                               for e, n in sorted(nc["clean_false_alarms_by_epochs"].items()))
            lines.append(f"- {r['zoo']}: Neural Cleanse false alarms (clean models with anomaly index > "
                         f"{nc['threshold']:g}) by training length: {alarms}")
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    from course_utils.zoo import HELD_OUT_RESULTS

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", help="test-zoo seeds for the reference's held-out figures")
    parser.add_argument("--models", type=int, default=None, help="models per test zoo (default 40)")
    parser.add_argument("--notebook", help="score this notebook's my_detector on the test zoo of --seed")
    parser.add_argument("--seed", type=int, help="the test zoo's (secret) seed, with --notebook")
    parser.add_argument("--neural-cleanse", action="store_true",
                        help="also Neural Cleanse's score on every test model, false alarms by epochs (slow)")
    parser.add_argument("--build", action="store_true", help="train (or load) the test zoo of --seed and summarise it")
    parser.add_argument("--timeout", type=float, default=900)
    parser.add_argument("--out", default=str(ROOT / "results" / "hunt-heldout-cpu.md"), help="the Markdown report")
    parser.add_argument("--json", default=str(HELD_OUT_RESULTS),
                        help="the rows as JSON (default: the file lesson 07 shows, shipped inside course_utils)")
    args = parser.parse_args(argv)
    if args.build:
        if args.seed is None:
            parser.error("--build needs --seed")
        print(build_summary(args.seed, args.models))
        return 0
    if args.notebook:
        if args.seed is None:
            parser.error("--notebook needs --seed")
        print(json.dumps(test_zoo_score(args.notebook, args.seed, args.timeout, args.models), indent=1))
        return 0
    if not args.seeds:
        parser.error("give --seeds A B (or --notebook with --seed)")
    rows = bench_rows(args.seeds, args.models, neural_cleanse=args.neural_cleanse)
    for path, text in ((Path(args.json), json.dumps(rows, indent=1)), (Path(args.out), report(rows))):
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    print(report(rows))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
