"""The student bundle: every lesson's notebook, the helper package, no solutions anywhere."""

import zipfile
from pathlib import Path

import pytest

from course_tools import release

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def bundle(tmp_path_factory):
    return release.build(tmp_path_factory.mktemp("release"))


def _files(folder: Path) -> dict[str, bytes]:
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in folder.rglob("*") if p.is_file()}


def test_bundle_has_the_lessons_and_the_package(bundle):
    folder, _ = bundle
    lessons = sorted(p.name for p in (ROOT / "solutions").glob("*.ipynb"))
    assert lessons and sorted(p.name for p in (folder / "notebooks").glob("*.ipynb")) == lessons
    for name in ("course_utils/__init__.py", "course_utils/checks/core.py", "course_tools/grade.py", "course_tools/execute.py", "README.md",
                 "requirements.txt", "pyproject.toml", "Makefile", "binder/requirements.txt"):
        assert (folder / name).is_file(), f"{name} missing from the bundle"
    assert (folder / "course_utils/train.py").read_bytes() == (ROOT / "course_utils/train.py").read_bytes()
    assert "Student bundle" in (folder / "README.md").read_text()
    assert "make check" in (folder / "README.md").read_text() and "check:" in (folder / "Makefile").read_text()


def test_bundle_has_no_solutions_tests_or_instructor_tools(bundle):
    folder, _ = bundle
    files = _files(folder)
    for top in ("solutions", "tests", ".ci", "results"):
        assert not (folder / top).exists(), f"{top}/ must not be in the student bundle"
    for name in ("course_tools/release.py", "course_tools/student.py", "course_tools/bench.py", "INSTRUCTORS.md"):
        assert name not in files
    assert not any("__pycache__" in name for name in files)
    for name, data in files.items():
        for marker in release.MARKERS:
            assert marker.encode() not in data, f"{name} contains {marker!r}"


def test_student_notebooks_raise_not_implemented(bundle):
    folder, _ = bundle
    text = "".join(p.read_text() for p in (folder / "notebooks").glob("*.ipynb"))
    assert "raise NotImplementedError()" in text


def test_zip_matches_folder(bundle):
    folder, archive = bundle
    with zipfile.ZipFile(archive) as zf:
        zipped = {n.removeprefix(f"{release.NAME}/"): zf.read(n) for n in zf.namelist()}
    assert zipped == _files(folder)


def test_zip_is_reproducible(bundle, tmp_path):
    _, archive = bundle
    _, again = release.build(tmp_path)
    assert again.read_bytes() == archive.read_bytes()


def test_leaks_are_caught():
    files = {"notebooks/01.ipynb": b'"    ### BEGIN SOLUTION\\n    return x"', "course_utils/a.py": b"x = 1",
             "tests/test_x.py": b"x = 2", "solutions/01.ipynb": b"{}"}
    assert release.leaks(files) == ["notebooks/01.ipynb", "solutions/01.ipynb", "tests/test_x.py"]


def test_release_refuses_to_write_a_leak(tmp_path, monkeypatch):
    monkeypatch.setattr(release, "INCLUDE", release.INCLUDE + ["course_tools/student.py"])  # holds the markers
    with pytest.raises(RuntimeError, match="refusing to release"):
        release.build(tmp_path)
    assert not (tmp_path / release.NAME).exists()
