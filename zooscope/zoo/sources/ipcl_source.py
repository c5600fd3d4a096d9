"""IPCL models (Konkle & Alvarez 2022, harvard-visionlab/open_ipcl): ``alexnet_gn``.

AlexNet with GroupNorm (32 groups) after every bias-free convolution, BatchNorm1d in fc6/fc7 and
a 128-d L2-normalised embedding (fc8 + ``Normalize``). Parameter names follow open_ipcl's
``models/alexnet_gn.py`` (``conv_block_1.0.weight``, ..., ``fc8.0.bias``), so its published
checkpoints (``{"state_dict": {"module.<name>": ...}}``) load by name. The four published diets
(ImageNet, OpenImages, Places, VGGFace2) share the architecture.

Transform (open_ipcl hubconf ``_transform``, the same for the four models): resize 256,
center crop 224, ``to_tensor``, ImageNet mean/std normalisation.
"""

from __future__ import annotations

from typing import ClassVar

import torch
from torch import nn
from torchvision import transforms

from zooscope.zoo.sources.base import Transform, register_source
from zooscope.zoo.sources.family import FamilyModel, FamilySource

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


class L2Normalize(nn.Module):
    """Divide each row by its Euclidean norm (open_ipcl's ``Normalize(2)``)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.div(x.pow(2).sum(1, keepdim=True).pow(0.5))


def _conv_block(
    c_in: int, c_out: int, kernel: int, stride: int, padding: int, pool: bool
) -> nn.Sequential:
    layers: list[nn.Module] = [
        nn.Conv2d(c_in, c_out, kernel, stride, padding, bias=False),
        nn.GroupNorm(32, c_out),
        nn.ReLU(inplace=True),
    ]
    if pool:
        layers.append(nn.MaxPool2d(3, 2))
    return nn.Sequential(*layers)


class AlexNetGN(nn.Module):
    """open_ipcl's ``alexnet_gn(out_dim=128, l2norm=True)``.

    Input ``[n, 3, 224, 224]``; output ``[n, 128]`` unit-norm embeddings.
    """

    def __init__(self, out_dim: int = 128) -> None:
        super().__init__()
        self.conv_block_1 = _conv_block(3, 96, 11, 4, 2, pool=True)
        self.conv_block_2 = _conv_block(96, 256, 5, 1, 2, pool=True)
        self.conv_block_3 = _conv_block(256, 384, 3, 1, 1, pool=False)
        self.conv_block_4 = _conv_block(384, 384, 3, 1, 1, pool=False)
        self.conv_block_5 = _conv_block(384, 256, 3, 1, 1, pool=True)
        self.ave_pool = nn.AdaptiveAvgPool2d((6, 6))
        self.fc6 = nn.Sequential(
            nn.Linear(256 * 6 * 6, 4096), nn.BatchNorm1d(4096), nn.ReLU(inplace=True)
        )
        self.fc7 = nn.Sequential(nn.Linear(4096, 4096), nn.BatchNorm1d(4096), nn.ReLU(inplace=True))
        self.fc8 = nn.Sequential(nn.Linear(4096, out_dim))
        self.l2norm = L2Normalize()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for block in (
            self.conv_block_1,
            self.conv_block_2,
            self.conv_block_3,
            self.conv_block_4,
            self.conv_block_5,
        ):
            x = block(x)
        x = self.ave_pool(x).flatten(1)
        return self.l2norm(self.fc8(self.fc7(self.fc6(x))))


def ipcl_transform() -> Transform:
    """Resize 256, center crop 224, to_tensor, ImageNet normalisation (open_ipcl hubconf)."""
    return transforms.Compose(
        [
            transforms.Resize(256),
            transforms.CenterCrop(224),
            transforms.ToTensor(),
            transforms.Normalize(IMAGENET_MEAN, IMAGENET_STD),
        ]
    )


@register_source
class IPCLSource(FamilySource):
    name = "ipcl"
    models: ClassVar[dict[str, FamilyModel]] = {
        "alexnet_gn": FamilyModel(AlexNetGN, ipcl_transform)
    }
