"""Feature extraction: hooks on every layer, streaming sparse random projection, exact RSMs."""

from zooscope.feature_extraction.cache import FeatureCache
from zooscope.feature_extraction.consumers import (
    GramConsumer,
    LayerConsumer,
    LayerSink,
    SRPConsumer,
)
from zooscope.feature_extraction.extract import (
    ExtractionPlan,
    ExtractionSettings,
    LayerFeatures,
    default_consumers,
    extract,
    list_layers,
    parse_bytes,
    plan_extraction,
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
    "ExtractionPlan",
    "ExtractionSettings",
    "FeatureCache",
    "GramAccumulator",
    "GramConsumer",
    "ImageSet",
    "LayerConsumer",
    "LayerFeatures",
    "LayerPolicy",
    "LayerSelection",
    "LayerSink",
    "LayerSpec",
    "SRPConsumer",
    "SparseRandomProjector",
    "default_consumers",
    "discover_layers",
    "extract",
    "jl_components",
    "list_layers",
    "make_non_inplace",
    "parse_bytes",
    "plan_extraction",
    "plan_passes",
]
