"""Feature extraction: hooks on every layer, streaming sparse random projection, exact RSMs."""

from zooscope.feature_extraction.cache import FeatureCache
from zooscope.feature_extraction.consumers import (
    GramConsumer,
    LayerConsumer,
    LayerSink,
    SRPConsumer,
)
from zooscope.feature_extraction.extract import (
    LayerFeatures,
    default_consumers,
    extract,
    parse_bytes,
    plan_passes,
)
from zooscope.feature_extraction.gram import GramAccumulator
from zooscope.feature_extraction.images import ImageSet
from zooscope.feature_extraction.layers import (
    LayerSelection,
    LayerSpec,
    discover_layers,
    make_non_inplace,
)
from zooscope.feature_extraction.projection import SparseRandomProjector, jl_components

__all__ = [
    "FeatureCache",
    "GramAccumulator",
    "GramConsumer",
    "ImageSet",
    "LayerConsumer",
    "LayerFeatures",
    "LayerSelection",
    "LayerSink",
    "LayerSpec",
    "SRPConsumer",
    "SparseRandomProjector",
    "default_consumers",
    "discover_layers",
    "extract",
    "jl_components",
    "make_non_inplace",
    "parse_bytes",
    "plan_passes",
]
