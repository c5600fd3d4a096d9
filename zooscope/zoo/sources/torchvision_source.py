"""torchvision models: ``torchvision.models.get_model`` plus the weights enum's own transforms."""

from __future__ import annotations

from typing import Any

import torch

from zooscope.zoo.hub import torch_checkpoint_dir, url_host
from zooscope.zoo.manifest import ModelEntry
from zooscope.zoo.sources.base import Source, Transform, register_source


def weights_enum(builder: str, tag: str) -> Any:
    """The weights enum member ``tag`` of torchvision builder ``builder`` (``DEFAULT`` allowed)."""
    import torchvision

    members = torchvision.models.get_model_weights(builder)
    try:
        return members[tag]
    except KeyError:
        names = ", ".join(["DEFAULT", *(m.name for m in members)])
        raise ValueError(
            f"torchvision model {builder!r} has no weights {tag!r}; expected one of {names}"
        ) from None


#: ImageNet channel statistics (torchvision's, and the paper's normalisation).
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def conwell2024_torchvision(pretrained: bool, size: int = 224) -> Transform:
    """Conwell et al.'s torchvision rule: ``Resize((224, 224))``, ``ToTensor``, and ImageNet
    normalisation for trained models only (random-init models saw unnormalised pixels)."""
    from torchvision import transforms

    steps: list[Any] = [transforms.Resize((size, size)), transforms.ToTensor()]
    if pretrained:
        steps.append(transforms.Normalize(IMAGENET_MEAN, IMAGENET_STD))
    return transforms.Compose(steps)


def build_torchvision(builder: str, tag: str | None) -> tuple[torch.nn.Module, Transform]:
    """Build a torchvision model and the test-time transform of weights ``tag`` (random init if None).

    A random-init model uses the ``DEFAULT`` weights' transform, i.e. the preprocessing of its
    trained twin.
    """
    import torchvision

    weights = weights_enum(builder, tag or "DEFAULT")
    kwargs: dict[str, Any] = {}
    if tag is None and builder in ("inception_v3", "googlenet"):
        kwargs["init_weights"] = True  # silences the "init_weights will default to False" warning
    module = torchvision.models.get_model(builder, weights=weights if tag else None, **kwargs)
    return module, weights.transforms()


@register_source
class TorchvisionSource(Source):
    name = "torchvision"

    def load(self, entry: ModelEntry, pretrained: bool) -> tuple[torch.nn.Module, Transform]:
        if pretrained or entry.is_random:
            return build_torchvision(entry.name, entry.weights if pretrained else None)
        # Random twin of a pretrained row: keep the transform of the row's own weights.
        module, _ = build_torchvision(entry.name, None)
        return module, weights_enum(entry.name, entry.weights).transforms()

    def conwell2024_transform(
        self, entry: ModelEntry, transform: Transform, pretrained: bool
    ) -> Transform:
        return conwell2024_torchvision(pretrained)

    def _url(self, entry: ModelEntry) -> str:
        return weights_enum(entry.name, entry.weights).url

    def download_hosts(self, entry: ModelEntry) -> tuple[str, ...]:
        return (url_host(self._url(entry)),)

    def cache_location(self, entry: ModelEntry) -> str:
        return str(torch_checkpoint_dir() / self._url(entry).rsplit("/", 1)[-1])

    def is_cached(self, entry: ModelEntry) -> bool:
        return (torch_checkpoint_dir() / self._url(entry).rsplit("/", 1)[-1]).exists()

    def library_versions(self) -> dict[str, str]:
        import torchvision

        return {**super().library_versions(), "torchvision": torchvision.__version__}
