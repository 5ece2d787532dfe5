"""Triggers: pure functions that take a batch of images and return triggered copies.

All triggers take float images in [0, 1] of shape (N, C, H, W), never change their
input, and return a new tensor of the same shape and dtype. `TRIGGERS` maps attack
names to them; `course_utils.poison.make_attack` looks names up there.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F

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

    As in the paper / here: Gu et al. stamp a single pixel or a small pattern near the bottom-right
    corner of MNIST digits; the course's default is a 3x3 white square one pixel in from that corner.
    """
    row, col = patch_corner(check_images(images).shape[-2:], size, position)
    return stamp_patch(images, size, row, col, color)


def stamp_patch(images: torch.Tensor, size: int = 3, row: int = 24, col: int = 24, color=1.0) -> torch.Tensor:
    """A copy of `images` with a `size` x `size` square of `color` whose top-left pixel is (row, col)."""
    check_images(images)
    patch_corner(images.shape[-2:], size, (row, col))  # raises if the square does not fit
    out = images.clone()
    out[:, :, row : row + size, col : col + size] = _color_tensor(color, images.shape[1], images)
    return out


BLEND_PATTERNS = ("noise", "checkerboard")


def blend(images: torch.Tensor, pattern: torch.Tensor, alpha: float) -> torch.Tensor:
    """Mix `pattern` into every image: ``(1 - alpha) * images + alpha * pattern``.

    images: float (N, C, H, W) in [0, 1]; pattern: float (C, H, W) or (1, C, H, W) in [0, 1];
    alpha: the share of the pattern, in [0, 1] (0 leaves the images as they are).
    Returns a new tensor in [0, 1]; the input is left as it is.
    """
    check_images(images)
    if isinstance(alpha, bool) or not isinstance(alpha, (int, float)) or not 0.0 <= alpha <= 1.0:
        raise ValueError(f"alpha is the pattern's share and must be a number in [0, 1], got {alpha!r}")
    if not isinstance(pattern, torch.Tensor):
        raise TypeError(f"pattern must be a torch.Tensor of shape (C, H, W), got {type(pattern).__name__}")
    if pattern.ndim == 4 and pattern.shape[0] == 1:
        pattern = pattern[0]
    if tuple(pattern.shape) != tuple(images.shape[1:]):
        raise ValueError(
            f"pattern must have the shape of one image, {tuple(images.shape[1:])}, got {tuple(pattern.shape)}"
        )
    return (1 - alpha) * images + alpha * pattern.to(images)


def blend_pattern(name: str, shape: tuple[int, int, int], seed: int = 0) -> torch.Tensor:
    """A named pattern of `shape` (C, H, W) in [0, 1]: "noise" (uniform, seeded) or "checkerboard" (1-pixel)."""
    if name == "noise":
        return torch.rand(tuple(shape), generator=torch.Generator().manual_seed(seed))
    if name == "checkerboard":
        c, h, w = shape
        board = (torch.arange(h).view(-1, 1) + torch.arange(w).view(1, -1)) % 2
        return board.float().expand(c, h, w).clone()
    raise ValueError(f"Unknown blend pattern {name!r}; use one of {BLEND_PATTERNS} or pass a (C, H, W) tensor")


def blended_trigger(images: torch.Tensor, alpha: float = 0.2, pattern="noise", seed: int = 0) -> torch.Tensor:
    """Blended injection (Chen et al., 2017, arXiv:1712.05526): mix a fixed pattern into the whole image.

    images: float (N, C, H, W) in [0, 1]. alpha: the pattern's share in [0, 1] (the paper poisons
    with 0.2). pattern: a name in BLEND_PATTERNS (made with `seed`) or a (C, H, W) tensor in [0, 1].
    Every pixel moves a little instead of a few pixels a lot, so the trigger is hard to see.

    As in the paper / here: Chen et al. blend a cartoon or a noise pattern into face photos and may
    raise alpha at test time; the course blends seeded uniform noise into MNIST digits.
    """
    check_images(images)
    if isinstance(pattern, str):
        pattern = blend_pattern(pattern, tuple(images.shape[1:]), seed)
    return blend(images, pattern, alpha)


def wanet_grid(height: int, width: int, k: int = 4, s: float = 0.5, seed: int = 0) -> torch.Tensor:
    """The fixed WaNet warping field as a `grid_sample` grid, shape (1, H, W, 2) in [-1, 1].

    A random k x k field of 2-D offsets in [-1, 1] (seeded), scaled to mean absolute value 1,
    upsampled bicubically to H x W (so it is smooth), then added to the identity grid with
    strength s: a pixel moves by about s / 2 pixels on average (Nguyen & Tran, 2021).
    """
    if not isinstance(k, int) or not 2 <= k <= min(height, width):
        raise ValueError(f"k (the control grid size) must be an int in [2, {min(height, width)}], got {k!r}")
    if not isinstance(s, (int, float)) or s < 0:
        raise ValueError(f"s (the warping strength) must be a non-negative number, got {s!r}")
    field = torch.rand(1, 2, k, k, generator=torch.Generator().manual_seed(seed)) * 2 - 1
    field = field / field.abs().mean()
    field = F.interpolate(field, size=(height, width), mode="bicubic", align_corners=True).permute(0, 2, 3, 1)
    rows, cols = torch.meshgrid(torch.linspace(-1, 1, height), torch.linspace(-1, 1, width), indexing="ij")
    identity = torch.stack((cols, rows), dim=-1).unsqueeze(0)  # grid_sample wants (x, y) order
    return (identity + s * field / height).clamp(-1, 1)


def warp(images: torch.Tensor, grid: torch.Tensor) -> torch.Tensor:
    """Resample `images` (N, C, H, W) at `grid` ((1 or N), H, W, 2), bilinearly, borders clamped."""
    check_images(images)
    n, _, h, w = images.shape
    if grid.ndim != 4 or tuple(grid.shape[1:]) != (h, w, 2) or grid.shape[0] not in (1, n):
        raise ValueError(f"grid must have shape (1 or {n}, {h}, {w}, 2), got {tuple(grid.shape)}")
    grid = grid.to(images).expand(n, h, w, 2)
    return F.grid_sample(images, grid, mode="bilinear", padding_mode="border", align_corners=True).clamp(0, 1)


def wanet_trigger(images: torch.Tensor, k: int = 4, s: float = 0.5, seed: int = 0) -> torch.Tensor:
    """WaNet (Nguyen & Tran, ICLR 2021, arXiv:2102.10369): warp every image with one fixed smooth field.

    images: float (N, C, H, W) in [0, 1]. k: control grid size; s: strength (see `wanet_grid`);
    seed: which field. k=4, s=0.5 are the paper's MNIST settings. Nothing is added to the image:
    its strokes just bend a little.

    As in the paper / here: the field is the paper's; the paper's attacker controls training and warps a
    fresh share of every batch (with fresh noise-mode samples), while the course poisons the data once
    (see `course_utils.poison.WaNetAttack`).
    """
    check_images(images)
    return warp(images, wanet_grid(images.shape[-2], images.shape[-1], k, s, seed))


def wanet_noise_warp(images: torch.Tensor, k: int = 4, s: float = 0.5, seed: int = 0,
                     noise_seed: int = 0) -> torch.Tensor:
    """WaNet's "noise mode": the trigger's field plus fresh random offsets (up to half a pixel) per image.

    The attacker trains on such images with their TRUE labels, so the model must learn the exact
    field, not "any warp" (Nguyen & Tran, 2021, section 3.3). Same shapes as `wanet_trigger`.
    """
    check_images(images)
    n, _, h, w = images.shape
    grid = wanet_grid(h, w, k, s, seed)
    noise = torch.rand(n, h, w, 2, generator=torch.Generator().manual_seed(noise_seed)) * 2 - 1
    return warp(images, (grid + noise / h).clamp(-1, 1))


TRIGGERS = {"badnets": patch_trigger, "blended": blended_trigger, "wanet": wanet_trigger}
