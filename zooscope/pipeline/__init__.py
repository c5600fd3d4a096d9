"""zooscope.pipeline: scoring one model, running a survey of a manifest, computing noise ceilings."""

from zooscope.pipeline.cluster import make_client
from zooscope.pipeline.scoring import BrainData, ModelScores, RunOptions, ScoringConfig, score_model
from zooscope.pipeline.survey import SurveyReport, compute_ceilings, survey

__all__ = [
    "BrainData",
    "ModelScores",
    "RunOptions",
    "ScoringConfig",
    "SurveyReport",
    "compute_ceilings",
    "make_client",
    "score_model",
    "survey",
]
