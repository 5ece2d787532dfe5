"""course_utils: the helper package of the course "Backdoor Attacks in Deep Learning".

Notebooks use it through one prefix, ``import course_utils as cu``, so a reader always
sees what is library code. The names used most are re-exported here; every module is
also reachable as an attribute (``cu.detect``, ``cu.checks``), imported on first use,
so importing the package has no side effects and stays fast.
"""

import importlib

from .cache import cache_dir, clear_cache, cost_timer, load_or_train
from .colab import setup_colab
from .data import DataUnavailableError, ImageData, as_float, load_data
from .metrics import attack_success_rate, clean_accuracy, evaluate, format_mean_std, mean_ci, mean_std
from .models import CourseModel, make_model
from .poison import BackdoorAttack, PoisonedData, make_attack, poison_dataset, target_labels
from .runtime import environment_report, get_profile, seed_everything, try_device
from .train import accuracy, embeddings, fit, predict, predict_logits, train_model
from .triggers import patch_trigger

__all__ = [
    "cache_dir", "clear_cache", "cost_timer", "load_or_train", "DataUnavailableError", "ImageData", "as_float", "load_data",
    "attack_success_rate", "clean_accuracy", "evaluate", "format_mean_std", "mean_ci", "mean_std", "CourseModel", "make_model",
    "BackdoorAttack", "PoisonedData", "make_attack", "poison_dataset", "target_labels", "environment_report",
    "get_profile", "seed_everything", "try_device", "accuracy", "embeddings", "fit", "predict", "predict_logits", "train_model",
    "patch_trigger", "setup_colab",
]


def __getattr__(name: str):
    """`cu.<module>` imports that module of the package on first use."""
    try:
        return importlib.import_module(f".{name}", __name__)
    except ModuleNotFoundError:
        raise AttributeError(f"course_utils has no attribute or module {name!r}") from None
