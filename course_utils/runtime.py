"""Where the course runs: device, profile, seeds and a short environment report.

The *profile* decides how big the lessons are. ``cpu`` is the default everywhere a
GPU is missing: MNIST-sized digits and a small CNN, so every notebook runs in minutes
on a laptop. ``gpu`` uses CIFAR-10 and a ResNet-18, the setting of most papers.
Set ``BACKDOOR_COURSE_PROFILE=cpu`` or ``=gpu`` to force one.
"""

from __future__ import annotations

import os
import platform
import random
from dataclasses import dataclass

import numpy as np
import torch

PROFILE_ENV = "BACKDOOR_COURSE_PROFILE"


@dataclass(frozen=True)
class Profile:
    """The sizes one profile uses; every lesson reads them from here."""

    name: str
    dataset: str  # what `load_data()` loads by default
    model: str  # what `make_model()` builds by default
    epochs: int  # training epochs of one model
    batch_size: int
    lr: float
    max_train: int | None  # cap on training images, to keep one model inside the time budget
    # `fit`'s recipe: "adam", or "sgd" (Nesterov momentum 0.9, weight decay 5e-4, the usual
    # CIFAR recipe); the one-cycle learning-rate schedule; "flip-crop" augmentation or none.
    optimizer: str = "adam"
    schedule: str = "one-cycle"
    augment: str = "none"
    madry_eps: float = 0.3  # Madry et al.'s L-inf radius for this data (MNIST 0.3, CIFAR-10 8/255)
    # The recipe of the repairs and of adversarial training (`course_utils.repair`): short runs
    # on a small clean set, where Adam with a cosine decay is stable without tuning.
    repair_optimizer: str = "adam"
    repair_schedule: str = "cosine"
    # Epochs of every model of lesson 07's practice zoo, trojaned or not: cheap, and the same for all
    # so that training length gives nothing away.
    zoo_epochs: int = 4


PROFILES = {
    # ~4,000 training digits offline (or 12,000 of full MNIST) x 6 epochs: ~5 s a model on 2 cores.
    "cpu": Profile("cpu", "mnist", "small-cnn", epochs=6, batch_size=128, lr=2e-3, max_train=12_000,
                   optimizer="adam", augment="none", madry_eps=0.3),
    # Full CIFAR-10, ResNet-18, one-cycle schedule: ~1 min a model on one modern GPU.
    "gpu": Profile("gpu", "cifar10", "resnet18", epochs=20, batch_size=512, lr=0.2, max_train=None,
                   optimizer="sgd", augment="flip-crop", madry_eps=8 / 255),
}


def try_device() -> torch.device:
    """The best device here: CUDA, then Apple MPS, then the CPU."""
    if torch.cuda.is_available():
        return torch.device("cuda")
    if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


def get_profile(name: str | None = None) -> Profile:
    """The profile named, else ``$BACKDOOR_COURSE_PROFILE``, else ``gpu`` on CUDA and ``cpu`` elsewhere."""
    name = name or os.environ.get(PROFILE_ENV) or ("gpu" if try_device().type == "cuda" else "cpu")
    name = name.strip().lower()
    if name not in PROFILES:
        raise ValueError(
            f"Unknown profile {name!r}. Use one of {sorted(PROFILES)}, "
            f"for example: export {PROFILE_ENV}=cpu"
        )
    return PROFILES[name]


def seed_everything(seed: int = 0, threads: int | None = None) -> None:
    """Seed python, numpy and torch, and set torch's CPU threads (default: $OMP_NUM_THREADS if set, else
    all cores). A grader running several kernels at once sets OMP_NUM_THREADS so that they share the
    cores instead of each taking all of them: oversubscribed, torch's threads wait on each other and a
    lesson ran several times slower than alone."""
    if not isinstance(seed, int) or seed < 0:
        raise ValueError(f"seed must be a non-negative int, got {seed!r}")
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    torch.set_num_threads(threads or _env_threads() or os.cpu_count() or 1)


def _env_threads() -> int | None:
    value = os.environ.get("OMP_NUM_THREADS", "")
    return int(value) if value.isdigit() and int(value) > 0 else None


def environment_report(data_source: str | None = None) -> str:
    """Device, profile, data source and versions, in a few lines (print it)."""
    device = try_device()
    profile = get_profile()
    gpu = f" ({torch.cuda.get_device_name(0)})" if device.type == "cuda" else ""
    lines = [
        f"device : {device}{gpu}, {torch.get_num_threads()} CPU threads",
        f"profile: {profile.name} ({profile.dataset}, {profile.model}, {profile.epochs} epochs a model)",
    ]
    if data_source:
        lines.append(f"data   : {data_source}")
    lines.append(
        f"python {platform.python_version()}, torch {torch.__version__}, numpy {np.__version__}"
    )
    return "\n".join(lines)
