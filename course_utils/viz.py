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
    if images.ndim != 4 or images.shape[1] not in (1, 3) or len(images) == 0:
        raise ValueError(f"images must be a non-empty batch of shape (N, 1 or 3, H, W), got {tuple(images.shape)}")
    n = len(images)
    if titles is not None and (isinstance(titles, str) or len(titles) != n):
        raise ValueError(f"titles must be a list of one title per image ({n}), got {titles!r:.80}")
    if isinstance(ncols, bool) or not isinstance(ncols, int) or ncols < 1:
        raise ValueError(f"ncols must be a positive int, got {ncols!r}")
    ncols = min(ncols, n)
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
    if not isinstance(curves, dict) or not curves:
        raise TypeError(f"curves must be a non-empty dict {{name: y values}}, got {type(curves).__name__}")
    for name, ys in {**curves, **(spreads or {})}.items():
        if len(ys) != len(x):
            raise ValueError(f"curves/spreads[{name!r}] has {len(ys)} values but x has {len(x)}")
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
