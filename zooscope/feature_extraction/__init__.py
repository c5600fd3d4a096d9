"""Feature extraction: hooks on every layer, streaming sparse random projection, exact RSMs."""

from zooscope.feature_extraction.cache import FeatureCache
from zooscope.feature_extraction.extract import (
    LayerFeatures,
    extract,
    list_layers,
    parse_bytes,
    plan_passes,
)
from zooscope.feature_extraction.gram import GramAccumulator
from zooscope.feature_extraction.images import ImageSet
from zooscope.feature_extraction.layers import (
    LAYER_POLICIES,
    LayerPolicy,
    LayerSelection,
    LayerSpec,
    discover_layers,
    make_non_inplace,
)
from zooscope.feature_extraction.projection import SparseRandomProjector, jl_components

__all__ = [
    "LAYER_POLICIES",
    "FeatureCache",
    "GramAccumulator",
    "ImageSet",
    "LayerFeatures",
    "LayerPolicy",
    "LayerSelection",
    "LayerSpec",
    "SparseRandomProjector",
    "discover_layers",
    "extract",
    "jl_components",
    "list_layers",
    "make_non_inplace",
    "parse_bytes",
    "plan_passes",
]
