"""Build the student bundle: the course without its solutions, as a folder and a zip for an LMS.

    python -m course_tools.release [--out release/]     # or: make release

The bundle holds the student notebooks (generated afresh from solutions/ by
`course_tools.student`, so they are never stale), the `course_utils` package, the
grader (so students can score their own work: ``make check``), README, requirements,
pyproject.toml and the Binder set-up, with a short Makefile of its own (`make lab`,
`make check`). It leaves out solutions/, tests/ (they may hold solution code), CI,
the instructor tools and notes. Before writing the zip it checks that no file in the
bundle contains a solution marker, and fails if one does.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import zipfile
from pathlib import Path

from . import student

ROOT = Path(__file__).resolve().parent.parent
NAME = "backdoor-course-student"
MARKERS = ("### BEGIN SOLUTION", "### END SOLUTION")
# What students get from the repository, beside the generated notebooks/ and Makefile.
INCLUDE = ["course_utils", "course_tools/__init__.py", "course_tools/grade.py", "course_tools/execute.py",
           "course_tools/warm.py", "README.md",
           "GLOSSARY.md", "requirements.txt", "pyproject.toml", "binder", "LICENSE", "LICENSE-CONTENT.md", ".gitignore"]
SKIP_PARTS = {"__pycache__", ".ipynb_checkpoints", ".DS_Store"}
ZIP_DATE = (1980, 1, 1, 0, 0, 0)  # a fixed timestamp: the same sources give the same zip

STUDENT_MAKEFILE = """\
# `make lab` is the whole set-up: it creates .venv when it is missing.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python

.PHONY: lab check warm

$(VENV)/installed: requirements.txt pyproject.toml
\ttest -x $(PY) || $(PYTHON) -m venv $(VENV)
\t$(PY) -m pip install --quiet --upgrade pip
\t$(PY) -m pip install --quiet -r requirements.txt
\ttouch $@

lab: $(VENV)/installed  ## open the course in JupyterLab
\t$(VENV)/bin/jupyter lab notebooks/

warm: $(VENV)/installed  ## train every lesson's models in the background, so the lessons load them
\t$(PY) -m course_tools.warm --background

check: $(VENV)/installed  ## run your notebooks and score every exercise (a few minutes each)
\t$(PY) -m course_tools.grade notebooks/ --json grades.json
"""

README_NOTE = """\
> **Student bundle.** This copy of the course has the exercises without their solutions.
> Start with `make lab` (or see "Start" below); `make check` runs your notebooks and scores
> every exercise. The instructor's repository also holds solutions/, tests/ and `make test`.

"""


def _wanted_files(root: Path) -> dict[str, bytes]:
    """{path in the bundle: contents} for everything the bundle holds."""
    files: dict[str, bytes] = {}
    for name in INCLUDE:
        path = root / name
        paths = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path] if path.is_file() else []
        for p in paths:
            rel = p.relative_to(root)
            if not SKIP_PARTS.intersection(rel.parts) and p.suffix != ".pyc":
                files[rel.as_posix()] = p.read_bytes()
    generated = student.generate(root)  # fresh student copies, whatever notebooks/ holds now
    notebooks = {p: text for p, text in generated.items() if p.parent == root / "notebooks"}
    if not notebooks:
        raise FileNotFoundError(f"no notebooks in {root / 'solutions'}: nothing to release")
    for path, text in notebooks.items():
        files[f"notebooks/{path.name}"] = text.encode()
    if "README.md" in files:
        readme = generated.get(root / "README.md", files["README.md"].decode())
        files["README.md"] = (README_NOTE + (readme if isinstance(readme, str) else readme.decode())).encode()
    files["Makefile"] = STUDENT_MAKEFILE.encode()
    return files


def leaks(files: dict[str, bytes]) -> list[str]:
    """Bundle paths that contain a solution marker, or that come from solutions/ or tests/."""
    bad = [name for name, data in files.items() if any(m.encode() in data for m in MARKERS)]
    bad += [name for name in files if name.split("/")[0] in ("solutions", "tests")]
    return sorted(set(bad))


def build(out: Path = ROOT / "release", root: Path = ROOT, name: str = NAME) -> tuple[Path, Path]:
    """Write the bundle as out/<name>/ and out/<name>.zip; returns both paths.

    Raises RuntimeError, writing nothing, if any file would leak a solution.
    """
    files = _wanted_files(root)
    bad = leaks(files)
    if bad:
        raise RuntimeError(f"refusing to release: solution code or markers in {bad}; run `make student` and "
                           "check that every solution sits between the BEGIN/END SOLUTION markers")
    out = Path(out)
    folder, archive = out / name, out / f"{name}.zip"
    if folder.exists():
        shutil.rmtree(folder)
    for rel, data in files.items():
        (folder / rel).parent.mkdir(parents=True, exist_ok=True)
        (folder / rel).write_bytes(data)
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as zf:
        for rel in sorted(files):
            info = zipfile.ZipInfo(f"{name}/{rel}", date_time=ZIP_DATE)
            info.external_attr = 0o644 << 16
            info.compress_type = zipfile.ZIP_DEFLATED
            zf.writestr(info, files[rel])
    return folder, archive


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description="Build the student bundle (no solutions) as a folder and a zip.")
    parser.add_argument("--out", type=Path, default=ROOT / "release", help="output folder (default: release/)")
    args = parser.parse_args(argv)
    folder, archive = build(args.out)
    count = sum(1 for p in folder.rglob("*") if p.is_file())
    notebooks = sorted(p.name for p in (folder / "notebooks").glob("*.ipynb"))
    print(f"wrote {folder} ({count} files, notebooks: {', '.join(notebooks)})")
    print(f"wrote {archive} ({archive.stat().st_size / 1e3:.0f} kB): hand it out or upload it to your LMS")
    return 0


if __name__ == "__main__":
    sys.exit(main())
