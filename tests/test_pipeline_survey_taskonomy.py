"""A survey of the random-init Taskonomy encoder (a conwell2024 row) on a small synthetic benchmark."""

from __future__ import annotations

from pathlib import Path

import pytest

from zooscope.config import RunOptions, ScoringConfig
from zooscope.nsd import prepare, write_synthetic
from zooscope.pipeline.survey import survey
from zooscope.results.db import ResultsDB


@pytest.mark.slow
def test_taskonomy_random_row_is_scored_on_every_layer(tmp_path: Path) -> None:
    write_synthetic(tmp_path / "nsd", subjects=(1,), n_images=24, n_sessions=3, image_size=64)
    bench = tmp_path / "benchmark.h5"
    prepare(tmp_path / "nsd", bench, subjects=(1,), rois=("OTC",))
    db_path = tmp_path / "results.duckdb"
    report = survey(
        "conwell2024",
        bench,
        db_path,
        ScoringConfig(metrics=("crsa",)),  # every layer (layers=None)
        RunOptions(device="cpu", batch_size=12, progress=False),
        models=["random_weights_taskonomy"],
        ceilings=False,
    )
    assert report.scored == ["random_weights_taskonomy"] and report.failed == []
    with ResultsDB(db_path, read_only=True) as db:
        layers = db.layers(model_uid="random_weights_taskonomy")
        scores = db.scores(model_uid="random_weights_taskonomy")
    # TaskonomyEncoder: stem, 16 bottlenecks with their convs/BNs/ReLUs, compress head, root.
    assert len(layers) > 100
    assert set(scores["layer_name"]) == set(layers["layer_name"])
    assert scores["score"].notna().all()
