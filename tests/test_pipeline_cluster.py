"""zooscope.pipeline.cluster without Slurm: lost workers on a local Dask cluster, job scripts."""

from __future__ import annotations

import logging
import os
import signal
import threading
import time
from typing import Any

import pytest

from zooscope.pipeline.cluster import (
    _ANNOUNCE_TOPIC,
    Completed,
    SlurmOptions,
    SlurmWorkers,
    WorkerLost,
    make_client,
    run_tasks,
    slurm_job_script,
)


def _kill_the_worker_running(client: Any, key: str) -> None:
    """SIGKILL the worker that runs ``key``, once the task has started there."""
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        started = {event["worker"] for _, event in client.get_events(_ANNOUNCE_TOPIC)}
        for address, keys in client.processing().items():
            if key in keys and address in started:
                pid = client.run(os.getpid, workers=[address])[address]
                os.kill(pid, signal.SIGKILL)
                return
        time.sleep(0.1)


@pytest.mark.parametrize("poll", [0.5, 30.0])
def test_a_killed_worker_is_reported_and_its_task_runs_again(poll: float) -> None:
    # poll=30: the worker dies long before run_tasks first looks at the cluster; it is still
    # named, from the announcement its task made when it started
    client = make_client(workers=2)
    try:
        client.wait_for_workers(2, timeout=120)
        names = {info["name"] for info in client.scheduler_info()["workers"].values()}
        killer = threading.Thread(target=_kill_the_worker_running, args=(client, "sleep-a"))
        killer.start()
        events = list(
            run_tasks(client, time.sleep, {"a": (3,), "b": (3,)}, key_prefix="sleep", poll=poll)
        )
        killer.join()
    finally:
        client.close()
    lost = [e for e in events if isinstance(e, WorkerLost)]
    done = [e for e in events if isinstance(e, Completed)]
    assert [e.name for e in lost] == ["a"]
    who, _, address = lost[0].worker.partition(" at ")
    assert who in {f"worker {name}" for name in names} and address.startswith("tcp://"), lost
    assert sorted(e.name for e in done) == ["a", "b"] and all(e.error is None for e in done)
    assert events.index(lost[0]) < next(
        i for i, e in enumerate(events) if isinstance(e, Completed) and e.name == "a"
    )


def test_job_script_asks_for_cores_memory_and_gpus() -> None:
    script = slurm_job_script(
        SlurmOptions(cores=4, memory="8GB", gpus=1, queue="short", walltime="01:00:00")
    )
    assert "#SBATCH --cpus-per-task=4" in script and "#SBATCH --mem=8G" in script
    assert "#SBATCH -p short" in script and "#SBATCH -t 01:00:00" in script
    assert "#SBATCH --gres=gpu:1" in script and "--resources GPU=1" in script
    # One model at a time per worker, with the job's CPUs as its torch/BLAS threads.
    assert "--nthreads 1" in script
    assert "'OMP_NUM_THREADS': ${SLURM_CPUS_PER_TASK:-1}" in script
    assert "#SBATCH -e" not in script  # no log folder: Slurm's default slurm-<id>.out


def test_a_failing_squeue_ends_no_job_and_warns_once(tmp_path, monkeypatch, caplog) -> None:
    """squeue that cannot run (not on PATH here) says nothing about the jobs: none is replaced,
    and a job whose worker has not joined yet is not taken for one that died before joining."""
    from types import SimpleNamespace

    monkeypatch.setenv("PATH", str(tmp_path))  # an empty folder: no squeue
    workers = SlurmWorkers(SlurmOptions(jobs=1))
    workers.client = SimpleNamespace(scheduler_info=lambda n_workers: {"workers": {}})
    workers.cluster = SimpleNamespace(workers={"SLURMCluster-0": SimpleNamespace(job_id="12")})
    with caplog.at_level(logging.WARNING, logger="zooscope.pipeline.cluster"):
        for _ in range(3):
            workers.check(force=True)  # raised ClusterError ("ended before its worker joined")
    assert workers.replaced == []
    (record,) = caplog.records  # one warning for the streak, not one per check
    assert "squeue failed" in record.message
