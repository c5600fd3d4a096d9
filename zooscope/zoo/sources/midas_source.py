"""MiDaS v2.1 (Ranftl et al. 2020, isl-org/MiDaS ``midas/midas_net.py``): ``MidasNet``.

A ResNeXt-101 32x8d encoder (the WSL-Images weights; torchvision's ``resnext101_32x8d`` is the
same architecture) regrouped as MiDaS does (``pretrained.layer1`` = stem + layer1), four 3x3
``scratch.layer*_rn`` projections to 256 channels, RefineNet-style ``FeatureFusionBlock``s and
an output head; parameter names equal MiDaS's, so ``midas_v21-f6b98070.pt`` loads by name. One
deliberate difference: the fusion adds out of place (MiDaS writes into the previous block's
output), which leaves the forward output unchanged and keeps every hooked layer's activation
as it was computed.

Transform (MiDaS ``transforms.default_transform``): resize so the image fits in 384 x 384 with
its aspect ratio kept and both sides multiples of 32 (``upper_bound``; bicubic, here PIL's rather
than OpenCV's), ``to_tensor``, ImageNet mean/std normalisation.
"""

from __future__ import annotations

import math
from typing import ClassVar

import torch
import torch.nn.functional as F
from PIL import Image
from torch import nn
from torchvision import transforms

from zooscope.zoo.sources.base import Transform, register_source
from zooscope.zoo.sources.family import FamilyModel, FamilySource

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


class Interpolate(nn.Module):
    """``F.interpolate`` as a module (MiDaS's ``Interpolate``)."""

    def __init__(self, scale_factor: float, mode: str, align_corners: bool = False) -> None:
        super().__init__()
        self.scale_factor = scale_factor
        self.mode = mode
        self.align_corners = align_corners

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.interpolate(
            x, scale_factor=self.scale_factor, mode=self.mode, align_corners=self.align_corners
        )


class ResidualConvUnit(nn.Module):
    """``x + conv2(relu(conv1(relu(x))))``."""

    def __init__(self, features: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(features, features, 3, 1, 1, bias=True)
        self.conv2 = nn.Conv2d(features, features, 3, 1, 1, bias=True)
        self.relu = nn.ReLU(inplace=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv2(self.relu(self.conv1(self.relu(x)))) + x


class FeatureFusionBlock(nn.Module):
    """Fuse a coarser path with a skip connection, then upsample x2 (bilinear, aligned corners)."""

    def __init__(self, features: int) -> None:
        super().__init__()
        self.resConfUnit1 = ResidualConvUnit(features)
        self.resConfUnit2 = ResidualConvUnit(features)

    def forward(self, *xs: torch.Tensor) -> torch.Tensor:
        output = xs[0]
        if len(xs) == 2:
            output = output + self.resConfUnit1(xs[1])
        output = self.resConfUnit2(output)
        return F.interpolate(output, scale_factor=2, mode="bilinear", align_corners=True)


class MidasNet(nn.Module):
    """MiDaS v2.1: input ``[n, 3, H, W]`` (H, W multiples of 32), output depth ``[n, H, W]``."""

    def __init__(self, features: int = 256) -> None:
        super().__init__()
        from torchvision.models import resnext101_32x8d

        resnet = resnext101_32x8d(weights=None)
        self.pretrained = nn.Module()
        self.pretrained.layer1 = nn.Sequential(
            resnet.conv1, resnet.bn1, resnet.relu, resnet.maxpool, resnet.layer1
        )
        self.pretrained.layer2 = resnet.layer2
        self.pretrained.layer3 = resnet.layer3
        self.pretrained.layer4 = resnet.layer4
        self.scratch = nn.Module()
        for i, channels in enumerate((256, 512, 1024, 2048), start=1):
            setattr(
                self.scratch, f"layer{i}_rn", nn.Conv2d(channels, features, 3, 1, 1, bias=False)
            )
        for i in (4, 3, 2, 1):
            setattr(self.scratch, f"refinenet{i}", FeatureFusionBlock(features))
        self.scratch.output_conv = nn.Sequential(
            nn.Conv2d(features, 128, 3, 1, 1),
            Interpolate(scale_factor=2, mode="bilinear"),
            nn.Conv2d(128, 32, 3, 1, 1),
            nn.ReLU(True),
            nn.Conv2d(32, 1, 1, 1, 0),
            nn.ReLU(True),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        p, s = self.pretrained, self.scratch
        layer_1 = p.layer1(x)
        layer_2 = p.layer2(layer_1)
        layer_3 = p.layer3(layer_2)
        layer_4 = p.layer4(layer_3)
        path_4 = s.refinenet4(s.layer4_rn(layer_4))
        path_3 = s.refinenet3(path_4, s.layer3_rn(layer_3))
        path_2 = s.refinenet2(path_3, s.layer2_rn(layer_2))
        path_1 = s.refinenet1(path_2, s.layer1_rn(layer_1))
        return torch.squeeze(s.output_conv(path_1), dim=1)


class MidasResize:
    """Resize to fit inside ``size`` x ``size``, aspect kept, sides multiples of ``multiple``.

    MiDaS's ``Resize(keep_aspect_ratio=True, resize_method="upper_bound")``: the smaller of the
    two scale factors is used for both sides, each side rounded to a multiple (down when rounding
    would exceed ``size``).
    """

    def __init__(self, size: int = 384, multiple: int = 32) -> None:
        self.size = size
        self.multiple = multiple

    def _constrain(self, x: float) -> int:
        y = round(x / self.multiple) * self.multiple
        if y > self.size:
            y = math.floor(x / self.multiple) * self.multiple
        return max(int(y), self.multiple)

    def __call__(self, image: Image.Image) -> Image.Image:
        width, height = image.size
        scale = min(self.size / height, self.size / width)
        shape = (self._constrain(scale * width), self._constrain(scale * height))
        return image.resize(shape, Image.Resampling.BICUBIC)

    def __repr__(self) -> str:
        return f"MidasResize(size={self.size}, multiple={self.multiple}, upper_bound, bicubic)"


def midas_transform() -> Transform:
    """MiDaS v2.1's default transform (upper-bound resize to 384, ImageNet normalisation)."""
    return transforms.Compose(
        [
            MidasResize(384, 32),
            transforms.ToTensor(),
            transforms.Normalize(IMAGENET_MEAN, IMAGENET_STD),
        ]
    )


@register_source
class MidasSource(FamilySource):
    name = "midas"
    models: ClassVar[dict[str, FamilyModel]] = {"midas_v21": FamilyModel(MidasNet, midas_transform)}
