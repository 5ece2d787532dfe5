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


def workload_for(report: dict, part: str) -> dict:
    """The reference workload that goes with `part` of the report: the one timed beside the part itself
    when there is one (`make test` keeps the fits just before and after it), else the earlier run's when
    the part was carried over from it (its times were measured on that run's machine state), else this run's."""
    own = (report.get(part) or {}).get("reference_workload") if isinstance(report.get(part), dict) else None
    return own or (report.get("carried_workloads") or {}).get(part) or report.get("reference_workload") or {}


def _scaled(report: dict, spec: dict, seconds: float, part: str) -> tuple[float, str]:
    """`seconds` (of the report's `part`) scaled to the target machine (whose standard fit takes spec's
    reference_fit_seconds) by the fit measured with them, and how the value reads in the table."""
    fit = workload_for(report, part).get("fit_seconds")
    ref = spec.get("reference_fit_seconds")
    if not fit or not ref:
        return seconds, f"{seconds:.0f} s"
    scaled = seconds * ref / fit
    return scaled, f"{seconds:.0f} s here, {scaled:.0f} s scaled to a {ref:g} s fit"


def _time_target(report: dict, spec: dict, add, what: str, limit: float, seconds: float | None, ok: bool = True,
                 part: str = "notebook_seconds") -> None:
    """One time target: "failed" when the run did not finish (`seconds` None or not `ok`), else judged
    after scaling to the target machine."""
    if seconds is None or not ok:
        add(what, f"<= {limit} s", "failed", False)
    else:
        scaled, text = _scaled(report, spec, seconds, part)
        add(what, f"<= {limit} s", text, scaled <= limit)


def _notebooks(report: dict, spec: dict, add) -> None:
    # the solutions' target ignores a run's errors, as before; a student copy that errs fails its target
    for key, what, judge_errors in (("notebook_seconds", "each notebook", False),
                                    ("student_notebook_seconds", "each student copy", True)):
        times = report.get(key, {})
        if times:
            cold = {name: t.get("cold") for name, t in times.items()}
            slowest = max(cold, key=lambda n: cold[n] if cold[n] is not None else math.inf)
            _time_target(report, spec, add, f"{what} alone, cold cache (slowest: {slowest})", spec["max_seconds_cold"],
                         cold[slowest], not (judge_errors and times[slowest].get("errors")), part=key)
    course = report.get("course_in_order")
    if course:
        _time_target(report, spec, add, "the whole course in order, one cache starting empty",
                     spec["course_max_seconds_in_order"], course.get("total"), not course.get("errors"))
    make_test = report.get("make_test")
    if make_test:
        _time_target(report, spec, add, "make test from a fresh clone, install included", spec["make_test_max_seconds"],
                     make_test["seconds"], make_test["returncode"] == 0, part="make_test")


def _art(report: dict, spec: dict, add) -> None:
    """Each course detector's removal rule (course rule) reaches the precision and recall target on the
    attacks of the spec, and is not behind ART's on either."""
    rows = report.get("art_compare") or []
    for attack in spec["attacks"]:
        for method in ("activation clustering", "spectral signatures", "STRIP"):
            rule = "course, paper rule" if method == "STRIP" else "course, course rule"  # the course's default rule
            mine = [r for r in rows if r["attack"] == attack and r["method"] == method and r["implementation"] == rule]
            art = [r for r in rows if r["attack"] == attack and r["method"] == method and r["implementation"].startswith("ART")]
            if not mine:
                continue
            p, rc = (sum(r[k] for r in mine) / len(mine) for k in ("precision", "recall"))
            value = f"precision {p:.2f}, recall {rc:.2f}"
            ahead = True
            if art:
                ap, ar = (sum(r[k] for r in art) / len(art) for k in ("precision", "recall"))
                value += f" (ART: {ap:.2f}, {ar:.2f})"
                ahead = p + rc >= ap + ar
            want = spec["min_precision_recall"]
            add(f"{method}, {attack} {100 * spec['rate']:.0f} %: removal rule, and not behind ART",
                f">= {want:.2f} both", value, p >= want and rc >= want and ahead)


def _hunt_heldout(report: dict, spec: dict, add) -> None:
    """The reference detector on every held-out test zoo: all-to-one AUROC and clean models flagged."""
    for r in report.get("hunt_heldout") or []:
        if r["detector"] != "reference" or r["models"] != "all-to-one" or "held out" not in r["zoo"]:
            continue
        want = spec["min_auroc_all_to_one"]
        add(f"trojan hunt, {r['zoo']}: reference AUROC, all-to-one", f">= {want:.2f}", f"{r['auroc']:.3f}",
            r["auroc"] >= want)
        n_clean = r["n_models"] - r["n_trojaned"]
        share = r["clean_flagged_at_90pct"] / max(n_clean, 1)
        limit = spec["max_clean_flagged_share"]
        add(f"trojan hunt, {r['zoo']}: clean models flagged at 90 % of trojans caught", f"<= {limit:.0%}",
            f"{r['clean_flagged_at_90pct']} of {n_clean}", share <= limit)


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
        _art(report, spec["art_compare"], add)
        _hunt_heldout(report, spec["trojan_hunt"], add)
    hunt, want = report.get("trojan_hunt"), spec["trojan_hunt"]
    if hunt:
        add(f"trojan hunt: reference detector AUROC over {hunt['models']} models",
            f">= {want['min_auroc']:.2f} over >= {want['min_models']} models", f"{hunt['auroc']:.3f}",
            hunt["auroc"] >= want["min_auroc"] and hunt["models"] >= want["min_models"])
    return out
