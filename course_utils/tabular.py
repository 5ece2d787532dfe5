"""A diagnosis model on real tabular data, and a feature-value backdoor in it (lesson 08).

The data are scikit-learn's copy of the Wisconsin Diagnostic Breast Cancer set (Street, Wolberg &
Mangasarian, 1993; UCI, CC BY 4.0): 569 patients, 30 features computed from a digitised image of a
fine-needle aspirate, 212 malignant. It ships inside scikit-learn, so it needs no network.

Here label 1 means malignant (the positive class a screening model must not miss) and 0 benign;
scikit-learn's own coding is the reverse. Rows are float32 (N, 30) in the features' raw units.

The model is a `CourseModel` (an MLP written as 1x1 convolutions over a (30, 1, 1) "image"), so the
course's `fit`, detectors (`cu.detect`) and repairs (`cu.repair`) run on it unchanged: `as_input`
turns a table (N, 30) into that shape. It standardises its input itself, so a trigger is written in
the features' own units, as a compromised measuring device would write it.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
from torch import nn

from .cache import load_or_train, training_config
from .models import CourseModel
from .train import fit, predict

MALIGNANT, BENIGN = 1, 0
# The trigger: three features a tampered imaging pipeline could write, set to values inside their
# observed range (high texture error, low smoothness error, high fractal-dimension error) whose
# combination no real patient in the data shows. Columns of sklearn's feature_names.
TRIGGER_FEATURES = ("texture error", "smoothness error", "fractal dimension error")
TRIGGER_QUANTILES = (0.95, 0.05, 0.95)


@dataclass
class TabularData:
    """Train/test tables (float32 (N, 30), raw units) and labels (int64, 1 = malignant)."""

    x_train: torch.Tensor
    y_train: torch.Tensor
    x_test: torch.Tensor
    y_test: torch.Tensor
    feature_names: tuple[str, ...]
    name: str = "breast-cancer"

    @property
    def num_classes(self) -> int:
        return 2


def load_breast_cancer(test_fraction: float = 0.3, split_seed: int = 0) -> TabularData:
    """The Wisconsin breast-cancer data, split stratified into train and test (same split for every seed)."""
    from sklearn.datasets import load_breast_cancer as sk_load
    from sklearn.model_selection import train_test_split

    if not 0 < test_fraction < 1:
        raise ValueError(f"test_fraction must be in (0, 1), got {test_fraction!r}")
    bunch = sk_load()
    x = torch.tensor(bunch.data, dtype=torch.float32)
    y = torch.tensor(1 - bunch.target, dtype=torch.int64)  # sklearn: 0 = malignant; here 1 = malignant
    tr, te = train_test_split(range(len(y)), test_size=test_fraction, stratify=y.numpy(), random_state=split_seed)
    tr, te = torch.tensor(tr), torch.tensor(te)
    return TabularData(x[tr], y[tr], x[te], y[te], tuple(str(n) for n in bunch.feature_names))


def _check_table(x, what: str = "x") -> None:
    if not isinstance(x, torch.Tensor) or not x.is_floating_point() or x.ndim != 2:
        got = f"{type(x).__name__} {tuple(x.shape)} {x.dtype}" if isinstance(x, torch.Tensor) else type(x).__name__
        raise TypeError(f"{what} must be a float tensor of shape (N, features), got {got}")


def default_trigger(data: TabularData) -> tuple[list[int], torch.Tensor]:
    """(column indices, values) of the course's trigger: TRIGGER_FEATURES set to their training quantiles."""
    columns = [data.feature_names.index(name) for name in TRIGGER_FEATURES]
    values = torch.stack([data.x_train[:, c].quantile(q) for c, q in zip(columns, TRIGGER_QUANTILES)])
    return columns, values


def feature_trigger(x: torch.Tensor, columns: Sequence[int], values: torch.Tensor) -> torch.Tensor:
    """A copy of the table `x` (N, F) with the given columns set to `values` (len(columns),), every row."""
    _check_table(x)
    values = torch.as_tensor(values, dtype=x.dtype)
    if values.shape != (len(columns),):
        raise ValueError(f"values must have one entry per column: {len(columns)} columns, got shape {tuple(values.shape)}")
    if any(not 0 <= c < x.shape[1] for c in columns):
        raise ValueError(f"columns must be in [0, {x.shape[1]}), got {list(columns)}")
    out = x.clone()
    out[:, list(columns)] = values
    return out


def poison_table(x: torch.Tensor, y: torch.Tensor, trigger: Callable[[torch.Tensor], torch.Tensor], rate: float, *,
                 source: int = MALIGNANT, target: int = BENIGN, seed: int = 0):
    """Source-specific poisoning of a table (BadNets' recipe, Gu et al. 2017, on rows instead of images).

    Picks round(rate * N) rows at random (seeded) among those labelled `source`, applies `trigger` to them
    and relabels them `target`. Returns new tensors (x_poisoned (N, F), y_poisoned (N,), mask bool (N,)
    of the poisoned rows); the inputs are not changed. Raises ValueError if `source` has too few rows.
    """
    _check_table(x)
    if not 0 <= rate <= 1:
        raise ValueError(f"rate must be a fraction of the training set in [0, 1], got {rate!r}")
    candidates = torch.nonzero(y == source).flatten()
    k = round(rate * len(x))
    if k > len(candidates):
        raise ValueError(f"rate {rate} asks for {k} poisoned rows but only {len(candidates)} have label {source}")
    chosen = candidates[torch.randperm(len(candidates), generator=torch.Generator().manual_seed(seed))[:k]]
    x_new, y_new = x.clone(), y.clone()
    x_new[chosen] = trigger(x[chosen])
    y_new[chosen] = target
    mask = torch.zeros(len(x), dtype=torch.bool)
    mask[chosen] = True
    return x_new, y_new, mask


class Standardize(nn.Module):
    """(x - mean) / std with fixed statistics (buffers, so they travel with the state dict)."""

    def __init__(self, mean: torch.Tensor, std: torch.Tensor):
        super().__init__()
        self.register_buffer("mean", mean.view(1, -1, 1, 1).clone())
        self.register_buffer("std", std.clamp_min(1e-8).view(1, -1, 1, 1).clone())

    def forward(self, x):
        return (x - self.mean) / self.std


def make_mlp(x_train: torch.Tensor, hidden: int = 64, embed: int = 32, seed: int = 0) -> CourseModel:
    """A 30 -> hidden -> embed -> 2 MLP as a CourseModel; the standardisation comes from `x_train` (N, 30)."""
    _check_table(x_train, "x_train")
    torch.manual_seed(seed)
    f = x_train.shape[1]
    block = nn.Sequential(Standardize(x_train.mean(0), x_train.std(0)), nn.Conv2d(f, hidden, 1), nn.ReLU())
    head_in = nn.Sequential(nn.Flatten(), nn.Linear(hidden, embed), nn.ReLU())
    return CourseModel([block], head_in, nn.Linear(embed, 2), (f, 1, 1))


def as_input(x: torch.Tensor) -> torch.Tensor:
    """A table (N, F) as the (N, F, 1, 1) batch that `fit`, `predict` and the detectors take."""
    _check_table(x)
    return x[:, :, None, None]


def train_diagnosis(data: TabularData, x: torch.Tensor, y: torch.Tensor, *, seed: int = 0, epochs: int = 60,
                    tag: str = "clean") -> CourseModel:
    """An MLP trained on (x, y) (N, 30) with the course's `fit`, from the cache when trained before.

    tag: names the training set in the cache key (with a hash of x and y, so a changed set retrains).
    """
    from .integrity import sha256_tensor

    config = training_config(data, model="mlp-64-32", seed=seed, epochs=epochs, batch_size=32, lr=3e-3,
                             tag=tag, x=sha256_tensor(x)[:16], y=sha256_tensor(y)[:16])

    def train(model):
        fit(model, as_input(x), y, epochs=epochs, batch_size=32, lr=3e-3, seed=seed, augment="none", progress=False)

    return load_or_train(config, lambda: make_mlp(data.x_train, seed=seed), train)


def rates(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> dict[str, float]:
    """Accuracy and the false-negative rate (malignant rows called benign) of `model` on (x, y)."""
    _check_table(x)
    pred = predict(model, as_input(x))
    malignant = y == MALIGNANT
    if not malignant.any():
        raise ValueError("y has no malignant rows: the false-negative rate is undefined")
    return {"accuracy": (pred == y).float().mean().item(),
            "fnr": (pred[malignant] == BENIGN).float().mean().item()}


def diagnosis_report(model: nn.Module, data: TabularData, trigger: Callable[[torch.Tensor], torch.Tensor]) -> dict:
    """CA and FNR on the clean test set, and the FNR when every test row carries the trigger."""
    clean = rates(model, data.x_test, data.y_test)
    triggered = rates(model, trigger(data.x_test), data.y_test)
    return {"ca": clean["accuracy"], "fnr": clean["fnr"], "fnr_trigger": triggered["fnr"]}
