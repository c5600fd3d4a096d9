"""zooscope.stats: group contrasts by inductive bias, score correlates, model-to-model similarity."""

from zooscope.stats.contrasts import (
    group_summary,
    mixed_contrast,
    normalize_within_subject,
    ols_contrast,
    pairwise_contrasts,
    score_frame,
)
from zooscope.stats.correlates import (
    effective_dimensionality,
    participation_ratio,
    rank_stability,
    spearman_correlates,
)
from zooscope.stats.similarity import (
    classical_mds,
    cluster_models,
    pairs_to_matrix,
    rsm_similarity,
    similarity_from_db,
)

__all__ = [
    "classical_mds",
    "cluster_models",
    "effective_dimensionality",
    "group_summary",
    "mixed_contrast",
    "normalize_within_subject",
    "ols_contrast",
    "pairs_to_matrix",
    "pairwise_contrasts",
    "participation_ratio",
    "rank_stability",
    "rsm_similarity",
    "score_frame",
    "similarity_from_db",
    "spearman_correlates",
]
