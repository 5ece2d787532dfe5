"""Out-of-distribution inputs: shifted and corrupted test images, and a second source of digits.

Each shift is a pure function on a batch of float images (N, C, H, W) in [0, 1] that
returns a new batch of the same shape, in the spirit of the corruption benchmarks of
Hendrycks & Dietterich (ICLR 2019, "ImageNet-C") and MNIST-C (Mu & Gilmer, 2019).
`sklearn_digits()` gives a different digit source: scikit-learn's 1,797 8x8 digits
(UCI optical recognition of handwritten digits), upscaled into MNIST's 28x28 frame.
`shift_report()` measures accuracy, confidence and ASR of several models on all of them.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
import torchvision.transforms.functional as TF
from torch import nn

from .data import as_float
from .poison import BackdoorAttack
from .train import predict_logits
from .triggers import check_images


def rotate(images: torch.Tensor, degrees: float) -> torch.Tensor:
    """Rotate every image by `degrees` (counter-clockwise) about its centre; corners filled with 0."""
    check_images(images)
    return TF.rotate(images, float(degrees), interpolation=TF.InterpolationMode.BILINEAR)


def gaussian_noise(images: torch.Tensor, sigma: float, seed: int = 0) -> torch.Tensor:
    """Add N(0, sigma^2) noise to every pixel (seeded), clipped to [0, 1]."""
    check_images(images)
    if sigma < 0:
        raise ValueError(f"sigma must be >= 0, got {sigma}")
    noise = torch.randn(images.shape, generator=torch.Generator().manual_seed(seed), dtype=images.dtype)
    return (images + sigma * noise.to(images.device)).clamp(0, 1)


def blur(images: torch.Tensor, sigma: float) -> torch.Tensor:
    """Gaussian blur with standard deviation `sigma` pixels (kernel 2*ceil(3 sigma)+1 wide)."""
    check_images(images)
    if sigma <= 0:
        raise ValueError(f"blur sigma must be > 0 pixels, got {sigma}")
    size = 2 * math.ceil(3 * sigma) + 1
    return TF.gaussian_blur(images, [size, size], [float(sigma), float(sigma)])


def contrast(images: torch.Tensor, factor: float) -> torch.Tensor:
    """Scale every image's deviation from its own mean by `factor` (1 = unchanged, 0 = flat grey)."""
    check_images(images)
    if factor < 0:
        raise ValueError(f"contrast factor must be >= 0, got {factor}")
    mean = images.mean(dim=(1, 2, 3), keepdim=True)
    return (mean + factor * (images - mean)).clamp(0, 1)


SHIFTS = {"rotation": rotate, "noise": gaussian_noise, "blur": blur, "contrast": contrast}
# Three severities each, mild to strong; the unit is the shift function's parameter.
SEVERITIES = {"rotation": (15, 30, 45), "noise": (0.1, 0.25, 0.4), "blur": (0.7, 1.2, 1.7), "contrast": (0.5, 0.3, 0.15)}


def apply_shift(images: torch.Tensor, name: str, severity: float) -> torch.Tensor:
    """`SHIFTS[name](images, severity)` on uint8 or float images; returns float images in [0, 1]."""
    if name not in SHIFTS:
        raise ValueError(f"Unknown shift {name!r}; choose one of {sorted(SHIFTS)}")
    return SHIFTS[name](as_float(images), severity)


def sklearn_digits(size: int = 28, box: int = 20) -> tuple[torch.Tensor, torch.Tensor]:
    """scikit-learn's 1,797 digits (8x8, 0..16) upscaled to `box` x `box` and centred in `size` x `size`.

    Like MNIST: white ink on black, digit in a 20x20 box in a 28x28 frame. A different
    writer population, scanner and resolution: a natural distribution shift.
    Returns (uint8 images (1797, 1, size, size) in 0..255, int64 labels (1797,)).
    """
    from sklearn.datasets import load_digits

    if not 0 < box <= size:
        raise ValueError(f"need 0 < box <= size, got box={box}, size={size}")
    digits = load_digits()
    small = torch.as_tensor(digits.images, dtype=torch.float32).unsqueeze(1) / 16.0
    big = F.interpolate(small, size=(box, box), mode="bilinear", align_corners=False)
    before = (size - box) // 2
    framed = F.pad(big, (before, size - box - before, before, size - box - before))
    return (framed.clamp(0, 1) * 255).round().to(torch.uint8), torch.as_tensor(digits.target, dtype=torch.long)


def accuracy_and_confidence(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> tuple[float, float]:
    """(accuracy, mean top-1 softmax probability) of `model` on images `x` with labels `y`."""
    probs = predict_logits(model, x).softmax(1)
    conf, pred = probs.max(1)
    return (pred == y).float().mean().item(), conf.mean().item()


def shift_report(models: dict[str, nn.Module], x: torch.Tensor, y: torch.Tensor,
                 attack: BackdoorAttack | None = None, severities: dict | None = None,
                 extra: dict[str, tuple[torch.Tensor, torch.Tensor]] | None = None) -> list[dict]:
    """Accuracy, confidence (and ASR, if `attack` is given) of each model on every shifted copy of (x, y).

    models: {name: model}. x: test images (N, C, H, W), y: labels (N,).
    severities: {shift name: levels}, default SEVERITIES; "none" (the clean test set) comes first.
    extra: more named test sets {name: (x, y)} such as `sklearn_digits()`, evaluated as they are.
    ASR triggers the shifted images (trigger stamped last, as an attacker at inference would).
    Returns rows {"model", "shift", "severity", "accuracy", "confidence"[, "asr"]}.
    """
    if not models:
        raise ValueError("give at least one model: {name: model}")
    severities = SEVERITIES if severities is None else severities
    unknown = sorted(set(severities) - set(SHIFTS))
    if unknown:
        raise ValueError(f"Unknown shift(s) {unknown}; choose from {sorted(SHIFTS)}")
    sets = [("none", 0, as_float(x), y)]
    sets += [(name, level, apply_shift(x, name, level), y) for name, levels in severities.items() for level in levels]
    sets += [(name, 0, as_float(ex), ey) for name, (ex, ey) in (extra or {}).items()]
    rows = []
    for shift_name, level, xs, ys in sets:
        keep = attack.target_labels(ys) != ys if attack is not None else None
        triggered = attack.apply(xs[keep]) if attack is not None else None
        for model_name, model in models.items():
            acc, conf = accuracy_and_confidence(model, xs, ys)
            row = {"model": model_name, "shift": shift_name, "severity": level, "accuracy": acc, "confidence": conf}
            if attack is not None:
                hits = predict_logits(model, triggered).argmax(1) == attack.target_labels(ys[keep])
                row["asr"] = hits.float().mean().item()
            rows.append(row)
    return rows
