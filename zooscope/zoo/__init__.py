"""The model zoo: manifests of models, one loader for every source, each with its preprocessing.

>>> from zooscope.zoo import get_entry, load_model
>>> loaded = load_model(get_entry("effnet_lite0", manifest="demo"))   # doctest: +SKIP
>>> loaded.module, loaded.preprocess, loaded.info.n_params            # doctest: +SKIP
"""

from zooscope.zoo.errors import ManifestError, ModelUnavailable, WeightsUnavailable
from zooscope.zoo.loader import LoadedModel, ModelInfo, fetch_weights, load_model
from zooscope.zoo.manifest import (
    ARCH_CLASSES,
    SOURCES,
    ModelEntry,
    get_entry,
    load_manifest,
    manifest_dir,
    parse_manifest,
)

__all__ = [
    "ARCH_CLASSES",
    "SOURCES",
    "LoadedModel",
    "ManifestError",
    "ModelEntry",
    "ModelInfo",
    "ModelUnavailable",
    "WeightsUnavailable",
    "fetch_weights",
    "get_entry",
    "load_manifest",
    "load_model",
    "manifest_dir",
    "parse_manifest",
]
