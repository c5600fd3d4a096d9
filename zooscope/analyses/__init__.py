"""zooscope.analyses: statistics over a results database.

Group contrasts by inductive bias (:mod:`~zooscope.analyses.contrasts`), matched pairs, groups
and scaling (:mod:`~zooscope.analyses.compare`), score correlates
(:mod:`~zooscope.analyses.correlates`), model-to-model similarity
(:mod:`~zooscope.analyses.similarity`), unique variance (:mod:`~zooscope.analyses.unique_variance`),
layer-by-layer CKA (:mod:`~zooscope.analyses.layer_cka`), region commitment
(:mod:`~zooscope.analyses.commitment`) and the published degenerate-row filter
(:mod:`~zooscope.analyses.degenerate`). Rankings of models are the results database's own
(:mod:`zooscope.results.summary`).
"""

from zooscope.analyses.contrasts import (
    group_summary,
    mixed_contrast,
    normalize_within_subject,
    ols_contrast,
    pairwise_contrasts,
    score_frame,
)
from zooscope.analyses.correlates import rank_stability, spearman_correlates
from zooscope.analyses.similarity import (
    classical_mds,
    cluster_models,
    pairs_to_matrix,
    rsm_similarity,
    similarity_from_db,
)
from zooscope.rsa.dimensionality import effective_dimensionality, participation_ratio

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
