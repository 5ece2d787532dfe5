"""The two model families of the course, behind one small interface.

Every model here is a `CourseModel`: a stack of feature `blocks`, then `embed` (the
penultimate features that Activation Clustering and Spectral Signatures look at), then
a linear `head`. `feature_maps(x)` returns every block's output (what NAD distils), and
`channel_mask` switches channels of the last block off (what fine-pruning prunes).
"""

from __future__ import annotations

import torch
from torch import nn

from .runtime import get_profile


class CourseModel(nn.Module):
    """blocks -> (channel mask) -> embed -> head. Inputs are float images in [0, 1]."""

    def __init__(self, blocks: list[nn.Module], embed: nn.Module, head: nn.Linear, in_shape: tuple[int, int, int]):
        super().__init__()
        self.blocks = nn.ModuleList(blocks)
        self.embed_layer = embed
        self.head = head
        self.in_shape = tuple(in_shape)
        last_channels = _out_channels(self.blocks[-1])
        self.register_buffer("channel_mask", torch.ones(last_channels))

    @property
    def num_classes(self) -> int:
        return self.head.out_features

    def _check(self, x: torch.Tensor) -> None:
        if not isinstance(x, torch.Tensor):
            raise TypeError(f"expected a torch.Tensor of images, got {type(x).__name__}")
        if x.ndim != 4 or tuple(x.shape[1:]) != self.in_shape:
            raise ValueError(
                f"expected images of shape (N, {', '.join(map(str, self.in_shape))}), got {tuple(x.shape)}; "
                "a single image needs a batch dimension: x.unsqueeze(0)"
            )
        if not x.is_floating_point():
            raise TypeError(f"expected float images in [0, 1], got dtype {x.dtype}; use course_utils.as_float(x)")

    def feature_maps(self, x: torch.Tensor) -> list[torch.Tensor]:
        """The output of every block, the last one after the channel mask."""
        self._check(x)
        maps = []
        for block in self.blocks:
            x = block(x)
            maps.append(x)
        maps[-1] = maps[-1] * self.channel_mask.view(1, -1, 1, 1)
        return maps

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        """Penultimate features, shape (N, D)."""
        return self.embed_layer(self.feature_maps(x)[-1])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.embed(x))


def _out_channels(block: nn.Module) -> int:
    convs = [m for m in block.modules() if isinstance(m, nn.Conv2d)]
    return convs[-1].out_channels


def _conv_bn(c_in: int, c_out: int, pool: bool) -> nn.Sequential:
    layers = [nn.Conv2d(c_in, c_out, 3, padding=1, bias=False), nn.BatchNorm2d(c_out), nn.ReLU(inplace=True)]
    if pool:
        layers.append(nn.MaxPool2d(2))
    return nn.Sequential(*layers)


def small_cnn(in_shape=(1, 28, 28), num_classes: int = 10, width: int = 16) -> CourseModel:
    """Three conv blocks (width, 2*width, 4*width channels) and a 128-unit hidden layer.

    About 0.2 M parameters: ~98 % on MNIST after a few epochs, fast on two CPU cores.
    """
    c, h, w = in_shape
    blocks = [_conv_bn(c, width, pool=True), _conv_bn(width, 2 * width, pool=True), _conv_bn(2 * width, 4 * width, pool=False)]
    flat = 4 * width * (h // 4) * (w // 4)
    embed = nn.Sequential(nn.Flatten(), nn.Linear(flat, 128), nn.ReLU(inplace=True))
    return CourseModel(blocks, embed, nn.Linear(128, num_classes), in_shape)


def resnet18(in_shape=(3, 32, 32), num_classes: int = 10) -> CourseModel:
    """torchvision's ResNet-18 with the usual CIFAR stem (3x3 conv, no max-pool)."""
    import torchvision

    net = torchvision.models.resnet18(num_classes=num_classes)
    stem = nn.Sequential(nn.Conv2d(in_shape[0], 64, 3, padding=1, bias=False), nn.BatchNorm2d(64), nn.ReLU(inplace=True))
    blocks = [stem, net.layer1, net.layer2, net.layer3, net.layer4]
    embed = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten())
    return CourseModel(blocks, embed, net.fc, in_shape)


MODELS = {"small-cnn": small_cnn, "resnet18": resnet18}


def make_model(name: str | None = None, in_shape=None, num_classes: int = 10, seed: int | None = None) -> CourseModel:
    """A freshly initialised model (`name` defaults to the profile's), seeded if `seed` is given."""
    name = name or get_profile().model
    if name not in MODELS:
        raise ValueError(f"Unknown model {name!r}; choose one of {sorted(MODELS)}")
    if seed is not None:
        torch.manual_seed(seed)
    kwargs = {"num_classes": num_classes}
    if in_shape is not None:
        kwargs["in_shape"] = tuple(in_shape)
    return MODELS[name](**kwargs)
