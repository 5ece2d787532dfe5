"""Build the course website with Jupyter Book 1 (Sphinx): `make site` -> build/site/_build/html/index.html.

    python -m course_tools.site [--lessons 00 01] [--out build/site] [--timeout 900]

It stages a book in `build/site/`: the README as the home page, one page per lesson executed from
`solutions/` (outputs come from this run, cached by jupyter-cache, never from committed outputs),
the glossary, the benchmark report, and Binder / Colab launch buttons on every lesson page from the
repository URL in pyproject.toml. Nothing is downloaded at build time: the theme ships with
sphinx-book-theme. A cell that runs past `--timeout` seconds fails the build with its name.
"""

from __future__ import annotations

import argparse
import re
import shutil
import subprocess
import sys
from pathlib import Path

from .student import lesson_sources, release_tag, repository_url

ROOT = Path(__file__).resolve().parent.parent
PAGES = [("GLOSSARY.md", "glossary.md"), ("results/bench-cpu.md", "benchmark.md"), ("INSTRUCTORS.md", "instructors.md"),
         ("CONTRIBUTING.md", "contributing.md"), ("LICENSE-CONTENT.md", "license-content.md")]


def _config(url: str, timeout: int) -> str:
    return f"""title: "Backdoor Attacks in Deep Learning"
author: The course authors
only_build_toc_files: true
execute:
  execute_notebooks: cache
  timeout: {timeout}
  allow_errors: false
repository:
  url: {url}
  branch: main
launch_buttons:
  notebook_interface: jupyterlab
  binderhub_url: https://mybinder.org
  colab_url: https://colab.research.google.com
html:
  use_repository_button: true
sphinx:
  config:
    html_show_copyright: false
    nb_execution_raise_on_error: true
    myst_heading_anchors: 2
"""


def _toc(lessons: list[str], pages: list[str]) -> str:
    lines = ["format: jb-book", "root: index", "parts:", "  - caption: Lessons", "    chapters:"]
    lines += [f"      - file: notebooks/{Path(name).stem}" for name in lessons]
    if pages:
        lines += ["  - caption: Reference", "    chapters:"] + [f"      - file: {Path(p).stem}" for p in pages]
    return "\n".join(lines) + "\n"


def _home(readme: str, built: set[str] | None = None, url: str = "") -> str:
    """The README as the home page, with its links pointed at the site's pages.

    built: the lesson notebooks' names in this build (None: all); a link to a lesson that a partial
    build leaves out points at the notebook in the repository instead of a page that is not there.
    """
    readme = re.sub(r"<!-- badges:start -->.*?<!-- badges:end -->\n?", "", readme, flags=re.S)

    def lesson_link(match):
        name = match.group(1) + ".ipynb"
        return f"](notebooks/{name})" if built is None or name in built else f"]({url}/blob/main/notebooks/{name})"

    readme = re.sub(r"\]\(notebooks/([\w-]+)\.ipynb\)", lesson_link, readme)
    for source, page in PAGES:
        readme = readme.replace(f"]({source})", f"]({page})")
    return readme


def stage(out: Path, lessons: list[str] | None = None, timeout: int = 900, root: Path = ROOT) -> Path:
    """Write the book's sources into `out` (kept between builds so the execution cache is reused)."""
    sources = lesson_sources(lessons, root)
    (out / "notebooks").mkdir(parents=True, exist_ok=True)
    for old in (out / "notebooks").glob("*.ipynb"):
        if old.name not in {p.name for p in sources}:
            old.unlink()
    for path in sources:  # the notebook's own relative links (../GLOSSARY.md, ../README.md) point at the staged pages
        text = path.read_text().replace("../GLOSSARY.md", "../glossary.md").replace("../README.md", "../index.md")
        target = out / "notebooks" / path.name
        if not target.exists() or target.read_text() != text:  # unchanged files keep their cached outputs
            target.write_text(text)
    pages = []
    for source, page in PAGES:
        if (root / source).exists():
            text = (root / source).read_text().replace("](results/", "](")
            for other, other_page in PAGES:  # links between the pages (CONTRIBUTING.md -> GLOSSARY.md)
                text = text.replace(f"]({other})", f"]({other_page})")
            (out / page).write_text(text)
            pages.append(page)
    (out / "index.md").write_text(_home((root / "README.md").read_text(), {p.name for p in sources},
                                        repository_url(root)))
    for name in ("LICENSE",):
        if (root / name).exists():
            shutil.copy(root / name, out / name)
    (out / "_config.yml").write_text(_config(repository_url(root), timeout))
    (out / "_toc.yml").write_text(_toc([p.name for p in sources], pages))
    return out


def build(out: Path, lessons: list[str] | None = None, timeout: int = 900) -> Path:
    """Stage and build the site; return the path of index.html. Raises RuntimeError if the build fails."""
    stage(out, lessons, timeout)
    book = Path(sys.executable).parent / "jupyter-book"
    command = [str(book) if book.exists() else "jupyter-book", "build", str(out), "--warningiserror", "--keep-going"]
    result = subprocess.run(command, capture_output=True, text=True)
    if result.returncode != 0:
        raise RuntimeError(f"jupyter-book build failed ({release_tag()}):\n{result.stdout[-4000:]}\n{result.stderr[-4000:]}")
    return out / "_build" / "html" / "index.html"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT / "build" / "site")
    parser.add_argument("--lessons", nargs="*", help="lesson numbers, e.g. 00 01 (default: all)")
    parser.add_argument("--timeout", type=int, default=900, help="seconds per cell")
    args = parser.parse_args(argv)
    index = build(args.out, args.lessons, args.timeout)
    print(f"site built: {index}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
