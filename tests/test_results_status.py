"""``zooscope results status``: a survey's models done / running / failed / remaining and its ETA,
read from the database as a second process would while the survey writes it."""

from __future__ import annotations

from pathlib import Path

import pytest
from test_survey_claims import write_manifest
from typer.testing import CliRunner

from zooscope.cli import app
from zooscope.results.claims import CLAIMED, claim
from zooscope.results.db import ResultsDB
from zooscope.results.status import survey_status


def _survey_state(tmp_path: Path) -> tuple[Path, str]:
    """A running survey of 4 models: r0 and r1 complete (30 s and 50 s), r2 failed on its own,
    r3 claimed now, and r4 and r5 not started."""
    manifest = write_manifest(tmp_path / "m.csv", 6)
    db = tmp_path / "r.duckdb"
    with ResultsDB(db) as database:
        run_id = database.start_run("bench", {"x": 1}, str(manifest))
        config_hash = database.runs()["config_hash"].iloc[0]
        for uid, seconds in (("r0", 30.0), ("r1", 50.0)):
            database.con.execute(
                "INSERT INTO completions VALUES (?, 'bench', ?, ?, now(), ?)",
                [uid, config_hash, run_id, seconds],
            )
        database.record_failure(run_id, "r2", "load", "ValueError: bad", "")
        assert claim(database, run_id, "bench", config_hash, "r3", lease=60)[0] == CLAIMED
    return db, run_id


def test_status_counts_the_models_of_a_running_survey_and_its_eta(tmp_path: Path) -> None:
    db, run_id = _survey_state(tmp_path)
    with ResultsDB(db, read_only=True) as database:
        state = survey_status(database)
    assert state.run_id == run_id and state.status == "running"
    assert state.done == ["r0", "r1"] and state.failed == ["r2"] and state.running == ["r3"]
    assert state.remaining == ["r4", "r5"]
    assert state.mean_seconds == pytest.approx(40.0)
    # three models to go (r3 running, r4, r5) at 40 s each, one at a time
    assert state.eta_seconds == pytest.approx(120.0)

    result = CliRunner().invoke(app, ["results", "status", "--db", str(db)])
    assert result.exit_code == 0, result.output
    assert "2 done, 1 running, 1 failed, 2 remaining; 40 s per model so far" in result.output
    assert "running: r3" in result.output and "ETA: 2 min at this pace" in result.output


def test_status_of_a_finished_survey_and_of_an_unknown_run(tmp_path: Path) -> None:
    db, run_id = _survey_state(tmp_path)
    with ResultsDB(db) as database:
        database.finish_run(run_id)  # releases its claims
    with ResultsDB(db, read_only=True) as database:
        state = survey_status(database, run_id)
    assert state.status == "finished" and state.running == []
    assert state.remaining == ["r3", "r4", "r5"]
    result = CliRunner().invoke(app, ["results", "status", "--db", str(db), "--run", "nope"])
    assert result.exit_code == 2 and "no run 'nope'" in result.output
