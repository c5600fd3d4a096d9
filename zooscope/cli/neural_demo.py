"""``zooscope demo --neural``: synthetic brainio assembly -> import -> predictivity survey -> commitments."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

import pandas as pd
import typer

from zooscope.analyses.commitment import COMMITMENT_DISPLAY, committed_layers
from zooscope.config import RunOptions, ScoringConfig
from zooscope.neural.brainio import import_brainio
from zooscope.neural.synthetic import write_synthetic_assembly
from zooscope.pipeline.survey import survey
from zooscope.report.html import build_report
from zooscope.results.db import ResultsDB

logger = logging.getLogger(__name__)

__all__ = ["DEMO_LAYERS", "DEMO_MODELS", "run_neural_demo"]

#: The trained EfficientNet-Lite0 that drives the synthetic neurons, and its random twin.
DEMO_MODELS = ("effnet_lite0", "effnet_lite0_random")
#: Stem, block outputs and head (11 layers): enough to place V1, V4 and IT, and fast.
DEMO_LAYERS = r"^(conv_stem|blocks\.\d\.\d+|conv_head)$"

_SUMMARY_COLUMNS = [
    "roi",
    "rank",
    "model_uid",
    "score",
    "n_subjects",
    "ceiling",
    "explained_variance",
]


def run_neural_demo(
    out: Path,
    models: Sequence[str] | None = None,
    layers: str | None = None,
    memory_budget: str | None = None,
    report: bool = True,
    n_images: int = 200,
) -> dict[str, pd.DataFrame]:
    """Write the synthetic assembly under ``out/neural``, import it, survey ``demo`` with predictivity.

    Parameters
    ----------
    out : Path
        Demo folder; everything goes to ``out / "neural"``.
    models : sequence of str, optional
        Model uids of the demo manifest (default: :data:`DEMO_MODELS`).
    layers : str, optional
        Regex of the layers to score (default: :data:`DEMO_LAYERS`).
    memory_budget : str, optional
    report : bool
        Also write the HTML report to ``out/neural/report``.
    n_images : int
        Stimuli of the synthetic assembly.

    Returns
    -------
    dict
        ``{"summary": ..., "commitments": ...}`` tables (also printed).
    """
    root = Path(out) / "neural"
    bench_path, db_path = root / "benchmark.h5", root / "results.duckdb"
    if not bench_path.exists():
        paths = write_synthetic_assembly(root / "brainio", n_images=n_images)
        import_brainio(paths["assembly"], paths["stimuli"], paths["images"], bench_path)
    config = ScoringConfig(metrics=("predictivity",), layers=layers or DEMO_LAYERS)
    models = models or DEMO_MODELS
    outcome = survey(
        "demo",
        bench_path,
        db_path,
        config,
        RunOptions(device="auto", memory_budget=memory_budget, keep_grams=True),
        models=models,
    )
    with ResultsDB(db_path, read_only=True) as database:
        summary = database.summary(metric="predictivity")
        commitments = committed_layers(database)
        fmt = lambda v: f"{v:.3f}"  # noqa: E731
        typer.echo(summary[_SUMMARY_COLUMNS].to_string(index=False, float_format=fmt))
        typer.echo("\ncommitted layers (best on the commitment images, scored on held-out images):")
        typer.echo(commitments[COMMITMENT_DISPLAY].to_string(index=False, float_format=fmt))
        if report:
            typer.echo(f"report: {build_report(database, root / 'report')}")
    typer.echo(
        f"scored {len(outcome.scored)} models, {len(outcome.failed)} failed; results in {db_path}"
    )
    return {"summary": summary, "commitments": commitments}
