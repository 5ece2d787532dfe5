"""Training and evaluation: short loops over in-memory tensors (no DataLoader workers).

`fit` trains any model on (x, y); `predict` and `accuracy` evaluate under
`torch.inference_mode()`; `train_model` is "load from the cache if trained before,
else train", which is how every notebook gets its models.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F
from torch import nn
from tqdm.auto import tqdm

from .cache import load_or_train, training_config
from .data import ImageData, as_float
from .models import make_model
from .runtime import get_profile, try_device

if TYPE_CHECKING:  # only a type here: poison imports this module (the clean-label surrogate)
    from .poison import BackdoorAttack

CACHE_VERSION = 2  # bump when training changes, so old cached models are not reused
# Devices where `fit` trains in bfloat16 autocast (about 2x faster for ResNet-18 on a recent GPU;
# no loss scaling needed for bf16). The CPU path stays float32.
MIXED_PRECISION_DEVICES = ("cuda",)
# Devices where `fit` keeps model and batches channels_last: on a 2-core CPU the small CNN's
# standard fit took 3.4-3.6 s instead of 4.4-5.0 s (course_tools/bench.py times it each run).
CHANNELS_LAST_DEVICES = ("cuda", "cpu")


def batches(n: int, batch_size: int, shuffle: bool = True, generator: torch.Generator | None = None):
    """Index tensors that cover range(n) in batches (shuffled with `generator` if asked)."""
    order = torch.randperm(n, generator=generator) if shuffle else torch.arange(n)
    for start in range(0, n, batch_size):
        yield order[start : start + batch_size]


def flip_and_crop(x: torch.Tensor, generator: torch.Generator | None = None, pad: int = 4) -> torch.Tensor:
    """The standard CIFAR augmentation, batched on x's device: every image gets its own random
    horizontal flip and its own crop of the image reflect-padded by `pad` pixels (a shift of
    up to `pad` pixels each way). x: float (N, C, H, W); returns a new tensor of the same shape."""
    n, c, h, w = x.shape
    flip = torch.rand(n, generator=generator, device="cpu").to(x.device) < 0.5
    x = torch.where(flip.view(-1, 1, 1, 1), x.flip(3), x)
    padded = F.pad(x, (pad, pad, pad, pad), mode="reflect")
    dy, dx = torch.randint(0, 2 * pad + 1, (2, n, 1), generator=generator).to(x.device)
    rows = (dy + torch.arange(h, device=x.device)).view(n, 1, h, 1)
    cols = (dx + torch.arange(w, device=x.device)).view(n, 1, 1, w)
    return padded[torch.arange(n, device=x.device).view(n, 1, 1, 1), torch.arange(c, device=x.device).view(1, c, 1, 1),
                  rows, cols]  # one gather for the whole batch


def random_shift(x: torch.Tensor, generator: torch.Generator, pixels: int = 2) -> torch.Tensor:
    """Shift every image by its own random offset of up to `pixels` in x and y (zero fill), batched.

    A cheap augmentation for digits (no flips: a flipped 2 is not a 2).
    """
    n, _, h, w = x.shape
    shifts = torch.randint(-pixels, pixels + 1, (n, 2), generator=generator).float()
    theta = torch.zeros(n, 2, 3)
    theta[:, 0, 0] = theta[:, 1, 1] = 1
    theta[:, 0, 2] = -2 * shifts[:, 0] / w
    theta[:, 1, 2] = -2 * shifts[:, 1] / h
    grid = F.affine_grid(theta.to(x.device), list(x.shape), align_corners=False)
    return F.grid_sample(x, grid, mode="nearest", padding_mode="zeros", align_corners=False)


def shift_augment(pixels: int) -> Callable | None:
    """`fit`'s augment for random shifts of up to `pixels` (None for 0: no augmentation)."""
    return (lambda xb, generator: random_shift(xb, generator, pixels)) if pixels else None


def check_xy(x, y, name_x: str = "x", name_y: str = "y") -> None:
    """A TypeError/ValueError unless x is images (N, C, H, W) and y int64 labels (N,)."""
    if not isinstance(x, torch.Tensor) or not isinstance(y, torch.Tensor):
        raise TypeError(f"{name_x} and {name_y} must be torch tensors, got {type(x).__name__} and {type(y).__name__}")
    if x.ndim != 4 or y.ndim != 1 or len(x) != len(y):
        raise ValueError(f"expected {name_x} of shape (N, C, H, W) and {name_y} of shape (N,), got {tuple(x.shape)} "
                         f"and {tuple(y.shape)}")
    if y.dtype != torch.int64:
        raise TypeError(f"{name_y} must be int64 class indices (N,), got dtype {y.dtype}; use {name_y}.long() "
                        "if they are whole numbers")


def check_finite(x: torch.Tensor, name: str = "x") -> None:
    """A ValueError if float images `x` hold NaN or infinity (a model would turn them into labels silently)."""
    if x.is_floating_point() and not torch.isfinite(x).all():
        raise ValueError(f"{name} holds NaN or infinite values; images must be finite, uint8 or float in [0, 1]")


def cross_entropy(model: nn.Module, xb: torch.Tensor, yb: torch.Tensor) -> torch.Tensor:
    """`fit`'s default loss: the mean cross-entropy of model(xb) against the labels yb."""
    return F.cross_entropy(model(xb), yb)


def _augmentation(augment) -> Callable | None:
    if callable(augment) or augment is None:
        return augment
    if augment == "flip-crop":
        return flip_and_crop  # looked up at call time, so a test can wrap it
    if augment == "none":
        return None
    raise ValueError(f"augment must be 'flip-crop', 'none', None or a function (batch, generator) -> batch, "
                     f"got {augment!r}")


def _optimizer(name: str, params, lr: float) -> torch.optim.Optimizer:
    if name == "sgd":
        return torch.optim.SGD(params, lr=lr, momentum=0.9, nesterov=True, weight_decay=5e-4)
    if name == "adam":
        return torch.optim.Adam(params, lr=lr)
    raise ValueError(f"optimizer must be 'adam' or 'sgd', got {name!r}")


def _schedule(name: str, optimizer, lr: float, steps: int):
    if name == "one-cycle":
        if steps <= 4:  # a quarter of 4 steps or fewer is no warm-up: torch's OneCycleLR divides by zero there
            return torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=steps)
        return torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=lr, total_steps=steps, pct_start=0.25)
    if name == "cosine":
        return torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=steps)
    raise ValueError(f"schedule must be 'one-cycle' or 'cosine', got {name!r}")


def fit(model: nn.Module, x: torch.Tensor, y: torch.Tensor, *, loss: Callable = cross_entropy, augment=None,
        epochs: int | None = None, batch_size: int | None = None, lr: float | None = None,
        optimizer: str | None = None, schedule: str | None = None, seed: int = 0, device=None,
        progress: bool = True, desc: str = "training") -> nn.Module:
    """Train `model` in place on images `x` (uint8 or float in [0, 1]) and int64 labels `y`.

    The one training loop of the course: models of every lesson, adversarial training, the
    repairs (fine-tuning, fine-pruning, distillation, NAD, adversarial unlearning) all run here
    and differ only in their arguments.
    loss(model, xb, yb) -> scalar: called in train mode on float batches in [0, 1]
        (default: cross-entropy).
    augment: a function (batch, generator) -> batch, "flip-crop", "none", or None for the
        profile's choice ("flip-crop" on gpu, "none" on cpu).
    epochs, batch_size, lr, optimizer ("adam" | "sgd"), schedule ("one-cycle" | "cosine"):
        the profile's recipe unless given. bf16 autocast on CUDA.
    Returns the model in eval mode.
    """
    check_xy(x, y)
    profile = get_profile()
    epochs = profile.epochs if epochs is None else epochs
    batch_size = profile.batch_size if batch_size is None else batch_size
    lr = profile.lr if lr is None else lr
    for name, value in (("epochs", epochs), ("batch_size", batch_size)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"{name} must be an int >= 1, got {value!r}")
    if isinstance(lr, bool) or not isinstance(lr, (int, float)) or not lr > 0:
        raise ValueError(f"lr must be a number > 0, got {lr!r}")
    augment = _augmentation(profile.augment if augment is None else augment)
    device = torch.device(device) if device is not None else try_device()
    fast = device.type in MIXED_PRECISION_DEVICES
    memory_format = torch.channels_last if device.type in CHANNELS_LAST_DEVICES else torch.contiguous_format
    torch.backends.cudnn.benchmark = device.type == "cuda"
    model.to(device, memory_format=memory_format).train()
    x, y = x.to(device), y.to(device)  # the whole set stays on the device
    generator = torch.Generator().manual_seed(seed)
    steps = epochs * -(-len(x) // batch_size)
    opt = _optimizer(optimizer or profile.optimizer, [p for p in model.parameters() if p.requires_grad], lr)
    sched = _schedule(schedule or profile.schedule, opt, lr, steps)
    bar = tqdm(range(epochs), desc=desc, disable=not progress, leave=False)
    for _ in bar:
        total, loss_sum = 0, torch.zeros((), device=device)
        for idx in batches(len(x), batch_size, generator=generator):
            xb, yb = as_float(x[idx.to(device)]), y[idx.to(device)]
            if augment is not None:
                xb = augment(xb, generator)
            with torch.autocast(device.type, dtype=torch.bfloat16, enabled=fast):
                batch_loss = loss(model, xb.contiguous(memory_format=memory_format), yb)
            opt.zero_grad(set_to_none=True)
            batch_loss.backward()
            opt.step()
            sched.step()
            total += len(yb)  # the running sum stays on the device: no GPU sync per step
            loss_sum += batch_loss.detach().float() * len(yb)
        bar.set_postfix(loss=f"{loss_sum.item() / total:.3f}")
    return model.to(memory_format=torch.contiguous_format).eval()


# Inference batches on the CPU: with channels_last weights the small CNN predicts 8,100 digits in
# 0.18 s in batches of 256, against 0.49 s contiguous in batches of 1,024 (2 cores, measured
# 2026-12-07); larger batches fall out of the cache. Accelerators keep large batches.
CPU_INFERENCE_BATCH = 256
GPU_INFERENCE_BATCH = 1024


@contextlib.contextmanager
def fast_layout(model: nn.Module):
    """Run the block with `model`'s conv weights channels_last where that is faster (the devices of
    `CHANNELS_LAST_DEVICES`), then give the model back in the layout it came in.

    Only the memory layout changes, never a value: the same parameters (optimisers holding them stay
    valid), the same outputs up to float rounding. Models without 4-d weights are left alone.
    """
    weights = [p for p in model.parameters() if p.dim() == 4]
    if not weights or weights[0].device.type not in CHANNELS_LAST_DEVICES or not all(w.is_contiguous() for w in weights):
        yield model  # nothing to gain, or already in another layout (inside `fit`): leave it as it is
        return
    _set_layout(model, torch.channels_last)
    try:
        yield model
    finally:
        _set_layout(model, torch.contiguous_format)


def _set_layout(model: nn.Module, memory_format: torch.memory_format) -> None:
    # Outside inference mode even when called from inside it: weights made there could never be trained again.
    with torch.inference_mode(False), torch.no_grad():
        model.to(memory_format=memory_format)


def _inference_batch(model: nn.Module, batch_size: int | None) -> int:
    if batch_size is None:
        device = next(model.parameters()).device
        return CPU_INFERENCE_BATCH if device.type == "cpu" else GPU_INFERENCE_BATCH
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size must be an int >= 1, got {batch_size!r}")
    return batch_size


def _check_images(model: nn.Module, x) -> None:
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"x must be a torch tensor of images (N, C, H, W), got {type(x).__name__}")
    if model.training:
        raise RuntimeError("the model is in training mode (BatchNorm and dropout would change); call model.eval() first")
    check_finite(x)


@torch.inference_mode()
def predict_logits(model: nn.Module, x: torch.Tensor, batch_size: int | None = None) -> torch.Tensor:
    """Logits (N, K) for images `x` (uint8 or float in [0, 1], finite), computed in batches; on the CPU.

    batch_size: default 256 on the CPU, 1,024 on an accelerator (see `CPU_INFERENCE_BATCH`).
    """
    _check_images(model, x)
    device = next(model.parameters()).device
    step = _inference_batch(model, batch_size)
    with fast_layout(model):
        outs = [model(as_float(x[i : i + step].to(device))).cpu() for i in range(0, len(x), step)]
    return torch.cat(outs) if outs else torch.empty(0, getattr(model, "num_classes", 0))


@torch.inference_mode()
def embeddings(model: nn.Module, x: torch.Tensor, batch_size: int | None = None) -> torch.Tensor:
    """Penultimate features `model.embed(x)`, shape (N, D), computed in batches; on the CPU."""
    _check_images(model, x)
    device = next(model.parameters()).device
    step = _inference_batch(model, batch_size)
    with fast_layout(model):
        return torch.cat([model.embed(as_float(x[i : i + step].to(device))).cpu() for i in range(0, len(x), step)])


def predict(model: nn.Module, x: torch.Tensor, batch_size: int | None = None) -> torch.Tensor:
    """Predicted class indices (N,) for images `x`."""
    return predict_logits(model, x, batch_size).argmax(1)


def accuracy(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    """Fraction of `x` classified as `y`, in [0, 1]; x must hold at least one image."""
    check_xy(x, y)
    if len(x) == 0:
        raise ValueError("x is an empty batch: accuracy needs at least one image")
    return (predict(model, x) == y).float().mean().item()


def train_model(data: ImageData, attack: BackdoorAttack | None = None, poison_rate: float = 0.0, *, seed: int = 0,
                epochs: int | None = None, model_name: str | None = None, use_cache: bool = True,
                progress: bool = True) -> nn.Module:
    """A model trained on `data` (poisoned by `attack` at `poison_rate` if given), from the cache when possible.

    The cache key (`cache.training_config`) holds everything that changes the result: data,
    model, attack, rate, seed, epochs, batch size and learning rate. Returns the model in eval
    mode: on the CPU for the cpu profile, on `try_device()` for the gpu profile (ResNet-18
    evaluation is slow on a CPU).
    """
    profile = get_profile()
    if attack is not None and not 0.0 <= poison_rate <= 1.0:
        raise ValueError(f"poison_rate must be a fraction in [0, 1], got {poison_rate}")
    model_name = model_name or profile.model
    epochs = epochs or profile.epochs
    config = training_config(data, model=model_name, attack=attack, poison_rate=poison_rate, seed=seed, epochs=epochs,
                             version=CACHE_VERSION)

    def build():
        return make_model(model_name, in_shape=data.image_shape, num_classes=data.num_classes, seed=seed)

    def train(model):
        x, y = data.x_train, data.y_train
        if attack is not None and poison_rate > 0:
            poisoned = attack.poison(x, y, poison_rate, seed=seed, num_classes=data.num_classes)
            x, y = poisoned.x, poisoned.y
        name = attack.name if attack is not None else "clean"
        fit(model, x, y, epochs=epochs, seed=seed, progress=progress, desc=f"training {name} model (seed {seed})")

    model = load_or_train(config, build, train)
    return model.to(try_device()) if profile.name == "gpu" else model
