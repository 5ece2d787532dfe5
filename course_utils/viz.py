"""Figures that more than one notebook draws."""

from __future__ import annotations

from collections.abc import Sequence

import matplotlib.pyplot as plt
import torch

from .data import as_float


def show_images(images: torch.Tensor, titles: Sequence[str] | None = None, ncols: int = 8, size: float = 1.4,
                suptitle: str | None = None):
    """A grid of images (N, C, H, W), uint8 or float, with an optional title under each. Returns the figure."""
    images = as_float(images).detach().cpu()
    n = len(images)
    ncols = max(1, min(ncols, n))
    nrows = -(-n // ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(size * ncols, size * nrows + 0.3), squeeze=False)
    for i, ax in enumerate(axes.flat):
        ax.axis("off")
        if i >= n:
            continue
        img = images[i].permute(1, 2, 0).clamp(0, 1).numpy()
        ax.imshow(img.squeeze(-1) if img.shape[-1] == 1 else img, cmap="gray", vmin=0, vmax=1)
        if titles is not None:
            ax.set_title(titles[i], fontsize=8)
    if suptitle:
        fig.suptitle(suptitle)
    fig.tight_layout()
    return fig


def plot_curves(x: Sequence[float], curves: dict[str, Sequence[float]], xlabel: str, ylabel: str = "",
                spreads: dict[str, Sequence[float]] | None = None, logx: bool = False, title: str | None = None,
                percent: bool = True, ax=None):
    """Several curves against one x axis; `spreads` draws a +/- band (e.g. std over seeds). Returns the axes."""
    if ax is None:
        _, ax = plt.subplots(figsize=(5.5, 3.5))
    scale = 100 if percent else 1
    for name, ys in curves.items():
        ys = [v * scale for v in ys]
        ax.plot(x, ys, marker="o", label=name)
        if spreads and name in spreads:
            s = [v * scale for v in spreads[name]]
            ax.fill_between(x, [a - b for a, b in zip(ys, s)], [a + b for a, b in zip(ys, s)], alpha=0.2)
    if logx:
        ax.set_xscale("log")
        ax.set_xticks(list(x), [f"{v:g}" for v in x])
        ax.minorticks_off()
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel + (" (%)" if percent and ylabel else ""))
    if title:
        ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend()
    return ax
