"""Triggers: pure functions that take a batch of images and return triggered copies.

All triggers take float images in [0, 1] of shape (N, C, H, W), never change their
input, and return a new tensor of the same shape and dtype. `TRIGGERS` maps attack
names to them; `course_utils.poison.make_attack` looks names up there.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

POSITIONS = ("top-left", "top-right", "bottom-left", "bottom-right", "center")


def check_images(images) -> torch.Tensor:
    """Raise a clear error unless `images` is a float (N, C, H, W) batch in [0, 1]."""
    if not isinstance(images, torch.Tensor):
        raise TypeError(f"images must be a torch.Tensor of shape (N, C, H, W), got {type(images).__name__}")
    if images.ndim != 4:
        hint = " (add a batch dimension: images.unsqueeze(0))" if images.ndim == 3 else ""
        raise ValueError(f"images must have shape (N, C, H, W), got {tuple(images.shape)}{hint}")
    if not images.is_floating_point():
        raise TypeError(
            f"images must be float in [0, 1], got dtype {images.dtype}; convert with course_utils.as_float(images)"
        )
    return images


def patch_corner(image_size: tuple[int, int], size: int, position="bottom-right", margin: int = 1) -> tuple[int, int]:
    """(row, col) of the top-left pixel of a `size` x `size` patch at a named position.

    position: one of POSITIONS, or an explicit (row, col) pair.
    margin: pixels left free between the patch and the image border.
    """
    height, width = image_size
    if not isinstance(size, int) or size < 1:
        raise ValueError(f"trigger size must be a positive int, got {size!r}")
    if size + 2 * margin > min(height, width):
        raise ValueError(f"a {size}x{size} trigger (with a {margin}-pixel margin) does not fit in a {height}x{width} image")
    if isinstance(position, str):
        far_row, far_col = height - size - margin, width - size - margin
        corners = {
            "top-left": (margin, margin), "top-right": (margin, far_col),
            "bottom-left": (far_row, margin), "bottom-right": (far_row, far_col),
            "center": ((height - size) // 2, (width - size) // 2),
        }
        if position not in corners:
            raise ValueError(f"Unknown trigger position {position!r}; use one of {POSITIONS} or a (row, col) pair")
        return corners[position]
    row, col = (int(v) for v in position)
    if not (0 <= row <= height - size and 0 <= col <= width - size):
        raise ValueError(f"a {size}x{size} trigger at (row={row}, col={col}) does not fit in a {height}x{width} image")
    return row, col


def _color_tensor(color, channels: int, like: torch.Tensor) -> torch.Tensor:
    values = torch.as_tensor(color if isinstance(color, Sequence) else [color] * channels, dtype=like.dtype)
    if values.numel() != channels:
        raise ValueError(f"color has {values.numel()} values but the images have {channels} channels")
    if values.min() < 0 or values.max() > 1:
        raise ValueError(f"color values must be in [0, 1], got {values.tolist()}")
    return values.view(1, channels, 1, 1).to(like.device)


def patch_trigger(images: torch.Tensor, size: int = 3, position="bottom-right", color=1.0) -> torch.Tensor:
    """BadNets (Gu et al., 2017): stamp a solid `size` x `size` square of `color` onto every image.

    images: float (N, C, H, W) in [0, 1]. position: a name in POSITIONS or (row, col).
    color: one value for all channels or one per channel, in [0, 1].
    Returns a new tensor; the input is left as it is.
    """
    check_images(images)
    row, col = patch_corner(images.shape[-2:], size, position)
    out = images.clone()
    out[:, :, row : row + size, col : col + size] = _color_tensor(color, images.shape[1], images)
    return out


TRIGGERS = {"badnets": patch_trigger}
