"""Install the CPU-only build of torch on a machine with no NVIDIA GPU, when PyTorch's CPU index answers.

    python course_tools/torch_index.py [--constraint constraints.txt]

On Linux, `pip install torch` fetches the CUDA build (several GB) even where there is no NVIDIA GPU.
This script, run by `make lab` / `make test` before the course's requirements, installs torch and
torchvision from https://download.pytorch.org/whl/cpu when (1) the machine is Linux, (2) it has no
NVIDIA GPU, and (3) that index answers within a few seconds. Otherwise it does nothing and says why:
the default index then provides torch (on macOS and Windows its wheels are CPU/MPS builds anyway).
Standard library only, so it runs before anything is installed.
"""

from __future__ import annotations

import argparse
import platform
import shutil
import subprocess
import sys
import urllib.request
from pathlib import Path

CPU_INDEX = "https://download.pytorch.org/whl/cpu"
PROBE_SECONDS = 5.0


def has_nvidia_gpu() -> bool:
    """True if an NVIDIA driver or tool is present (then the default CUDA build is the right one)."""
    return Path("/proc/driver/nvidia").exists() or shutil.which("nvidia-smi") is not None


def index_answers(url: str = CPU_INDEX, timeout: float = PROBE_SECONDS) -> bool:
    """True if `url` answers within `timeout` seconds (never waits longer)."""
    try:
        with urllib.request.urlopen(f"{url}/torch/", timeout=timeout) as response:
            return response.status == 200
    except Exception:  # offline, DNS failure, proxy, timeout: all mean "use the default index"
        return False


def choose_index(system: str | None = None, nvidia: bool | None = None, probe=index_answers) -> tuple[str | None, str]:
    """(index URL or None for the default index, the reason in words)."""
    system = system or platform.system()
    if system != "Linux":
        return None, f"{system}: the default torch wheels are already CPU (or MPS) builds"
    if has_nvidia_gpu() if nvidia is None else nvidia:
        return None, "an NVIDIA GPU is present: the default (CUDA) build of torch is the right one"
    if not probe():
        return None, f"no NVIDIA GPU, but {CPU_INDEX} did not answer within {PROBE_SECONDS:g} s: using the default index"
    return CPU_INDEX, f"no NVIDIA GPU: installing the CPU-only torch from {CPU_INDEX} (a small download)"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--constraint", default=None, help="a pip constraints file to respect")
    args = parser.parse_args(argv)
    index, reason = choose_index()
    print(f"torch: {reason}")
    if index is None:
        return 0
    command = [sys.executable, "-m", "pip", "install", "--quiet", "--index-url", index, "torch", "torchvision"]
    if args.constraint:
        command += ["-c", args.constraint]
    result = subprocess.run(command)
    if result.returncode != 0:  # not fatal: the requirements step installs torch from the default index
        print("torch: the CPU index install failed; the default index will provide torch")
    return 0


if __name__ == "__main__":
    sys.exit(main())
