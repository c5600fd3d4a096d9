"""Model sources; importing this package registers each of them."""

from zooscope.zoo.sources import (
    checkpoint_source,
    ipcl_source,
    midas_source,
    open_clip_source,
    taskonomy_source,
    timm_source,
    torchvision_source,
    transformers_source,
    yolo_source,
)
from zooscope.zoo.sources.base import Source, get_source, register_source

__all__ = [
    "Source",
    "checkpoint_source",
    "get_source",
    "ipcl_source",
    "midas_source",
    "open_clip_source",
    "register_source",
    "taskonomy_source",
    "timm_source",
    "torchvision_source",
    "transformers_source",
    "yolo_source",
]
