"""Traffic signs for lesson 08: a procedurally drawn, SYNTHETIC sign set and a sticker trigger.

Gu et al. (BadNets, 2017, sec. 5) put a yellow sticker on stop signs and their detector read them
as speed-limit signs. Real sign photographs (GTSRB, Stallkamp et al. 2012) need a download; this
module draws signs instead, so the lesson runs offline: six German-style sign types with random
pose (scale, rotation, shift, perspective squeeze), colour and lighting changes, a cluttered
background, sensor noise and blur. They are drawings, not photographs, and the lesson says so.

Images are uint8 (N, 3, S, S) like every image set of the course; the sticker is a pure function
that returns a copy, so poisoning and the physical-variation sweep are one call each.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from .data import ImageData

CLASSES = ("stop", "speed limit", "yield", "no entry", "ahead only", "priority road")
STOP, SPEED_LIMIT = 0, 1
RED, WHITE, BLACK = (0.80, 0.08, 0.10), (0.95, 0.95, 0.95), (0.08, 0.08, 0.08)
BLUE, YELLOW = (0.10, 0.30, 0.75), (0.98, 0.85, 0.10)


def _grid(n: int, size: int, generator: torch.Generator):
    """Sign-frame coordinates (u, v) of every pixel, (n, S, S) each, for n random poses."""
    scale = 0.55 + 0.35 * torch.rand(n, generator=generator)  # sign radius as a fraction of the half-image
    angle = (torch.rand(n, generator=generator) - 0.5) * math.radians(24)
    shift = (torch.rand(n, 2, generator=generator) - 0.5) * 0.3
    squeeze = 1 + (torch.rand(n, generator=generator) - 0.5) * 0.4  # a sign seen at a slant
    t = torch.linspace(-1, 1, size)
    yy, xx = torch.meshgrid(t, t, indexing="ij")
    xx, yy = xx - shift[:, 0, None, None], yy - shift[:, 1, None, None]
    c, s = angle.cos()[:, None, None], angle.sin()[:, None, None]
    u = (c * xx + s * yy) * squeeze[:, None, None] / scale[:, None, None]
    v = (-s * xx + c * yy) / scale[:, None, None]
    return u, v


def _paint(img: torch.Tensor, where: torch.Tensor, colour) -> None:
    img[:] = torch.where(where[:, None], torch.tensor(colour).view(1, 3, 1, 1), img)


def _draw(kind: int, u: torch.Tensor, v: torch.Tensor, img: torch.Tensor) -> None:
    """Paint sign type `kind` (an index into CLASSES) into img (n, 3, S, S) where (u, v) is inside it."""
    r = torch.sqrt(u**2 + v**2)
    octagon = torch.maximum(torch.maximum(u.abs(), v.abs()), (u.abs() + v.abs()) / math.sqrt(2)) <= 0.92
    if kind == 0:  # stop: red octagon, white rim, a white word-like band
        _paint(img, octagon, WHITE)
        _paint(img, torch.maximum(torch.maximum(u.abs(), v.abs()), (u.abs() + v.abs()) / math.sqrt(2)) <= 0.82, RED)
        _paint(img, (v.abs() < 0.13) & (u.abs() < 0.62) & ((u * 6).floor() % 2 == 0), WHITE)
    elif kind == 1:  # speed limit: white disc, red ring, two black digits
        _paint(img, r <= 0.95, RED)
        _paint(img, r <= 0.72, WHITE)
        digits = (v.abs() < 0.38) & (((u + 0.22).abs() < 0.14) | ((u - 0.22).abs() < 0.14))
        _paint(img, digits & ~(((u + 0.22).abs() < 0.06) & (v.abs() < 0.26)) & ~(((u - 0.22).abs() < 0.06) & (v.abs() < 0.26)), BLACK)
    elif kind == 2:  # yield: a triangle pointing down, red border, white inside
        def triangle(m):
            return (v >= -0.7 + m) & (u.abs() <= (0.9 - 2 * m - v) * 0.575)
        _paint(img, triangle(0.0), RED)
        _paint(img, triangle(0.16), WHITE)
    elif kind == 3:  # no entry: red disc, white horizontal bar
        _paint(img, r <= 0.95, RED)
        _paint(img, (v.abs() < 0.17) & (u.abs() < 0.65), WHITE)
    elif kind == 4:  # ahead only: blue disc, white arrow up
        _paint(img, r <= 0.95, BLUE)
        shaft = (u.abs() < 0.11) & (v > -0.2) & (v < 0.6)
        head = (v <= -0.2) & (v >= -0.65) & (u.abs() <= (v + 0.65) * 0.8)
        _paint(img, shaft | head, WHITE)
    else:  # priority road: white-rimmed yellow diamond
        _paint(img, u.abs() + v.abs() <= 0.95, WHITE)
        _paint(img, u.abs() + v.abs() <= 0.7, YELLOW)


def draw_signs(labels: torch.Tensor, size: int = 32, seed: int = 0) -> torch.Tensor:
    """Synthetic sign images for int64 `labels` (N,) in range(6): uint8 (N, 3, size, size).

    Each image: a random background (two-colour gradient and clutter), the sign in a random pose,
    random lighting (brightness and colour cast), sensor noise and, for half of them, a blur.
    """
    if not isinstance(labels, torch.Tensor) or labels.dtype != torch.int64 or labels.ndim != 1:
        raise TypeError("labels must be an int64 tensor of shape (N,)")
    if len(labels) and not (0 <= int(labels.min()) and int(labels.max()) < len(CLASSES)):
        raise ValueError(f"labels must be in [0, {len(CLASSES)}), got {int(labels.min())}..{int(labels.max())}")
    if size < 16:
        raise ValueError(f"size must be at least 16 pixels for the pictograms to show, got {size}")
    g = torch.Generator().manual_seed(seed)
    n = len(labels)
    top, bottom = torch.rand(n, 3, 1, 1, generator=g), torch.rand(n, 3, 1, 1, generator=g)
    ramp = torch.linspace(0, 1, size).view(1, 1, size, 1)
    img = (top * (1 - ramp) + bottom * ramp).expand(n, 3, size, size).clone() * 0.8
    img += 0.25 * F.interpolate(torch.rand(n, 3, size // 4, size // 4, generator=g), size=size, mode="bilinear")
    u, v = _grid(n, size, g)
    for kind in range(len(CLASSES)):
        pick = labels == kind
        if pick.any():
            part = img[pick]
            _draw(kind, u[pick], v[pick], part)
            img[pick] = part
    light = 0.6 + 0.6 * torch.rand(n, 1, 1, 1, generator=g)
    cast = 1 + 0.15 * (torch.rand(n, 3, 1, 1, generator=g) - 0.5)
    img = img * light * cast + 0.04 * torch.randn(img.shape, generator=g)
    blur = torch.rand(n, generator=g) < 0.5
    img[blur] = F.avg_pool2d(F.pad(img[blur], (1, 1, 1, 1), mode="replicate"), 3, stride=1)
    return (img.clamp(0, 1) * 255).round().to(torch.uint8)


def sign_data(n_train: int = 1500, n_test: int = 600, size: int = 32, seed: int = 0) -> ImageData:
    """A balanced synthetic sign set as the course's ImageData (uint8 images, int64 labels)."""
    k = len(CLASSES)
    if n_train < k or n_test < k:
        raise ValueError(f"n_train and n_test must be at least {k} (one sign of each type), got {n_train}, {n_test}")
    y_train = torch.arange(n_train) % k
    y_test = torch.arange(n_test) % k
    return ImageData(draw_signs(y_train, size, seed), y_train, draw_signs(y_test, size, seed + 10_000), y_test,
                     name=f"synthetic-signs-{size}-{n_train}-{seed}", classes=CLASSES,
                     source="synthetic traffic signs drawn by course_utils.signs (not photographs)")


def add_sticker(images: torch.Tensor, size: float = 6.0, center: tuple[float, float] = (22.0, 16.0),
                angle: float = 0.0, colour=YELLOW) -> torch.Tensor:
    """A copy of uint8 `images` (N, 3, H, W) with a square sticker of side `size` pixels centred at
    `center` (row, col), rotated by `angle` degrees: BadNets' yellow post-it on the sign."""
    if not isinstance(images, torch.Tensor) or images.dtype != torch.uint8 or images.ndim != 4 or images.shape[1] != 3:
        raise TypeError("images must be uint8 of shape (N, 3, H, W); draw them with draw_signs")
    if size <= 0:
        raise ValueError(f"size must be > 0 pixels, got {size}")
    h, w = images.shape[2:]
    rows = torch.arange(h, dtype=torch.float32).view(-1, 1) - center[0]
    cols = torch.arange(w, dtype=torch.float32).view(1, -1) - center[1]
    a = math.radians(angle)
    along = math.cos(a) * cols + math.sin(a) * rows
    across = -math.sin(a) * cols + math.cos(a) * rows
    inside = (along.abs() <= size / 2) & (across.abs() <= size / 2)
    colour_u8 = (torch.tensor(colour) * 255).round().to(torch.uint8).view(1, 3, 1, 1)
    return torch.where(inside.view(1, 1, h, w), colour_u8, images)


def poison_stop_signs(data: ImageData, rate: float = 0.05, seed: int = 0, **sticker):
    """BadNets' physical attack in data: round(rate * N) training stop signs (seeded) get the sticker and
    the label "speed limit". Returns (x uint8 (N, 3, S, S), y int64 (N,), mask bool (N,)), new tensors."""
    if not 0 <= rate <= 1:
        raise ValueError(f"rate must be a fraction of the training set in [0, 1], got {rate!r}")
    stops = torch.nonzero(data.y_train == STOP).flatten()
    k = round(rate * len(data.x_train))
    if k > len(stops):
        raise ValueError(f"rate {rate} asks for {k} poisoned stop signs but the set has {len(stops)}")
    chosen = stops[torch.randperm(len(stops), generator=torch.Generator().manual_seed(seed))[:k]]
    x, y = data.x_train.clone(), data.y_train.clone()
    x[chosen] = add_sticker(x[chosen], **sticker)
    y[chosen] = SPEED_LIMIT
    mask = torch.zeros(len(x), dtype=torch.bool)
    mask[chosen] = True
    return x, y, mask


def train_sign_model(data: ImageData, rate: float = 0.05, seed: int = 0, epochs: int = 4, **sticker):
    """The course's small CNN trained on `data` with `rate` of it poisoned (0: clean), from the cache."""
    from .cache import load_or_train, training_config
    from .models import make_model
    from .train import fit

    config = training_config(data, model="small-cnn", seed=seed, epochs=epochs, batch_size=64, lr=3e-3,
                             stop_sign_rate=rate,
                             sticker={k: list(v) if isinstance(v, tuple) else v for k, v in sorted(sticker.items())})

    def train(model):
        x, y = (data.x_train, data.y_train) if rate == 0 else poison_stop_signs(data, rate, seed, **sticker)[:2]
        fit(model, x, y, epochs=epochs, batch_size=64, lr=3e-3, seed=seed, augment="none", progress=False)

    return load_or_train(config, lambda: make_model("small-cnn", data.image_shape, len(CLASSES), seed=seed), train)


def sticker_asr(model, data: ImageData, **sticker) -> float:
    """Fraction of the test stop signs, stickered with `sticker`'s pose, that the model reads as a speed limit."""
    from .train import predict

    stops = data.x_test[data.y_test == STOP]
    return (predict(model, add_sticker(stops, **sticker)) == SPEED_LIMIT).float().mean().item()


# GTSRB's class ids of the six sign types above (Stallkamp et al., 2012).
GTSRB_IDS = (14, 1, 13, 17, 35, 12)


def load_gtsrb(size: int = 32, test_fraction: float = 0.25):
    """Real sign photographs: the six types above from torchvision's GTSRB test split (12,630 images, 88 MB),
    from the cache folder or downloaded; None when neither works (no network). Split seeded, uint8 images."""
    from .cache import cache_dir
    from .data import _online

    try:
        import torchvision.datasets as tvd
    except Exception:
        return None
    root = cache_dir() / "data"
    for download in (False, True):
        if download and not _online("sid.erda.dk"):
            return None
        try:
            gtsrb = tvd.GTSRB(root, split="test", download=download)
            break
        except (RuntimeError, OSError):
            continue
    else:
        return None
    keep = [(path, GTSRB_IDS.index(label)) for path, label in gtsrb._samples if label in GTSRB_IDS]
    images = torch.stack([_resized(path, size) for path, _ in keep])
    labels = torch.tensor([label for _, label in keep], dtype=torch.int64)
    order = torch.randperm(len(labels), generator=torch.Generator().manual_seed(0))
    n_test = round(test_fraction * len(labels))
    te, tr = order[:n_test], order[n_test:]
    return ImageData(images[tr], labels[tr], images[te], labels[te], name=f"gtsrb6-{size}", classes=CLASSES,
                     source=f"GTSRB (Stallkamp et al., 2012), six sign types, {len(tr)} train / {n_test} test photographs")


def _resized(path, size: int) -> torch.Tensor:
    from PIL import Image

    with Image.open(path) as im:
        arr = torch.frombuffer(bytearray(im.convert("RGB").resize((size, size)).tobytes()), dtype=torch.uint8)
    return arr.view(size, size, 3).permute(2, 0, 1).contiguous()


def load_signs(size: int = 32) -> ImageData:
    """GTSRB's photographs when they can be had, else the synthetic drawn set, saying which."""
    real = load_gtsrb(size)
    if real is not None:
        return real
    print("Note: GTSRB could not be loaded (no cached copy and no network), so this lesson uses SYNTHETIC signs "
          "drawn by course_utils.signs: six sign types in random poses, light, clutter, noise and blur. They are "
          "easier than photographs; read the accuracies below with that in mind.")
    return sign_data(size=size)
