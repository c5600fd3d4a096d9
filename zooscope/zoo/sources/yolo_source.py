"""YOLOv5 detectors (Ultralytics, v6.x architecture): yolov5s / yolov5m / yolov5l.

The network is written here from the published model definition (``models/yolov5{s,m,l}.yaml``:
one layer table scaled by a depth and a width multiple; ``Conv`` = conv + BN + SiLU, ``C3``
CSP bottlenecks, ``SPPF``, a PANet neck and the ``Detect`` head), with yolov5's parameter names
(``model.<i>.cv1.conv.weight``, ..., ``model.24.anchors``), because the PyPI ``yolov5`` package
cannot be installed next to our dependencies (it pins huggingface-hub<0.25 and pulls in
ultralytics, OpenCV, TensorBoard, boto3, ...).

A published checkpoint (``yolov5s.pt``) is a *pickled* yolov5 ``Model`` object
(``{"model": Model, "ema": ..., ...}``). It is read with torch's ``weights_only`` unpickler, in
which yolov5's class names resolve to an inert placeholder module and only torch's own layer
classes are allowed: nothing from the file is executed, and its parameters and buffers are taken
from the rebuilt module tree by name.

Transform (Conwell et al. 2024): bicubic resize to 256 x 256, ``to_tensor`` (``/ 255``), no
normalisation. The forward returns the inference predictions ``[n, n_anchors_total, 85]`` (the
first element of yolov5's ``(predictions, per-level maps)`` output).
"""

from __future__ import annotations

import math
import pickle
import re
from collections.abc import Sequence
from pathlib import Path
from typing import ClassVar

import torch
from torch import nn
from torchvision import transforms
from torchvision.transforms import InterpolationMode

from zooscope.zoo.manifest import ModelEntry
from zooscope.zoo.sources.base import Transform, register_source
from zooscope.zoo.sources.family import FamilyModel, FamilySource

ANCHORS = ((10, 13, 16, 30, 33, 23), (30, 61, 62, 45, 59, 119), (116, 90, 156, 198, 373, 326))
STRIDES = (8.0, 16.0, 32.0)
# yolov5{s,m,l}.yaml: (from, repeats, module, args) before depth/width scaling.
LAYERS: tuple[tuple[int | tuple[int, ...], int, str, tuple], ...] = (
    (-1, 1, "Conv", (64, 6, 2, 2)),
    (-1, 1, "Conv", (128, 3, 2)),
    (-1, 3, "C3", (128,)),
    (-1, 1, "Conv", (256, 3, 2)),
    (-1, 6, "C3", (256,)),
    (-1, 1, "Conv", (512, 3, 2)),
    (-1, 9, "C3", (512,)),
    (-1, 1, "Conv", (1024, 3, 2)),
    (-1, 3, "C3", (1024,)),
    (-1, 1, "SPPF", (1024, 5)),
    (-1, 1, "Conv", (512, 1, 1)),
    (-1, 1, "Upsample", ()),
    ((-1, 6), 1, "Concat", ()),
    (-1, 3, "C3", (512, False)),
    (-1, 1, "Conv", (256, 1, 1)),
    (-1, 1, "Upsample", ()),
    ((-1, 4), 1, "Concat", ()),
    (-1, 3, "C3", (256, False)),
    (-1, 1, "Conv", (256, 3, 2)),
    ((-1, 14), 1, "Concat", ()),
    (-1, 3, "C3", (512, False)),
    (-1, 1, "Conv", (512, 3, 2)),
    ((-1, 10), 1, "Concat", ()),
    (-1, 3, "C3", (1024, False)),
    ((17, 20, 23), 1, "Detect", ()),
)
# (depth_multiple, width_multiple) of each published size.
SIZES = {"yolov5s": (0.33, 0.50), "yolov5m": (0.67, 0.75), "yolov5l": (1.0, 1.0)}


class Conv(nn.Module):
    """Conv2d (no bias, 'same' padding) + BatchNorm2d (eps 1e-3) + SiLU."""

    def __init__(self, c1: int, c2: int, k: int = 1, s: int = 1, p: int | None = None) -> None:
        super().__init__()
        self.conv = nn.Conv2d(c1, c2, k, s, k // 2 if p is None else p, bias=False)
        self.bn = nn.BatchNorm2d(c2, eps=1e-3, momentum=0.03)
        self.act = nn.SiLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.bn(self.conv(x)))


class Bottleneck(nn.Module):
    def __init__(self, c1: int, c2: int, shortcut: bool = True, e: float = 0.5) -> None:
        super().__init__()
        hidden = int(c2 * e)
        self.cv1 = Conv(c1, hidden, 1, 1)
        self.cv2 = Conv(hidden, c2, 3, 1)
        self.add = shortcut and c1 == c2

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.cv2(self.cv1(x))
        return x + y if self.add else y


class C3(nn.Module):
    """CSP bottleneck with three convolutions."""

    def __init__(self, c1: int, c2: int, n: int = 1, shortcut: bool = True) -> None:
        super().__init__()
        hidden = c2 // 2
        self.cv1 = Conv(c1, hidden, 1, 1)
        self.cv2 = Conv(c1, hidden, 1, 1)
        self.cv3 = Conv(2 * hidden, c2, 1)
        self.m = nn.Sequential(*(Bottleneck(hidden, hidden, shortcut, e=1.0) for _ in range(n)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.cv3(torch.cat((self.m(self.cv1(x)), self.cv2(x)), 1))


class SPPF(nn.Module):
    """Spatial pyramid pooling, fast: three chained 5x5 max-pools concatenated."""

    def __init__(self, c1: int, c2: int, k: int = 5) -> None:
        super().__init__()
        hidden = c1 // 2
        self.cv1 = Conv(c1, hidden, 1, 1)
        self.cv2 = Conv(hidden * 4, c2, 1, 1)
        self.m = nn.MaxPool2d(kernel_size=k, stride=1, padding=k // 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.cv1(x)
        y1 = self.m(x)
        y2 = self.m(y1)
        return self.cv2(torch.cat((x, y1, y2, self.m(y2)), 1))


class Concat(nn.Module):
    def forward(self, xs: Sequence[torch.Tensor]) -> torch.Tensor:
        return torch.cat(list(xs), 1)


class Detect(nn.Module):
    """Detection head: per level a 1x1 conv, then boxes decoded against the grid and anchors."""

    def __init__(self, channels: Sequence[int], n_classes: int = 80) -> None:
        super().__init__()
        self.no = n_classes + 5
        self.nl = len(ANCHORS)
        self.na = len(ANCHORS[0]) // 2
        stride = torch.tensor(STRIDES)
        # Stored in units of each level's stride, as yolov5's Model leaves them.
        self.register_buffer(
            "anchors", torch.tensor(ANCHORS).float().view(self.nl, -1, 2) / stride.view(-1, 1, 1)
        )
        self.register_buffer("stride", stride, persistent=False)
        self.m = nn.ModuleList(nn.Conv2d(c, self.no * self.na, 1) for c in channels)

    def forward(self, xs: Sequence[torch.Tensor]) -> torch.Tensor:
        outputs = []
        for i, x in enumerate(xs):
            x = self.m[i](x)
            bs, _, ny, nx = x.shape
            x = x.view(bs, self.na, self.no, ny, nx).permute(0, 1, 3, 4, 2).contiguous()
            yv, xv = torch.meshgrid(
                torch.arange(ny, dtype=x.dtype, device=x.device),
                torch.arange(nx, dtype=x.dtype, device=x.device),
                indexing="ij",
            )
            grid = torch.stack((xv, yv), 2).view(1, 1, ny, nx, 2) - 0.5
            anchor_grid = (self.anchors[i] * self.stride[i]).view(1, self.na, 1, 1, 2)
            xy, wh, conf = x.sigmoid().split((2, 2, self.no - 4), 4)
            y = torch.cat(((xy * 2 + grid) * self.stride[i], (wh * 2) ** 2 * anchor_grid, conf), 4)
            outputs.append(y.view(bs, self.na * nx * ny, self.no))
        return torch.cat(outputs, 1)


def _divisible(x: float, divisor: int = 8) -> int:
    return math.ceil(x / divisor) * divisor


class YOLOv5(nn.Module):
    """A YOLOv5 detector (``variant`` in :data:`SIZES`); input ``[n, 3, H, W]``, H and W multiples of 32.

    Returns ``[n, n_predictions, 85]``: box centre and size in pixels, objectness, 80 class scores.
    """

    def __init__(self, variant: str = "yolov5s") -> None:
        super().__init__()
        depth, width = SIZES[variant]
        channels = [3]
        layers: list[nn.Module] = []
        self.sources: list[int | tuple[int, ...]] = []
        for origin, repeats, kind, args in LAYERS:
            n = max(round(repeats * depth), 1) if repeats > 1 else repeats
            c_in = channels[origin] if isinstance(origin, int) else 0
            if kind in ("Conv", "C3", "SPPF"):
                c_out = _divisible(args[0] * width)
                if kind == "Conv":
                    layer: nn.Module = Conv(c_in, c_out, *args[1:])
                elif kind == "C3":
                    layer = C3(c_in, c_out, n, *args[1:])
                else:
                    layer = SPPF(c_in, c_out, *args[1:])
            elif kind == "Upsample":
                layer, c_out = nn.Upsample(None, 2, "nearest"), c_in
            elif kind == "Concat":
                layer, c_out = (
                    Concat(),
                    sum(channels[j] if j == -1 else channels[j + 1] for j in origin),
                )
            else:
                layer, c_out = Detect([channels[j + 1] for j in origin]), 0
            layers.append(layer)
            self.sources.append(origin)
            channels.append(c_out)
        self.model = nn.Sequential(*layers)
        # Outputs later layers read again (yolov5's ``save`` list).
        self._keep = {
            j for origin in self.sources if not isinstance(origin, int) for j in origin if j != -1
        }

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        kept: dict[int, torch.Tensor] = {}
        for i, (layer, origin) in enumerate(zip(self.model, self.sources, strict=True)):
            if not isinstance(origin, int):
                x = layer([x if j == -1 else kept[j] for j in origin])
            else:
                x = layer(x)
            if i in self._keep:
                kept[i] = x
        return x


class _PickledYoloModule(nn.Module):
    """Inert stand-in for every yolov5 class in a pickled checkpoint: holds tensors, runs nothing."""


# Layer classes a yolov5 checkpoint pickles (torch's own, allowed as themselves).
_TORCH_LAYERS = (
    nn.Conv2d,
    nn.BatchNorm2d,
    nn.SiLU,
    nn.LeakyReLU,
    nn.ReLU,
    nn.Identity,
    nn.Sequential,
    nn.ModuleList,
    nn.Upsample,
    nn.MaxPool2d,
)
_YOLO_CLASSES = (
    "Model",
    "DetectionModel",
    "Detect",
    "Conv",
    "Bottleneck",
    "C3",
    "SPPF",
    "SPP",
    "Concat",
    "Focus",
)


def read_yolo_checkpoint(path: str | Path) -> dict[str, torch.Tensor]:
    """Parameters and buffers of a pickled yolov5 checkpoint, without running its code.

    Parameters
    ----------
    path : str or Path
        A ``.pt`` file as yolov5 saves it: ``{"model": Model, "ema": Model or None, ...}``
        (the EMA weights are used when present, as yolov5's ``attempt_load`` does).

    Returns
    -------
    dict
        yolov5 state-dict names (``model.0.conv.weight``, ...) -> float32 tensors.
    """
    stand_ins = [
        (_PickledYoloModule, f"{package}{module}.{name}")
        for package in ("", "yolov5.")
        for module in ("models.yolo", "models.common")
        for name in _YOLO_CLASSES
    ]
    try:
        with torch.serialization.safe_globals([*_TORCH_LAYERS, *stand_ins, set]):
            checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as error:
        found = re.search(r"GLOBAL (\S+)", str(error))
        what = found[1] if found else "an object"
        raise pickle.UnpicklingError(
            f"{path}: refused to load: the checkpoint pickles {what}, which is not part of a yolov5 "
            "model (zooscope never runs code from a checkpoint file)"
        ) from None
    model = (
        checkpoint.get("ema") or checkpoint["model"] if isinstance(checkpoint, dict) else checkpoint
    )
    if not isinstance(model, nn.Module):
        raise TypeError(
            f"{path}: expected a pickled yolov5 model under 'model', got {type(model).__name__}"
        )
    return {k: v.float() for k, v in model.state_dict().items()}


def yolo_transform() -> Transform:
    """Bicubic resize to (256, 256), to_tensor (``/ 255``), no normalisation."""
    return transforms.Compose(
        [
            transforms.Resize((256, 256), interpolation=InterpolationMode.BICUBIC),
            transforms.ToTensor(),
        ]
    )


@register_source
class YoloSource(FamilySource):
    name = "yolo"
    models: ClassVar[dict[str, FamilyModel]] = {
        size: FamilyModel(lambda size=size: YOLOv5(size), yolo_transform) for size in SIZES
    }

    def read_state_dict(self, path, entry: ModelEntry) -> dict[str, torch.Tensor]:
        return read_yolo_checkpoint(path)
