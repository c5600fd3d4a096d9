"""The CLI under bad input and long runs: precise messages, documented exit codes, no tracebacks.

Every case runs the real ``zooscope`` app (typer's CliRunner, in process) or the console script
(a subprocess, where another process must hold a lock or watch a running survey). Exit codes:
0 done, 1 some work failed, 2 bad input.
"""

from __future__ import annotations

import gzip
import logging
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import duckdb
import h5py
import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from zooscope.benchmark import Benchmark
from zooscope.cli import app
from zooscope.results.db import SCHEMA_VERSION, ResultsDB

ZOOSCOPE = str(Path(sys.executable).with_name("zooscope"))
HEADER = "model_uid,source,name,weights,display_name,arch_class,task,task_cluster,train_data,seed"


def run(*args: str, env: dict[str, str] | None = None):
    """Invoke the real app in process; stderr is part of ``result.output``."""
    return CliRunner().invoke(app, list(args), env=env)


def assert_clean_error(result, code: int, *names: str) -> None:
    """Exit ``code``, every name in the message, and no Python traceback."""
    assert result.exit_code == code, result.output
    assert "Traceback" not in result.output, result.output
    assert not isinstance(result.exception, Exception) or isinstance(result.exception, SystemExit)
    for name in names:
        assert name in result.output, (name, result.output)


def tiny_benchmark(path: Path, n_images: int = 30, n_reps: int = 3, seed: int = 0) -> Path:
    """Two subjects x one ROI, 20 units each: a shared signal plus independent noise."""
    rng = np.random.default_rng(seed)
    signal_ = rng.standard_normal((1, n_images, 1))
    responses = signal_ * rng.uniform(0.5, 1.5, (40, 1, 1)) + 0.5 * rng.standard_normal(
        (40, n_images, n_reps)
    )
    units = pd.DataFrame({"subject": [1] * 20 + [2] * 20, "OTC": True})
    stimuli = rng.integers(0, 256, (n_images, 32, 32, 3), dtype=np.uint8)
    Benchmark.from_arrays(path, responses.astype(np.float32), stimuli, units)
    return path


def env_of(**extra: str) -> dict[str, str]:
    return {
        **os.environ,
        "PYTHONPATH": str(Path(__file__).resolve().parents[1]),
        "OMP_NUM_THREADS": "1",
        **extra,
    }


# ------------------------------------------------------------------ files: missing, corrupt, truncated
def test_missing_and_corrupt_benchmark_files_name_the_file(tmp_path: Path) -> None:
    assert_clean_error(run("benchmark", "info", str(tmp_path / "nope.h5")), 2, "nope.h5")
    garbage = tmp_path / "garbage.h5"
    garbage.write_bytes(b"not an hdf5 file at all" * 10)
    assert_clean_error(run("benchmark", "info", str(garbage)), 2, "garbage.h5", "Benchmark file")
    good = tiny_benchmark(tmp_path / "good.h5")
    truncated = tmp_path / "truncated.h5"
    truncated.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    assert_clean_error(run("ceiling", str(truncated)), 2, "truncated.h5")


def test_debug_flag_and_environment_show_the_traceback(tmp_path: Path) -> None:
    result = run("--debug", "benchmark", "info", str(tmp_path / "nope.h5"))
    assert result.exit_code != 0 and isinstance(result.exception, FileNotFoundError)
    result = run("benchmark", "info", str(tmp_path / "nope.h5"), env={"ZOOSCOPE_DEBUG": "1"})
    assert isinstance(result.exception, FileNotFoundError)


def test_corrupt_and_newer_results_databases(tmp_path: Path) -> None:
    bad = tmp_path / "bad.duckdb"
    bad.write_bytes(b"garbage" * 100)
    assert_clean_error(
        run("results", "summary", "--db", str(bad)), 2, "bad.duckdb", "not a valid DuckDB"
    )
    assert_clean_error(
        run("results", "summary", "--db", str(tmp_path / "none.duckdb")), 2, "none.duckdb"
    )
    newer = tmp_path / "newer.duckdb"
    ResultsDB(newer).close()
    con = duckdb.connect(str(newer))
    con.execute("UPDATE schema_info SET version = 999")
    con.close()
    assert_clean_error(
        run("results", "summary", "--db", str(newer)),
        2,
        "newer.duckdb",
        "newer than this zooscope",
        ".bak",
    )


def test_upgrade_keeps_the_old_file_as_the_way_back(tmp_path: Path) -> None:
    from zooscope.results.schema import MIGRATIONS

    path = tmp_path / "v1.duckdb"
    con = duckdb.connect(str(path))
    MIGRATIONS[0](con)
    con.execute("CREATE TABLE schema_info (version INTEGER)")
    con.execute("INSERT INTO schema_info VALUES (1)")
    con.execute("INSERT INTO runs (run_id, finished_at) VALUES ('a', NULL), ('b', now())")
    con.close()
    assert_clean_error(run("results", "summary", "--db", str(path)), 2, "v1.duckdb", "upgrade")
    result = run("results", "upgrade", "--db", str(path))
    assert result.exit_code == 0, result.output
    assert f"schema version {SCHEMA_VERSION}" in result.output
    backup = tmp_path / "v1.duckdb.schema1.bak"
    with duckdb.connect(str(backup), read_only=True) as old:
        assert old.execute("SELECT version FROM schema_info").fetchone() == (1,)
    with ResultsDB(path, read_only=True) as db:
        # "a" never finished and has no heartbeat: its process is long gone
        assert dict(zip(db.runs()["run_id"], db.runs()["status"], strict=True)) == {
            "a": "lost",
            "b": "finished",
        }


def test_non_utf8_manifest_names_file_and_line(tmp_path: Path) -> None:
    manifest = tmp_path / "latin1.csv"
    manifest.write_bytes(
        f"{HEADER}\nr,torchvision,resnet18,random,R\xe9sNet,C,random,,,0\n".encode("latin-1")
    )
    assert_clean_error(
        run("models", "list", "--manifest", str(manifest)), 2, "latin1.csv:2", "UTF-8"
    )


def test_builtin_manifest_name_wins_over_a_folder_of_that_name(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "demo").mkdir()  # what `zooscope demo --out demo` creates
    result = run("models", "list", "--manifest", "demo")
    assert result.exit_code == 0 and "effnet_lite0" in result.output, result.output
    assert_clean_error(run("models", "list", "--manifest", "./demo"), 2, "is a folder")


# ------------------------------------------------------------------ NSD: truncated gzip, info --verify
def test_truncated_gzip_nifti_in_nsd_prepare_and_info_verify(tmp_path: Path) -> None:
    root = tmp_path / "nsd"
    result = run(
        "nsd", "synth", str(root), "-s", "1", "--n-images", "12", "--n-sessions", "2", "--image-size", "16",
        "--volume-shape", "6", "6", "5", "--random-features", "5",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    result = run("nsd", "info", str(root), "--verify")
    assert result.exit_code == 0 and "verified: all" in result.output, result.output
    from zooscope.nsd.layout import NSDLayout

    volume = NSDLayout(root).roi(1, "nsdgeneral")
    data = volume.read_bytes()
    volume.write_bytes(data[: len(data) // 2])  # an interrupted download
    with pytest.raises((EOFError, OSError)):
        gzip.decompress(volume.read_bytes())
    result = run(
        "nsd",
        "prepare",
        "--nsd-root",
        str(root),
        "--out",
        str(tmp_path / "b.h5"),
        "-s",
        "1",
        "-r",
        "OTC",
    )
    assert_clean_error(result, 2, "nsdgeneral.nii.gz", "truncated")
    assert "Aborted" not in result.output
    result = run("nsd", "info", str(root), "--verify")
    assert_clean_error(result, 1, "UNREADABLE", "nsdgeneral.nii.gz", "1 of")


# ------------------------------------------------------------------ ceilings
def test_ceiling_with_a_constant_unit_stores_every_group(tmp_path: Path) -> None:
    from zooscope.rsa import rsa_noise_ceiling

    path = tmp_path / "bench.h5"
    tiny_benchmark(path)
    with h5py.File(path, "r+") as f:  # written by hand: the content hash then no longer matches
        f["responses"][3] = 1.0  # one constant unit in subject 1
    db = tmp_path / "r.duckdb"
    assert_clean_error(run("ceiling", str(path), "--n-sims", "5"), 2, "content hash")
    result = run("ceiling", str(path), "--db", str(db), "--n-sims", "5", "--no-verify")
    assert result.exit_code == 0, result.output
    bench = Benchmark.open(path)
    with ResultsDB(db, read_only=True) as database:
        stored = database.ceilings(bench.content_hash).set_index("subject")
    assert set(stored.index) == {"1", "2"}
    assert stored.loc["1", "n_units"] == 19 and stored.loc["1", "n_dropped"] == 1
    assert stored.loc["1", "note"] == "1 constant" and stored.loc["2", "n_dropped"] == 0
    # Reference: GSN on the remaining units directly.
    test = bench.splits["test"]
    keep = np.setdiff1d(np.arange(20), [3])
    expected = rsa_noise_ceiling(bench.responses(keep, test), n_sims=5, seed=0, backend="auto")
    assert stored.loc["1", "value"] == pytest.approx(expected.nc, rel=1e-12)


def test_a_failing_group_is_recorded_and_the_others_stored(tmp_path: Path) -> None:
    path = tmp_path / "bench.h5"
    rng = np.random.default_rng(1)
    responses = rng.standard_normal((20, 30, 3)).astype(np.float32)
    responses[10:, 1::2, 1:] = np.nan  # subject 2: one repetition of each test image only
    units = pd.DataFrame({"subject": [1] * 10 + [2] * 10, "OTC": True})
    Benchmark.from_arrays(
        path, responses, rng.integers(0, 256, (30, 8, 8, 3), dtype=np.uint8), units
    )
    db = tmp_path / "r.duckdb"
    result = run("ceiling", str(path), "--db", str(db), "--n-sims", "5")
    assert_clean_error(result, 1, "2|OTC", "repetitions", "1 of 2 group(s)")
    with ResultsDB(db, read_only=True) as database:
        assert list(database.ceilings()["subject"]) == ["1"]
        failures = database.failures()
    assert list(failures["model_uid"]) == ["ceiling 2|OTC"] and list(failures["stage"]) == [
        "ceiling"
    ]


# ------------------------------------------------------------------ survey: exit codes, verification
def test_survey_where_every_model_fails_offline_exits_1_with_the_count(tmp_path: Path) -> None:
    bench = tiny_benchmark(tmp_path / "bench.h5")
    manifest = tmp_path / "offline.csv"
    rows = [
        f"{uid},torchvision,{name},IMAGENET1K_V1,{name},Convolutional,classification,,imagenet1k,0"
        for uid, name in (("a", "alexnet"), ("r", "resnet18"))
    ]
    manifest.write_text("\n".join([HEADER, *rows]) + "\n", encoding="utf-8")
    db = tmp_path / "r.duckdb"
    command = [
        ZOOSCOPE,
        "survey",
        "-m",
        str(manifest),
        "-b",
        str(bench),
        "--db",
        str(db),
        "--no-ceilings",
        "--device",
        "cpu",
    ]
    env = env_of(
        ZOOSCOPE_OFFLINE="1", TORCH_HOME=str(tmp_path / "torch"), HF_HOME=str(tmp_path / "hf")
    )
    done = subprocess.run(command, capture_output=True, text=True, env=env, timeout=300)
    assert done.returncode == 1, done.stderr[-2000:]
    last = (done.stdout + done.stderr).strip().splitlines()[-1]
    assert last.startswith("error: 2 of 2 model(s) failed") and str(db) in last, last
    assert "Traceback" not in done.stderr
    with ResultsDB(db, read_only=True) as database:
        assert set(database.failures()["model_uid"]) == {"a", "r"}
        assert list(database.runs()["status"]) == ["finished"]


def test_survey_refuses_a_benchmark_whose_data_changed(tmp_path: Path) -> None:
    bench = tiny_benchmark(tmp_path / "bench.h5")
    with h5py.File(bench, "r+") as f:
        f["responses"][0, 0, 0] += 1.0  # bit rot
    args = [
        "survey",
        "-m",
        "demo",
        "-b",
        str(bench),
        "--db",
        str(tmp_path / "r.duckdb"),
        "--models",
        "resnet18_random",
    ]
    assert_clean_error(run(*args, "--no-ceilings"), 2, "bench.h5", "content hash", "--no-verify")
    assert not (tmp_path / "r.duckdb").exists()


# ------------------------------------------------------------------ the results database: locks and readers
def _hold_lock(path: Path, seconds: float) -> subprocess.Popen:
    code = f"import duckdb, time; c = duckdb.connect({str(path)!r}); print('locked', flush=True); time.sleep({seconds})"
    holder = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    assert holder.stdout is not None and holder.stdout.readline().strip() == "locked"
    return holder


def test_locked_database_waits_then_fails_with_a_clear_message(tmp_path: Path) -> None:
    db = tmp_path / "r.duckdb"
    ResultsDB(db).close()
    holder = _hold_lock(db, 60)
    try:
        result = run("results", "summary", "--db", str(db), env={"ZOOSCOPE_DB_TIMEOUT": "0.5"})
        assert_clean_error(result, 2, "r.duckdb", "locked", "ZOOSCOPE_DB_TIMEOUT")
    finally:
        holder.kill()
        holder.wait()
    holder = _hold_lock(db, 2)  # released while the reader waits
    try:
        result = run("results", "summary", "--db", str(db), env={"ZOOSCOPE_DB_TIMEOUT": "120"})
        assert result.exit_code == 0, result.output
    finally:
        holder.wait()


def test_readers_work_while_a_survey_runs_and_sigterm_marks_it_interrupted(tmp_path: Path) -> None:
    bench = tiny_benchmark(tmp_path / "bench.h5")
    rows = [
        f"resnet_{seed},torchvision,resnet18,random,ResNet-18 ({seed}),Convolutional,random,,,{seed}"
        for seed in range(8)
    ]
    manifest = tmp_path / "m.csv"
    manifest.write_text("\n".join([HEADER, *rows]) + "\n", encoding="utf-8")
    db = tmp_path / "r.duckdb"
    command = [
        ZOOSCOPE, "survey", "-m", str(manifest), "-b", str(bench), "--db", str(db), "--device", "cpu",
        "--n-sims", "5", "--layers", r"^layer\d\.0\.conv1$", "--batch-size", "8",
    ]  # fmt: skip
    survey = subprocess.Popen(
        command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env_of()
    )
    try:
        deadline = time.monotonic() + 600
        scored: set[str] = set()
        while not scored and survey.poll() is None and time.monotonic() < deadline:
            time.sleep(1)
            if db.exists():
                with ResultsDB(
                    db, read_only=True, timeout=60
                ) as reader:  # a reader in this process
                    scored = set(reader.scores()["model_uid"])
        assert scored and survey.poll() is None, "the survey ended before a reader could look"
        reader = subprocess.run(
            [ZOOSCOPE, "results", "summary", "--db", str(db), "--format", "csv"],
            capture_output=True, text=True, env=env_of(), timeout=300,
        )  # fmt: skip
        assert reader.returncode == 0, reader.stderr[-2000:]
        assert next(iter(scored)) in reader.stdout
        assert survey.poll() is None, "the survey ended before the CLI reader ran"
        survey.send_signal(signal.SIGTERM)
        assert survey.wait(timeout=300) != 0
    finally:
        if survey.poll() is None:
            survey.kill()
            survey.wait()
    with ResultsDB(db, read_only=True) as database:
        runs = database.runs()
        assert list(runs["status"]) == ["interrupted"] and runs["finished_at"].isna().all()
        assert set(database.ceilings()["subject"]) == {"1", "2"}
        assert database.duplicate_score_keys().empty


# ------------------------------------------------------------------ files: modes, temporaries, cache, images
def test_files_get_the_umask_and_stale_temporaries_go(tmp_path: Path) -> None:
    from zooscope._files import remove_stale_temporaries, temporary_path

    old = os.umask(0o022)
    try:
        dead = subprocess.run(
            [sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True
        ).stdout.strip()
        host = __import__("socket").gethostname().split(".")[0].replace("_", "-")
        stale = tmp_path / f".bench.h5.{host}_{dead}_abc.tmp"
        stale.write_bytes(b"half a file")
        alive = temporary_path(tmp_path, "bench.h5")  # this process: still writing
        bench = tiny_benchmark(tmp_path / "bench.h5")
        assert not stale.exists() and alive.exists()
        assert bench.stat().st_mode & 0o777 == 0o644
        assert remove_stale_temporaries(tmp_path) == []
    finally:
        os.umask(old)


def test_image_conversions_logged_once_and_a_broken_cache_entry_recomputed(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    from PIL import Image

    caplog.set_level(logging.INFO, logger="zooscope")  # both notes are INFO: nothing to act on
    folder = tmp_path / "images"
    folder.mkdir()
    rng = np.random.default_rng(0)
    for i in range(4):
        Image.fromarray(rng.integers(0, 256, (24, 24), dtype=np.uint8), mode="L").save(
            folder / f"{i}.png"
        )
    out = tmp_path / "out"
    umask = os.umask(0o022)
    args = ["extract", "--model", "resnet18_random", "--images", str(folder), "--out", str(out), "--device", "cpu",
            "--no-progress", "--layers", r"^conv1$", "--batch-size", "4"]  # fmt: skip
    result = run(*args)
    assert result.exit_code == 0, result.output
    # Logs reach pytest's handler (the CLI's own handler is not installed under pytest).
    assert sum("converted to RGB" in r.getMessage() for r in caplog.records) == 1, caplog.text
    (entry,) = (out / "cache").rglob("*.h5")
    entry.write_bytes(b"")  # a zero-byte entry (full disk, killed copy)
    result = run(*args)
    assert result.exit_code == 0, result.output
    assert (
        "discarding unreadable feature-cache entry" in caplog.text and "0 reused" in result.output
    )
    os.umask(umask)
    assert entry.stat().st_size > 0
    assert entry.stat().st_mode & 0o777 == 0o644  # the umask's mode, not mkstemp's 0600


def test_survey_refuses_units_without_data_once_before_any_model(tmp_path: Path) -> None:
    bench = tiny_benchmark(tmp_path / "bench.h5")
    with h5py.File(bench, "r+") as f:
        f["responses"][25] = np.nan  # an all-NaN unit in subject 2
    args = ["survey", "-m", "demo", "-b", str(bench), "--db", str(tmp_path / "r.duckdb")]
    result = run(*args, "--models", "resnet18_random", "--no-verify")
    assert_clean_error(result, 2, "bench.h5", "2|OTC", "[25]")
