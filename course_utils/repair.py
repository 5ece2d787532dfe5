"""Repair a backdoored model with a small clean set: fine-tuning, fine-pruning, distillation, NAD.

The defender holds the suspicious model and a small clean set (`clean_subset`: a seeded
fraction of the training images, 5 % by default, as in BackdoorBench). Every defense has
the same signature, so lesson 06 and the benchmark can loop over `DEFENSES`:

    defense(model, x_clean, y_clean, *, seed=0, **hyperparameters) -> new model

x_clean: images (N, C, H, W), uint8 or float in [0, 1]; y_clean: int64 labels (N,). The input
model is never changed; the repaired copy comes back in eval mode. Defaults follow the papers,
scaled to the CPU profile (a few seconds on 200 digits).
"""

from __future__ import annotations

import copy
import time
from collections.abc import Callable, Sequence

import torch
import torch.nn.functional as F
from torch import nn
from tqdm.auto import tqdm

from .data import ImageData, as_float
from .metrics import mean_std
from .models import CourseModel
from .poison import BackdoorAttack
from .robust import _check_batch, evaluate, i_bau, pgd_at, train_loop
from .train import train_model


def clean_subset(data: ImageData, fraction: float = 0.05, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """The defender's clean set: a seeded random `fraction` of data.x_train (at least one image).

    Returns (x, y): uint8 images (n, C, H, W) and int64 labels (n,), n = round(fraction * N).
    The same seed gives nested sets: the 1 % set is inside the 5 % set, which is inside the 10 % set.
    """
    if isinstance(fraction, bool) or not isinstance(fraction, (int, float)) or not 0 < fraction <= 1:
        raise ValueError(f"fraction must be in (0, 1] (0.05 means 5 % of the training set), got {fraction!r}")
    n = max(1, round(fraction * len(data.x_train)))
    keep = torch.randperm(len(data.x_train), generator=torch.Generator().manual_seed(seed))[:n]
    return data.x_train[keep], data.y_train[keep]


def _ce(model, xb, yb):
    return F.cross_entropy(model(xb), yb)


def _check_model(model) -> CourseModel:
    if not isinstance(model, CourseModel):
        raise TypeError(f"expected a course_utils CourseModel (from cu.make_model / cu.train_model), got {type(model).__name__}")
    return model


# ---------------------------------------------------------------- fine-tuning
def fine_tune(model: nn.Module, x_clean, y_clean, *, seed: int = 0, epochs: int = 20, lr: float = 5e-3,
              batch_size: int = 64, shift: int = 2) -> nn.Module:
    """Fine-tuning (the baseline of Liu et al., RAID 2018): train a copy on the clean set with
    cross-entropy; catastrophic forgetting may wash the backdoor out. shift: augmentation (pixels)."""
    _check_batch(model, x_clean, y_clean)
    repaired = copy.deepcopy(model)
    return train_loop(repaired, x_clean, y_clean, _ce, epochs=epochs, lr=lr, batch_size=batch_size, seed=seed,
                      shift=shift)


# ---------------------------------------------------------------- fine-pruning
@torch.inference_mode()
def channel_activity(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """Mean activation (C,) of every channel of the last block on images `x`, mask ignored."""
    _check_model(model)
    if model.training:
        raise RuntimeError("the model is in training mode; call model.eval() first")
    device = next(model.parameters()).device
    total = 0
    for i in range(0, len(x), 512):
        h = as_float(x[i:i + 512]).to(device)
        for block in model.blocks:
            h = block(h)
        total = total + h.sum(dim=(0, 2, 3)).cpu()
    spatial = h.shape[2] * h.shape[3]
    return total / (len(x) * spatial)


def dormant_order(activity: torch.Tensor) -> torch.Tensor:
    """Channel indices (C,) from the least to the most active (ties: lower index first)."""
    return torch.sort(activity, stable=True).indices


@torch.inference_mode()
def prune_dormant(model: nn.Module, x, y, *, max_acc_drop: float = 0.04, max_fraction: float = 0.9) -> int:
    """Fine-pruning's pruning step (Liu et al., RAID 2018), in place on `model.channel_mask`.

    Switch off the last block's channels in order of increasing mean activation on the clean
    images, as long as the accuracy on (x, y) stays within `max_acc_drop` of the start (the
    paper stops at a 4 % drop) and at most `max_fraction` of the channels are off.
    Returns how many channels are now off.
    """
    _check_model(model)
    order = dormant_order(channel_activity(model, x))
    x = as_float(x).to(next(model.parameters()).device)
    h = x
    for block in model.blocks:
        h = block(h)
    y = y.to(h.device)

    def acc(mask):
        return (model.head(model.embed_layer(h * mask.view(1, -1, 1, 1))).argmax(1) == y).float().mean().item()

    mask = model.channel_mask.clone()
    start = acc(mask)
    pruned = 0
    for k, channel in enumerate(order[: int(max_fraction * len(order))].tolist(), start=1):
        trial = mask.clone()
        trial[channel] = 0
        if acc(trial) < start - max_acc_drop:
            break
        mask, pruned = trial, k
    model.channel_mask.copy_(mask)
    return pruned


def fine_prune(model: nn.Module, x_clean, y_clean, *, seed: int = 0, max_acc_drop: float = 0.04, epochs: int = 20,
               lr: float = 5e-3, batch_size: int = 64, shift: int = 2) -> nn.Module:
    """Fine-pruning (Liu, Dolan-Gavitt & Garg, RAID 2018): prune the last conv layer's channels that
    stay dormant on clean data (`prune_dormant`), then fine-tune the pruned copy on the clean set.
    The pruned channels stay off (they live in `channel_mask`); `model.pruned_channels` says how many."""
    _check_batch(_check_model(model), x_clean, y_clean)
    repaired = copy.deepcopy(model).eval()
    pruned = prune_dormant(repaired, x_clean, y_clean, max_acc_drop=max_acc_drop)
    train_loop(repaired, x_clean, y_clean, _ce, epochs=epochs, lr=lr, batch_size=batch_size, seed=seed, shift=shift)
    repaired.pruned_channels = pruned
    return repaired


# ---------------------------------------------------------------- knowledge distillation
def distillation_loss(student_logits: torch.Tensor, teacher_logits: torch.Tensor, labels: torch.Tensor,
                      temperature: float = 4.0, alpha: float = 0.9) -> torch.Tensor:
    """Hinton et al. (2015), "Distilling the Knowledge in a Neural Network": a scalar

        alpha * T^2 * KL(softmax(teacher / T) || softmax(student / T))  +  (1 - alpha) * CE(student, labels)

    with the KL divergence averaged over the batch. The T^2 keeps the soft term's gradients on
    the same scale for any temperature. Logits: float (N, K); labels: int64 (N,).
    """
    if isinstance(temperature, bool) or not isinstance(temperature, (int, float)) or not temperature > 0:
        raise ValueError(f"temperature must be a number > 0 (1 = plain softmax, 2-8 is usual), got {temperature!r}")
    if not 0 <= alpha <= 1:
        raise ValueError(f"alpha (the weight of the soft term) must be in [0, 1], got {alpha!r}")
    if student_logits.shape != teacher_logits.shape:
        raise ValueError(f"student and teacher logits differ in shape: {tuple(student_logits.shape)} vs "
                         f"{tuple(teacher_logits.shape)}; the student needs the teacher's number of classes")
    t = temperature
    soft = F.kl_div(F.log_softmax(student_logits / t, 1), F.log_softmax(teacher_logits / t, 1),
                    reduction="batchmean", log_target=True)
    return alpha * t * t * soft + (1 - alpha) * F.cross_entropy(student_logits, labels)


def distill(model: nn.Module, x_clean, y_clean, *, seed: int = 0, student: nn.Module | None = None,
            temperature: float = 4.0, alpha: float = 0.9, epochs: int = 30, lr: float = 2e-3,
            batch_size: int = 64, shift: int = 2) -> nn.Module:
    """Knowledge distillation of the (suspect) teacher `model` into a freshly initialised student,
    on the clean set only (Hinton et al., 2015; as a backdoor defense: Yoshida & Fujino, 2020).

    The student never sees a trigger, so it can only learn what the teacher does on clean inputs.
    student: the model to train (default: a fresh copy of the teacher's architecture, seeded by
    `seed`); it must have the teacher's number of outputs. Returns the trained student.
    """
    _check_batch(_check_model(model), x_clean, y_clean)
    teacher = model
    student = fresh_copy(teacher, seed) if student is None else copy.deepcopy(student)
    n_out = getattr(student, "num_classes", None)
    if n_out != teacher.num_classes:
        raise ValueError(f"the student has {n_out} outputs but the teacher has {teacher.num_classes}; "
                         f"build it with num_classes={teacher.num_classes}")
    was_training = teacher.training
    teacher.eval()

    def batch_loss(m, xb, yb):
        with torch.no_grad():
            teacher_logits = teacher(xb)
        return distillation_loss(m(xb), teacher_logits, yb, temperature, alpha)

    try:
        train_loop(student, x_clean, y_clean, batch_loss, epochs=epochs, lr=lr, batch_size=batch_size, seed=seed,
                   shift=shift)
    finally:
        teacher.train(was_training)
    return student


def fresh_copy(model: nn.Module, seed: int = 0) -> nn.Module:
    """The same architecture as `model` with freshly initialised weights (seeded), in eval mode."""
    fresh = copy.deepcopy(model)
    torch.manual_seed(seed)
    for module in fresh.modules():
        if hasattr(module, "reset_parameters"):
            module.reset_parameters()  # also resets BatchNorm running statistics
    if isinstance(fresh, CourseModel):
        fresh.channel_mask.fill_(1)
    return fresh.eval()


# ---------------------------------------------------------------- NAD
def attention_map(feature_map: torch.Tensor, p: float = 2.0) -> torch.Tensor:
    """Attention map of a feature map (Zagoruyko & Komodakis, ICLR 2017), as NAD uses it.

    feature_map: float (N, C, H, W). Returns float (N, H, W): sum over channels of |F|^p,
    each map scaled to unit L2 norm (plus 1e-6 against division by zero).
    """
    if feature_map.ndim != 4:
        raise ValueError(f"expected a feature map of shape (N, C, H, W), got {tuple(feature_map.shape)}")
    am = feature_map.abs().pow(p).sum(1)
    return am / (am.flatten(1).norm(dim=1).view(-1, 1, 1) + 1e-6)


def attention_loss(student_maps: list[torch.Tensor], teacher_maps: list[torch.Tensor], betas, p: float = 2.0):
    """NAD's distillation term: sum over blocks of beta * mean squared difference of attention maps."""
    return sum(b * F.mse_loss(attention_map(s, p), attention_map(t, p))
               for b, s, t in zip(betas, student_maps, teacher_maps) if b)


def nad(model: nn.Module, x_clean, y_clean, *, seed: int = 0, teacher_epochs: int = 10, epochs: int = 20,
        betas=(500.0, 1000.0, 1000.0), p: float = 2.0, lr: float = 5e-3, batch_size: int = 64,
        shift: int = 2) -> nn.Module:
    """Neural Attention Distillation (Li et al., ICLR 2021).

    1. teacher = the backdoored model fine-tuned on the clean set (`fine_tune`, `teacher_epochs`);
    2. the backdoored model (student) is trained on the clean set with cross-entropy plus
       betas[l] * MSE(attention_map(student block l), attention_map(teacher block l)) for every
       block l of `model.feature_maps` (BackdoorBench's CIFAR-10 betas 500, 1000, 1000; p = 2).
    Returns the student (a new model; the input is left as it is).
    """
    _check_batch(_check_model(model), x_clean, y_clean)
    betas = tuple(float(b) for b in betas)
    if len(betas) != len(model.blocks):
        raise ValueError(f"give one beta per block: the model has {len(model.blocks)} blocks, got {len(betas)} betas")
    teacher = fine_tune(model, x_clean, y_clean, seed=seed, epochs=teacher_epochs, lr=lr, batch_size=batch_size,
                        shift=shift)

    def batch_loss(m, xb, yb):
        maps = m.feature_maps(xb)
        logits = m.head(m.embed_layer(maps[-1]))
        with torch.no_grad():
            teacher_maps = teacher.feature_maps(xb)
        return F.cross_entropy(logits, yb) + attention_loss(maps, teacher_maps, betas, p)

    student = copy.deepcopy(model)
    return train_loop(student, x_clean, y_clean, batch_loss, epochs=epochs, lr=lr, batch_size=batch_size, seed=seed,
                      shift=shift)


# ---------------------------------------------------------------- the registry lesson 06 loops over
DEFENSES = {
    "fine-tuning": fine_tune,
    "fine-pruning": fine_prune,
    "kd": distill,
    "nad": nad,
    "i-bau": i_bau,
    "pgd-at": pgd_at,
}



# ---------------------------------------------------------------- sweeps and the published reference
def budget_sweep(data: ImageData, attack: BackdoorAttack, defenses: dict[str, Callable] | Sequence[str],
                 fractions: Sequence[float] = (0.01, 0.05, 0.1), seeds: Sequence[int] = (0, 1, 2),
                 poison_rate: float = 0.1, models: dict[int, nn.Module] | None = None, keep_models: bool = False,
                 progress: bool = True, **evaluate_kwargs) -> list[dict]:
    """Run every defense on the backdoored model of every seed with every clean-data fraction.

    defenses: names in `DEFENSES` or a {name: function} dict. Seed s repairs the model trained
    with seed s (`train_model(data, attack, poison_rate, seed=s)`, or `models[s]` if given), using
    `clean_subset(data, fraction, seed=s)`; evaluate_kwargs go to `robust.evaluate`. One row per run:
    {"method", "fraction", "seed", "ca", "asr", "robust", "seconds"} (accuracies in [0, 1]), plus
    "model" (the repaired model) with keep_models=True.
    """
    if not isinstance(defenses, dict):
        unknown = sorted(set(defenses) - set(DEFENSES))
        if unknown:
            raise ValueError(f"unknown defense(s) {unknown}; choose from {sorted(DEFENSES)}")
        defenses = {name: DEFENSES[name] for name in defenses}
    for fraction in fractions:
        clean_subset(data, fraction)  # fail early on a bad fraction
    rows = []
    total = len(seeds) * len(fractions) * len(defenses)
    bar = tqdm(total=total, desc="defenses", disable=not progress, leave=False)
    for seed in seeds:
        model = models[seed] if models else train_model(data, attack, poison_rate, seed=seed, progress=False)
        for fraction in fractions:
            x, y = clean_subset(data, fraction, seed=seed)
            for name, defense in defenses.items():
                start = time.perf_counter()
                repaired = defense(model, x, y, seed=seed)
                seconds = time.perf_counter() - start
                rows.append({"method": name, "fraction": fraction, "seed": seed, "seconds": seconds,
                             **evaluate(repaired, data, attack, **evaluate_kwargs)})
                if keep_models:
                    rows[-1]["model"] = repaired
                bar.update()
    bar.close()
    return rows


def summarize(rows: list[dict], keys: Sequence[str] = ("method", "fraction"),
              metrics: Sequence[str] = ("ca", "asr", "robust", "seconds")) -> dict[tuple, dict[str, tuple[float, float]]]:
    """Group rows by `keys`; for each group, the (mean, std) over its rows (seeds) of every metric."""
    groups: dict[tuple, list[dict]] = {}
    for row in rows:
        groups.setdefault(tuple(row[k] for k in keys), []).append(row)
    return {key: {m: mean_std([r[m] for r in group]) for m in metrics if m in group[0]}
            for key, group in groups.items()}


# BackdoorBench leaderboard (backdoorbench.github.io, leaderboard-cifar10.html; data also in its
# static/data/results.csv): CIFAR-10, PreAct-ResNet18, BadNets, 10 % poisoning, all-to-one, target 0.
# Defenses use 5 % clean training data (their configs' `ratio: 0.05`). In percent; None: not in it.
BACKDOORBENCH_CIFAR10_BADNETS = {
    "no defense": {"ca": 91.32, "asr": 95.03, "ra": 4.67},
    "fine-tuning": {"ca": 89.96, "asr": 1.48, "ra": 89.39},
    "fine-pruning": {"ca": 91.31, "asr": 57.13, "ra": 41.62},
    "nad": {"ca": 89.87, "asr": 2.14, "ra": 88.71},
    "i-bau": {"ca": 89.16, "asr": 1.29, "ra": 89.24},
    "kd": None,  # knowledge distillation into a fresh student is not a BackdoorBench defense
    "pgd-at": None,  # nor is PGD adversarial fine-tuning
}
BACKDOORBENCH_SOURCE = ("BackdoorBench leaderboard, CIFAR-10, PreAct-ResNet18, BadNets 10 % poisoning, 5 % clean data "
                        "(backdoorbench.github.io/leaderboard-cifar10.html); RA = robust accuracy in BackdoorBench's "
                        "sense: triggered images classified as their true label, not PGD accuracy")
