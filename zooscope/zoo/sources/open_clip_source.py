"""open_clip models: the image encoder (``model.visual``) and open_clip's own eval preprocess."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator

import torch

from zooscope.zoo.hub import HF_HOST, hf_cache_dir, hf_file_cached, url_host
from zooscope.zoo.manifest import ModelEntry
from zooscope.zoo.sources.base import Source, Transform, register_source

_HF_WEIGHT_FILES = ("open_clip_pytorch_model.bin", "open_clip_model.safetensors")

logger = logging.getLogger(__name__)


class _RandomInitNotice(logging.Filter):
    """open_clip warns on the root logger that a model without weights is random: we asked."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.getMessage().startswith("No pretrained weights loaded"):
            logger.debug("open_clip: %s", record.getMessage())
            return False
        return True


@contextlib.contextmanager
def _random_init_expected() -> Iterator[None]:
    notice = _RandomInitNotice()
    root = logging.getLogger()
    root.addFilter(notice)  # a logger filter: sees only records logged on the root itself
    try:
        yield
    finally:
        root.removeFilter(notice)


@register_source
class OpenClipSource(Source):
    name = "open_clip"

    def load(self, entry: ModelEntry, pretrained: bool) -> tuple[torch.nn.Module, Transform]:
        import open_clip

        if pretrained:
            model, _, preprocess = open_clip.create_model_and_transforms(
                entry.name, pretrained=entry.weights
            )
        elif entry.is_random:
            with _random_init_expected():
                model, _, preprocess = open_clip.create_model_and_transforms(
                    entry.name, pretrained=None
                )
        else:
            # Random twin of a pretrained row: open_clip would download the weights even with
            # load_weights=False, so apply the tag's preprocessing settings by hand (a tag never
            # changes the architecture: open_clip only warns on a QuickGELU mismatch).
            cfg = self._cfg(entry)
            with _random_init_expected():
                model, _, preprocess = open_clip.create_model_and_transforms(
                    entry.name,
                    pretrained=None,
                    image_mean=cfg.get("mean"),
                    image_std=cfg.get("std"),
                    image_interpolation=cfg.get("interpolation"),
                    image_resize_mode=cfg.get("resize_mode"),
                )
        # Vision only: the text tower is dropped so its parameters do not count or occupy memory.
        return model.visual, preprocess

    def conwell2024_transform(
        self, entry: ModelEntry, transform: Transform, pretrained: bool
    ) -> Transform:
        # CLIP's own preprocess, unchanged: it resizes the shorter side to the input size and
        # centre-crops a square of that size, which keeps a square image (NSD's) whole.
        return transform

    def _cfg(self, entry: ModelEntry) -> dict:
        import open_clip

        cfg = open_clip.get_pretrained_cfg(entry.name, entry.weights)
        if not cfg:
            raise ValueError(
                f"open_clip has no pretrained tag {entry.weights!r} for {entry.name!r}"
            )
        return cfg

    def download_hosts(self, entry: ModelEntry) -> tuple[str, ...]:
        cfg = self._cfg(entry)
        return (HF_HOST,) if cfg.get("hf_hub") else (url_host(cfg.get("url", "")),)

    def cache_location(self, entry: ModelEntry) -> str:
        cfg = self._cfg(entry)
        return f"{hf_cache_dir()} (repo {cfg.get('hf_hub') or cfg.get('url')})"

    def is_cached(self, entry: ModelEntry) -> bool | None:
        repo = self._cfg(entry).get("hf_hub", "").rstrip("/")
        return hf_file_cached(repo, _HF_WEIGHT_FILES) if repo else None

    def library_versions(self) -> dict[str, str]:
        import open_clip

        return {**super().library_versions(), "open_clip": open_clip.__version__}
