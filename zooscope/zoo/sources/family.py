"""Model families whose code zooscope carries (Taskonomy, IPCL, YOLO, MiDaS): the shared source.

A family module declares its variants as :class:`FamilyModel` entries, each holding the
architecture builder *and* the family's published test-time transform next to it (like timm's
pretrained configs: the metadata lives with the model, no central if-chain). A manifest row names
the variant in ``name`` and, for trained weights, the checkpoint's location in the ``checkpoint``
column (URL, ``file://`` URL or local path; see :mod:`zooscope.zoo.checkpoints`). A URL
checkpoint is read from ``zooscope models cache-path UID`` (torch.hub's checkpoint folder), where
``zooscope models fetch`` downloads it, or where a user copies it on an offline machine.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import ClassVar

import torch

from zooscope.zoo.checkpoints import fetch_checkpoint, is_url
from zooscope.zoo.hub import url_host
from zooscope.zoo.manifest import ModelEntry
from zooscope.zoo.sources.base import Source, Transform
from zooscope.zoo.sources.checkpoint_source import (
    checkpoint_cached,
    checkpoint_location,
    remap_state_dict,
    unwrap_state_dict,
)
from zooscope.zoo.weights_file import load_weights


class ScaleShift(torch.nn.Module):
    """``x * scale + shift`` on a tensor: a transform step with a stable ``repr`` (cache keys)."""

    def __init__(self, scale: float, shift: float) -> None:
        super().__init__()
        self.scale = scale
        self.shift = shift

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.scale + self.shift

    def extra_repr(self) -> str:
        return f"scale={self.scale}, shift={self.shift}"


@dataclass(frozen=True)
class FamilyModel:
    """One variant of a model family.

    Attributes
    ----------
    build : callable
        ``() -> torch.nn.Module``, randomly initialised (the caller seeds torch's RNG).
    transform : callable
        ``() -> Transform``: the published test-time transform (PIL image -> ``[3, H, W]``).
    """

    build: Callable[[], torch.nn.Module]
    transform: Callable[[], Transform]


class FamilySource(Source):
    """A source for one model family: variants by name, weights from a checkpoint file.

    Subclasses set ``name`` and ``models`` and may override :meth:`read_state_dict` when the
    published checkpoint is not a (wrapped) state dict.
    """

    models: ClassVar[Mapping[str, FamilyModel]]

    def variant(self, entry: ModelEntry) -> FamilyModel:
        try:
            return self.models[entry.name]
        except KeyError:
            raise ValueError(
                f"unknown {self.name} model {entry.name!r}; known: {', '.join(sorted(self.models))}"
            ) from None

    def location(self, entry: ModelEntry) -> str:
        location = entry.metadata.get("checkpoint", "")
        if not location:
            raise ValueError(f"model {entry.model_uid!r} has no checkpoint column")
        return location

    def read_state_dict(self, path, entry: ModelEntry) -> dict[str, torch.Tensor]:
        """Tensors of the checkpoint file ``path`` under the architecture's parameter names."""
        state = load_weights(path)
        return unwrap_state_dict(state, entry.metadata.get("checkpoint_key"))

    def load(self, entry: ModelEntry, pretrained: bool) -> tuple[torch.nn.Module, Transform]:
        variant = self.variant(entry)
        module = variant.build()
        if pretrained:
            path = fetch_checkpoint(self.location(entry), entry.manifest)
            tensors = self.read_state_dict(path, entry)
            module.load_state_dict(remap_state_dict(tensors, module.state_dict()))
        return module, variant.transform()

    def download_hosts(self, entry: ModelEntry) -> tuple[str, ...]:
        location = entry.metadata.get("checkpoint", "")
        return (url_host(location),) if is_url(location) else ()

    def cache_location(self, entry: ModelEntry) -> str:
        return checkpoint_location(self.location(entry), entry.manifest)

    def is_cached(self, entry: ModelEntry) -> bool:
        return checkpoint_cached(self.location(entry), entry.manifest)
