"""zooscope.analyses: a facade over the rooms that do the work, kept for existing code.

New code imports from the room itself: :mod:`zooscope.pipeline` (scoring, survey, ceilings),
:mod:`zooscope.results` (database, importers), :mod:`zooscope.stats` (contrasts, correlates,
similarity) and :mod:`zooscope.report` (plots, HTML report).
"""

from zooscope.pipeline import (
    BrainData,
    ModelScores,
    RunOptions,
    ScoringConfig,
    SurveyReport,
    compute_ceilings,
    make_client,
    score_model,
    survey,
)
from zooscope.report import build_report
from zooscope.results import ResultsDB, import_conwell2024, import_scores_table
from zooscope.stats import (
    classical_mds,
    cluster_models,
    effective_dimensionality,
    group_summary,
    mixed_contrast,
    normalize_within_subject,
    ols_contrast,
    pairs_to_matrix,
    pairwise_contrasts,
    participation_ratio,
    rank_stability,
    rsm_similarity,
    score_frame,
    similarity_from_db,
    spearman_correlates,
)

__all__ = [
    "BrainData",
    "ModelScores",
    "ResultsDB",
    "RunOptions",
    "ScoringConfig",
    "SurveyReport",
    "build_report",
    "classical_mds",
    "cluster_models",
    "compute_ceilings",
    "effective_dimensionality",
    "group_summary",
    "import_conwell2024",
    "import_scores_table",
    "make_client",
    "mixed_contrast",
    "normalize_within_subject",
    "ols_contrast",
    "pairs_to_matrix",
    "pairwise_contrasts",
    "participation_ratio",
    "rank_stability",
    "rsm_similarity",
    "score_frame",
    "score_model",
    "similarity_from_db",
    "spearman_correlates",
    "survey",
]
