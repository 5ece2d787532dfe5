"""Training and evaluation: short loops over in-memory tensors (no DataLoader workers).

`fit` trains any model on (x, y); `predict` and `accuracy` evaluate under
`torch.inference_mode()`; `train_model` is "load from the cache if trained before,
else train", which is how every notebook gets its models.
"""

from __future__ import annotations

import time

import torch
import torch.nn.functional as F
from torch import nn
from tqdm.auto import tqdm

from .cache import load_or_train
from .data import ImageData, as_float
from .models import make_model
from .poison import BackdoorAttack
from .runtime import get_profile, try_device

CACHE_VERSION = 1  # bump when training changes, so old cached models are not reused
# Devices where `fit` trains in bfloat16 autocast with channels_last images (about 2x faster
# for ResNet-18 on a recent GPU; no loss scaling needed for bf16). The CPU path stays float32.
MIXED_PRECISION_DEVICES = ("cuda",)


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


def _check_xy(x, y) -> None:
    if not isinstance(x, torch.Tensor) or not isinstance(y, torch.Tensor):
        raise TypeError(f"x and y must be torch tensors, got {type(x).__name__} and {type(y).__name__}")
    if x.ndim != 4 or y.ndim != 1 or len(x) != len(y):
        raise ValueError(f"expected x of shape (N, C, H, W) and y of shape (N,), got {tuple(x.shape)} and {tuple(y.shape)}")


def fit(model: nn.Module, x: torch.Tensor, y: torch.Tensor, *, epochs: int | None = None, batch_size: int | None = None,
        lr: float | None = None, seed: int = 0, augment: bool | None = None, device=None,
        progress: bool = True, desc: str = "training") -> nn.Module:
    """Train `model` on images `x` (uint8 or float in [0, 1]) and labels `y` with cross-entropy.

    Defaults come from the profile. Adam (cpu) or SGD with Nesterov momentum (gpu), both
    with a one-cycle learning-rate schedule; bf16 autocast on CUDA. Returns the model in eval mode.
    """
    _check_xy(x, y)
    profile = get_profile()
    epochs = epochs or profile.epochs
    batch_size = batch_size or profile.batch_size
    lr = lr or profile.lr
    augment = profile.name == "gpu" if augment is None else augment
    if epochs < 1 or batch_size < 1 or lr <= 0:
        raise ValueError(f"epochs and batch_size must be >= 1 and lr > 0, got {epochs}, {batch_size}, {lr}")
    device = torch.device(device) if device is not None else try_device()
    fast = device.type in MIXED_PRECISION_DEVICES
    memory_format = torch.channels_last if fast else torch.contiguous_format
    torch.backends.cudnn.benchmark = device.type == "cuda"
    model.to(device, memory_format=memory_format).train()
    x, y = x.to(device), y.to(device)  # the whole set stays on the device
    generator = torch.Generator().manual_seed(seed)
    steps = epochs * -(-len(x) // batch_size)
    if profile.name == "gpu":
        optimizer = torch.optim.SGD(model.parameters(), lr=lr, momentum=0.9, nesterov=True, weight_decay=5e-4)
    else:
        optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=lr, total_steps=steps, pct_start=0.25)
    bar = tqdm(range(epochs), desc=desc, disable=not progress, leave=False)
    for _ in bar:
        total, correct, loss_sum = 0, torch.zeros((), device=device), torch.zeros((), device=device)
        for idx in batches(len(x), batch_size, generator=generator):
            xb, yb = as_float(x[idx.to(device)]), y[idx.to(device)]
            if augment:
                xb = flip_and_crop(xb, generator)
            with torch.autocast(device.type, dtype=torch.bfloat16, enabled=fast):
                logits = model(xb.contiguous(memory_format=memory_format))
                loss = F.cross_entropy(logits, yb)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            schedule.step()
            total += len(yb)  # running sums stay on the device: no GPU sync per step
            correct += (logits.argmax(1) == yb).sum()
            loss_sum += loss.detach().float() * len(yb)
        bar.set_postfix(loss=f"{loss_sum.item() / total:.3f}", train_acc=f"{correct.item() / total:.3f}")
    return model.to(memory_format=torch.contiguous_format).eval()


@torch.inference_mode()
def predict_logits(model: nn.Module, x: torch.Tensor, batch_size: int = 1024) -> torch.Tensor:
    """Logits for images `x` (uint8 or float), computed in batches; returned on the CPU."""
    if model.training:
        raise RuntimeError("the model is in training mode (BatchNorm and dropout would change); call model.eval() first")
    device = next(model.parameters()).device
    outs = [model(as_float(x[i : i + batch_size].to(device))).cpu() for i in range(0, len(x), batch_size)]
    return torch.cat(outs) if outs else torch.empty(0, getattr(model, "num_classes", 0))


@torch.inference_mode()
def embeddings(model: nn.Module, x: torch.Tensor, batch_size: int = 1024) -> torch.Tensor:
    """Penultimate features `model.embed(x)`, shape (N, D), computed in batches; on the CPU."""
    if model.training:
        raise RuntimeError("the model is in training mode; call model.eval() first")
    device = next(model.parameters()).device
    return torch.cat([model.embed(as_float(x[i : i + batch_size].to(device))).cpu() for i in range(0, len(x), batch_size)])


def predict(model: nn.Module, x: torch.Tensor, batch_size: int = 1024) -> torch.Tensor:
    """Predicted class indices (N,) for images `x`."""
    return predict_logits(model, x, batch_size).argmax(1)


def accuracy(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    """Fraction of `x` classified as `y`, in [0, 1]."""
    _check_xy(x, y)
    return (predict(model, x) == y).float().mean().item()


def train_model(data: ImageData, attack: BackdoorAttack | None = None, poison_rate: float = 0.0, *, seed: int = 0,
                epochs: int | None = None, model_name: str | None = None, use_cache: bool = True,
                progress: bool = True) -> nn.Module:
    """A model trained on `data` (poisoned by `attack` at `poison_rate` if given), from the cache when possible.

    The cache key holds everything that changes the result: data, model, attack, rate, seed,
    epochs, batch size and learning rate. Returns the model in eval mode: on the CPU for the
    cpu profile, on `try_device()` for the gpu profile (ResNet-18 evaluation is slow on a CPU).
    """
    profile = get_profile()
    if attack is not None and not 0.0 <= poison_rate <= 1.0:
        raise ValueError(f"poison_rate must be a fraction in [0, 1], got {poison_rate}")
    model_name = model_name or profile.model
    epochs = epochs or profile.epochs
    config = {
        "version": CACHE_VERSION, "data": data.name, "n_train": len(data.x_train), "model": model_name,
        "attack": attack.config() if attack is not None else None, "poison_rate": poison_rate if attack else 0.0,
        "seed": seed, "epochs": epochs, "batch_size": profile.batch_size, "lr": profile.lr,
    }

    def build():
        return make_model(model_name, in_shape=data.image_shape, num_classes=data.num_classes, seed=seed)

    def train(model):
        x, y = data.x_train, data.y_train
        if attack is not None and poison_rate > 0:
            poisoned = attack.poison(x, y, poison_rate, seed=seed, num_classes=data.num_classes)
            x, y = poisoned.x, poisoned.y
        name = attack.name if attack is not None else "clean"
        start = time.perf_counter()
        fit(model, x, y, epochs=epochs, seed=seed, progress=progress, desc=f"training {name} model (seed {seed})")
        model.train_seconds = time.perf_counter() - start

    model = load_or_train(config, build, train)
    return model.to(try_device()) if profile.name == "gpu" else model
