"""Repair a backdoored model with a small clean set, and train one adversarially.

The defender holds the suspicious model and a small clean set (`clean_subset`: a seeded
fraction of the training images, 5 % by default, as in BackdoorBench). Every repair has
the same signature, so lesson 06 and the benchmark can loop over `REPAIRS`:

    repair(model, x_clean, y_clean, *, seed=0, **hyperparameters) -> new model

x_clean: images (N, C, H, W), uint8 or float in [0, 1]; y_clean: int64 labels (N,). The input
model is never changed; the repaired copy comes back in eval mode. All of them train with
`train.fit` (the course's one training loop) with the profile's repair recipe; they differ only
in the loss. Defaults follow the papers, scaled to the CPU profile (a few seconds on 200 digits);
each docstring says where the method follows its paper and where not.
"""

from __future__ import annotations

import copy
import time
from collections.abc import Callable, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from .data import ImageData, as_float
from .metrics import evaluate, sweep
from .models import CourseModel
from .poison import BackdoorAttack
from .robust import _check_batch, check_eps, check_steps, pgd_loss
from .runtime import get_profile
from .train import cross_entropy, fast_layout, fit, predict_logits, shift_augment, train_model


def _fit_repair(model: nn.Module, x, y, loss: Callable, *, epochs: int, lr: float, batch_size: int, seed: int,
                shift: int = 0, progress: bool = False, desc: str = "repair") -> nn.Module:
    """`fit` with the profile's repair recipe (optimizer and schedule), on the model's own device.

    One recipe, so the repairs differ only in their loss. shift: random shifts of up to this
    many pixels as augmentation (digits: no flips), 0 for none.
    """
    profile = get_profile()
    return fit(model, x, y, loss=loss, augment=shift_augment(shift) or "none", epochs=epochs, lr=lr,
               batch_size=batch_size, seed=seed, device=next(model.parameters()).device, progress=progress,
               desc=desc, optimizer=profile.repair_optimizer, schedule=profile.repair_schedule)


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
    return _fit_repair(repaired, x_clean, y_clean, cross_entropy, epochs=epochs, lr=lr, batch_size=batch_size,
                       seed=seed, shift=shift)


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
    The pruned channels stay off: they live in `channel_mask`, so `int((m.channel_mask == 0).sum())`
    says how many.

    As in the paper: pruning in order of increasing mean activation on clean data, until the
    clean accuracy drops by 4 %, then fine-tuning. Here: the defender's small clean set serves
    both steps (the paper prunes on a validation set and fine-tunes on its clean training data),
    and the last block of the course's small CNN stands for the last conv layer.
    """
    _check_batch(_check_model(model), x_clean, y_clean)
    repaired = copy.deepcopy(model).eval()
    prune_dormant(repaired, x_clean, y_clean, max_acc_drop=max_acc_drop)
    return _fit_repair(repaired, x_clean, y_clean, cross_entropy, epochs=epochs, lr=lr, batch_size=batch_size,
                       seed=seed, shift=shift)


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

    As in the defense papers: the student sees only clean images and the teacher's soft labels.
    Not a guarantee: a backdoor can transfer through distillation, because the teacher's soft
    labels on clean images carry traces of the trigger's features, and attacks are built to
    survive it (Ge et al., "Anti-Distillation Backdoor Attacks", ACM MM 2021). Here: the
    student has the teacher's architecture and a clean set of a few hundred images; measure
    its ASR, never assume it is zero.
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
        with fast_layout(teacher):  # the teacher runs on every batch: in the layout `fit` gives the student
            _fit_repair(student, x_clean, y_clean, batch_loss, epochs=epochs, lr=lr, batch_size=batch_size, seed=seed,
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

    As in the paper: the teacher is the backdoored model fine-tuned on 5 % clean data, the
    student the backdoored model itself, attention maps sum |F|^p over channels, p = 2. Here:
    the three blocks of the course's CNN stand for the paper's ResNet groups, Adam with a
    cosine decay replaces SGD, and the epochs are scaled down to the CPU profile.
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
    with fast_layout(teacher):  # the teacher runs on every batch: in the layout `fit` gives the student
        return _fit_repair(student, x_clean, y_clean, batch_loss, epochs=epochs, lr=lr, batch_size=batch_size,
                           seed=seed, shift=shift)


# ---------------------------------------------------------------- adversarial training (Madry)
def adversarial_training(model: nn.Module, x: torch.Tensor, y: torch.Tensor, *, eps: float = 0.2,
                         step: float | None = None, steps: int = 3, epochs: int = 6, lr: float = 2e-3,
                         batch_size: int = 128, seed: int = 0, random_start: bool = True,
                         progress: bool = True) -> nn.Module:
    """PGD adversarial training (Madry et al., ICLR 2018), in place: min over weights of the loss
    on PGD-`steps` examples of radius `eps` (step defaults to 2.5 * eps / steps).

    Use it from scratch on a (possibly poisoned) training set, or to fine-tune. eps=0 is plain
    training with the same loop. Each step costs about (steps + 1) plain steps. Returns the model
    in eval mode (time the call to know what it cost).

    As in the paper: the min-max objective, PGD with a random start, step 2.5 * eps / steps.
    Here: 3 PGD steps instead of 40 (MNIST) or 7 (CIFAR-10), Adam with a cosine decay and a few
    epochs instead of long SGD training, so the model is less robust than Madry's.
    """
    eps, steps = check_eps(eps), check_steps(steps)
    step = 2.5 * eps / steps if step is None else check_eps(step, "step")
    loss = pgd_loss(eps, step, steps, random_start, seed) if eps > 0 else cross_entropy
    return _fit_repair(model, x, y, loss, epochs=epochs, lr=lr, batch_size=batch_size, seed=seed, progress=progress,
                       desc=f"PGD training (eps={eps:g}, {steps} steps)")


def pgd_at(model: nn.Module, x_clean: torch.Tensor, y_clean: torch.Tensor, *, seed: int = 0, eps: float | None = None,
           step: float | None = None, steps: int = 3, epochs: int = 10, lr: float = 1e-3,
           batch_size: int = 64) -> nn.Module:
    """Repair defense: fine-tune a copy of `model` adversarially (PGD, L-inf) on the defender's clean set.

    eps defaults to Madry et al.'s radius for the profile's data (`Profile.madry_eps`: 0.3 on
    MNIST, 8/255 on CIFAR-10). lr is gentle on purpose (plain fine-tuning at this lr leaves the
    backdoor in place), so that what changes is due to the adversarial examples.

    Madry et al. (2018) applied to fine-tuning; it is *not* designed against backdoors, and
    Weng et al. (NeurIPS 2020, "On the trade-off between adversarial and backdoor robustness")
    found that L-inf adversarial training can leave a patch backdoor in place. The input model
    is left untouched; the new one comes back in eval mode.
    """
    eps = get_profile().madry_eps if eps is None else eps
    repaired = copy.deepcopy(model)
    return adversarial_training(repaired, x_clean, y_clean, eps=eps, step=step, steps=steps, epochs=epochs, lr=lr,
                                batch_size=batch_size, seed=seed, progress=False)


# ---------------------------------------------------------------- adversarial unlearning (in the spirit of I-BAU)
def project_l2(delta: torch.Tensor, radius: float) -> torch.Tensor:
    """`delta` scaled down (never up) so that its L2 norm is at most `radius`."""
    norm = delta.norm()
    return delta * min(1.0, radius / (norm.item() + 1e-12))


def universal_perturbation(model: nn.Module, x: torch.Tensor, *, radius: float = 4.0, steps: int = 30,
                           step: float = 0.5, noise: float = 0.3, batch_size: int = 50, seed: int = 0) -> torch.Tensor:
    """The inner maximisation of adversarial unlearning: one perturbation delta (1, C, H, W) with
    ||delta||_2 <= radius that changes the model's own predictions on the clean images `x` as much
    as it can.

    Ascends the cross-entropy between model(clip(x + delta + noise)) and the model's predictions
    on x: normalised gradient steps of length `step` on random minibatches, projected onto the L2
    ball. `noise` (std of Gaussian noise added to the inputs, fresh every step; a choice of this
    course, not of I-BAU) smooths the loss around the clean images. Measured on the course's
    small CNNs (clean and BadNets, seeds 0-2, 200 test digits): the input gradient on the
    4-pixel black border is never exactly zero, but on average 2-3 times smaller than in the
    centre, so plain ascent moves the border, where a corner trigger sits, slowly. A backdoor
    trigger is exactly such a perturbation, so this tends to rediscover it. The model is used
    in eval mode.
    """
    if not isinstance(x, torch.Tensor) or x.ndim != 4:
        raise ValueError(f"x must be a batch of images (N, C, H, W), got {getattr(x, 'shape', type(x).__name__)}")
    radius, steps, noise = check_eps(radius, "radius"), check_steps(steps), check_eps(noise, "noise")
    device = next(model.parameters()).device
    x = as_float(x).to(device)
    was_training = model.training
    model.eval()
    own = predict_logits(model, x).argmax(1).to(device)
    generator = torch.Generator().manual_seed(seed)
    delta = torch.zeros((1, *x.shape[1:]), device=device)
    with fast_layout(model):
        for _ in range(steps):
            idx = torch.randperm(len(x), generator=generator)[:batch_size]
            jitter = noise * torch.randn((len(idx), *x.shape[1:]), generator=generator)
            delta.requires_grad_(True)
            loss = F.cross_entropy(model((x[idx.to(device)] + delta + jitter.to(device)).clamp(0, 1)),
                                   own[idx.to(device)])
            (grad,) = torch.autograd.grad(loss, delta)
            delta = project_l2((delta + step * grad / (grad.norm() + 1e-12)).detach(), radius)
    model.train(was_training)
    return delta


def adversarial_unlearning(model: nn.Module, x_clean: torch.Tensor, y_clean: torch.Tensor, *, seed: int = 0,
                           rounds: int = 5, radius: float = 4.0, inner_steps: int = 30, inner_batch: int = 50,
                           noise: float = 0.3, outer_epochs: int = 2, lr: float = 1e-3, batch_size: int = 64,
                           shift: int = 2, return_perturbations: bool = False):
    """Adversarial unlearning of universal perturbations, in the spirit of I-BAU (Zeng et al.,
    "Adversarial Unlearning of Backdoors via Implicit Hypergradient", ICLR 2022).

    For `rounds` rounds (the paper's default is 5): find the universal perturbation that most
    changes the model's outputs on the clean set (`universal_perturbation`, L2 radius `radius`,
    `inner_steps` steps on batches of `inner_batch` clean images), then train the model for
    `outer_epochs` to classify the clean images correctly both as they are and with a
    perturbation added. Returns the repaired copy in eval mode (the input is untouched), or
    (model, perturbations (rounds, C, H, W)) with return_perturbations=True.

    As in the paper: the min-max of a universal perturbation against the model's weights, on
    the defender's clean set, a handful of rounds. Not I-BAU itself, which differs in three ways:
    - I-BAU updates the weights with the implicit hypergradient of the inner problem (a
      fixed-point approximation with K = 5 iterations in its official code; conjugate
      gradient is the other option the paper discusses); here the two steps simply alternate
      (an ordinary gradient step on the weights, perturbation fixed);
    - I-BAU trains against the current perturbation; here every image gets one of ALL the
      perturbations found so far, drawn at random, so a trigger unlearned in one round is not
      relearned in the next (a perturbation pool);
    - here the inner search adds Gaussian noise to smooth the loss (not in the paper), and the
      radius (L2 norm 4) is chosen for 28x28 digits; the official code projects onto an L2
      ball of radius 10 on 32x32 CIFAR-10 images and adds a small L2 penalty on the perturbation.
    """
    rounds = check_steps(rounds, "rounds")
    x_clean, y_clean = _check_batch(model, x_clean, y_clean)
    repaired = copy.deepcopy(model).eval()
    found: list[torch.Tensor] = []
    pick = torch.Generator().manual_seed(seed)

    def batch_loss(m, xb, yb):
        pool = torch.cat(found)
        deltas = pool[torch.randint(len(pool), (len(xb),), generator=pick).to(pool.device)]
        both = torch.cat([xb, (xb + deltas).clamp(0, 1)])
        return F.cross_entropy(m(both), torch.cat([yb, yb]))

    for r in range(rounds):
        found.append(universal_perturbation(repaired, x_clean, radius=radius, steps=inner_steps, noise=noise,
                                            batch_size=inner_batch, seed=seed * 1000 + r))
        _fit_repair(repaired, x_clean, y_clean, batch_loss, epochs=outer_epochs, lr=lr, batch_size=batch_size,
                    seed=seed * 1000 + r, shift=shift)
    repaired.eval()
    return (repaired, torch.cat(found)) if return_perturbations else repaired


# ---------------------------------------------------------------- the registry lesson 06 loops over
# Every repair by name, one signature (see the module docstring). evaluation.py's matrix and
# the benchmark look repairs up here; adding one is adding a line.
REPAIRS: dict[str, Callable[..., nn.Module]] = {
    "fine-tuning": fine_tune,
    "fine-pruning": fine_prune,
    "kd": distill,
    "nad": nad,
    "adv-unlearning": adversarial_unlearning,
    "pgd-at": pgd_at,
}


# ---------------------------------------------------------------- sweeps and the published reference
def budget_sweep(data: ImageData, attack: BackdoorAttack, defenses: dict[str, Callable] | Sequence[str],
                 fractions: Sequence[float] = (0.01, 0.05, 0.1), seeds: Sequence[int] = (0, 1, 2),
                 poison_rate: float = 0.1, models: dict[int, nn.Module] | None = None, keep_models: bool = False,
                 progress: bool = True, pgd_eps: float = 0.1, defense_kwargs: dict | None = None,
                 **evaluate_kwargs) -> list[dict]:
    """Run every repair on the backdoored model of every seed with every clean-data fraction.

    defenses: names in `REPAIRS` or a {name: function} dict. Seed s repairs the model trained
    with seed s (`train_model(data, attack, poison_rate, seed=s)`, or `models[s]` if given), using
    `clean_subset(data, fraction, seed=s)`; every repaired model is scored by `metrics.evaluate`
    (with the accuracy under PGD of radius `pgd_eps`; evaluate_kwargs go there too). One row per
    run: {"seed", "fraction", "method", "ca", "asr", "ra", "pgd_accuracy", "seconds", "cached"}
    (accuracies in [0, 1]), plus "model" (the repaired model) with keep_models=True.
    defense_kwargs: {defense: {hyperparameter: value}} passed to that defense (e.g. {"pgd-at": {"eps": 0.2}}).

    Named repairs of the course's own models (no `models` given) are cached like every trained
    model (`evaluation.repaired_model`, the cache lesson 06's matrix uses too): a second run, or
    the matrix after this sweep, loads them, and "seconds" is what the repair cost when it was made.
    Functions, and models passed in, are run and timed every time.
    """
    named = not isinstance(defenses, dict)
    if named:
        unknown = sorted(set(defenses) - set(REPAIRS))
        if unknown:
            raise ValueError(f"unknown defense(s) {unknown}; choose from {sorted(REPAIRS)}")
        defenses = {name: REPAIRS[name] for name in defenses}
    for fraction in fractions:
        clean_subset(data, fraction)  # fail early on a bad fraction
    stray = sorted(set(defense_kwargs or {}) - set(defenses))
    if stray:
        raise ValueError(f"defense_kwargs names {stray}, which this sweep does not run; it runs {sorted(defenses)}")
    hyper = {name: dict((defense_kwargs or {}).get(name, {})) for name in defenses}
    from .evaluation import repaired_model  # evaluation builds on this module: imported here, not at the top

    def run(seed: int, fraction: float, method: str) -> dict:
        model = models[seed] if models else train_model(data, attack, poison_rate, seed=seed, progress=False)
        if named and not models:
            repaired, seconds, cached = repaired_model(data, attack, poison_rate, seed, method, model,
                                                       get_profile().epochs, clean_fraction=fraction,
                                                       hyper=hyper[method])
        else:
            x, y = clean_subset(data, fraction, seed=seed)
            start = time.perf_counter()
            repaired = defenses[method](model, x, y, seed=seed, **hyper[method])
            seconds, cached = time.perf_counter() - start, False
        row = {**evaluate(repaired, data, attack, pgd_eps=pgd_eps, **evaluate_kwargs).as_dict(), "seconds": seconds,
               "cached": cached}
        return {**row, "model": repaired} if keep_models else row

    return sweep(run, {"seed": seeds, "fraction": fractions, "method": list(defenses)}, progress=progress,
                 desc="repairs")


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
    "adv-unlearning": None,  # the course's method is in the spirit of I-BAU, not I-BAU: compare with care
}
BACKDOORBENCH_SOURCE = ("BackdoorBench leaderboard, CIFAR-10, PreAct-ResNet18, BadNets 10 % poisoning, 5 % clean data "
                        "(backdoorbench.github.io/leaderboard-cifar10.html); RA = robust accuracy in BackdoorBench's "
                        "sense: triggered images classified as their true label, not PGD accuracy")
