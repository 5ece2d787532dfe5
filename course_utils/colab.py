"""Google Colab: keep the model cache on the learner's Google Drive (opt-in).

A Colab runtime forgets its disk when it stops, so every lesson would retrain the models the
earlier lessons trained. ``cu.colab.setup_colab()`` mounts Google Drive (Colab asks for
permission) and points the course's cache there, so later lessons and later sessions reuse them.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from .cache import CACHE_ENV

DRIVE_ROOT = Path("/content/drive")


def on_colab() -> bool:
    """True inside a Google Colab runtime."""
    return "google.colab" in sys.modules


def setup_colab(folder: str = "backdoor-course-cache", *, mount=None) -> Path:
    """Mount Google Drive and keep the model cache in ``MyDrive/<folder>``; returns that folder.

    `mount` is Colab's ``google.colab.drive.mount`` (passed in by tests); outside Colab this
    raises a RuntimeError that says the cache stays where it is.
    """
    if not isinstance(folder, str) or not folder.strip("/") or ".." in folder:
        raise ValueError(f"folder must be a folder name inside your Drive, like 'backdoor-course-cache', got {folder!r}")
    if mount is None:
        if not on_colab():
            raise RuntimeError("setup_colab() is for Google Colab; here the model cache stays in "
                               "~/.cache/backdoor-course (set BACKDOOR_COURSE_CACHE to move it).")
        from google.colab import drive  # only importable on Colab

        mount = drive.mount
    mount(str(DRIVE_ROOT))
    path = DRIVE_ROOT / "MyDrive" / folder.strip("/")
    path.mkdir(parents=True, exist_ok=True)
    os.environ[CACHE_ENV] = str(path)
    print(f"Trained models are now cached on your Google Drive, in {path}.")
    return path
