"""``zooscope survey --slurm`` on a real Slurm cluster, through the real CLI.

The tests marked ``slurm`` need a reachable Slurm (``sinfo`` answers and a node is up), e.g. the
one-node cluster of ``scripts/local_slurm.sh start`` (which ``.ci/run`` starts when it can);
elsewhere they are skipped with that reason. The dry run and the missing-``sbatch`` failure need
no Slurm and always run.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from zooscope.benchmark import Benchmark
from zooscope.results.db import ResultsDB

ZOOSCOPE = str(Path(sys.executable).with_name("zooscope"))
HEADER = "model_uid,source,name,weights,display_name,arch_class,task,task_cluster,train_data,seed"
MODELS = {
    "resnet18_random": "resnet18_random,torchvision,resnet18,random,ResNet-18,Convolutional,random,,,0",
    "mobilenet_random": "mobilenet_random,torchvision,mobilenet_v3_small,random,MobileNet-V3-S,Convolutional,random,,,0",
    "squeezenet_random": "squeezenet_random,torchvision,squeezenet1_1,random,SqueezeNet-1.1,Convolutional,random,,,0",
}
LAYERS = r"^(layer\d\.\d\.conv\d|features\.\d+)$"  # a few layers per model, fast
# One thread everywhere: in-process and on a one-CPU job, torch then sums in the same order.
ENV = {**os.environ, "OMP_NUM_THREADS": "1"}
# Small jobs, so that two fit on a 2-core CI machine; the scheduler on the loopback interface.
SLURM = [
    "--slurm-cores",
    "1",
    "--slurm-memory",
    "3GB",
    "--slurm-interface",
    "lo",
    "--slurm-walltime",
    "00:30:00",
]


def _slurm_problem() -> str | None:
    """Why no Slurm is reachable here, or None when one is."""
    if shutil.which("sbatch") is None or shutil.which("sinfo") is None:
        return "no Slurm here (sbatch/sinfo not on PATH): run scripts/local_slurm.sh start"
    try:
        states = subprocess.run(
            ["sinfo", "--noheader", "--format=%t"], capture_output=True, text=True, timeout=20
        )
    except subprocess.TimeoutExpired:
        return "sinfo does not answer within 20 s"
    usable = {"idle", "mix", "alloc", "comp"}
    if states.returncode != 0 or not usable & set(states.stdout.split()):
        return f"no usable Slurm node (sinfo: {(states.stdout + states.stderr).strip()[:200]!r})"
    return None


slurm = pytest.mark.slurm
needs_slurm = pytest.mark.skipif(_slurm_problem() is not None, reason=str(_slurm_problem()))


@pytest.fixture(scope="module")
def benchmark(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small random benchmark: 40 images, one subject, two ROIs."""
    rng = np.random.default_rng(0)
    n_images, n_units = 40, 24
    units = pd.DataFrame({"subject": 1, "x": np.arange(n_units), "y": 0, "z": 0, "ncsnr": 1.0})
    units["OTC"] = np.arange(n_units) < 12
    units["EVC"] = ~units["OTC"]
    path = tmp_path_factory.mktemp("slurm") / "benchmark.h5"
    Benchmark.from_arrays(
        path,
        rng.standard_normal((n_units, n_images, 3)),
        rng.integers(0, 256, (n_images, 64, 64, 3), dtype=np.uint8),
        units,
    )
    return path


def manifest(folder: Path, uids: list[str]) -> Path:
    path = folder / "manifest.csv"
    path.write_text("\n".join([HEADER, *(MODELS[uid] for uid in uids)]) + "\n", encoding="utf-8")
    return path


def survey_command(manifest: Path, benchmark: Path, db: Path, *extra: str) -> list[str]:
    return [ZOOSCOPE, "survey", "--manifest", str(manifest), "--benchmark", str(benchmark), "--db", str(db),
            "--layers", LAYERS, "--no-ceilings", "--device", "cpu", "--batch-size", "20", *extra]  # fmt: skip


def rows(db: Path) -> dict[str, pd.DataFrame]:
    """Every table a model writes, without run ids and times, in a fixed order."""
    queries = {
        "runs": "SELECT benchmark_hash, config_hash, config FROM runs",
        "models": "SELECT * FROM models",
        "layers": "SELECT * EXCLUDE (run_id) FROM layers",
        "scores": "SELECT * EXCLUDE (run_id) FROM scores",
        "rsms": "SELECT * EXCLUDE (rsm), md5(rsm::VARCHAR) AS rsm FROM rsms",
        "completions": "SELECT model_uid, benchmark_hash, config_hash FROM completions",
    }
    with ResultsDB(db, read_only=True) as results:
        return {
            name: results.con.execute(f"{sql} ORDER BY ALL").df() for name, sql in queries.items()
        }


def assert_complete(db: Path, uids: list[str]) -> None:
    """Every model complete, once: each layer has every group x metric x split exactly once."""
    with ResultsDB(db, read_only=True) as results:
        scores, layers = results.scores(), results.layers()
        assert results.duplicate_score_keys().empty
    assert sorted(scores["model_uid"].unique()) == sorted(uids)
    n_groups = scores.groupby(["subject", "roi"]).ngroups
    assert n_groups == 2
    for uid, group in scores.groupby("model_uid"):
        assert len(group) == (layers["model_uid"] == uid).sum() * n_groups * 3 * 2, uid


def test_dry_run_prints_the_job_script(benchmark: Path, tmp_path: Path) -> None:
    db = tmp_path / "r.duckdb"
    command = survey_command(manifest(tmp_path, ["resnet18_random"]), benchmark, db)
    command += [
        "--slurm-dry-run", "--slurm-queue", "gpu", "--slurm-cores", "6", "--slurm-memory", "20GB",
        "--slurm-gpus", "2", "--slurm-walltime", "12:00:00", "--slurm-extra=--account=lab",
        "--slurm-extra=--qos=long", "--slurm-log-dir", str(tmp_path / "logs"),
    ]  # fmt: skip
    pythonpath = os.pathsep.join(filter(None, [os.environ.get("PYTHONPATH"), "/somewhere/else"]))
    env = {**ENV, "PYTHONPATH": pythonpath}
    result = subprocess.run(command, capture_output=True, text=True, env=env, timeout=300)
    assert result.returncode == 0, result.stderr
    script = result.stdout
    assert script.startswith("#!/usr/bin/env bash\n")
    directives = [line for line in script.splitlines() if line.startswith("#SBATCH")]
    for expected in (
        "#SBATCH -p gpu",
        "#SBATCH --cpus-per-task=6",
        "#SBATCH --mem=19G",  # 20 GB in Slurm's GiB, rounded up
        "#SBATCH -t 12:00:00",
        "#SBATCH --gres=gpu:2",
        "#SBATCH --account=lab",
        "#SBATCH --qos=long",
        f"#SBATCH -e {tmp_path / 'logs'}/zooscope-worker-%J.err",
        f"#SBATCH -o {tmp_path / 'logs'}/zooscope-worker-%J.out",
    ):
        assert expected in directives, (expected, script)
    worker = script.strip().splitlines()[-1]
    # The job runs this Python (so the same zooscope) as one single-threaded Dask worker.
    python, *arguments = worker.split()
    assert Path(python).parent == Path(sys.executable).parent
    assert arguments[:2] == ["-m", "distributed.cli.dask_worker"]
    assert "--nthreads 1" in worker and "--resources GPU=2" in worker
    assert f"export PYTHONPATH={shlex.quote(pythonpath)}" in script
    assert not db.exists()  # nothing was run


def test_slurm_without_sbatch_fails_at_once_with_one_line(benchmark: Path, tmp_path: Path) -> None:
    bin_only = str(Path(sys.executable).parent)  # python and zooscope, no sbatch
    assert shutil.which("sbatch", path=bin_only) is None
    command = survey_command(
        manifest(tmp_path, ["resnet18_random"]), benchmark, tmp_path / "r.duckdb", "--slurm"
    )
    result = subprocess.run(
        command, capture_output=True, text=True, env={**ENV, "PATH": bin_only}, timeout=300
    )
    assert result.returncode == 2
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: --slurm: ") and "'sbatch' is not on PATH" in lines[0]
    assert "Traceback" not in result.stderr + result.stdout


@slurm
@needs_slurm
def test_slurm_survey_equals_the_in_process_survey(benchmark: Path, tmp_path: Path) -> None:
    uids = ["resnet18_random", "mobilenet_random"]
    models = manifest(tmp_path, uids)
    local = subprocess.run(
        survey_command(models, benchmark, tmp_path / "local.duckdb"),
        capture_output=True,
        text=True,
        env=ENV,
        timeout=900,
    )
    assert local.returncode == 0, local.stderr[-3000:]
    command = survey_command(
        models, benchmark, tmp_path / "slurm.duckdb", "--slurm", "--slurm-jobs", "2", *SLURM
    )
    on_slurm = subprocess.run(command, capture_output=True, text=True, env=ENV, timeout=1200)
    assert on_slurm.returncode == 0, on_slurm.stderr[-3000:]
    assert "scored 2, failed 0" in on_slurm.stdout
    # The jobs really ran the models: their logs are next to the database.
    assert len(list((tmp_path / "slurm-logs").glob("zooscope-worker-*.err"))) >= 1

    a, b = rows(tmp_path / "local.duckdb"), rows(tmp_path / "slurm.duckdb")
    assert a["runs"]["config_hash"].tolist() == b["runs"]["config_hash"].tolist()
    assert len(a["scores"]) > 100
    for table in a:
        pd.testing.assert_frame_equal(a[table], b[table], check_exact=True, obj=table)
    assert_complete(tmp_path / "slurm.duckdb", uids)


def _job_scoring_a_model(logs: Path, uids: list[str], deadline: float) -> tuple[str, str]:
    """(job id, model uid) of a worker job whose log shows it extracting a model's features."""
    while time.monotonic() < deadline:
        for log in sorted(logs.glob("zooscope-worker-*.err")):
            text = log.read_text(errors="replace")
            for uid in uids:
                if f"{uid}:" in text:  # the extraction progress bar: the model is being scored
                    return log.stem.rsplit("-", 1)[1], uid
        time.sleep(0.5)
    raise AssertionError(
        f"no worker started scoring within the deadline: {sorted(logs.iterdir()) if logs.exists() else 'no logs'}"
    )


@slurm
@needs_slurm
def test_cancelled_worker_job_loses_no_model_and_is_recorded(
    benchmark: Path, tmp_path: Path
) -> None:
    uids = ["resnet18_random", "mobilenet_random", "squeezenet_random"]
    db, logs = tmp_path / "r.duckdb", tmp_path / "logs"
    command = survey_command(
        manifest(tmp_path, uids),
        benchmark,
        db,
        "--slurm",
        "--slurm-jobs",
        "2",
        *SLURM,
        "--slurm-log-dir",
        str(logs),
    )
    with (tmp_path / "stderr.txt").open("w") as stderr:
        process = subprocess.Popen(
            command, stdout=subprocess.PIPE, stderr=stderr, text=True, env=ENV
        )
        try:
            job, uid = _job_scoring_a_model(logs, uids, time.monotonic() + 600)
            subprocess.run(["scancel", job], check=True, timeout=60)
            stdout, _ = process.communicate(timeout=1200)
        finally:
            if process.poll() is None:
                process.kill()
    output = (tmp_path / "stderr.txt").read_text()
    assert process.returncode == 0, output[-3000:]
    assert "scored 3, failed 0" in stdout
    assert_complete(db, uids)
    with ResultsDB(db, read_only=True) as results:
        failures = results.failures()
        assert (
            results.failed_models(*results.runs()[["benchmark_hash", "config_hash"]].iloc[0])
            == set()
        )
    lost = failures[failures["stage"] == "worker-lost"]
    assert uid in set(lost["model_uid"]), failures
    assert lost["error"].str.contains(f"Slurm job {job} ").any(), lost["error"].tolist()
    assert f"{uid}: Slurm job {job} " in output  # said on the terminal too
    assert len(failures) == len(lost)  # nothing else went wrong
    # The ended job was replaced by a new one (so the survey never runs out of workers).
    assert re.search(
        rf"^  Slurm job {job} \(\S+\) ended \(\w+\): replaced$", output, re.MULTILINE
    ), output[-2000:]


@slurm
@needs_slurm
def test_job_that_never_starts_times_out_naming_partition_and_state(
    benchmark: Path, tmp_path: Path
) -> None:
    partition = subprocess.run(
        ["sinfo", "--noheader", "--format=%R"], capture_output=True, text=True, timeout=20
    ).stdout.split()[0]
    # --begin keeps the job PENDING (reason BeginTime) although the cluster is free.
    command = survey_command(
        manifest(tmp_path, ["resnet18_random"]), benchmark, tmp_path / "r.duckdb",
        "--slurm", "--slurm-jobs", "1", *SLURM, "--slurm-queue", partition,
        "--slurm-extra=--begin=now+1hour", "--slurm-timeout", "15", "--slurm-log-dir", str(tmp_path / "logs"),
    )  # fmt: skip
    result = subprocess.run(command, capture_output=True, text=True, env=ENV, timeout=600)
    assert result.returncode == 2, result.stderr[-3000:]
    lines = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(lines) == 1, result.stderr
    assert "no Dask worker joined within 15 s" in lines[0]
    assert f"in partition '{partition}' is PENDING (BeginTime)" in lines[0]
    assert "Traceback" not in result.stderr
    job = lines[0].split("job ")[1].split()[0]
    # The pending job was cancelled on the way out.
    state = subprocess.run(
        ["squeue", "--noheader", "--states=all", "--jobs", job, "--format=%T"],
        capture_output=True,
        text=True,
        timeout=20,
    )
    assert state.stdout.strip() in ("", "CANCELLED"), state.stdout


@slurm
@needs_slurm
def test_job_that_slurm_rejects_fails_at_once_with_slurms_reason(
    benchmark: Path, tmp_path: Path
) -> None:
    command = survey_command(
        manifest(tmp_path, ["resnet18_random"]), benchmark, tmp_path / "r.duckdb",
        "--slurm", *SLURM, "--slurm-queue", "no_such_partition",
    )  # fmt: skip
    result = subprocess.run(command, capture_output=True, text=True, env=ENV, timeout=300)
    assert result.returncode == 2
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: --slurm: Slurm rejects the worker job: ")
    assert "no_such_partition" in lines[0] and "Invalid partition name" in lines[0]
    assert not (tmp_path / "r.duckdb").exists()  # nothing started
