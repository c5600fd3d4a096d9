"""Dask clusters for the survey: local worker processes, an existing scheduler, or Slurm jobs.

The survey's unit of work is one model, run as one Dask task; only the client writes results.
This module starts the workers and runs tasks on them, and makes the failure modes of a batch
scheduler visible instead of silent:

* ``--slurm`` without ``sbatch`` on ``PATH`` fails at once (:func:`require_slurm`), and a job
  that Slurm would reject fails with Slurm's own message (``sbatch --test-only``) before anything
  is submitted;
* when no worker has joined within ``SlurmOptions.timeout`` seconds, :class:`SlurmWorkers` says
  which jobs are waiting, in which partition and why (``squeue``), cancels them and raises;
* a job that ends while the survey runs (``scancel``, walltime, node failure) is replaced by a new
  one; the tasks its worker held are run again by Dask elsewhere, and :func:`run_tasks` reports
  each of them as a :class:`WorkerLost` so the survey can record what happened.
"""

from __future__ import annotations

import logging
import os
import shlex
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from zooscope.errors import ZooscopeError

logger = logging.getLogger(__name__)

__all__ = [
    "ClusterError",
    "Completed",
    "SlurmOptions",
    "SlurmWorkers",
    "WorkerLost",
    "make_client",
    "require_slurm",
    "run_tasks",
    "slurm_job_script",
]

# Slurm job states after which the job's worker is gone for good (squeue --states=all).
_ENDED = {
    "BOOT_FAIL", "CANCELLED", "COMPLETED", "DEADLINE", "FAILED", "NODE_FAIL", "OUT_OF_MEMORY",
    "PREEMPTED", "REVOKED", "SPECIAL_EXIT", "TIMEOUT",
}  # fmt: skip
# One model per worker thread at a time: a queued model waiting on a busy worker would be lost
# with it, and prefetching gains nothing when a task runs for minutes.
_DASK_CONFIG = {"distributed.scheduler.worker-saturation": 1.0}


class ClusterError(ZooscopeError, RuntimeError):
    """The cluster cannot run the survey; the message says why and what to do."""


@dataclass(frozen=True)
class SlurmOptions:
    """What each Slurm job of Dask workers asks for, and how long to wait for the first one.

    Parameters
    ----------
    jobs : int
        Jobs to keep running, one Dask worker each (one model at a time).
    queue : str, optional
        Partition (``sbatch -p``); Slurm's default partition when None.
    cores : int
        CPUs per job (``--cpus-per-task``); the worker's torch/BLAS threads.
    memory : str
        Memory per job (``--mem``), e.g. ``"32GB"``.
    walltime : str
        Time limit per job (``-t``); a job that reaches it is replaced.
    gpus : int
        GPUs per job (``--gres=gpu:N``), declared to Dask as the worker resource ``GPU``.
    log_directory : str, optional
        Folder of the jobs' stdout/stderr (``<job_name>-<job id>.out/.err``); Slurm's default
        (``slurm-<job id>.out`` in the working directory) when None.
    extra_directives : tuple of str
        More ``#SBATCH`` options, e.g. ``("--account=lab", "--qos=long")``.
    interface : str, optional
        Network interface of the scheduler and workers (e.g. ``ib0``; ``lo`` on one machine).
    timeout : float
        Seconds to wait for a first worker (again after all workers are lost); 0 waits forever.
    job_name : str
        Slurm job name (``-J``).
    """

    jobs: int = 4
    queue: str | None = None
    cores: int = 8
    memory: str = "32GB"
    walltime: str = "04:00:00"
    gpus: int = 0
    log_directory: str | None = None
    extra_directives: tuple[str, ...] = ()
    interface: str | None = None
    timeout: float = 900.0
    job_name: str = "zooscope-worker"

    def job_kwargs(self) -> dict[str, Any]:
        """Arguments of dask-jobqueue's ``SLURMJob`` (and ``SLURMCluster``) for these options."""
        directives = [*self.extra_directives]
        worker_args = []
        if self.gpus:
            directives.append(f"--gres=gpu:{self.gpus}")
            worker_args += ["--resources", f"GPU={self.gpus}"]
        return {
            "queue": self.queue,
            # One worker thread (one model at a time) on `cores` CPUs: the job asks for job_cpu.
            "cores": 1,
            "processes": 1,
            "job_cpu": self.cores,
            "memory": self.memory,
            "walltime": self.walltime,
            "job_name": self.job_name,
            "log_directory": self.log_directory,
            "job_extra_directives": directives,
            "worker_extra_args": worker_args,
            "interface": self.interface,
            "python": sys.executable,  # workers import the same zooscope, from the same env
            "job_script_prologue": _prologue(),
        }


def _prologue() -> list[str]:
    """Shell lines run before the worker starts: the client's import path and thread count."""
    lines = []
    if os.environ.get("PYTHONPATH"):  # sites may submit with --export=NONE
        lines.append(f"export PYTHONPATH={shlex.quote(os.environ['PYTHONPATH'])}")
    # Dask's nanny pins OMP/MKL/OpenBLAS to one thread; a model should use the job's CPUs.
    threads = "${SLURM_CPUS_PER_TASK:-1}"
    environ = ", ".join(
        [
            f"'{name}': {threads}"
            for name in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")
        ]
        + ["'MALLOC_TRIM_THRESHOLD_': 65536"]
    )
    lines.append(f'export DASK_DISTRIBUTED__NANNY__PRE_SPAWN_ENVIRON="{{{environ}}}"')
    return lines


def require_slurm() -> None:
    """Raise :class:`ClusterError` at once when Slurm's submit command is not on ``PATH``."""
    if shutil.which("sbatch") is None:
        raise ClusterError(
            "--slurm: Slurm's submit command 'sbatch' is not on PATH: run on a Slurm login node "
            "(or load its module), or use --workers N for local worker processes"
        )


def slurm_job_script(options: SlurmOptions, scheduler: str = "tcp://<scheduler>:8786") -> str:
    """The batch script each Slurm job of workers runs (what ``--slurm-dry-run`` prints).

    Needs neither Slurm nor a running scheduler (the scheduler's address is filled in when the
    jobs are submitted); creates the log folder, as dask-jobqueue does.
    """
    from dask_jobqueue.slurm import SLURMJob

    job = SLURMJob(scheduler=scheduler, name="<worker>", **options.job_kwargs())
    return job.job_script()


def _run(command: list[str], timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(command, capture_output=True, text=True, timeout=timeout, check=False)


def _test_submission(options: SlurmOptions) -> None:
    """``sbatch --test-only`` of the job script: Slurm's own message for a job it would reject."""
    script = slurm_job_script(options)
    result = subprocess.run(
        ["sbatch", "--test-only"],
        input=script,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    if result.returncode != 0:
        reason = "; ".join(
            line.removeprefix("sbatch: error: ").strip()
            for line in result.stderr.splitlines()
            if line.strip()
        )
        raise ClusterError(
            f"--slurm: Slurm rejects the worker job: {reason or 'sbatch --test-only failed'} (see --slurm-dry-run)"
        )


def _squeue(job_ids: list[str]) -> dict[str, tuple[str, str, str]]:
    """``{job id: (partition, state, reason)}`` of the jobs Slurm still knows about.

    Raises ``OSError`` or ``subprocess.TimeoutExpired`` when ``squeue`` cannot answer: a job
    missing from an answer has ended, but no answer says nothing about any job.
    """
    if not job_ids:
        return {}
    result = _run(
        [
            "squeue",
            "--noheader",
            "--states=all",
            "--jobs",
            ",".join(job_ids),
            "--format=%i|%P|%T|%r",
        ]
    )
    table = {}
    for line in result.stdout.splitlines():
        parts = line.strip().split("|")
        if len(parts) == 4:
            table[parts[0]] = (parts[1], parts[2], parts[3])
    return table


class SlurmWorkers:
    """Dask workers as Slurm jobs (dask-jobqueue), watched: see the module docstring.

    Parameters
    ----------
    options : SlurmOptions

    Attributes
    ----------
    client : distributed.Client
        Connected to the scheduler, which runs in this process.
    cluster : dask_jobqueue.SLURMCluster
    replaced : list of str
        One line per job that ended and was replaced.
    """

    def __init__(self, options: SlurmOptions) -> None:
        self.options = options
        self.client: Any = None
        self.cluster: Any = None
        self.replaced: list[str] = []
        self._joined: set[str] = set()  # worker names that ever connected
        self._any_joined = False
        self._failed_starts = 0  # jobs that ended before their worker joined, since the last join
        self._no_worker_since = time.monotonic()
        self._last_check = 0.0
        self._squeue_failing = False  # warn once per streak of failed squeue calls

    def start(self) -> SlurmWorkers:
        """Submit the jobs and wait until a first worker joins (see ``SlurmOptions.timeout``)."""
        import dask
        from dask_jobqueue import SLURMCluster
        from distributed import Client

        require_slurm()
        _test_submission(self.options)
        if self.options.log_directory:
            Path(self.options.log_directory).mkdir(parents=True, exist_ok=True)
        kwargs = self.options.job_kwargs()
        scheduler_options: dict[str, Any] = {}
        if self.options.interface:
            from distributed.utils import get_ip_interface

            # The dashboard on the scheduler's interface too, not on every interface.
            scheduler_options["dashboard_address"] = (
                f"{get_ip_interface(self.options.interface)}:8787"
            )
        with dask.config.set(_DASK_CONFIG):
            self.cluster = SLURMCluster(scheduler_options=scheduler_options, **kwargs)
        self.client = Client(self.cluster)
        self.cluster.scale(jobs=self.options.jobs)
        logger.info(
            "Slurm: %d job(s) submitted; scheduler %s, dashboard %s, job logs in %s",
            self.options.jobs,
            self.cluster.scheduler_address,
            self.cluster.dashboard_link,
            self.options.log_directory or "the working directory",
        )
        self._no_worker_since = time.monotonic()
        try:
            while not self._connected():
                self.check(interval=5.0)
                time.sleep(1.0)
        except BaseException:
            self.close()
            raise
        logger.info("Slurm: a first worker joined (jobs %s)", ", ".join(self.job_ids().values()))
        return self

    def job_ids(self) -> dict[str, str]:
        """``{Dask worker name: Slurm job id}`` of the submitted jobs."""
        if self.cluster is None:
            return {}
        return {
            name: str(job.job_id)
            for name, job in self.cluster.workers.items()
            if getattr(job, "job_id", None)
        }

    def _connected(self) -> set[str]:
        names = {
            str(w.get("name")) for w in self.client.scheduler_info(n_workers=-1)["workers"].values()
        }
        if names - self._joined:
            self._failed_starts = 0
            self._any_joined = True
        self._joined |= names
        return names

    def describe(self, name: str) -> str:
        """``Slurm job 12 (worker SLURMCluster-1)`` for a worker name."""
        job = self.job_ids().get(name)
        return f"Slurm job {job} (worker {name})" if job else f"worker {name}"

    def check(self, force: bool = False, interval: float = 10.0) -> None:
        """Replace ended jobs; raise :class:`ClusterError` when no worker came within the timeout.

        Asks ``squeue`` at most every ``interval`` seconds unless ``force``.
        """
        now = time.monotonic()
        if not force and now - self._last_check < interval:
            return
        self._last_check = now
        connected = self._connected()
        jobs = self.job_ids()
        try:
            queue = _squeue(list(jobs.values()))
        except (OSError, subprocess.TimeoutExpired) as error:
            if not self._squeue_failing:
                logger.warning(
                    "squeue failed (%s); no Slurm job is replaced until it answers again", error
                )
            self._squeue_failing = True
            queue, jobs = {}, {}  # job states unknown: none is taken for ended
        else:
            self._squeue_failing = False
        ended = []
        for name, job in jobs.items():
            _, state, _ = queue.get(job, ("", "GONE", ""))
            if name in connected or state not in _ENDED | {"GONE"}:
                continue
            if name not in self._joined:
                # A broken setup: no worker ever joined, or a whole round of jobs died unseen
                # (a worker that joins and dies between two checks is seen as never joined).
                self._failed_starts += 1
                if not self._any_joined or self._failed_starts > self.options.jobs:
                    raise ClusterError(
                        f"--slurm: Slurm job {job} ended ({state}) before its Dask worker joined: "
                        f"see {self._log(job)}"
                    )
            ended.append(name)
            self.replaced.append(f"Slurm job {job} ({name}) ended ({state}): replaced")
            logger.warning(
                "Slurm job %s (worker %s) ended (%s): submitting a replacement", job, name, state
            )
        if ended:
            self.cluster.sync(self._replace, ended)
        if connected:
            self._no_worker_since = now
        elif self.options.timeout and now - self._no_worker_since > self.options.timeout:
            raise ClusterError(f"--slurm: {self._waiting_message(queue)}")

    async def _replace(self, names: list[str]) -> None:
        """Retire ended jobs and submit new ones (on the cluster's event loop, which owns them).

        Through the cluster's own API: ``scale_down`` forgets the jobs (its ``scancel`` of a job
        that is gone already is a no-op in dask-jobqueue), ``scale`` submits as many new ones.
        """
        for name in names:
            self._joined.discard(name)  # scale() may reuse the name for the new job
        await self.cluster.scale_down(names)
        self.cluster.scale(jobs=self.options.jobs)

    def _log(self, job: str) -> str:
        """Where the job's stderr goes."""
        if self.options.log_directory:
            return f"{self.options.log_directory}/{self.options.job_name}-{job}.err"
        return f"slurm-{job}.out in the working directory"

    def _waiting_message(self, queue: Mapping[str, tuple[str, str, str]]) -> str:
        states, running = [], []
        for job in self.job_ids().values():
            partition, state, reason = queue.get(
                job, (self.options.queue or "?", "unknown to squeue", "")
            )
            why = f" ({reason})" if reason and reason != "None" else ""
            states.append(f"job {job} in partition '{partition}' is {state}{why}")
            if state == "RUNNING":
                running.append(job)
        if running:  # started, yet no worker: it cannot reach the scheduler, or fails to start
            hint = f"see {self._log(running[0])} and choose the network with --slurm-interface"
        else:
            hint = "check `squeue`/`sinfo`, --slurm-queue and the resources asked for (--slurm-dry-run), or wait longer with --slurm-timeout"
        return f"no Dask worker joined within {self.options.timeout:g} s: {'; '.join(states) or 'no job was submitted'}. The jobs are cancelled; {hint}"

    def close(self) -> None:
        """Close the client and cancel every job (``scancel``)."""
        if self.client is not None:
            self.client.close()
        if self.cluster is not None:
            self.cluster.close()
        self.client = self.cluster = None

    def __enter__(self) -> SlurmWorkers:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def make_client(
    workers: int | None = None, scheduler: str | None = None, slurm: SlurmOptions | None = None
) -> Any:
    """A Dask client of ``workers`` local processes or of an existing scheduler, or Slurm workers.

    Returns
    -------
    distributed.Client or SlurmWorkers
        For ``slurm``, a started :class:`SlurmWorkers` (its ``client`` attribute is the client).
        Pass either to :func:`zooscope.pipeline.survey.survey`; ``close()`` it afterwards.
    """
    from distributed import Client, LocalCluster

    if scheduler:
        return Client(scheduler)
    if slurm is not None:
        return SlurmWorkers(slurm).start()
    import dask

    with dask.config.set(_DASK_CONFIG):
        cluster = LocalCluster(
            n_workers=workers or 1, threads_per_worker=1, processes=True, dashboard_address=":0"
        )
    return Client(cluster)


@dataclass
class Completed:
    """A task that finished: its ``result``, or the ``error`` it (or its lost workers) raised."""

    name: str
    result: Any = None
    error: BaseException | None = None


@dataclass
class WorkerLost:
    """A worker left while it held the task ``name``; Dask runs the task again on another worker."""

    name: str
    worker: str

    @property
    def message(self) -> str:
        return f"{self.worker} left while running this task; Dask runs it again on another worker"


# Event topic on which each task names the worker it starts on (see :class:`_Announced`).
_ANNOUNCE_TOPIC = "zooscope-task-started"


class _Announced:
    """``function`` that first names its worker to the scheduler, then runs.

    The roster of workers is read between polls, so a worker that joins, starts a task and dies
    within one poll would otherwise be described only by its address. With the announcement, a
    worker lost after its task started is named (and, on Slurm, its job); one lost between the
    task's assignment and its start is still described by its address alone.
    """

    def __init__(self, function: Callable[..., Any]) -> None:
        self.function = function

    def __call__(self, *args: Any) -> Any:
        from distributed import get_worker

        try:
            worker = get_worker()
        except ValueError:  # not on a Dask worker (e.g. a test calling it directly)
            pass
        else:
            # The job id from the job itself: a replacement job reuses the worker's name.
            job = os.environ.get("SLURM_JOB_ID", "")
            worker.log_event(
                _ANNOUNCE_TOPIC, {"worker": worker.address, "name": str(worker.name), "job": job}
            )
        return self.function(*args)


def run_tasks(
    target: Any,
    function: Callable[..., Any],
    arguments: Mapping[str, tuple[Any, ...]] | Iterable[tuple[str, tuple[Any, ...]]],
    key_prefix: str,
    resources: Mapping[str, float] | None = None,
    poll: float = 5.0,
    window: Callable[[], int] | None = None,
) -> Iterator[Completed | WorkerLost]:
    """Run ``function(*arguments[name])`` for every name as a Dask task; yield as they finish.

    Parameters
    ----------
    target : distributed.Client or SlurmWorkers
    function : callable
    arguments : mapping of str to tuple, or iterable of (name, arguments) pairs
        Task name -> positional arguments; the Dask key is ``f"{key_prefix}-{name}"``. An
        iterable is drawn from lazily: only when fewer than ``window()`` tasks are running.
    key_prefix : str
    resources : mapping, optional
        Dask worker resources each task needs, e.g. ``{"GPU": 1}``.
    poll : float
        Seconds between looks at the cluster (lost workers, ended jobs).
    window : callable, optional
        How many tasks may be submitted at once (asked again as tasks finish); all when None.

    Yields
    ------
    Completed or WorkerLost
        A :class:`WorkerLost` for every lost worker that held a task (before that task's
        :class:`Completed`); one :class:`Completed` per task.

    Raises
    ------
    ClusterError
        From :meth:`SlurmWorkers.check`, when no worker is left and none comes back in time.
    """
    from distributed import wait

    slurm = target if isinstance(target, SlurmWorkers) else None
    client = slurm.client if slurm is not None else target
    source = iter(arguments.items() if isinstance(arguments, Mapping) else arguments)
    futures: dict[Any, str] = {}
    names_by_key: dict[str, str] = {}
    pending: set[Any] = set()

    def submit_more() -> None:
        limit = None if window is None else window()
        while limit is None or len(pending) < limit:
            item = next(source, None)
            if item is None:
                return
            name, args = item
            future = client.submit(
                _Announced(function),
                *args,
                key=f"{key_prefix}-{name}",
                resources=dict(resources) if resources else None,
                pure=False,
            )
            futures[future], names_by_key[future.key] = name, name
            pending.add(future)

    submit_more()
    roster: dict[str, str] = {}  # worker address -> who it was, to describe workers that left
    seen = time.time()
    while pending:
        try:
            done, pending = wait(pending, timeout=poll, return_when="FIRST_COMPLETED")
        except TimeoutError:
            done = set()
        for _, event in client.get_events(_ANNOUNCE_TOPIC):
            if isinstance(event, dict) and "worker" in event:
                job, name = event.get("job"), event.get("name")
                who = f"Slurm job {job} (worker {name})" if job else f"worker {name}"
                roster.setdefault(event["worker"], f"{who} at {event['worker']}")
        for address, info in client.scheduler_info(n_workers=-1)["workers"].items():
            if address not in roster:  # described while it runs: a replacement job reuses the name
                name = str(info.get("name"))
                roster[address] = (
                    f"{slurm.describe(name) if slurm is not None else f'worker {name}'} at {address}"
                )
        for stamp, event in client.get_events("all"):
            if (
                stamp <= seen
                or not isinstance(event, dict)
                or event.get("action") != "remove-worker"
            ):
                continue
            seen = stamp
            address = event.get("worker", "?")
            for key in sorted(set(event.get("processing-tasks", ())) & names_by_key.keys()):
                yield WorkerLost(names_by_key[key], roster.get(address, f"worker at {address}"))
        for future in done:
            name = futures[future]
            if future.status == "error":
                yield Completed(name, error=future.exception())
            else:
                yield Completed(name, result=future.result())
            future.release()
        submit_more()
        if slurm is not None and pending:
            slurm.check()
