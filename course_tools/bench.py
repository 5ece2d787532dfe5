"""The course benchmark: attack x defense matrix, detectors and notebook run times, on this machine.

    python -m course_tools.bench [--seeds 0 1 2] [--skip-notebooks] [--fresh-clone-test]   # or: make bench

Measures, then writes results/bench-<profile>.json and results/bench-<profile>.md (the README
links the latter; `bench_report` renders them) with every figure checked against the targets
in course_tools/targets.toml (`bench_targets`):

- the attack x defense matrix of lesson 06 (`course_utils.evaluation.attack_defense_matrix`),
  mean and std over the seeds, plus the clean models it is compared with;
- the detectors of lesson 03 at 5 % poison: STRIP, Activation Clustering and Spectral
  Signatures, AUROC mean and std over the seeds;
- Neural Cleanse on 5 BadNets and 5 clean models (seeds 0-4): how many it flags;
- IBM ART's ActivationDefence, SpectralSignatureDefense and STRIP beside the course's detectors on
  the same models (`art_compare`; skip with --skip-art);
- lesson 07's reference detector in-sample and on the held-out test zoos of HUNT_SEEDS (`hunt`);
- a reference workload (one standard fit, a matrix-multiply loop): every time is also reported as a
  multiple of it, and the time targets are judged after scaling to the machine targets.toml names;
- every solutions/ notebook run alone, top to bottom in a fresh kernel, with an empty model cache
  (cold; its ten slowest cells kept) and again with that cache (warm; --no-warm skips it), then the
  whole course in order sharing one cache that starts empty;
- the ten slowest tests of the last `make test` (its JUnit XML), or with --fresh-clone-test of a
  `make test` this run times in a fresh clone, install included, scaled by the reference workload
  timed just before and just after it (a fit drifted by 10 % within the hour of a whole bench).

Models are trained in a fresh cache folder (``--cache`` to keep or reuse one), so the
timings are those of this run. The machine's load average is recorded beside them: on a
shared machine every timing is inflated by the other work.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import shutil
import sys
import tempfile
import time
from collections.abc import Iterable, Sequence
from datetime import datetime, timezone
from pathlib import Path

from .bench_report import RESULTS, keep_earlier, to_markdown, write_report
from .bench_targets import targets
from .execute import environment, execute_notebook

ROOT = Path(__file__).resolve().parent.parent
ATTACKS = ("badnets", "blended", "wanet", "clean-label")  # the matrix: lessons 01-02's attacks, 10 % poison
DETECTION_ATTACKS = ("badnets", "blended", "wanet")  # the detectors at 5 % poison
DETECTORS = ("strip", "activation-clustering", "spectral-signatures")
NOTEBOOK_TIMEOUT = 1800  # seconds; a notebook past this is reported as timed out
CACHE_ENV = "BACKDOOR_COURSE_CACHE"
JUNIT = ROOT / ".cache" / "test" / "junit.xml"  # make test writes its per-test times here
# The held-out test zoos of the reference detector: 16180 was drawn after its last change (the warp search);
# 31415 and 27182 were looked at before it and are labelled so (course_tools.hunt.SEEDS_SEEN).
HUNT_SEEDS = (16180, 27182, 31415)


# ---------------------------------------------------------------- aggregation over seeds
def _mean_std(values: Sequence[float]) -> tuple[float, float]:
    from course_utils.metrics import mean_std

    values = [v for v in values if v is not None and math.isfinite(v)]
    return mean_std(values) if values else (math.nan, math.nan)


def bench_rows(summary: list[dict]) -> list[dict]:
    """The JSON rows from `evaluation.summarize_matrix` output: CA/ASR mean and std, defense seconds, RA, DER."""
    keep = ("ca_mean", "ca_std", "asr_mean", "asr_std", "ra_mean", "ra_std", "der_mean", "der_std")
    return [{"attack": r["attack"], "defense": r["defense"], **{k: r[k] for k in keep if k in r},
             "seconds": r.get("seconds_mean", math.nan), "n": r.get("n")} for r in summary]


def clean_row(cas: Sequence[float], asrs: Sequence[float], seconds: Sequence[float]) -> dict:
    """The row of the clean models (no attack, no defense); asr = BadNets trigger on a clean model."""
    ca, ca_std = _mean_std(cas)
    asr, asr_std = _mean_std(asrs)
    return {"attack": "clean", "defense": "none", "ca_mean": ca, "ca_std": ca_std, "asr_mean": asr,
            "asr_std": asr_std, "seconds": _mean_std(seconds)[0], "n": len(cas)}


def detection_rows(per_seed: list[dict]) -> list[dict]:
    """[{"detector", "attack", "seed", "auroc"}] -> [{"detector", "attack", "auroc_mean", "auroc_std", "n"}]."""
    groups: dict[tuple[str, str], list[float]] = {}
    for r in per_seed:
        groups.setdefault((r["detector"], r["attack"]), []).append(r["auroc"])
    out = []
    for (detector, attack), values in groups.items():
        mean, std = _mean_std(values)
        out.append({"detector": detector, "attack": attack, "auroc_mean": mean, "auroc_std": std, "n": len(values)})
    return out


# ---------------------------------------------------------------- writing the report
# ---------------------------------------------------------------- notebook timing
def fresh_cache(base: Path | None = None) -> Path:
    """An empty model cache folder whose data/ points at the real cache's data (no re-download)."""
    from course_utils.cache import cache_dir

    folder = Path(tempfile.mkdtemp(prefix="bench-cache-", dir=base))
    data = cache_dir() / "data"
    if data.is_dir():
        (folder / "data").symlink_to(data, target_is_directory=True)
    return folder


def _cell_label(nb, index: int) -> str:
    """'[12] 41812418: first line of the source' for the report's slowest-cells table."""
    cell = nb.cells[index]
    first = next((line for line in cell.source.splitlines() if line.strip()), "")[:60]
    return f"[{index}] {cell.get('id', '?')}: {first}"


def run_notebook(path: Path, timeout: float = NOTEBOOK_TIMEOUT) -> tuple[float | None, list[str], list[dict]]:
    """Seconds to run `path` top to bottom in a fresh kernel (None if it timed out or died), its errors,
    and its cells' seconds ([{"cell", "seconds"}], slowest first).

    Headless (no widget round trip) with a per-cell limit, so a stuck cell is named, never waited on forever.
    """
    run = execute_notebook(path, path.parent.resolve(), cell_timeout=timeout, total_timeout=timeout, retries=0,
                           keep_outputs=False)
    cells = sorted(({"cell": _cell_label(run.notebook, i), "seconds": s} for i, s in enumerate(run.cell_seconds)),
                   key=lambda c: -c["seconds"])
    if run.status != "ok":
        return None, [f"{run.status}: {run.message}", *run.cell_errors], cells
    return run.seconds, run.cell_errors, cells


def time_notebooks(paths: Iterable[Path], timeout: float = NOTEBOOK_TIMEOUT, progress: bool = True,
                   warm: bool = True) -> dict:
    """{name: {"cold", "warm", "errors", "cells"}}: each notebook alone with an empty model cache (cold),
    then, if `warm`, again with the cache it filled. "cells": the cold run's ten slowest cells."""
    from tqdm.auto import tqdm

    paths = list(paths)
    out = {}
    for path in tqdm(paths, desc="notebooks alone (cold, warm)" if warm else "notebooks alone (cold)",
                     disable=not progress):
        cache = fresh_cache()
        try:
            with environment(**{CACHE_ENV: str(cache)}):
                cold, errors_cold, cells = run_notebook(path, timeout)
                warm_s, errors_warm = (run_notebook(path, timeout)[:2] if warm else (None, []))
        finally:
            shutil.rmtree(cache, ignore_errors=True)
        errors = [f"cold: {e}" for e in errors_cold] + [f"warm: {e}" for e in errors_warm]
        out[path.name] = {"cold": cold, "warm": warm_s, "errors": errors, "cells": cells[:10]}
    return out


def time_course_in_order(paths: Iterable[Path], timeout: float = NOTEBOOK_TIMEOUT, progress: bool = True) -> dict:
    """The course as a learner meets it: every notebook in order, one kernel each, sharing one model cache
    that starts empty. {"total": seconds or None if one failed, "per_notebook": {name: seconds}, "errors"}."""
    from tqdm.auto import tqdm

    per_notebook, errors = {}, []
    cache = fresh_cache()
    try:
        with environment(**{CACHE_ENV: str(cache)}):
            for path in tqdm(list(paths), desc="course in order (one cache)", disable=not progress):
                seconds, problems, _ = run_notebook(path, timeout)
                per_notebook[path.name] = seconds
                errors += [f"{path.name}: {e}" for e in problems]
    finally:
        shutil.rmtree(cache, ignore_errors=True)
    failed = any(v is None for v in per_notebook.values())
    return {"total": None if failed else round(sum(per_notebook.values()), 1), "per_notebook": per_notebook,
            "errors": errors}


def reference_workload(data=None) -> dict:
    """The yardstick every time is also divided by, so that two machines compare as ratios.

    fit_seconds: one standard model fit (the profile's model, seed 0, on the whole training set, the
    profile's recipe) in the contiguous memory layout the course used before it trained channels_last
    on the CPU, so that the yardstick does not move when the course gets faster; matmul_seconds: 40
    products of two 1024 x 1024 float32 matrices. Both on this process's torch threads.
    """
    import torch

    import course_utils as cu
    from course_utils import train

    data = data if data is not None else cu.load_data()
    layouts, train.CHANNELS_LAST_DEVICES = train.CHANNELS_LAST_DEVICES, ()
    try:
        model = cu.make_model(seed=0)
        start = time.perf_counter()
        train.fit(model, data.x_train, data.y_train, seed=0, progress=False)
        fit_seconds = time.perf_counter() - start
    finally:
        train.CHANNELS_LAST_DEVICES = layouts
    a = torch.randn(1024, 1024, generator=torch.Generator().manual_seed(0))
    start = time.perf_counter()
    for _ in range(40):
        b = a @ a
    matmul_seconds = time.perf_counter() - start
    del b
    return {"fit_seconds": round(fit_seconds, 2), "matmul_seconds": round(matmul_seconds, 3),
            "threads": torch.get_num_threads()}


def adjacent_workload(before: dict, after: dict) -> dict:
    """The yardstick for a long phase: the mean of `reference_workload` timed just before and just after
    it (the fit alone drifted by 10 % within an hour here), with both kept."""
    return {"fit_seconds": round((before["fit_seconds"] + after["fit_seconds"]) / 2, 2),
            "matmul_seconds": round((before["matmul_seconds"] + after["matmul_seconds"]) / 2, 3),
            "threads": after["threads"], "fit_before": before["fit_seconds"], "fit_after": after["fit_seconds"]}


def _test_part(name: str) -> str:
    """Which part of `make test` a JUnit case belongs to: the notebooks' cells by their folder."""
    folder = name.split(".", 1)[0]
    return {"solutions": "solutions (nbval)", "notebooks": "student copies (nbval)"}.get(folder, "unit tests")


def slowest_tests(junit: Path = JUNIT, n: int = 10) -> dict | None:
    """The last `make test`'s {"created", "tests", "seconds", "slowest": [{"test", "seconds"}], "parts":
    {part: seconds}} from the JUnit XML pytest wrote there (and the tools round trips' file beside it,
    junit-tools.xml, when there is one), or None if there is none yet."""
    import xml.etree.ElementTree as ET

    junit = Path(junit)
    if not junit.exists():
        return None
    cases = [(f"{c.get('classname', '')}::{c.get('name', '')}", float(c.get("time", 0)))
             for c in ET.parse(junit).getroot().iter("testcase")]
    cases.sort(key=lambda c: -c[1])
    parts: dict[str, float] = {}
    for name, t in cases:
        parts[_test_part(name)] = parts.get(_test_part(name), 0.0) + t
    tools = junit.with_name("junit-tools.xml")
    if tools.exists():
        parts["tools round trips"] = sum(float(c.get("time", 0)) for c in ET.parse(tools).getroot().iter("testcase"))
    created = datetime.fromtimestamp(junit.stat().st_mtime, timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    return {"created": created, "tests": len(cases), "seconds": round(sum(t for _, t in cases), 1),
            "slowest": [{"test": name, "seconds": round(t, 1)} for name, t in cases[:n]],
            "parts": {part: round(t, 1) for part, t in parts.items()}}


def time_make_test_fresh_clone(base: Path | None = None) -> dict:
    """`git clone` this repository into a temporary folder and run `make test` there (the install
    included), as CI does. {"seconds", "install_seconds", "returncode", "tail", "tests"}."""
    import subprocess

    folder = Path(tempfile.mkdtemp(prefix="bench-clone-", dir=base))
    try:
        subprocess.run(["git", "clone", "--quiet", str(ROOT), str(folder / "course")], check=True)
        clone = folder / "course"
        start = time.perf_counter()
        install = subprocess.run(["make", ".venv/installed"], cwd=clone, capture_output=True, text=True)
        install_seconds = time.perf_counter() - start
        run = subprocess.run(["make", "test"], cwd=clone, capture_output=True, text=True) \
            if install.returncode == 0 else install
        seconds = time.perf_counter() - start
        tests = slowest_tests(clone / JUNIT.relative_to(ROOT))
        return {"seconds": round(seconds, 1), "install_seconds": round(install_seconds, 1),
                "returncode": run.returncode, "tail": (run.stdout + run.stderr)[-1500:], "tests": tests}
    finally:
        shutil.rmtree(folder, ignore_errors=True)


# ---------------------------------------------------------------- the measurements (course_utils does the work)
def measure_clean(data, seeds: Sequence[int], epochs: int | None = None) -> dict:
    """The clean models every attack is compared with: CA, and the BadNets trigger's 'ASR' on them.

    seconds: the time `train_model` took, which is the training time in the bench's fresh cache
    (only a load if the cache already held the model).
    """
    import course_utils as cu

    badnets = cu.make_attack("badnets")
    cas, asrs, seconds = [], [], []
    for seed in seeds:
        start = time.perf_counter()
        model = cu.train_model(data, seed=seed, epochs=epochs, progress=False)
        seconds.append(time.perf_counter() - start)
        scores = cu.metrics.evaluate(model, data, badnets)
        cas.append(scores.ca)
        asrs.append(scores.asr)
    return clean_row(cas, asrs, seconds)


def measure_matrix(data, seeds: Sequence[int], attacks: Sequence[str] = ATTACKS, defenses: Sequence[str] | None = None,
                   epochs: int | None = None, progress: bool = True, per_seed: list | None = None) -> list[dict]:
    """Lesson 06's attack x defense matrix, summarised over seeds (`evaluation.summarize_matrix`).

    per_seed: if given, the per-seed rows of `attack_defense_matrix` are appended to it.
    """
    from course_utils import evaluation

    defenses = list(defenses or evaluation.defense_names())
    rows = evaluation.attack_defense_matrix(data, list(attacks), defenses, list(seeds), epochs=epochs,
                                            progress=progress)
    if per_seed is not None:
        per_seed.extend({k: v for k, v in r.items() if isinstance(v, (int, float, str, bool))} for r in rows)
    return bench_rows(evaluation.summarize_matrix(rows))


DEFENDER_IMAGES = 400  # lesson 03: the defender holds the first 400 test images (NC, STRIP's overlays)


def measure_detectors(data, seeds: Sequence[int], attacks: Sequence[str] = DETECTION_ATTACKS, rate: float = 0.05,
                      epochs: int | None = None, progress: bool = True) -> list[dict]:
    """AUROC per seed, with lesson 03's protocol, on models trained with `rate` poison:

    STRIP ranks test inputs (the rest of the test set minus the target class, clean vs triggered;
    overlays from the defender's 400 images); Activation Clustering and Spectral Signatures rank
    training samples (clean vs poisoned) on the last conv block's activations.
    """
    import torch
    from tqdm.auto import tqdm

    import course_utils as cu
    from course_utils import detect

    x_defender = data.x_test[:DEFENDER_IMAGES]
    rows = []
    for attack_name, seed in tqdm([(a, s) for a in attacks for s in seeds], desc="detectors", disable=not progress):
        attack = cu.make_attack(attack_name)
        model = cu.train_model(data, attack, rate, seed=seed, epochs=epochs, progress=False)
        poisoned = attack.poison(data.x_train, data.y_train, rate, seed=seed, num_classes=data.num_classes)
        rest_x, rest_y = data.x_test[DEFENDER_IMAGES:], data.y_test[DEFENDER_IMAGES:]
        x_inputs = rest_x[attack.target_labels(rest_y, data.num_classes) != rest_y]
        h_clean = detect.strip_entropy(model, x_inputs, x_defender, seed=1)
        h_trig = detect.strip_entropy(model, attack.apply(x_inputs), x_defender, seed=2)
        triggered = torch.cat([torch.zeros(len(h_clean), dtype=torch.bool), torch.ones(len(h_trig), dtype=torch.bool)])
        feats = detect.layer_features(model, poisoned.x)
        scores = {"strip": (-torch.cat([h_clean, h_trig]), triggered),  # low entropy = suspicious
                  "activation-clustering": (detect.activation_clustering_scores(
                      model, poisoned.x, poisoned.y, features=feats), poisoned.poisoned),
                  "spectral-signatures": (detect.spectral_signature_scores(
                      model, poisoned.x, poisoned.y, features=feats), poisoned.poisoned)}
        for name, (score, positive) in scores.items():
            rows.append({"detector": name, "attack": attack_name, "seed": seed, "auroc": detect.roc(score, positive)[2]})
    return rows


def measure_neural_cleanse(data, seeds: Sequence[int] = range(5), epochs: int | None = None,
                           progress: bool = True, **nc_kwargs) -> dict:
    """Neural Cleanse (lesson 03's settings: the defender's 400 test images, seed 0) on the BadNets
    (10 %) and the clean model of every seed. nc_kwargs go to `detect.neural_cleanse`."""
    from tqdm.auto import tqdm

    import course_utils as cu
    from course_utils import detect

    attack = cu.make_attack("badnets")
    x_defender = data.x_test[:DEFENDER_IMAGES]
    out = {"runs": len(seeds), "backdoored_flagged": 0, "clean_flagged": 0, "seeds": list(seeds),
           "target_anomaly_index": [], "clean_max_anomaly_index": [], "seconds": []}
    for seed in tqdm(list(seeds), desc="Neural Cleanse (backdoored + clean)", disable=not progress):
        backdoored = cu.train_model(data, attack, 0.10, seed=seed, epochs=epochs, progress=False)
        clean = cu.train_model(data, seed=seed, epochs=epochs, progress=False)
        found = detect.neural_cleanse(backdoored, x_defender, seed=0, **nc_kwargs)
        out["backdoored_flagged"] += attack.target in found.flagged
        out["target_anomaly_index"].append(float(found.anomaly_index[attack.target]))
        out["seconds"].append(found.seconds)
        found = detect.neural_cleanse(clean, x_defender, seed=0, **nc_kwargs)
        out["clean_flagged"] += bool(found.flagged)
        out["clean_max_anomaly_index"].append(found.score)
        out["seconds"].append(found.seconds)
    return out


def measure_trojan_hunt(data, clean_fraction: float = 0.05, progress: bool = True) -> dict:
    """Lesson 07's zoo scored by its reference detector (`zoo.reference_detector`) with the lesson's
    clean set (`clean_subset(data, 0.05, seed=0)`): AUROC over the models, and seconds per model."""
    from course_utils import cost_timer, zoo
    from course_utils.repair import clean_subset

    models = zoo.load_zoo(data, progress=progress)
    x_clean, _ = clean_subset(data, clean_fraction, 0)
    with cost_timer() as timer:  # a search loaded from the results cache counts at what it cost
        scores = zoo.score_all(models, zoo.reference_detector, x_clean, progress=progress)
    seconds = timer.seconds / len(models)
    result = zoo.score_detector(scores)
    return {"detector": "zoo.reference_detector", "models": len(scores), "trojaned": result.n_trojaned,
            "clean": result.n_clean, "auroc": result.auroc, "seconds_per_model": seconds}


def _load_average() -> str:
    try:
        return " / ".join(f"{v:.1f}" for v in os.getloadavg())
    except OSError:
        return "n/a"


def header(seeds: Sequence[int]) -> dict:
    """Where and with what this run happens."""
    import torch

    import course_utils as cu

    device = cu.try_device()
    name = f"{device.type} ({torch.cuda.get_device_name(0)})" if device.type == "cuda" else f"{device.type} ({platform.processor() or platform.machine()})"
    return {"profile": cu.get_profile().name, "device": name, "torch": torch.__version__, "seeds": list(seeds),
            "created": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"), "cpu_count": os.cpu_count(),
            "python": platform.python_version(), "load_average_start": _load_average()}


def measure_art(seeds: Sequence[int], progress: bool = True) -> list[dict]:
    """The course's AC, SS and STRIP beside IBM ART's on the same models and data (`art_compare`)."""
    from . import art_compare

    return art_compare.compare(seeds=tuple(seeds), progress=progress)


def measure_hunt_heldout(seeds: Sequence[int], neural_cleanse: bool = False) -> list[dict]:
    """The reference trojan detector in-sample (practice zoo) and on the test zoo of every seed (`hunt.bench_rows`)."""
    from . import hunt

    return hunt.bench_rows(list(seeds), neural_cleanse=neural_cleanse)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description="Benchmark the course on this machine (see the module docstring).")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2], help="seeds of the matrix and detectors")
    parser.add_argument("--nc-seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4], help="seeds of Neural Cleanse")
    parser.add_argument("--attacks", nargs="+", default=list(ATTACKS), help="attacks of the matrix")
    parser.add_argument("--detection-attacks", nargs="+", default=list(DETECTION_ATTACKS),
                        help="attacks the detectors are measured on (5 %% poison)")
    parser.add_argument("--defenses", nargs="+", help="default: every defense of lesson 06")
    parser.add_argument("--skip-notebooks", action="store_true", help="do not time the notebooks")
    parser.add_argument("--skip-matrix", action="store_true",
                        help="skip the matrix, detectors, Neural Cleanse, trojan hunt and ART phases")
    parser.add_argument("--skip-art", action="store_true", help="do not run IBM ART's detectors beside the course's")
    parser.add_argument("--skip-heldout", action="store_true", help="do not score the reference on the test zoos")
    parser.add_argument("--hunt-seeds", type=int, nargs="+", default=list(HUNT_SEEDS), help="test-zoo seeds")
    parser.add_argument("--hunt-neural-cleanse", action="store_true",
                        help="also Neural Cleanse's false alarms on the test zoos' clean models (slow)")
    parser.add_argument("--no-warm", action="store_true", help="time each notebook cold only (not again warm)")
    parser.add_argument("--skip-in-order", action="store_true", help="do not time the whole course in order")
    parser.add_argument("--student-copies", action="store_true",
                        help="also time each student copy (notebooks/) alone from an empty cache")
    parser.add_argument("--fresh-clone-test", action="store_true",
                        help="also time `make test` in a fresh clone, install included (as CI runs it)")
    parser.add_argument("--notebooks", nargs="+", help="only these notebooks (name prefixes, e.g. 00 03)")
    parser.add_argument("--timeout", type=float, default=NOTEBOOK_TIMEOUT, help="seconds allowed per notebook run")
    parser.add_argument("--cache", type=Path, help="model cache to use and keep (default: a fresh one, deleted after)")
    parser.add_argument("--out", type=Path, default=RESULTS, help="where to write the results (default: results/)")
    args = parser.parse_args(argv)

    import course_utils as cu

    start = time.perf_counter()
    report = header(args.seeds)
    report["notes"] = []
    earlier_path = args.out / f"bench-{report['profile']}.json"
    earlier = json.loads(earlier_path.read_text()) if earlier_path.exists() else None

    skipped = [k for k, skip in (("rows", args.skip_matrix), ("notebook_seconds", args.skip_notebooks),
                                 ("student_notebook_seconds", args.skip_notebooks or not args.student_copies),
                                 ("art_compare", args.skip_matrix or args.skip_art),
                                 ("hunt_heldout", args.skip_heldout),
                                 ("make_test", not args.fresh_clone_test)) if skip]

    def save(phase: str) -> None:
        keep_earlier(report, earlier, [k for k in skipped if k not in report])
        report["bench_seconds"] = time.perf_counter() - start
        report["load_average_end"] = _load_average()
        report["targets"] = targets(report)
        paths = write_report(report, args.out)
        print(f"[{phase}] wrote {paths[0]} and {paths[1]} ({report['bench_seconds']:.0f} s so far)", flush=True)

    cu.seed_everything(0)
    report["reference_workload"] = reference_workload()
    report["tests"] = slowest_tests()
    if not args.skip_matrix:
        cache = args.cache or fresh_cache()
        try:
            with environment(**{CACHE_ENV: str(cache)}):
                cu.seed_everything(0)
                data = cu.load_data()
                report["data"] = data.name
                phase = time.perf_counter()
                report["rows"], report["matrix_per_seed"] = [measure_clean(data, args.seeds)], []
                for i, attack in enumerate(args.attacks, 1):  # saved after each attack: a long run shows progress
                    report["rows"] += measure_matrix(data, args.seeds, [attack], args.defenses,
                                                     per_seed=report["matrix_per_seed"])
                    report["matrix_seconds"] = time.perf_counter() - phase
                    save(f"matrix {i}/{len(args.attacks)}: {attack}")
                phase = time.perf_counter()
                per_seed = measure_detectors(data, args.seeds, args.detection_attacks)
                report["detection"], report["detection_per_seed"] = detection_rows(per_seed), per_seed
                report["detection_seconds"] = time.perf_counter() - phase
                save("detectors")
                if not args.skip_art:  # the detectors' 5 % models are in the cache now: ART sees the same ones
                    phase = time.perf_counter()
                    report["art_compare"] = measure_art(args.seeds)
                    report["art_compare_seconds"] = time.perf_counter() - phase
                    save("beside IBM ART")
                phase = time.perf_counter()
                report["neural_cleanse"] = measure_neural_cleanse(data, args.nc_seeds)
                report["neural_cleanse_seconds"] = time.perf_counter() - phase
                save("neural cleanse")
                phase = time.perf_counter()
                report["trojan_hunt"] = measure_trojan_hunt(data)
                report["trojan_hunt_seconds"] = time.perf_counter() - phase
                save("trojan hunt")
        finally:
            if args.cache is None:
                shutil.rmtree(cache, ignore_errors=True)
    if not args.skip_heldout:
        # In the learner's usual model cache, not the bench's fresh one: the test zoos (80 models) are
        # trained once per machine; their training time is recorded by the run that trained them.
        phase = time.perf_counter()
        report["hunt_heldout"] = measure_hunt_heldout(args.hunt_seeds, args.hunt_neural_cleanse)
        report["hunt_heldout_seconds"] = time.perf_counter() - phase
        save("trojan hunt, held out")
    if not args.skip_notebooks:
        paths = sorted((ROOT / "solutions").glob("*.ipynb"))
        if args.notebooks:
            paths = [p for p in paths if any(p.name.startswith(prefix) for prefix in args.notebooks)]
        phase = time.perf_counter()
        report["notebook_seconds"] = time_notebooks(paths, args.timeout, warm=not args.no_warm)
        save("notebooks alone")
        if args.student_copies:  # every exercise unfinished: the copies fall back to the references
            copies = [ROOT / "notebooks" / p.name for p in paths if (ROOT / "notebooks" / p.name).exists()]
            report["student_notebook_seconds"] = time_notebooks(copies, args.timeout, warm=False)
            save("student copies alone")
        if not args.notebooks and not args.skip_in_order:  # the course in order: only for the whole course
            report["course_in_order"] = time_course_in_order(paths, args.timeout)
        report["notebooks_total_seconds"] = time.perf_counter() - phase
        save("course in order")
    if args.fresh_clone_test:
        phase = time.perf_counter()
        before = reference_workload()  # the machine's speed drifts within an hour: time the yardstick beside it
        report["make_test"] = time_make_test_fresh_clone()
        report["make_test"]["reference_workload"] = adjacent_workload(before, reference_workload())
        if report["make_test"].get("tests"):
            report["tests"] = report["make_test"]["tests"]
        save("make test in a fresh clone")
    save("done")
    print(to_markdown(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
