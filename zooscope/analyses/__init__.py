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
    participation_ratio,
    rank_stability,
    spearman_correlates,
)
from zooscope.analyses.db import ResultsDB
from zooscope.analyses.importers import import_conwell2024, import_scores_table
from zooscope.analyses.report import build_report
from zooscope.analyses.scoring import BrainData, ModelScores, RunOptions, ScoringConfig, score_model
from zooscope.analyses.similarity import (
    classical_mds,
    cluster_models,
    pairs_to_matrix,
    rsm_similarity,
    similarity_from_db,
)
from zooscope.analyses.survey import SurveyReport, compute_ceilings, make_client, survey

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
