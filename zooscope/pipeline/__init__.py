"""zooscope.pipeline: scoring one model, running a survey of a manifest, computing noise ceilings.

``ScoringConfig`` and ``RunOptions`` live in :mod:`zooscope.config` (the run's vocabulary, which
every package above the libraries may import); they are re-exported here, where a user looks first.
"""

from zooscope.config import RunOptions, ScoringConfig
from zooscope.metrics.ceilings import compute_ceilings
from zooscope.pipeline.brain import BrainData
from zooscope.pipeline.cluster import make_client
from zooscope.pipeline.scoring import ModelScores, score_model
from zooscope.pipeline.survey import SurveyReport, survey

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
