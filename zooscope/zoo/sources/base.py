"""The interface every model source implements, and the registry of sources."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from typing import ClassVar

import torch
from PIL import Image

from zooscope.zoo.manifest import ModelEntry

Transform = Callable[[Image.Image], torch.Tensor]

#: Preprocessing policies: the library's own test-time transform, the one Conwell et al.
#: (2024) used (no centre crop: the whole image is resized to the model's input size), or
#: Brain-Score's ``load_preprocess_images`` (:func:`zooscope.neural.screen.brainscore_transform`).
PREPROCESSING = ("library", "conwell2024", "brainscore")


class Source(ABC):
    """A library that models come from (timm, torchvision, ...).

    A source builds the network (randomly initialised, or with its pretrained weights, which it
    may download) together with the library's own test-time transform, and says where its
    weights are cached so that a missing file is reported before any download is attempted.
    """

    name: ClassVar[str]

    @abstractmethod
    def load(self, entry: ModelEntry, pretrained: bool) -> tuple[torch.nn.Module, Transform]:
        """Build the vision network of ``entry`` and its test-time transform.

        With ``pretrained=False`` the caller has already seeded torch's RNG.
        """

    @abstractmethod
    def download_hosts(self, entry: ModelEntry) -> tuple[str, ...]:
        """Hosts the pretrained weights would be downloaded from (empty: local)."""

    @abstractmethod
    def cache_location(self, entry: ModelEntry) -> str:
        """Human-readable location where the pretrained weights are (or would be) cached."""

    def is_cached(self, entry: ModelEntry) -> bool | None:
        """Whether the pretrained weights are in the local cache (None: cannot tell cheaply)."""
        return None

    def random_needs_files(self, entry: ModelEntry) -> bool:
        """Whether even a random init needs files from the hub (e.g. a transformers config)."""
        return False

    def library_versions(self) -> dict[str, str]:
        """Versions of the libraries this source uses (recorded with every loaded model)."""
        return {"torch": torch.__version__}

    def policy_transform(
        self, policy: str, entry: ModelEntry, transform: Transform, pretrained: bool
    ) -> Transform:
        """The test-time transform of ``entry`` under a preprocessing policy.

        Parameters
        ----------
        policy : {"library", "conwell2024", "brainscore"}
            ``"library"`` keeps ``transform`` (what :meth:`load` returned); ``"conwell2024"``
            asks :meth:`conwell2024_transform`; ``"brainscore"`` is Brain-Score's resize and
            ImageNet normalisation at the row's ``image_size`` (default: ``transform``'s).
        entry : ModelEntry
        transform : callable
            The library's own transform, from :meth:`load`.
        pretrained : bool
            Whether the network carries trained weights (some published rules differ for
            random-init networks).
        """
        if policy == "library":
            return transform
        if policy == "conwell2024":
            return self.conwell2024_transform(entry, transform, pretrained)
        if policy == "brainscore":  # the same for every source: Brain-Score's own rule
            from zooscope.neural.screen import brainscore_transform

            return brainscore_transform(entry, transform)
        raise ValueError(
            f"unknown preprocessing policy {policy!r}; choose from {', '.join(PREPROCESSING)}"
        )

    def conwell2024_transform(
        self, entry: ModelEntry, transform: Transform, pretrained: bool
    ) -> Transform:
        """The transform Conwell et al. (2024) used for this source's models (no centre crop).

        Each source (or model family) that the paper used overrides this next to its loader,
        so the published rule lives with the code that builds the model.
        """
        raise ValueError(
            f"source {self.name!r} has no conwell2024 preprocessing rule; "
            "use the library's own transform (preprocessing='library')"
        )


_REGISTRY: dict[str, Source] = {}


def register_source(cls: type[Source]) -> type[Source]:
    """Class decorator adding a source to the registry under ``cls.name``."""
    _REGISTRY[cls.name] = cls()
    return cls


def get_source(name: str) -> Source:
    """Return the registered source called ``name``."""
    from zooscope.zoo import sources  # noqa: F401  (importing the package registers every source)

    try:
        return _REGISTRY[name]
    except KeyError:
        raise KeyError(
            f"unknown model source {name!r}; registered: {', '.join(sorted(_REGISTRY))}"
        ) from None
