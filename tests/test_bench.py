"""The benchmark's parts: aggregation, targets, the JSON and Markdown report, notebook timing, and the
wiring into course_utils on a tiny run (one seed, one epoch: it checks plumbing, not figures)."""

import json
import math

import nbformat
import pytest

from course_tools import bench, bench_report, bench_targets
from course_utils import ImageData, evaluation

KEYS = {"profile", "device", "torch", "seeds", "notebook_seconds", "rows", "detection", "neural_cleanse"}


def fake_matrix_rows():
    """Per-seed rows shaped like attack_defense_matrix's (made-up numbers)."""
    rows = []
    for seed, (ca, asr) in enumerate([(0.97, 0.99), (0.96, 1.0)]):
        rows.append({"attack": "badnets", "defense": "none", "seed": seed, "ca": ca, "asr": asr, "ra": 0.01,
                     "seconds": 0.0})
        rows.append({"attack": "badnets", "defense": "fine-pruning", "seed": seed, "ca": ca - 0.02, "asr": 0.05,
                     "ra": 0.9, "seconds": 3.0 + seed})
    return rows


def fake_art(method, implementation, precision, recall, attack="badnets"):
    return {"method": method, "implementation": implementation, "attack": attack, "seed": 0, "removed": 10,
            "precision": precision, "recall": recall, "auroc": None, "seconds": 1.0}


def fake_hunt(zoo, auroc, clean_flagged):
    return {"zoo": zoo, "detector": "reference", "models": "all-to-one", "n_models": 37, "n_trojaned": 17,
            "auroc": auroc, "auroc_ci": [auroc - 0.05, 1.0], "cross_entropy": 0.3, "cross_entropy_ci": [0.1, 0.5],
            "clean_flagged_at_90pct": clean_flagged, "flagged_at_90pct": 16 + clean_flagged, "seconds_per_model": 1.4}


def fake_report(**overrides):
    rows = [bench.clean_row([0.975, 0.971], [0.01, 0.02], [5.0, 6.0])]
    rows += bench.bench_rows(evaluation.summarize_matrix(fake_matrix_rows()))
    report = {"profile": "cpu", "device": "cpu (x86_64)", "torch": "2.x", "seeds": [0, 1], "data": "mnist-sample",
              "created": "today", "bench_seconds": 12.0, "rows": rows,
              "notebook_seconds": {"00_a.ipynb": {"cold": 100.0, "warm": 20.0, "errors": []},
                                   "01_b.ipynb": {"cold": 200.0, "warm": None, "errors": ["warm: timeout"]}},
              "detection": bench.detection_rows([{"detector": "strip", "attack": "badnets", "seed": s, "auroc": a}
                                                 for s, a in enumerate([0.95, 0.97])]),
              "neural_cleanse": {"runs": 5, "backdoored_flagged": 4, "clean_flagged": 2, "seeds": [0, 1, 2, 3, 4]},
              "trojan_hunt": {"detector": "nc", "models": 14, "trojaned": 7, "clean": 7, "auroc": 0.9},
              "matrix_seconds": 300.0,
              "reference_workload": {"fit_seconds": 9.8, "matmul_seconds": 1.0, "threads": 2},  # twice as slow
              "course_in_order": {"total": 1100.0, "per_notebook": {"00_a.ipynb": 400.0, "01_b.ipynb": 700.0},
                                  "errors": []},
              "art_compare": [fake_art("activation clustering", "course, course rule", 0.95, 1.0),
                              fake_art("activation clustering", "ART 1.20", 0.1, 0.7),
                              fake_art("spectral signatures", "course, course rule", 0.8, 1.0),
                              fake_art("STRIP", "course, paper rule", 0.95, 0.95),
                              fake_art("STRIP", "ART 1.20", 0.97, 0.99)],
              "hunt_heldout": [fake_hunt("test seed 1 (held out)", 0.97, 1), fake_hunt("test seed 2 (held out)", 0.9, 4)],
              "tests": {"created": "today", "tests": 2, "seconds": 30.0,
                        "slowest": [{"test": "tests/test_a.py::test_slow", "seconds": 25.0}]}}
    report.update(overrides)
    return report


def test_bench_rows_keep_the_issue_layout():
    rows = bench.bench_rows(evaluation.summarize_matrix(fake_matrix_rows()))
    fp = next(r for r in rows if r["defense"] == "fine-pruning")
    assert {"attack", "defense", "ca_mean", "ca_std", "asr_mean", "asr_std", "seconds"} <= set(fp)
    assert fp["asr_mean"] == pytest.approx(0.05) and fp["seconds"] == pytest.approx(3.5)
    assert fp["ca_mean"] == pytest.approx(0.945) and fp["ca_std"] == pytest.approx(0.00707, abs=1e-4)
    assert 0.5 < fp["der_mean"] <= 1.0  # ASR gone at a small CA cost


def test_detection_rows_and_clean_row():
    rows = bench.detection_rows([{"detector": "ss", "attack": "badnets", "seed": s, "auroc": a}
                                 for s, a in enumerate([0.8, 0.9, 1.0])])
    assert rows == [{"detector": "ss", "attack": "badnets", "auroc_mean": pytest.approx(0.9),
                     "auroc_std": pytest.approx(0.1), "n": 3}]
    clean = bench.clean_row([0.97], [0.01], [float("nan")])
    assert clean["ca_std"] == 0.0 and math.isnan(clean["seconds"])


def test_targets_say_met_and_not_met():
    found = {t["what"].split(" (")[0]: t for t in bench_targets.targets(fake_report())}
    # times are judged after scaling to a 4.9 s fit: this machine's fit took 9.8 s, so they count half
    alone = found["each notebook alone, cold cache"]
    assert alone["met"] is True and alone["value"] == "200 s here, 100 s scaled to a 4.9 s fit"
    assert found["the whole course in order, one cache starting empty"]["met"] is True  # 550 s scaled
    assert found["activation clustering, badnets 5 %: removal rule, and not behind ART"]["met"] is True
    assert found["spectral signatures, badnets 5 %: removal rule, and not behind ART"]["met"] is False  # 0.8
    assert found["STRIP, badnets 5 %: removal rule, and not behind ART"]["met"] is False  # ART is ahead
    whole = {t["what"]: t for t in bench_targets.targets(fake_report())}
    assert whole["trojan hunt, test seed 1 (held out): reference AUROC, all-to-one"]["met"] is True
    assert whole["trojan hunt, test seed 2 (held out): reference AUROC, all-to-one"]["met"] is False
    assert whole["trojan hunt, test seed 2 (held out): clean models flagged at 90 % of trojans caught"]["met"] is False
    assert found["clean model CA"]["met"] is True  # 97.3 % >= 94 % on the offline sample
    assert found["BadNets 10 %: ASR"]["met"] is True
    assert found["Neural Cleanse flags the BadNets target"]["met"] is True
    assert found["Neural Cleanse flags clean models"]["met"] is False  # 2 of 5 > 1 of 5
    assert found["strip AUROC, BadNets 5 %"]["met"] is True
    assert found["repairs with BadNets ASR <= 10 % and CA drop <= 5 points"]["met"] is False  # only 1 measured
    assert found["trojan hunt: reference detector AUROC over 14 models"]["met"] is True


def test_targets_come_from_the_data_file():
    spec = bench_targets.load_targets()
    assert spec["badnets"]["min_asr"] == 0.95 and "adv-unlearning" in spec["repairs"]["methods"]
    stricter = {**spec, "notebooks": {**spec["notebooks"], "max_seconds_cold": 50}}
    found = {t["what"].split(" (")[0]: t for t in bench_targets.targets(fake_report(), stricter)}
    assert found["each notebook alone, cold cache"]["target"] == "<= 50 s"


def test_report_files_valid_json_and_markdown(tmp_path):
    report = fake_report()
    report["rows"][0]["asr_std"] = float("nan")
    report["targets"] = bench_targets.targets(report)
    json_path, md_path = bench_report.write_report(report, tmp_path)
    assert json_path.name == "bench-cpu.json" and md_path.name == "bench-cpu.md"
    data = json.loads(json_path.read_text())  # strict JSON: the nan became null
    assert KEYS <= set(data) and data["rows"][0]["asr_std"] is None
    assert all(0.0 <= r["ca_mean"] <= 1.0 and 0.0 <= r["asr_mean"] <= 1.0 for r in data["rows"])
    assert set(data["notebook_seconds"]["00_a.ipynb"]) >= {"cold", "warm"}
    assert set(data["neural_cleanse"]) >= {"runs", "backdoored_flagged", "clean_flagged"}
    md = md_path.read_text()
    assert "| badnets | fine-pruning | 94.5 ± 0.7 | 5.0 ± 0.0 |" in md
    assert "| 01_b.ipynb | 200 | 20.4 | failed | 700 |  | warm: timeout |" in md and "**no**" in md
    assert "| **the course in order** | | | | **1100** |" in md and "x fit" in md
    report["student_notebook_seconds"] = {"00_a.ipynb": {"cold": 500.0, "warm": None, "errors": [], "cells": []}}
    md = bench_report.to_markdown(report)
    assert "| 00_a.ipynb |" in md and "| 500 |" in md
    student = [t for t in bench_targets.targets(report) if t["what"].startswith("each student copy")]
    assert len(student) == 1 and student[0]["met"] is False  # 500 s here, 250 s scaled > 180 s
    assert "| tests/test_a.py::test_slow | 25.0 |" in md and "Detectors beside IBM ART" in md
    report["tests"]["parts"] = {"unit tests": 120.4, "solutions (nbval)": 590.2}
    assert "| solutions (nbval) | 590 |" in bench_report.to_markdown(report)
    assert "test seed 2 (held out)" in md
    assert "AUROC 0.900" in md and "| attack x defense matrix | 300 |" in md


def test_keep_earlier_fills_skipped_parts():
    earlier = fake_report(created="yesterday")
    report = {"profile": "cpu", "rows": [], "notes": []}
    bench_report.keep_earlier(report, earlier, ["notebook_seconds"])
    assert report["notebook_seconds"] == earlier["notebook_seconds"] and "yesterday" in report["notes"][0]
    assert report["rows"] == []  # not skipped: left alone
    bench_report.keep_earlier(report, None, ["rows"])  # nothing earlier: nothing to do


def test_carried_notebook_times_are_scaled_by_the_fit_they_were_measured_with():
    earlier = fake_report(created="yesterday")
    earlier["reference_workload"] = {"fit_seconds": 9.8, "matmul_seconds": 0.3}  # a slow day
    report = {"profile": "cpu", "rows": [], "notes": [], "reference_workload": {"fit_seconds": 4.9, "matmul_seconds": 0.3}}
    bench_report.keep_earlier(report, earlier, ["notebook_seconds"])
    assert report["carried_workloads"]["notebook_seconds"]["fit_seconds"] == 9.8
    cold = max(t["cold"] for t in report["notebook_seconds"].values())
    row = next(t for t in bench_targets.targets(report) if t["what"].startswith("each notebook alone"))
    assert f"{cold * 4.9 / 9.8:.0f} s scaled" in row["value"]  # the earlier fit, not this run's
    earlier["student_notebook_seconds"] = {"00_a.ipynb": {"cold": 98.0, "warm": None, "errors": []}}
    fresh = {"profile": "cpu", "notes": [], "reference_workload": {"fit_seconds": 4.9, "matmul_seconds": 0.3},
             "notebook_seconds": {"00_a.ipynb": {"cold": 50.0, "warm": None, "errors": []}}}
    bench_report.keep_earlier(fresh, earlier, ["student_notebook_seconds"])  # notebooks timed again, copies not
    copy_row = next(t for t in bench_targets.targets(fresh) if t["what"].startswith("each student copy"))
    assert "49 s scaled" in copy_row["value"] and "another run" in bench_report.to_markdown(fresh)
    again = {"profile": "cpu", "notes": [], "reference_workload": {"fit_seconds": 6.0}}
    bench_report.keep_earlier(again, report, ["notebook_seconds"])  # carried twice: still the fit of its run
    assert again["carried_workloads"]["notebook_seconds"]["fit_seconds"] == 9.8
    assert "from the run of yesterday" in again["notes"][-1]  # the run that measured them, not the one between


def test_time_notebooks_cold_then_warm(tmp_path, monkeypatch):
    """A stand-in lesson that 'trains' (writes a model file) only when its cache misses."""
    (tmp_path / "data").mkdir()
    monkeypatch.setenv("BACKDOOR_COURSE_CACHE", str(tmp_path))  # the real cache whose data/ is shared
    code = ("import os, pathlib\n"
            "cache = pathlib.Path(os.environ['BACKDOOR_COURSE_CACHE'])\n"
            "model = cache / 'models' / 'm.pt'\n"
            "hit = model.exists()\n"
            "model.parent.mkdir(exist_ok=True)\n"
            "model.write_text('weights')\n"
            "assert (cache / 'data').resolve() == pathlib.Path(os.environ['REAL_DATA']).resolve()\n"
            "with open(os.environ['BENCH_LOG'], 'a') as f:\n"
            "    f.write('hit ' if hit else 'miss ')")
    path = tmp_path / "00_tiny.ipynb"
    nbformat.write(nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(code)]), path)
    broken = tmp_path / "01_broken.ipynb"
    nbformat.write(nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("1 / 0")]), broken)
    monkeypatch.setenv("BENCH_LOG", str(tmp_path / "log.txt"))
    monkeypatch.setenv("REAL_DATA", str(tmp_path / "data"))
    made, real = [], bench.fresh_cache
    monkeypatch.setattr(bench, "fresh_cache", lambda: made.append(real()) or made[-1])
    times = bench.time_notebooks([path, broken], timeout=300, progress=False)
    assert (tmp_path / "log.txt").read_text() == "miss hit "
    assert times["00_tiny.ipynb"]["cold"] > 0 and times["00_tiny.ipynb"]["warm"] > 0
    assert times["00_tiny.ipynb"]["errors"] == []
    assert any("ZeroDivisionError" in e for e in times["01_broken.ipynb"]["errors"])
    assert len(made) == 2 and not any(p.exists() for p in made), "each notebook's cache is deleted after"
    assert not (tmp_path / "models").exists(), "the real cache is left alone"


def test_wiring_on_a_tiny_run(digits):
    """One seed, one epoch, a few defenses: every course_utils call the bench makes, with real code."""
    digits = ImageData(digits.x_train[:800], digits.y_train[:800], digits.x_train[1000:1600],  # 600 test images:
                       digits.y_train[1000:1600], name="mnist-800", source="test slice",  # 400 for the defender
                       classes=digits.classes)
    seeds = [0]
    clean = bench.measure_clean(digits, seeds, epochs=1)
    assert clean["attack"] == "clean" and 0 <= clean["ca_mean"] <= 1
    rows = bench.measure_matrix(digits, seeds, ["badnets"], ["none", "strip", "fine-tuning"], epochs=1, progress=False)
    assert {(r["attack"], r["defense"]) for r in rows} == {("badnets", d) for d in ("none", "strip", "fine-tuning")}
    assert all(0 <= r["asr_mean"] <= 1 and r["seconds"] >= 0 for r in rows)
    per_seed = bench.measure_detectors(digits, seeds, ["badnets"], epochs=1, progress=False)
    assert {r["detector"] for r in per_seed} == set(bench.DETECTORS)
    assert all(0 <= r["auroc"] <= 1 for r in per_seed)
    nc = bench.measure_neural_cleanse(digits, [0], epochs=1, progress=False, steps=10)
    assert nc["runs"] == 1 and nc["backdoored_flagged"] in (0, 1) and nc["clean_flagged"] in (0, 1)


def test_slowest_tests_from_junit_xml(tmp_path):
    junit = tmp_path / "junit.xml"
    junit.write_text('<testsuites><testsuite name="pytest">'
                     '<testcase classname="tests.test_a" name="test_fast" time="0.5"/>'
                     '<testcase classname="tests.test_a" name="test_slow" time="12.25"/>'
                     '<testcase classname="solutions.01.ipynb" name="Cell 3" time="40"/>'
                     '</testsuite></testsuites>')
    found = bench.slowest_tests(junit, n=2)
    assert found["tests"] == 3 and found["seconds"] == 52.8
    assert [t["test"] for t in found["slowest"]] == ["solutions.01.ipynb::Cell 3", "tests.test_a::test_slow"]
    assert found["parts"] == {"solutions (nbval)": 40.0, "unit tests": 12.8}
    assert bench.slowest_tests(tmp_path / "missing.xml") is None
    (tmp_path / "junit-tools.xml").write_text('<testsuites><testsuite name="pytest">'
                                              '<testcase classname="tests.test_grading_tools" name="test_otter" time="30"/>'
                                              '<testcase classname="notebooks.01.ipynb" name="Cell 1" time="1"/>'
                                              '</testsuite></testsuites>')
    junit.write_text(junit.read_text().replace("</testsuite>", '<testcase classname="notebooks.01.ipynb" name="Cell 1" '
                                                              'time="2"/></testsuite>'))
    parts = bench.slowest_tests(junit)["parts"]
    assert parts == {"solutions (nbval)": 40.0, "unit tests": 12.8, "student copies (nbval)": 2.0,
                     "tools round trips": 31.0}


def test_course_in_order_shares_one_cache(tmp_path, monkeypatch):
    """The second notebook finds the model the first one trained; a failing notebook makes the total None."""
    (tmp_path / "data").mkdir()
    monkeypatch.setenv("BACKDOOR_COURSE_CACHE", str(tmp_path))
    code = ("import os, pathlib\n"
            "model = pathlib.Path(os.environ['BACKDOOR_COURSE_CACHE']) / 'models' / 'm.pt'\n"
            "found = 'hit' if model.exists() else 'miss'\n"
            "model.parent.mkdir(exist_ok=True)\n"
            "model.write_text('weights')\n"
            "assert found == {want!r}, found")
    first, second = tmp_path / "00_first.ipynb", tmp_path / "01_second.ipynb"
    nbformat.write(nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(code.format(want="miss"))]), first)
    nbformat.write(nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(code.format(want="hit"))]), second)
    course = bench.time_course_in_order([first, second], timeout=300, progress=False)
    assert course["errors"] == [] and course["total"] > 0 and set(course["per_notebook"]) == {first.name, second.name}
    course = bench.time_course_in_order([second], timeout=300, progress=False)  # alone, its cache is empty
    assert course["total"] is not None and any("AssertionError" in e for e in course["errors"])
    assert not (tmp_path / "models").exists(), "the real cache is left alone"


def test_make_test_is_scaled_by_the_fits_timed_beside_it():
    workload = bench.adjacent_workload({"fit_seconds": 5.0, "matmul_seconds": 0.2, "threads": 2},
                                       {"fit_seconds": 7.0, "matmul_seconds": 0.3, "threads": 2})
    assert (workload["fit_seconds"], workload["fit_before"], workload["fit_after"]) == (6.0, 5.0, 7.0)
    make_test = {"seconds": 1000.0, "install_seconds": 80.0, "returncode": 0, "tail": "", "tests": None,
                 "reference_workload": workload}
    report = {"profile": "cpu", "notes": [], "reference_workload": {"fit_seconds": 4.9, "matmul_seconds": 0.3},
              "make_test": make_test}
    row = next(t for t in bench_targets.targets(report) if t["what"].startswith("make test"))
    assert f"{1000 * 4.9 / 6.0:.0f} s scaled" in row["value"] and row["met"]  # 817 s: its own fits, not the run's
    assert "just before it (5.00 s) and just after it (7.00 s): 6.00 s" in bench_report.to_markdown(report)
    later = {"profile": "cpu", "notes": [], "reference_workload": {"fit_seconds": 9.0}}
    bench_report.keep_earlier(later, report, ["make_test"])  # carried: still scaled by the fits beside it
    row = next(t for t in bench_targets.targets(later) if t["what"].startswith("make test"))
    assert f"{1000 * 4.9 / 6.0:.0f} s scaled" in row["value"]
    old = {**report, "make_test": {k: v for k, v in make_test.items() if k != "reference_workload"}}
    row = next(t for t in bench_targets.targets(old) if t["what"].startswith("make test"))
    assert "1000 s scaled" in row["value"] and not row["met"]  # an older report without them: the run's fit
