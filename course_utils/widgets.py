"""Widgets for the "try it" moments. Each wraps a plain function, so it also runs headless."""

from __future__ import annotations

import torch
from torch import nn

from .data import as_float
from .poison import target_labels
from .train import predict
from .triggers import POSITIONS, patch_trigger
from .viz import show_images


def trigger_preview(model: nn.Module, images: torch.Tensor, size: int = 3, position: str = "bottom-right",
                    show: int = 8):
    """Stamp a patch of `size` at `position` on `images`; return (figure of the first `show`, predictions)."""
    triggered = patch_trigger(as_float(images), size, position)
    preds = predict(model, triggered)
    fig = show_images(triggered[:show], [f"pred {int(p)}" for p in preds[:show]], ncols=show,
                      suptitle=f"{size}x{size} patch at {position}")
    return fig, preds


def trigger_explorer(model: nn.Module, images: torch.Tensor, labels: torch.Tensor, target: int = 0):
    """Sliders for trigger size and position; shows triggered images, predictions and the hit rate."""
    import ipywidgets as widgets
    import matplotlib.pyplot as plt

    keep = target_labels(labels, target) != labels

    def update(size=3, position="bottom-right"):
        fig, preds = trigger_preview(model, images, size, position)
        plt.show(fig)
        hits = (preds[keep] == target).float().mean().item()
        print(f"{hits:.1%} of the non-target images are classified as {target}")

    return widgets.interact(update, size=widgets.IntSlider(value=3, min=1, max=8, description="size"),
                            position=widgets.Dropdown(options=POSITIONS, value="bottom-right", description="position"))
