"""Taskonomy encoders (Zamir et al. 2018, PyTorch port by Sax et al.: PyPI ``visualpriors``).

All 25 Taskonomy models share one architecture, ``visualpriors``' ``TaskonomyEncoder`` (a
ResNet-50 variant: unpadded stem, ceil-mode max-pool, layer1/layer2 downsampling in their last
block, unstrided layer3/layer4, a 2048 -> 8 ``compress`` conv + BN + GroupNorm). A published
checkpoint (``TASKONOMY_PRETRAINED_URLS[f"{task}_encoder"]``) is ``{"state_dict": ...}`` of that
encoder; the random-init row is a fresh ``TaskonomyEncoder()``.

Transform (Conwell et al. 2024, as visualpriors' examples): resize to 256 x 256, ``to_tensor``,
then ``x * 2 - 1`` (inputs in [-1, 1], no ImageNet normalisation).
"""

from __future__ import annotations

from typing import ClassVar

import torch
from torchvision import transforms

from zooscope.zoo.sources.base import Transform, register_source
from zooscope.zoo.sources.family import FamilyModel, FamilySource, ScaleShift

INPUT_SIZE = 256


def build_encoder() -> torch.nn.Module:
    """A randomly initialised ``visualpriors.taskonomy_network.TaskonomyEncoder``."""
    from visualpriors.taskonomy_network import TaskonomyEncoder

    return TaskonomyEncoder()


def taskonomy_transform() -> Transform:
    """Resize to (256, 256), to_tensor, ``x * 2 - 1``."""
    return transforms.Compose(
        [
            transforms.Resize((INPUT_SIZE, INPUT_SIZE)),
            transforms.ToTensor(),
            ScaleShift(2.0, -1.0),
        ]
    )


@register_source
class TaskonomySource(FamilySource):
    name = "taskonomy"
    models: ClassVar[dict[str, FamilyModel]] = {
        "encoder": FamilyModel(build_encoder, taskonomy_transform)
    }

    def library_versions(self) -> dict[str, str]:
        from importlib.metadata import version

        return {**super().library_versions(), "visualpriors": version("visualpriors")}
