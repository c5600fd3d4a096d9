"""zooscope.analyses: results database, survey, group statistics, model similarity, plots, report."""

from zooscope.analyses.contrasts import (
    group_summary,
    mixed_contrast,
    normalize_within_subject,
    ols_contrast,
    pairwise_contrasts,
    score_frame,
)
from zooscope.analyses.correlates import (
    effective_dimensionality,
    explained_variance,
    participation_ratio,
    rank_stability,
    spearman_correlates,
)
from zooscope.analyses.db import ResultsDB
from zooscope.analyses.importers import import_conwell2024, import_scores_table
from zooscope.analyses.report import build_report
from zooscope.analyses.similarity import (
    classical_mds,
    cluster_models,
    pairs_to_matrix,
    rsm_similarity,
    similarity_from_db,
)

__all__ = [
    "ResultsDB",
    "build_report",
    "classical_mds",
    "cluster_models",
    "effective_dimensionality",
    "explained_variance",
    "group_summary",
    "import_conwell2024",
    "import_scores_table",
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
