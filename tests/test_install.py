"""Install files: the CPU-only torch choice, and Binder's pins kept consistent with pyproject and constraints."""

import re
import sys
from pathlib import Path

from packaging.requirements import Requirement
from packaging.specifiers import SpecifierSet
from packaging.version import Version

from course_tools import torch_index

if sys.version_info >= (3, 11):
    import tomllib
else:
    import tomli as tomllib

ROOT = Path(__file__).resolve().parent.parent


def test_cpu_index_only_on_linux_without_nvidia_when_it_answers():
    assert torch_index.choose_index("Darwin", nvidia=False, probe=lambda: True)[0] is None
    assert torch_index.choose_index("Linux", nvidia=True, probe=lambda: True)[0] is None
    index, reason = torch_index.choose_index("Linux", nvidia=False, probe=lambda: False)
    assert index is None and "did not answer" in reason
    index, reason = torch_index.choose_index("Linux", nvidia=False, probe=lambda: True)
    assert index == torch_index.CPU_INDEX and "CPU-only" in reason


def test_unreachable_index_is_answered_quickly():
    # a reserved, unroutable documentation address: must give up within the probe limit, not hang
    import time

    start = time.perf_counter()
    assert torch_index.index_answers("http://192.0.2.1", timeout=0.5) is False
    assert time.perf_counter() - start < 5


def _pins(path: Path) -> dict[str, str]:
    pins = {}
    for line in path.read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line and not line.startswith("-"):
            req = Requirement(line)
            (spec,) = list(req.specifier) or [None]
            if spec is not None and spec.operator == "==":
                pins[req.name.lower()] = spec.version
    return pins


def test_binder_matches_pyproject_and_constraints():
    meta = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    wanted = {Requirement(d).name.lower(): Requirement(d) for d in meta["dependencies"]}
    binder = _pins(ROOT / "binder" / "requirements.txt")
    constraints = _pins(ROOT / "constraints.txt")
    assert {"torch", "torchvision"} <= set(binder), "binder/requirements.txt must pin torch and torchvision exactly"
    for name, version in binder.items():
        assert version.endswith("+cpu"), f"Binder has no GPU: pin the +cpu build of {name}"
        assert Version(version) in wanted[name].specifier, f"binder's {name} {version} breaks pyproject's {wanted[name]}"
        assert Version(version).public == constraints[name], f"binder's {name} {version} is not the tested {constraints[name]}"
    assert "-c ../constraints.txt" in (ROOT / "binder" / "requirements.txt").read_text()
    runtime = (ROOT / "binder" / "runtime.txt").read_text().strip()
    python = re.fullmatch(r"python-(\d+\.\d+)", runtime)
    assert python, f"binder/runtime.txt must read like python-3.11, got {runtime!r}"
    assert Version(python.group(1)) in SpecifierSet(meta["requires-python"])


def test_ci_installs_with_the_constraints():
    makefile = (ROOT / "Makefile").read_text()
    assert "-c constraints.txt" in makefile and "torch_index.py" in makefile
