"""The benchmark's targets: read from `targets.toml` (beside this file) and checked against a report.

`targets(report)` returns one row per target, {"what", "target", "value", "met"}, with met
None where this run did not measure it. The numbers live in the TOML file, so changing a
target never means changing code.
"""

from __future__ import annotations

import math
from pathlib import Path

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib

TARGETS_FILE = Path(__file__).resolve().parent / "targets.toml"


def load_targets(path: Path = TARGETS_FILE) -> dict:
    """The targets as a dict of sections (see targets.toml)."""
    return tomllib.loads(Path(path).read_text())


def _row(report: dict, attack: str, defense: str) -> dict | None:
    return next((r for r in report.get("rows", []) if r["attack"] == attack and r["defense"] == defense), None)


def _notebooks(report: dict, spec: dict, add) -> None:
    times = report.get("notebook_seconds", {})
    if not times:
        return
    cold = {name: t.get("cold") for name, t in times.items()}
    slowest = max(cold, key=lambda n: cold[n] if cold[n] is not None else math.inf)
    worst, limit = cold[slowest], spec["max_seconds_cold"]
    add(f"one notebook, top to bottom, cold cache (slowest: {slowest})", f"<= {limit} s",
        f"{worst:.0f} s" if worst is not None else "failed", worst is not None and worst <= limit)
    total = sum(v for v in cold.values() if v is not None)
    failed = any(v is None or t.get("errors") for v, t in zip(cold.values(), times.values()))
    limit = spec["course_max_seconds_cold"]
    add("the whole course, each notebook cold (moonshot)", f"<= {limit} s", f"{total:.0f} s",
        total <= limit and not failed)


def _models(report: dict, spec: dict, add, gpu: bool) -> None:
    clean, badnets = _row(report, "clean", "none"), _row(report, "badnets", "none")
    if clean:
        full = "sample" not in str(report.get("data", "sample")) and not gpu
        c = spec["clean_model"]
        want = c["min_ca_gpu"] if gpu else c["min_ca_full_mnist"] if full else c["min_ca_offline_sample"]
        add(f"clean model CA ({report.get('data')})", f">= {want:.1%}", f"{clean['ca_mean']:.1%}", clean["ca_mean"] >= want)
    if badnets:
        b = spec["badnets"]
        add("BadNets 10 %: ASR", f">= {100 * b['min_asr']:.0f} %", f"{badnets['asr_mean']:.1%}", badnets["asr_mean"] >= b["min_asr"])
        if clean:
            drop = clean["ca_mean"] - badnets["ca_mean"]
            add("BadNets 10 %: CA drop vs clean", f"<= {100 * b['max_ca_drop']:.0f} points", f"{100 * drop:.1f} points",
                drop <= b["max_ca_drop"])
    for attack, want in spec["attacks"]["min_asr"].items():
        r = _row(report, attack, "none")
        if r and not gpu:
            add(f"{attack} 10 %: ASR", f">= {want:.0%}", f"{r['asr_mean']:.1%}", r["asr_mean"] >= want)


def _detectors(report: dict, spec: dict, add) -> None:
    nc, want = report.get("neural_cleanse"), spec["neural_cleanse"]
    if nc:
        runs = nc["runs"]
        # the targets are "k of `want['runs']`"; another number of runs scales them
        need = math.ceil(want["min_backdoored_flagged"] / want["runs"] * runs)
        allow = math.floor(want["max_clean_flagged"] / want["runs"] * runs)
        scaled = "" if runs == want["runs"] else f" (scaled to {runs} runs: >= {need} / <= {allow})"
        add("Neural Cleanse flags the BadNets target", f">= {want['min_backdoored_flagged']} of {want['runs']}{scaled}",
            f"{nc['backdoored_flagged']} of {runs}", nc["backdoored_flagged"] >= need)
        add("Neural Cleanse flags clean models", f"<= {want['max_clean_flagged']} of {want['runs']}{scaled}",
            f"{nc['clean_flagged']} of {runs}", nc["clean_flagged"] <= allow)
    auroc = spec["detectors"]["min_auroc"]
    for r in report.get("detection", []):
        if r["attack"] == "badnets":
            add(f"{r['detector']} AUROC, BadNets 5 %", f">= {auroc:.2f}", f"{r['auroc_mean']:.3f}", r["auroc_mean"] >= auroc)


def _repairs(report: dict, spec: dict, add) -> None:
    badnets, want = _row(report, "badnets", "none"), spec["repairs"]
    if not badnets:
        return
    measured = [d for d in want["methods"] if _row(report, "badnets", d) is not None]
    good = [d for d in measured if (r := _row(report, "badnets", d))["asr_mean"] <= want["max_asr"]
            and badnets["ca_mean"] - r["ca_mean"] <= want["max_ca_drop"]]
    if measured:
        add(f"repairs with BadNets ASR <= {100 * want['max_asr']:.0f} % and CA drop <= {100 * want['max_ca_drop']:.0f} points "
            "(5 % clean data)", f">= {want['min_count']} of " + ", ".join(measured),
            f"{len(good)}: {', '.join(good) or 'none'}", len(good) >= want["min_count"])


def targets(report: dict, spec: dict | None = None) -> list[dict]:
    """Each target with this run's value: {"what", "target", "value", "met"} (met None: not measured).

    spec: the targets (default: `load_targets()`). On the gpu profile only the notebook times,
    the clean model and BadNets are checked (the other targets are the cpu profile's).
    """
    spec = spec or load_targets()
    out = []

    def add(what: str, target: str, value, met):
        out.append({"what": what, "target": target, "value": value, "met": met})

    gpu = report.get("profile") == "gpu"
    _notebooks(report, spec["notebooks"], add)
    _models(report, spec, add, gpu)
    if not gpu:
        _detectors(report, spec, add)
        _repairs(report, spec, add)
    hunt, want = report.get("trojan_hunt"), spec["trojan_hunt"]
    if hunt:
        add(f"trojan hunt: reference detector AUROC over {hunt['models']} models",
            f">= {want['min_auroc']:.2f} over >= {want['min_models']} models", f"{hunt['auroc']:.3f}",
            hunt["auroc"] >= want["min_auroc"] and hunt["models"] >= want["min_models"])
    return out
