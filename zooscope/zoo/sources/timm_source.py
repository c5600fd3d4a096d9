"""timm models: ``timm.create_model`` plus ``resolve_model_data_config`` + ``create_transform``."""

from __future__ import annotations

import torch

from zooscope.zoo.hub import HF_HOST, hf_cache_dir, hf_file_cached, torch_checkpoint_dir, url_host
from zooscope.zoo.manifest import ModelEntry
from zooscope.zoo.sources.base import Source, Transform, register_source

_HF_WEIGHT_FILES = ("model.safetensors", "pytorch_model.bin", "open_clip_pytorch_model.bin")


def timm_name(name: str, tag: str | None) -> str:
    """timm's ``name.tag`` identifier (no tag for random init or the library default)."""
    return name if tag in (None, "random", "default") else f"{name}.{tag}"


def build_timm(name: str, pretrained: bool) -> tuple[torch.nn.Module, Transform]:
    """Build a timm model (``name`` may carry a ``.tag``) and its own test-time transform."""
    import timm

    module = timm.create_model(name, pretrained=pretrained)
    config = timm.data.resolve_model_data_config(module)
    return module, timm.data.create_transform(**config, is_training=False)


def uncropped(transform: Transform) -> Transform:
    """timm's eval transform with its ``Resize`` set to the crop size and ``CenterCrop`` removed.

    Conwell et al. (2024) kept every other step (interpolation, ``ToTensor``, normalisation), so
    the whole image is squeezed to the model's input size instead of its centre being cut out.
    """
    from torchvision import transforms

    steps = list(transform.transforms)
    crops = [t for t in steps if isinstance(t, transforms.CenterCrop)]
    if not crops:
        return transform  # nothing is cut away already
    size = tuple(crops[0].size)
    out = []
    for step in steps:
        if isinstance(step, transforms.CenterCrop):
            continue
        if "Resize" in type(step).__name__:
            interpolation = getattr(step, "interpolation", transforms.InterpolationMode.BICUBIC)
            if isinstance(interpolation, list | tuple):  # timm's random-interpolation variants
                interpolation = interpolation[0]
            step = transforms.Resize(size, interpolation=interpolation)
        out.append(step)
    return transforms.Compose(out)


@register_source
class TimmSource(Source):
    name = "timm"

    def load(self, entry: ModelEntry, pretrained: bool) -> tuple[torch.nn.Module, Transform]:
        return build_timm(timm_name(entry.name, entry.weights), pretrained)

    def conwell2024_transform(
        self, entry: ModelEntry, transform: Transform, pretrained: bool
    ) -> Transform:
        return uncropped(transform)  # the same rule for trained and random-init models

    def _cfg(self, entry: ModelEntry):
        from timm.models import get_pretrained_cfg

        cfg = get_pretrained_cfg(timm_name(entry.name, entry.weights))
        if cfg is None:
            raise ValueError(
                f"timm has no pretrained weights {timm_name(entry.name, entry.weights)!r}"
            )
        return cfg

    def download_hosts(self, entry: ModelEntry) -> tuple[str, ...]:
        cfg = self._cfg(entry)
        return (HF_HOST,) if cfg.hf_hub_id else (url_host(cfg.url or ""),)

    def cache_location(self, entry: ModelEntry) -> str:
        cfg = self._cfg(entry)
        if cfg.hf_hub_id:
            return f"{hf_cache_dir()} (repo {cfg.hf_hub_id})"
        return str(torch_checkpoint_dir() / (cfg.url or "").rsplit("/", 1)[-1])

    def is_cached(self, entry: ModelEntry) -> bool:
        cfg = self._cfg(entry)
        if cfg.hf_hub_id:
            return hf_file_cached(cfg.hf_hub_id.rstrip("/"), _HF_WEIGHT_FILES)
        return (torch_checkpoint_dir() / (cfg.url or "").rsplit("/", 1)[-1]).exists()

    def library_versions(self) -> dict[str, str]:
        import timm

        return {**super().library_versions(), "timm": timm.__version__}
