"""How visible is a trigger? Distances between clean images and their triggered copies.

Three numbers per image pair, each a different idea of "visible":
- L2 distance: the total energy of the change (a big faint change and a small bright one can tie);
- L-inf distance: the largest change of any one pixel (a solid white patch scores 1);
- SSIM (Wang et al., 2004, IEEE TIP 13(4)): structural similarity, 1 for identical images, lower
  when local means, contrasts and correlations differ: closer to what a human notices.
"""

from __future__ import annotations

import numpy as np
import torch
from skimage.metrics import structural_similarity

from .triggers import check_images


def _pair(clean: torch.Tensor, triggered: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Both batches as float (N, C, H, W) in [0, 1] with the same shape, or a clear error."""
    from .data import as_float

    clean, triggered = check_images(as_float(clean)), check_images(as_float(triggered))
    if clean.shape != triggered.shape:
        raise ValueError(
            f"clean and triggered images must have the same shape, got {tuple(clean.shape)} and {tuple(triggered.shape)}"
        )
    return clean.detach().cpu().float(), triggered.detach().cpu().float()


def l2_distance(clean: torch.Tensor, triggered: torch.Tensor) -> torch.Tensor:
    """Per-image L2 norm of the change, shape (N,), float32 (pixels in [0, 1], so at most sqrt(C*H*W))."""
    clean, triggered = _pair(clean, triggered)
    return (triggered - clean).flatten(1).norm(dim=1)


def linf_distance(clean: torch.Tensor, triggered: torch.Tensor) -> torch.Tensor:
    """Per-image largest absolute pixel change, shape (N,), float32 in [0, 1]."""
    clean, triggered = _pair(clean, triggered)
    return (triggered - clean).flatten(1).abs().amax(dim=1)


def ssim(clean: torch.Tensor, triggered: torch.Tensor) -> torch.Tensor:
    """Per-image SSIM (skimage, 7x7 window, data range 1), shape (N,), float32, 1 = identical.

    skimage compares one image pair per call, so this loops over the batch: fine for the
    few hundred images a visibility table needs (~0.1 ms an MNIST digit).
    """
    clean, triggered = _pair(clean, triggered)
    a, b = clean.permute(0, 2, 3, 1).numpy(), triggered.permute(0, 2, 3, 1).numpy()
    values = [structural_similarity(x, y, data_range=1.0, channel_axis=-1) for x, y in zip(a, b)]
    return torch.tensor(np.array(values, dtype=np.float32))


def visibility(clean: torch.Tensor, triggered: torch.Tensor) -> dict[str, float]:
    """Mean L2, L-inf and SSIM over a batch: {"l2": ..., "linf": ..., "ssim": ...}."""
    return {
        "l2": l2_distance(clean, triggered).mean().item(),
        "linf": linf_distance(clean, triggered).mean().item(),
        "ssim": ssim(clean, triggered).mean().item(),
    }


def plot_visibility_vs_asr(points: dict[str, tuple[float, float, float]], xlabel: str = "1 - SSIM (more visible →)",
                           ax=None):
    """One dot per attack at (visibility, ASR) with an error bar (std over seeds).

    points: {attack name: (visibility, mean ASR in [0, 1], std of ASR)}. Returns the axes.
    """
    import matplotlib.pyplot as plt

    if ax is None:
        _, ax = plt.subplots(figsize=(5.5, 3.8))
    for name, (vis, asr, spread) in points.items():
        ax.errorbar(vis, 100 * asr, yerr=100 * spread, fmt="o", capsize=3, markersize=8)
        ax.annotate(name, (vis, 100 * asr), textcoords="offset points", xytext=(6, -12), fontsize=9)
    ax.set_xlabel(xlabel)
    ax.set_ylabel("attack success rate (%)")
    ax.set_ylim(-5, 105)
    ax.grid(alpha=0.3)
    return ax
