"""Config hashes key every stored result: a refactor must not change them.

``data/results_before_house.duckdb.gz`` was written by zooscope before "the house, second pass"
(``data/make_results_fixture.py``, commit 19612df): today's configs must hash to its stored
hashes, so its models count as complete and a rerun resumes instead of scoring them again.
"""

from __future__ import annotations

import gzip
import json
import shutil
from pathlib import Path

import pytest

from zooscope.pipeline import ScoringConfig
from zooscope.results.db import SCHEMA_VERSION, ResultsDB

FIXTURE = Path(__file__).parent / "data" / "results_before_house.duckdb.gz"
LAYER = r"^layer4\.1\.conv2$"  # the one layer the fixture's surveys scored

#: Hashes of the default configs, computed before the refactor (commit 19612df).
PINNED = {
    "default": "25ec1ac6a4115359",
    "conwell2024": "0e7dd035981b82cd",
    "predictivity": "2677ba65148f9575",
    "predictivity_pls_even_odd": "76a661c73e784f3e",
    "versa": "fc5873061e66de61",
}


def test_default_config_hashes_are_pinned() -> None:
    assert ScoringConfig().hash == PINNED["default"]
    assert ScoringConfig.conwell2024().hash == PINNED["conwell2024"]
    assert ScoringConfig(metrics=("predictivity",)).hash == PINNED["predictivity"]
    pls = ScoringConfig(
        metrics=("crsa", "predictivity"), regression="pls", predictivity_splits="even-odd"
    )
    assert pls.hash == PINNED["predictivity_pls_even_odd"]
    # Predictivity's own settings enter the hash only when predictivity is scored.
    assert ScoringConfig(metrics=("versa",), regression="pls").hash == PINNED["versa"]


@pytest.fixture(scope="module")
def stored(tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[str, str, dict]]:
    """``profile or metric -> (benchmark_hash, config_hash, config)`` of the fixture's runs."""
    path = tmp_path_factory.mktemp("before") / "results.duckdb"
    with gzip.open(FIXTURE, "rb") as gz, path.open("wb") as raw:
        shutil.copyfileobj(gz, raw)
    with ResultsDB(path) as db:  # written at schema 5: opening it for writing upgrades it
        assert db.schema_version == SCHEMA_VERSION
        runs = db.runs()
        completed = {
            r.config_hash: db.completed_models(r.benchmark_hash, r.config_hash)
            for r in runs.itertuples()
        }
    out = {}
    for run in runs.itertuples():
        config = json.loads(run.config)
        assert completed[run.config_hash] == {"resnet18_random"}
        key = "predictivity" if config["metrics"] == ["predictivity"] else config["profile"]
        out[key] = (run.benchmark_hash, run.config_hash, config)
    assert set(out) == {"default", "conwell2024", "predictivity"}
    return out


@pytest.mark.parametrize(
    ("key", "config"),
    [
        ("default", lambda: ScoringConfig(layers=LAYER)),
        ("conwell2024", lambda: ScoringConfig.conwell2024(layers=LAYER)),
        ("predictivity", lambda: ScoringConfig(metrics=("predictivity",), layers=LAYER)),
    ],
)
def test_stored_results_keep_their_config_hash(stored: dict, key: str, config) -> None:
    _bench, config_hash, stored_config = stored[key]
    today = config()
    assert today.hash == config_hash
    assert json.loads(json.dumps(today.to_dict())) == stored_config
