"""Survey a whole manifest against a benchmark into a results database.

The unit of work is one model. Models already complete for this benchmark hash and scoring
config are skipped, so a killed survey resumes where it stopped; each model's rows are written in
one transaction by the client only (Dask workers return score tables); a model that raises is
recorded in ``failures`` with its stage, traceback and cause (:mod:`zooscope.failure_causes`: a
rerun retries failures of the run's settings or environment, skips the model's own), and the
survey goes on. The client opens the database only for each write
(:class:`~zooscope.results.session.ShortWrites`), so readers and a second survey can use the file
while this one runs. Each model is claimed before it is scored (:mod:`zooscope.results.claims`):
surveys started together into one database share the models, and a killed survey's model is
taken over once its heartbeat stops. A run ended by Ctrl-C or SIGTERM is marked ``interrupted``;
one ended by an error (bad input, a full disk) ``failed`` with the reason. Noise ceilings are
computed per group (each group claimed like a model) and stored as each is done; a group that fails is recorded like a model failure (``ceiling <group>``) and never stops the survey.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import os
import signal
import threading
import time
import traceback
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from zooscope import _timing
from zooscope._backend import resolve_device
from zooscope._timing import stage
from zooscope.benchmark import Benchmark
from zooscope.config import RunOptions, ScoringConfig
from zooscope.errors import InputFileError
from zooscope.failure_causes import MODEL, classify
from zooscope.feature_extraction import parse_bytes
from zooscope.feature_extraction.consumers import Placement
from zooscope.logs import current_log_file, log_to_file
from zooscope.metrics import ceiling_methods, storing
from zooscope.metrics.ceilings import CeilingResult, compute_ceilings
from zooscope.neural.brainscore import check_inputs
from zooscope.pipeline.brain import BrainData
from zooscope.pipeline.cluster import WorkerLost, run_tasks
from zooscope.pipeline.cost import ModelCost, cached_costs, cost_line
from zooscope.pipeline.diagnostics import (
    best_scores_text,
    ceiling_notes_text,
    model_summary_lines,
)
from zooscope.pipeline.predictions import observed_responses
from zooscope.pipeline.progress import ProgressCallback, SurveyBars
from zooscope.pipeline.scoring import ModelScores, ScoringError, score_model
from zooscope.results.claims import (
    CLAIMED,
    HELD,
    WorkQueue,
    claim,
    completed,
    recorded_run,
    release,
)
from zooscope.results.db import ResultsDB
from zooscope.results.grams import store_grams
from zooscope.results.session import ShortWrites
from zooscope.validation import check_run_options
from zooscope.zoo.manifest import ModelEntry, load_manifest

logger = logging.getLogger(__name__)

__all__ = [
    "Failure",
    "SurveyReport",
    "compute_ceilings",
    "score_task",
    "store_ceiling",
    "survey",
    "verify_benchmark",
]


@dataclass
class Failure:
    """A model that raised: returned by workers instead of raising, so one bad model stops nothing."""

    model_uid: str
    stage: str
    error: str
    traceback: str
    cause: str = MODEL  # zooscope.failure_causes: who is to blame, so whether a rerun retries


@dataclass
class SurveyReport:
    """What a survey did."""

    run_id: str
    scored: list[str] = field(default_factory=list)
    skipped_complete: list[str] = field(default_factory=list)
    skipped_failed: list[str] = field(default_factory=list)
    unavailable: list[str] = field(default_factory=list)
    completed_elsewhere: list[str] = field(default_factory=list)  # by a concurrent survey
    failed: list[Failure] = field(default_factory=list)
    ceiling_failures: list[Failure] = field(default_factory=list)
    workers_lost: list[WorkerLost] = field(default_factory=list)
    seconds: float = 0.0
    log_file: Path | None = None  # where the detail went


@functools.lru_cache(maxsize=2)
def _brain_for(benchmark_path: str, content_hash: str, config: ScoringConfig) -> BrainData:
    """Brain data per process, built once per (benchmark, config) and reused for every model."""
    with stage("brain"):
        return BrainData.from_benchmark(Benchmark.open(benchmark_path), config)


def score_task(
    entry: ModelEntry,
    benchmark_path: str,
    config: ScoringConfig,
    options: RunOptions,
    on_progress: ProgressCallback | None = None,
) -> ModelScores | Failure:
    """Score one model in any process; failures come back as :class:`Failure` values.

    The model's measured seconds per stage (:mod:`zooscope._timing`) come back with its scores.
    """
    before = {clock: _timing.totals(clock) for clock in ("wall", "cpu")}
    try:
        benchmark = Benchmark.open(benchmark_path)
        brain = (  # the brainscore profile prepares its own (pooled, every image)
            None
            if config.profile == "brainscore"
            else _brain_for(str(benchmark_path), benchmark.content_hash, config)
        )
        scores = score_model(entry, benchmark, config, options, brain, on_progress)
        after = {clock: _timing.totals(clock) for clock in ("wall", "cpu")}
        scores.stage_seconds = {
            name: {c: after[c][name] - before[c].get(name, 0.0) for c in after}
            for name in after["wall"]
            if after["wall"][name] > before["wall"].get(name, 0.0)
        }
        return scores
    except ScoringError as error:
        tb = "".join(traceback.format_exception(error.error))
        message = f"{type(error.error).__name__}: {error.error}"
        cause = classify(error.error, error.stage)
        return Failure(entry.model_uid, error.stage, message, tb, cause)
    except Exception as error:
        message = f"{type(error).__name__}: {error}"
        cause = classify(error, "setup")
        return Failure(entry.model_uid, "setup", message, traceback.format_exc(), cause)


def verify_benchmark(bench: Benchmark) -> None:
    """Refuse a benchmark whose data no longer matches its content hash."""
    started = time.perf_counter()
    if not bench.verify():
        raise InputFileError(
            bench.path,
            "a Benchmark file",
            f"its data no longer match its content hash {bench.content_hash} (changed or damaged "
            "since it was written)",
            "restore a good copy or write it again (zooscope nsd prepare); --no-verify skips this check",
        )
    logger.debug("benchmark %s verified in %.1fs", bench.path, time.perf_counter() - started)


def _check_scorable(bench: Benchmark, config: ScoringConfig) -> None:
    """Refuse, once and before any model, units that every model would fail on (no data at all,
    or infinite values)."""
    groups = config.groups(bench)
    units = np.unique(np.concatenate(list(groups.values()))) if groups else np.zeros(0, np.int64)
    means = bench.mean_responses(units) if units.size else np.zeros((0, 0))
    for problem, bad_rows in (
        ("have no repetition at all for some images", np.isnan(means).any(axis=1)),
        ("have infinite values", np.isinf(means).any(axis=1)),
    ):
        bad = units[bad_rows]
        if bad.size:
            labels = [label for label, idx in groups.items() if np.isin(idx, bad).any()]
            raise InputFileError(
                bench.path,
                "a Benchmark file to score",
                f"{bad.size} unit(s) (e.g. {bad[:5].tolist()}) {problem}, in group(s) "
                f"{', '.join(labels)}",
                "drop them when preparing the benchmark, or leave their groups out (--subjects/--rois)",
            )


@contextlib.contextmanager
def _sigterm_interrupts() -> Iterator[None]:
    """Treat SIGTERM (Slurm's scancel or time limit) like Ctrl-C, so the run is marked interrupted."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def interrupt(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt(f"signal {signum}")

    previous = signal.signal(signal.SIGTERM, interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def store_ceiling(
    results: ResultsDB, run_id: str, benchmark_hash: str, result: CeilingResult
) -> None:
    """Store one group's ceiling (replacing that group's row), or record its failure.

    A failure goes to the ``failures`` table like a model's: ``model_uid`` is ``"ceiling <group>"``
    and ``stage`` is ``"ceiling"``.
    """
    if result.ok:
        results.write_ceilings(benchmark_hash, pd.DataFrame([result.row]), groups_only=True)
    else:
        results.record_failure(
            run_id, f"ceiling {result.label}", "ceiling", result.error or "", result.traceback or ""
        )


def _ceiling_labels(stored: pd.DataFrame, method: str) -> set[str]:
    """The ``subject|roi`` groups of a ceilings table that have ``method``'s ceiling."""
    return {f"{r.subject}|{r.roi}" for r in stored.itertuples() if r.method == method}


def _store_ceilings(
    session: ShortWrites, run_id: str, bench: Benchmark, config: ScoringConfig, n_sims: int,
    stored: pd.DataFrame, report: SurveyReport, lease: float,
) -> None:  # fmt: skip
    """Compute the missing ceilings of the chosen metrics, storing each group's as soon as it is done.

    ``stored`` is the benchmark's ``ceilings`` table; groups that have a method's ceiling already
    are not computed again. Each group is claimed first (like a model): a concurrent survey
    leaves it to this one.
    """
    for method in ceiling_methods(config.metrics):
        have = _ceiling_labels(stored, method.name)
        claimed = functools.partial(_claim_ceiling, session, run_id, bench, method.name, lease)
        results = method.compute(bench, config, n_sims=n_sims, skip=have, claim=claimed)
        _store_method_ceilings(session, run_id, bench, results, report)


def _claim_ceiling(
    session: ShortWrites, run_id: str, bench: Benchmark, method: str, lease: float, label: str
) -> bool:
    """Claim group ``label``'s ceiling of ``method``: False when stored or held elsewhere."""
    with session.open() as results:
        if label in _ceiling_labels(results.ceilings(bench.content_hash), method):
            return False  # stored meanwhile by another survey
        outcome, holder = claim(results, run_id, bench.content_hash, method,
                                f"ceiling {label}", lease, skip_failed=False)  # fmt: skip
    if holder is not None and outcome == HELD:
        logger.info("noise ceiling %s is being computed by %s", label, holder.run_id)
    return outcome == CLAIMED


def _store_method_ceilings(
    session: ShortWrites, run_id: str, bench: Benchmark, results: Iterator[CeilingResult],
    report: SurveyReport,
) -> None:  # fmt: skip
    """Store each group's ceiling of one method as it comes; one log line sums them up."""
    values: list[float] = []
    notes: list[str] = []
    for result in results:
        with session.open() as db:
            store_ceiling(db, run_id, bench.content_hash, result)
            release(db, run_id, f"ceiling {result.label}")
        if not result.ok:
            report.ceiling_failures.append(
                Failure(
                    f"ceiling {result.label}", "ceiling", result.error or "", result.traceback or ""
                )
            )
        else:
            values.append((result.row or {})["value"])
            notes.append((result.row or {}).get("note") or "")
    if values:
        logger.info(
            "noise ceilings of %d subject x ROI group(s): %.3f to %.3f%s",
            len(values),
            min(values),
            max(values),
            ceiling_notes_text(notes),
        )


def _in_process(
    queue: WorkQueue,
    benchmark_path: str,
    config: ScoringConfig,
    options: RunOptions,
    on_progress: ProgressCallback | None = None,
) -> Iterator[ModelScores | Failure]:
    for entry in queue.claimed():
        yield score_task(entry, benchmark_path, config, options, on_progress)


def _threads(target: Any) -> int:
    """Worker threads of a Dask client (or SlurmWorkers) now: how many models run at once."""
    client = getattr(target, "client", target)
    workers = client.scheduler_info(n_workers=-1)["workers"].values()
    return max(1, sum(int(w.get("nthreads", 1)) for w in workers))


def _on_dask(
    queue: WorkQueue,
    benchmark_path: str,
    config: ScoringConfig,
    options: RunOptions,
    client: Any,
    gpu: bool,
) -> Iterator[ModelScores | Failure | WorkerLost]:
    path = os.path.abspath(benchmark_path)  # workers may start in another folder
    while queue.pending:
        # Models are claimed as workers free up (not all at once), so that concurrent surveys
        # share them; models held by another survey are waited for, then taken over or skipped.
        tasks = ((e.model_uid, (e, path, config, options)) for e in queue.claimed(wait=False))
        for event in run_tasks(
            client,
            score_task,
            tasks,
            key_prefix=f"score-{config.hash}",
            resources={"GPU": 1} if gpu else None,
            window=lambda: _threads(client),
        ):
            if isinstance(event, WorkerLost):
                yield event
            elif event.error is not None:  # e.g. KilledWorker: every worker that tried it died
                message = f"{type(event.error).__name__}: {event.error}"
                yield Failure(event.name, "worker", message, "", classify(event.error, "worker"))
            else:
                yield event.result
        if queue.pending:
            time.sleep(queue.poll)


def _entries(
    manifest: str | os.PathLike[str] | Sequence[ModelEntry], models: Sequence[str] | None
) -> list[ModelEntry]:
    """The manifest's entries, only ``models`` when given (``KeyError`` naming unknown ones)."""
    entries = (
        list(manifest)
        if isinstance(manifest, Sequence) and not isinstance(manifest, str)
        else load_manifest(manifest)
    )
    if models:
        known = {e.model_uid for e in entries}
        missing = sorted(set(models) - known)
        if missing:
            raise KeyError(f"model(s) not in the manifest: {', '.join(missing)}")
        entries = [e for e in entries if e.model_uid in set(models)]
    return entries


def _todo(
    entries: Sequence[ModelEntry], done: set[str], failed_before: set[str], report: SurveyReport
) -> list[ModelEntry]:
    """The entries to score; the others are counted in ``report`` by why they are skipped."""
    todo = []
    for entry in entries:
        if not entry.available:
            report.unavailable.append(entry.model_uid)
            logger.info(  # the manifest says so; listed in the run's report
                "skipping %s: marked unavailable (%s)", entry.model_uid, entry.unavailable_reason
            )
        elif entry.model_uid in done:
            report.skipped_complete.append(entry.model_uid)
        elif entry.model_uid in failed_before:
            report.skipped_failed.append(entry.model_uid)
        else:
            todo.append(entry)
    logger.info(
        "survey %s: %d to score, %d complete, %d failed before (use --retry-failed), %d unavailable",
        report.run_id,
        len(todo),
        len(report.skipped_complete),
        len(report.skipped_failed),
        len(report.unavailable),
    )
    return todo


def _log_budget(
    options: RunOptions, distributed: bool, predicted: dict[str, ModelCost] | None = None
) -> None:
    """Say which memory budget each model's extraction gets, where it comes from, and the passes
    over the images it implies for the models the cost model has probed (``--estimate``)."""
    passes = sorted({cost.passes for cost in (predicted or {}).values()})
    implied = (
        f"; {passes[0]}{'-' + str(passes[-1]) if len(passes) > 1 else ''} passes per model for "
        f"the {len(predicted or {})} model(s) --estimate has probed"
        if passes
        else "; `zooscope survey ... --estimate` shows the passes it implies per model"
    )
    if options.memory_budget is not None:
        budget = parse_bytes(options.memory_budget)
        logger.info("memory budget per model: %.1f GB (--memory-budget)%s", budget / 1e9, implied)
        return
    where = "on each worker " if distributed else ""
    free = Placement.of(resolve_device(options.device)).backend
    logger.info(
        "memory budget per model: half the free memory %swhen the model starts (now %.1f GB)%s; "
        "set --memory-budget for reproducible runs",
        where,
        free.free_memory_bytes() / 2e9,
        implied,
    )


def _record(
    outcome: ModelScores | Failure | WorkerLost,
    session: ShortWrites,
    queue: WorkQueue,
    report: SurveyReport,
    predicted: dict[str, ModelCost] | None = None,
) -> str | None:
    """Write what came back for one model: its rows, its failure, or a lost worker.

    Returns the model's uid when the model is done with (None for a lost worker: Dask runs the
    model again elsewhere).
    """
    run_id = queue.run_id
    if isinstance(outcome, WorkerLost):
        with session.open() as results:
            results.record_failure(run_id, outcome.name, "worker-lost", outcome.message, "",
                                   classify(stage="worker-lost"))  # fmt: skip
        report.workers_lost.append(outcome)
        logger.warning("%s: %s", outcome.name, outcome.message)
        return None
    if isinstance(outcome, Failure):
        with session.open() as results:
            results.record_failure(
                run_id, outcome.model_uid, outcome.stage, outcome.error, outcome.traceback,
                outcome.cause,
            )  # fmt: skip
            release(results, run_id, outcome.model_uid)
        report.failed.append(outcome)
        logger.error("%s failed at %s (%s): %s", outcome.model_uid, outcome.stage, outcome.cause,
                     outcome.error)  # fmt: skip
        return outcome.model_uid
    uid = outcome.model["model_uid"]
    with stage("db"), session.open() as results:
        if completed(results, queue.benchmark_hash, queue.config_hash, uid):
            # Another run completed it after its claim here lapsed: one completion per model.
            release(results, run_id, uid)
            report.completed_elsewhere.append(uid)
            logger.info("%s: completed by another run meanwhile; this result is not stored", uid)
            return uid
    _store_model(outcome, session, run_id, queue.benchmark_hash, (predicted or {}).get(uid))
    report.scored.append(uid)
    return uid


def _store_model(
    scores: ModelScores,
    session: ShortWrites,
    run_id: str,
    benchmark_hash: str,
    predicted: ModelCost | None = None,
) -> None:
    """Store one model's rows (its Grams first), release its claim, and log its lines."""
    if scores.grams is not None:
        # before the model's rows: a model recorded complete has its Grams
        with stage("db"):
            store_grams(session.path, benchmark_hash, scores)
    with stage("db"), session.open() as results:
        results.write_model(
            run_id,
            scores.model,
            scores.layers,
            scores.scores,
            scores.rsms,
            scores.seconds,
            scores.predictions,
            unit_scores=scores.unit_scores,
        )
        release(results, run_id, scores.model["model_uid"])
    uid = scores.model["model_uid"]
    logger.info(
        "%s: %d layers, %d passes, %.0fs; best-layer test score, mean over subjects: %s",
        uid,
        len(scores.layers),
        scores.passes,
        scores.seconds,
        best_scores_text(scores.best()),
    )
    random_init = scores.model.get("weights") == "random"
    for line in model_summary_lines(uid, scores.layers, scores.scores, random_init=random_init):
        logger.info(line)
    if scores.stage_seconds:  # in the log file: measured beside predicted, to check the estimate
        logger.debug("%s: %s", uid, cost_line(scores.stage_seconds, predicted))


def models_to_score(
    manifest: str | os.PathLike[str] | Sequence[ModelEntry],
    benchmark: Benchmark,
    db: str | os.PathLike[str] | None,
    config: ScoringConfig,
    models: Sequence[str] | None = None,
) -> list[ModelEntry]:
    """The manifest's available models (or ``models``) not yet complete in ``db`` for this config."""
    done: set[str] = set()
    if db is not None and Path(db).exists():
        with ResultsDB(db, read_only=True) as results:
            done = set(results.completed_models(benchmark.content_hash, config.hash))
    return [e for e in _entries(manifest, models) if e.available and e.model_uid not in done]


def _progress(
    todo: Sequence[ModelEntry], bench: Benchmark, config: ScoringConfig, options: RunOptions
) -> tuple[dict[str, ModelCost], SurveyBars]:
    """The cost model's cached predictions of ``todo`` and the bars they weigh (models, layers)."""
    predicted = cached_costs(todo, bench, config, options)
    bars = SurveyBars(
        [e.model_uid for e in todo],
        {uid: cost.total("wall") for uid, cost in predicted.items()},
        {uid: cost.layer_seconds for uid, cost in predicted.items()},
        enabled=None if options.progress else False,
    )
    return predicted, bars


def _survey_log(
    session: ShortWrites, log_file: str | os.PathLike[str] | bool | None
) -> tuple[contextlib.ExitStack, str | os.PathLike[str] | bool | None]:
    """Where the survey's detail goes (see :func:`survey`'s ``log_file``), opened."""
    logs = contextlib.ExitStack()
    if log_file is None and current_log_file() is None:
        log_file = session.path.with_suffix(".log")
    if log_file:
        logs.enter_context(log_to_file(log_file))
    return logs, log_file


def survey(
    manifest: str | os.PathLike[str] | Sequence[ModelEntry],
    benchmark: str | os.PathLike[str],
    db: str | os.PathLike[str] | ResultsDB,
    config: ScoringConfig | None = None,
    options: RunOptions | None = None,
    models: Sequence[str] | None = None,
    retry_failed: bool = False,
    ceilings: bool = True,
    n_sims: int = 50,
    client: Any = None,
    gpu_resources: bool = False,
    verify: bool = True,
    log_file: str | os.PathLike[str] | bool | None = None,
) -> SurveyReport:
    """Score every model of a manifest that is not yet complete for this benchmark and config.

    Parameters
    ----------
    manifest : path, built-in name, or list of ModelEntry
    benchmark : path of a Benchmark file
    db : path of the DuckDB results file, or an open ResultsDB
    config : ScoringConfig, optional
        What determines the numbers (defaults: Conwell et al. 2024).
    options : RunOptions, optional
        Device, batch size, memory budget.
    models : sequence of str, optional
        Only these model uids.
    retry_failed : bool
        Also retry models whose last attempt failed (skipped otherwise).
    ceilings : bool
        Compute the benchmark's noise ceilings first if the database lacks them: GSN for the
        RSM-based metrics, internal consistency for ``predictivity``.
    n_sims : int
        Monte Carlo simulations per ceiling.
    client : distributed.Client or SlurmWorkers, optional
        Run models on this Dask cluster (see :func:`zooscope.pipeline.cluster.make_client`);
        in-process when None. A worker lost while scoring a model is recorded in ``failures``
        (stage ``worker-lost``) and the model is scored again on another worker.
    gpu_resources : bool
        Ask Dask for a ``GPU`` worker resource per model.
    verify : bool
        Check the benchmark's content hash against its data once at the start (bit rot in
        ``/responses`` or ``/stimuli`` would otherwise go unnoticed).
    log_file : path or bool, optional
        Where the survey's full detail (per-layer diagnostics, at debug level) is appended.
        Default: next to the database (``results.duckdb`` -> ``results.log``), unless logging
        already writes to a file (``zooscope --log-file``); False: nowhere.

    Returns
    -------
    SurveyReport
    """
    config = config or ScoringConfig()
    options = options or RunOptions()
    started = time.perf_counter()
    entries = _entries(manifest, models)
    bench = Benchmark.open(benchmark)
    if verify:
        with stage("verify"):
            verify_benchmark(bench)
    with stage("brain"):
        _check_scorable(bench, config)
    check_run_options(options, local=client is None)
    if config.profile == "brainscore":  # commitment files, PCA images, degrees: before any model
        check_inputs(bench, config)
    session = ShortWrites(db)
    manifest_name = entries[0].manifest if entries else None
    with session.open() as results:
        run_id = results.start_run(bench.content_hash, config.to_dict(), manifest_name)
        done = results.completed_models(bench.content_hash, config.hash)
        failed_before = (
            set() if retry_failed else results.failed_models(bench.content_hash, config.hash)
        )
        stored = results.ceilings(bench.content_hash)
    logs, log_file = _survey_log(session, log_file)
    report = SurveyReport(run_id)
    queue = WorkQueue(session, run_id, bench.content_hash, config.hash, [], retry_failed)
    try:
        with _sigterm_interrupts(), recorded_run(session, run_id, queue.lease):
            if ceilings:
                _store_ceilings(session, run_id, bench, config, n_sims, stored, report, queue.lease)
            if (
                options.keep_predictions
                and storing(config.metrics, "unit_predictions")
                and config.profile != "brainscore"  # keeps no predictions
            ):
                brain = _brain_for(str(benchmark), bench.content_hash, config)
                with stage("db"), session.open() as results:
                    results.write_responses(bench.content_hash, observed_responses(brain))
            todo = _todo(entries, done, failed_before, report)
            queue.pending.extend(todo)
            predicted, bars = _progress(todo, bench, config, options)
            _log_budget(options, client is not None, predicted)
            stream = (
                _on_dask(queue, str(benchmark), config, options, client, gpu_resources)
                if client is not None
                else _in_process(queue, str(benchmark), config, options, bars)
            )
            try:
                for outcome in stream:
                    uid = _record(outcome, session, queue, report, predicted)
                    if uid is not None:
                        bars.model_finished(uid)
            finally:
                bars.close()
            report.completed_elsewhere.extend(queue.completed_elsewhere)
            report.skipped_failed.extend(queue.failed_elsewhere)
    finally:
        logs.close()
    report.seconds = time.perf_counter() - started
    report.log_file = Path(log_file) if log_file else current_log_file()
    return report
