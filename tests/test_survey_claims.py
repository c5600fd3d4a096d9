"""Concurrent surveys share the work; a killed survey's models are taken over; runs tell the truth.

Two real ``zooscope survey`` processes into one database, a SIGKILLed one, and claims of a
survey on another machine (rows written as that survey would), against the real DuckDB file.
"""

from __future__ import annotations

import datetime as dt
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest
from test_cli_errors import HEADER, ZOOSCOPE, env_of, run, tiny_benchmark

from zooscope.benchmark import Benchmark
from zooscope.config import ScoringConfig
from zooscope.results.claims import CLAIMED, COMPLETE, HELD, claim, process_identity, release
from zooscope.results.db import ResultsDB

LAYERS = r"^layer\d\.0\.conv1$"


def write_manifest(path: Path, n: int) -> Path:
    rows = [
        f"r{s},torchvision,resnet18,random,R18 {s},Convolutional,random,,,{s}" for s in range(n)
    ]
    path.write_text("\n".join([HEADER, *rows]) + "\n", encoding="utf-8")
    return path


def survey_command(manifest: Path, bench: Path, db: Path, ceilings: bool = False) -> list[str]:
    ceiling = ["--n-sims", "5"] if ceilings else ["--no-ceilings"]
    return [ZOOSCOPE, "-q", "survey", "-m", str(manifest), "-b", str(bench), "--db", str(db),
            *ceiling, "--device", "cpu", "--layers", LAYERS, "--batch-size", "8"]  # fmt: skip


def completions(db: Path) -> list[tuple[str, str]]:
    with ResultsDB(db, read_only=True, timeout=120) as database:
        return database.con.execute(
            "SELECT model_uid, run_id FROM completions ORDER BY model_uid"
        ).fetchall()


def test_two_surveys_started_together_score_each_model_once(tmp_path: Path) -> None:
    bench = tiny_benchmark(tmp_path / "bench.h5")
    manifest = write_manifest(tmp_path / "m.csv", 4)
    db = tmp_path / "r.duckdb"
    command = survey_command(manifest, bench, db, ceilings=True)
    surveys = [
        subprocess.Popen(
            command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env_of()
        )
        for _ in range(2)
    ]
    outputs = [survey.communicate(timeout=900) for survey in surveys]
    for survey, (_, err) in zip(surveys, outputs, strict=True):
        assert survey.returncode == 0, err[-3000:]
        assert "Traceback" not in err
    done = completions(db)
    assert [uid for uid, _ in done] == ["r0", "r1", "r2", "r3"]  # each model exactly once
    scored = [int(out.split("scored ")[1].split(",")[0]) for out, _ in outputs]
    assert sum(scored) == 4, outputs
    with ResultsDB(db, read_only=True) as database:
        assert list(database.runs()["status"]) == ["finished", "finished"]
        assert database.con.execute("SELECT count(*) FROM claims").fetchone() == (0,)
        assert database.duplicate_score_keys().empty
        assert sorted(database.ceilings()["subject"]) == ["1", "2"]
    # Noise ceilings are claimed like models: each group computed by one of the two surveys.
    log = (tmp_path / "r.log").read_text()
    assert log.count("ceiling 1|OTC: ") == 1 and log.count("ceiling 2|OTC: ") == 1, log


def test_a_killed_surveys_model_is_taken_over_and_its_run_shows_lost(tmp_path: Path) -> None:
    bench = tiny_benchmark(tmp_path / "bench.h5")
    manifest = write_manifest(tmp_path / "m.csv", 3)
    db = tmp_path / "r.duckdb"
    env = env_of(ZOOSCOPE_LEASE_SECONDS="4")
    first = subprocess.Popen(survey_command(manifest, bench, db), stdout=subprocess.DEVNULL,
                             stderr=subprocess.DEVNULL, env=env)  # fmt: skip
    try:
        deadline = time.monotonic() + 600
        held: list[tuple[str, str]] = []
        while not held and first.poll() is None and time.monotonic() < deadline:
            time.sleep(0.5)
            if db.exists():
                with ResultsDB(db, read_only=True, timeout=60) as database:
                    held = database.con.execute("SELECT model_uid, run_id FROM claims").fetchall()
        assert held and first.poll() is None, "the first survey claimed nothing before ending"
        first.send_signal(signal.SIGKILL)  # no chance to record anything
        first.wait(timeout=60)
    finally:
        if first.poll() is None:
            first.kill()
            first.wait()
    ((model, killed_run),) = held
    with ResultsDB(db, read_only=True) as database:
        runs = database.runs().set_index("run_id")
    assert runs.loc[killed_run, "status"] == "lost"  # its process is gone: not "running"
    second = subprocess.run(survey_command(manifest, bench, db), capture_output=True, text=True,
                            env=env, timeout=900)  # fmt: skip
    assert second.returncode == 0, second.stderr[-3000:]
    done = completions(db)
    assert [uid for uid, _ in done] == ["r0", "r1", "r2"]  # each once, the killed one's too
    assert dict(done)[model] != killed_run
    with ResultsDB(db, read_only=True) as database:
        statuses = database.runs().set_index("run_id")["status"]
        assert statuses[killed_run] == "lost" and list(statuses).count("finished") == 1
        assert database.con.execute("SELECT count(*) FROM claims").fetchone() == (0,)
    listing = run("results", "runs", "--db", str(db), "--format", "csv")
    assert listing.exit_code == 0 and f"{killed_run}," in listing.output
    assert ",lost," in listing.output, listing.output


def utc_now() -> dt.datetime:
    """The database's clock: UTC without a time zone."""
    return dt.datetime.now(dt.UTC).replace(tzinfo=None)


def _foreign_claim(db: Path, run_id: str, bench_hash: str, config_hash: str, uid: str,
                   lease: float, age: float) -> None:  # fmt: skip
    """The claim a survey on another machine would hold, last renewed ``age`` seconds ago."""
    beat = utc_now() - dt.timedelta(seconds=age)
    with ResultsDB(db) as database:
        database.con.execute(
            "INSERT INTO claims VALUES (?, ?, ?, ?, 'node17', 'node17/boot/ns|4242|99', ?, ?, ?)",
            [bench_hash, config_hash, uid, run_id, lease, beat, beat],
        )


def test_a_claim_is_held_while_its_heartbeat_lives_and_taken_over_after_the_lease(
    tmp_path: Path,
) -> None:
    db = tmp_path / "r.duckdb"
    with ResultsDB(db) as database:
        mine = database.start_run("bench", {"x": 1})
        config_hash = database.runs()["config_hash"].iloc[0]
    _foreign_claim(db, "elsewhere", "bench", config_hash, "m", lease=2.0, age=0.0)
    with ResultsDB(db) as database:
        outcome, holder = claim(database, mine, "bench", config_hash, "m", lease=60)
        assert outcome == HELD and holder.run_id == "elsewhere" and holder.host == "node17"
    time.sleep(2.5)  # no heartbeat from node17 for longer than its lease
    with ResultsDB(db) as database:
        outcome, holder = claim(database, mine, "bench", config_hash, "m", lease=60)
        assert outcome == CLAIMED and holder.run_id == "elsewhere"
        row = database.con.execute("SELECT run_id, process FROM claims").fetchone()
        assert row == (mine, process_identity())
        release(database, mine, "m")
        assert database.con.execute("SELECT count(*) FROM claims").fetchone() == (0,)
        database.con.execute(
            "INSERT INTO completions VALUES ('m', 'bench', ?, 'elsewhere', now(), 1.0)",
            [config_hash],
        )
        assert claim(database, mine, "bench", config_hash, "m", lease=60)[0] == COMPLETE


@pytest.mark.parametrize("age", [0.0, 30.0])
def test_a_survey_waits_for_a_live_claim_elsewhere_and_takes_over_a_dead_one(
    tmp_path: Path, age: float
) -> None:
    """Through the CLI: the model held by a survey on another machine is left to it while its
    heartbeat lives (lease 3 s), and scored here once the heartbeat is older than the lease."""
    bench = tiny_benchmark(tmp_path / "bench.h5")
    manifest = write_manifest(tmp_path / "m.csv", 2)
    db = tmp_path / "r.duckdb"
    config = ScoringConfig(layers=LAYERS)
    with ResultsDB(db) as database:  # the other machine's run row, as its start_run wrote it
        database.con.execute(
            "INSERT INTO runs (run_id, benchmark_hash, config_hash, status, heartbeat_at, lease_seconds) "
            "VALUES ('elsewhere', ?, ?, 'running', ?, 3)",
            # its last heartbeat: as old as its claim's
            [
                Benchmark.open(bench).content_hash,
                config.hash,
                utc_now() - dt.timedelta(seconds=age),
            ],
        )
    _foreign_claim(db, "elsewhere", Benchmark.open(bench).content_hash, config.hash, "r0",
                   lease=3.0, age=age)  # fmt: skip
    started = time.monotonic()
    result = run(*survey_command(manifest, bench, db)[2:], env={"ZOOSCOPE_LEASE_SECONDS": "2"})
    assert result.exit_code == 0, result.output
    assert [uid for uid, _ in completions(db)] == ["r0", "r1"]
    if age == 0.0:  # r0 was held until node17's lease ran out
        assert time.monotonic() - started > 3.0
    with ResultsDB(db, read_only=True) as database:
        assert database.runs().set_index("run_id").loc["elsewhere", "status"] == "lost"


def test_heartbeats_keep_a_long_run_alive(tmp_path: Path) -> None:
    from zooscope.results.claims import recorded_run
    from zooscope.results.session import ShortWrites

    db = tmp_path / "r.duckdb"
    with ResultsDB(db) as database:
        run_id = database.start_run("bench", {"x": 1})
    session = ShortWrites(db)
    with recorded_run(session, run_id, lease=0.8):
        time.sleep(2.0)  # longer than the lease: only the heartbeat keeps it "running"
        with ResultsDB(db, read_only=True) as database:
            assert database.runs()["status"].tolist() == ["running"]
    with ResultsDB(db, read_only=True) as database:
        assert database.runs()["status"].tolist() == ["finished"]
    with ResultsDB(db) as database:
        failing = database.start_run("bench", {"x": 1})
    with pytest.raises(OSError, match="No space left"), recorded_run(session, failing, lease=5):
        raise OSError(28, "No space left on device", str(db))
    with ResultsDB(db, read_only=True) as database:
        last = database.runs().set_index("run_id").loc[failing]
    assert last["status"] == "failed" and "No space left on device" in last["reason"]
    assert os.path.exists(db)
