"""Hugging Face transformers vision models: ``AutoModel`` + ``AutoImageProcessor``.

``name`` is a hub repo id or a local folder written by ``save_pretrained``. A random-init model
needs only the config and the image-processor files (from the cache or the folder); for the
hub repos in ``zooscope/zoo/configs/`` (``<owner>__<repo>/``) zooscope ships those two small
files, so their random init works offline.
"""

from __future__ import annotations

import copy
from pathlib import Path

import torch

from zooscope.zoo.hub import HF_HOST, hf_cache_dir, hf_file_cached
from zooscope.zoo.manifest import ModelEntry
from zooscope.zoo.preprocess import HFImageTransform
from zooscope.zoo.sources.base import Source, Transform, register_source

VENDORED_CONFIGS = Path(__file__).resolve().parents[1] / "configs"


def vendored_config(repo_id: str) -> Path | None:
    """The folder of config files zooscope ships for ``repo_id`` (None when it ships none)."""
    folder = VENDORED_CONFIGS / repo_id.replace("/", "__")
    return folder if (folder / "config.json").is_file() else None


def vision_backbone(model: torch.nn.Module) -> torch.nn.Module:
    """The image encoder of a (possibly multimodal) HF model: ``.vision_model`` when it has one."""
    return getattr(model, "vision_model", model)


@register_source
class TransformersSource(Source):
    name = "transformers"

    def load(self, entry: ModelEntry, pretrained: bool) -> tuple[torch.nn.Module, Transform]:
        from transformers import AutoConfig, AutoImageProcessor, AutoModel

        files = entry.name if pretrained else (vendored_config(entry.name) or entry.name)
        if pretrained:
            model = AutoModel.from_pretrained(entry.name)
        else:
            model = AutoModel.from_config(AutoConfig.from_pretrained(files))
        processor = AutoImageProcessor.from_pretrained(files)
        return vision_backbone(model), HFImageTransform(processor)

    def conwell2024_transform(
        self, entry: ModelEntry, transform: Transform, pretrained: bool
    ) -> Transform:
        # "Their published transform without a crop": the processor's own steps, its resize set
        # to the crop size and the centre crop switched off.
        processor = copy.deepcopy(transform.processor)
        if getattr(processor, "do_center_crop", False):
            crop = processor.crop_size
            processor.size = {"height": crop["height"], "width": crop["width"]}
            processor.do_center_crop = False
        return HFImageTransform(processor)

    def random_needs_files(self, entry: ModelEntry) -> bool:
        return not Path(entry.name).is_dir() and vendored_config(entry.name) is None

    def download_hosts(self, entry: ModelEntry) -> tuple[str, ...]:
        return () if Path(entry.name).is_dir() else (HF_HOST,)

    def cache_location(self, entry: ModelEntry) -> str:
        return entry.name if Path(entry.name).is_dir() else f"{hf_cache_dir()} (repo {entry.name})"

    def is_cached(self, entry: ModelEntry) -> bool:
        if Path(entry.name).is_dir():
            return True
        return hf_file_cached(entry.name, ("model.safetensors", "pytorch_model.bin"))

    def library_versions(self) -> dict[str, str]:
        import transformers

        return {**super().library_versions(), "transformers": transformers.__version__}
