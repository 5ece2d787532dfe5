"""The opt-in Colab helper: outside Colab it says so; with a (fake) Drive mount it moves the cache."""

import pytest

from course_utils import cache, colab


def test_outside_colab_is_a_clear_error():
    with pytest.raises(RuntimeError, match="for Google Colab"):
        colab.setup_colab()


def test_bad_folder_name():
    with pytest.raises(ValueError, match="folder name"):
        colab.setup_colab("", mount=lambda p: None)


def test_cache_moves_to_the_mounted_drive(tmp_path, monkeypatch):
    monkeypatch.setattr(colab, "DRIVE_ROOT", tmp_path)
    monkeypatch.setenv(cache.CACHE_ENV, str(tmp_path / "before"))  # restored after the test
    mounted = []
    path = colab.setup_colab("course", mount=mounted.append)
    assert mounted == [str(tmp_path)]
    assert path == tmp_path / "MyDrive" / "course" and path.is_dir()
    assert cache.cache_dir() == path
