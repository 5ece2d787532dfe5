"""Make the student notebooks from the solutions, and keep generated text in sync.

    python -m course_tools.student          # write notebooks/ (and refresh badges, Colab cells)
    python -m course_tools.student --check  # exit 1 if anything committed is stale (CI)

For every solutions/NN_topic.ipynb it
  1. sets the first code cell (tagged ``colab-setup``) to install the course on Colab, from the
     repository URL and the release tag ("v" + version) in pyproject.toml, the one place both live;
  2. strips outputs and execution counts (notebooks are stored clean);
  3. writes notebooks/NN_topic.ipynb with every ``### BEGIN SOLUTION`` ... ``### END SOLUTION``
     block replaced by a stub (``# YOUR CODE HERE`` + ``raise NotImplementedError()``, same
     indentation) in code cells, or by ``YOUR ANSWER HERE`` in markdown cells (tagged
     ``written-answer``: graded by hand), and tags ``raises-exception`` (nbgrader's convention,
     and nbval's) only the code cells that now raise when run: a stub at the cell's top level, not
     one inside a function body. A block of plain ``name = value``
     lines (a recap answer) becomes ``name = None  # YOUR ANSWER HERE`` and does not raise.
It also rewrites the README's badge block and notebook table from the same URL.
"""

from __future__ import annotations

import argparse
import copy
import re
import sys
from pathlib import Path

import nbformat

try:  # Python 3.11+
    import tomllib
except ModuleNotFoundError:  # Python 3.10: the same parser, as a package (a dependency there)
    import tomli as tomllib

ROOT = Path(__file__).resolve().parent.parent
BEGIN, END = "### BEGIN SOLUTION", "### END SOLUTION"
SETUP_TAG = "colab-setup"
WRITTEN_TAG = "written-answer"  # a markdown cell with a model answer: graded by hand
# A solution block made only of `name = value` lines is an answer to a recap question: the student
# copy keeps the names, set to None, so the check says "not answered yet" instead of the cell raising.
_ANSWER_LINE = re.compile(r"^[ \t]*[A-Za-z_]\w*[ \t]*=[^=].*$")
_BLOCK = re.compile(r"^([ \t]*)### BEGIN SOLUTION[^\n]*\n.*?^[ \t]*### END SOLUTION[^\n]*(\n|$)", re.M | re.S)


def _project(root: Path = ROOT) -> dict:
    return tomllib.loads((root / "pyproject.toml").read_text())["project"]


def repository_url(root: Path = ROOT) -> str:
    """The course's GitHub URL, from pyproject.toml [project.urls] Repository."""
    return _project(root)["urls"]["Repository"].rstrip("/")


def release_tag(root: Path = ROOT) -> str:
    """The release the Colab cells install: "v" + pyproject's version (see README, "Cutting a release")."""
    return "v" + _project(root)["version"]


def colab_setup_source(url: str, tag: str) -> str:
    return (
        "# On Google Colab, install the course first (this cell does nothing anywhere else).\n"
        "import os\n"
        "import sys\n\n"
        'if "google.colab" in sys.modules:\n'
        f'    %pip install --quiet "backdoor-course @ git+{url}@{tag}"\n'
        "    # The cpu profile is the one measured end to end; for CIFAR-10 and ResNet-18 on a Colab GPU,\n"
        '    # change "cpu" to "gpu" (before the next cell imports the course).\n'
        '    os.environ.setdefault("BACKDOOR_COURSE_PROFILE", "cpu")\n'
        "    # To keep trained models on your Google Drive across Colab sessions, uncomment:\n"
        "    # import course_utils; course_utils.setup_colab()"
    )


def strip_solutions(source: str, markdown: bool = False) -> str:
    """Replace each BEGIN/END SOLUTION block by a stub with the block's indentation."""
    if END in source and BEGIN not in source or source.count(BEGIN) != source.count(END):
        raise ValueError(f"unbalanced {BEGIN!r} / {END!r} markers in:\n{source[:300]}")

    def stub(match: re.Match) -> str:
        indent = match.group(1)
        if markdown:
            return f"{indent}YOUR ANSWER HERE{match.group(2)}"
        body = [line for line in match.group(0).splitlines()[1:-1] if line.strip()]
        if body and all(_ANSWER_LINE.match(line) for line in body):
            names = [line.split("=", 1)[0].strip() for line in body]
            return "\n".join(f"{indent}{name} = None  # YOUR ANSWER HERE" for name in names) + match.group(2)
        return f"{indent}# YOUR CODE HERE\n{indent}raise NotImplementedError(){match.group(2)}"

    return _BLOCK.sub(stub, source)


def lesson_sources(lessons: list[str] | None = None, root: Path = ROOT) -> list[Path]:
    """The solutions notebooks, all or those of `lessons` (["00", "03"]); an unknown lesson is a ValueError."""
    sources = sorted((root / "solutions").glob("*.ipynb"))
    if lessons:
        unknown = set(lessons) - {p.name[:2] for p in sources}
        if unknown:
            raise ValueError(f"no lesson {sorted(unknown)} in solutions/ (lessons are {[p.name[:2] for p in sources]})")
        sources = [p for p in sources if p.name[:2] in lessons]
    return sources


def clean(nb) -> bool:
    """Strip outputs and execution counts in place; True if anything changed."""
    changed = False
    for cell in nb.cells:
        if cell.cell_type == "code" and (cell.outputs or cell.execution_count is not None):
            cell.outputs, cell.execution_count, changed = [], None, True
        for key in ("execution", "collapsed", "scrolled"):
            if key in cell.metadata:
                del cell.metadata[key]
                changed = True
    return changed


def set_colab_cell(nb, url: str, tag: str) -> None:
    """Make the first code cell the Colab setup cell (inserted if missing)."""
    source = colab_setup_source(url, tag)
    for cell in nb.cells:
        if cell.cell_type == "code":
            if SETUP_TAG in cell.metadata.get("tags", []):
                cell.source = source
                return
            break
    cell = nbformat.v4.new_code_cell(source, metadata={"tags": [SETUP_TAG]})
    cell["id"] = "colab-setup"
    index = 1 if nb.cells and nb.cells[0].cell_type == "markdown" else 0
    nb.cells.insert(index, cell)


def tag_written_answers(nb) -> None:
    """Tag every markdown cell that holds a model answer as a written answer (graded by hand)."""
    for cell in nb.cells:
        if cell.cell_type == "markdown" and BEGIN in cell.source:
            tags = cell.metadata.setdefault("tags", [])
            if WRITTEN_TAG not in tags:
                tags.append(WRITTEN_TAG)


def student_copy(nb):
    """A copy of a solutions notebook with every solution block stubbed out."""
    nb = copy.deepcopy(nb)
    for cell in nb.cells:
        if BEGIN not in cell.source:
            continue
        cell.source = strip_solutions(cell.source, markdown=cell.cell_type == "markdown")
        # Only a cell that now raises when run is allowed to raise under nbval: a stub at the cell's
        # top level. A stub inside a function body raises only when the function is called, and the
        # course calls learners' functions through the checks and `learner_or_reference`, which
        # catch it; tagging those cells would hide a real error in them.
        if cell.cell_type == "code" and cell_raises(cell.source):
            tags = cell.metadata.setdefault("tags", [])
            if "raises-exception" not in tags:
                tags.append("raises-exception")
    return nb


def cell_raises(source: str) -> bool:
    """Whether a stubbed code cell raises NotImplementedError when it is run (a top-level stub)."""
    return any(line.rstrip() == "raise NotImplementedError()" for line in source.splitlines())


def readme_blocks(url: str, names: list[str]) -> dict[str, str]:
    """The generated parts of README.md, by marker name."""
    path = url.removeprefix("https://github.com/")
    binder = f"https://mybinder.org/v2/gh/{path}/HEAD?urlpath=lab/tree/notebooks"
    colab = f"https://colab.research.google.com/github/{path}/blob/main/notebooks"
    badges = (
        f"[![Binder](https://mybinder.org/badge_logo.svg)]({binder})\n"
        f"[![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)]({colab}/{names[0]})"
    )
    rows = ["| notebook | open |", "|---|---|"]
    for name in names:
        rows.append(f"| [{name}](notebooks/{name}) | [Colab]({colab}/{name}) |")
    return {"badges": badges, "notebooks": "\n".join(rows)}


def fill_readme(text: str, blocks: dict[str, str]) -> str:
    for key, body in blocks.items():
        pattern = re.compile(rf"(<!-- {key}:start -->\n).*?(<!-- {key}:end -->)", re.S)
        if not pattern.search(text):
            raise ValueError(f"README.md lacks the <!-- {key}:start --> / <!-- {key}:end --> markers")
        text = pattern.sub(lambda m, body=body: m.group(1) + body + "\n" + m.group(2), text)
    return text


def generate(root: Path = ROOT) -> dict[Path, str]:
    """Every generated file's path and wanted text."""
    url, tag = repository_url(root), release_tag(root)
    wanted: dict[Path, str] = {}
    names = []
    for path in sorted((root / "solutions").glob("*.ipynb")):
        nb = nbformat.read(path, as_version=4)
        clean(nb)
        set_colab_cell(nb, url, tag)
        tag_written_answers(nb)
        wanted[path] = nbformat.writes(nb) + "\n"
        wanted[root / "notebooks" / path.name] = nbformat.writes(student_copy(nb)) + "\n"
        names.append(path.name)
    readme = root / "README.md"
    if readme.exists() and names:
        wanted[readme] = fill_readme(readme.read_text(), readme_blocks(url, names))
    return wanted


def stale(root: Path = ROOT) -> list[str]:
    """Generated files that differ from what is on disk, plus student notebooks with no solution."""
    wanted = generate(root)
    out = [str(p.relative_to(root)) for p, text in wanted.items() if not p.exists() or p.read_text() != text]
    out += [f"{p.relative_to(root)} (no solutions/ source)" for p in sorted((root / "notebooks").glob("*.ipynb"))
            if p not in wanted]
    return out


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="only report stale files; exit 1 if any")
    args = parser.parse_args(argv)
    if args.check:
        bad = stale()
        for name in bad:
            print(f"stale: {name}")
        if bad:
            print("Run `make student` and commit the result.")
        return 1 if bad else 0
    for path, text in generate().items():
        if not path.exists() or path.read_text() != text:
            path.parent.mkdir(exist_ok=True)
            path.write_text(text)
            print(f"wrote {path.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
