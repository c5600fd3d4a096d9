"""Survey a whole manifest against a benchmark into a results database.

The unit of work is one model. Models already complete for this benchmark hash and scoring
config are skipped, so a killed survey resumes where it stopped; each model's rows are written in
one transaction by the client only (Dask workers return score tables); a model that raises is
recorded in ``failures`` with its stage and traceback, and the survey goes on.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import os
import time
import traceback
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from zooscope.benchmark import Benchmark
from zooscope.logs import current_log_file, log_to_file
from zooscope.pipeline.diagnostics import model_summary_lines
from zooscope.pipeline.predictions import UNIT_METRICS, observed_responses
from zooscope.pipeline.scoring import (
    BrainData,
    ModelScores,
    RunOptions,
    ScoringConfig,
    ScoringError,
    score_model,
)
from zooscope.results.db import ResultsDB
from zooscope.rsa.vocabulary import RSA_CEILING_METHOD
from zooscope.zoo.manifest import ModelEntry, load_manifest

logger = logging.getLogger(__name__)



@dataclass
class Failure:
    """A model that raised: returned by workers instead of raising, so one bad model stops nothing."""

    model_uid: str
    stage: str
    error: str
    traceback: str


@dataclass
class SurveyReport:
    """What a survey did."""

    run_id: str
    scored: list[str] = field(default_factory=list)
    skipped_complete: list[str] = field(default_factory=list)
    skipped_failed: list[str] = field(default_factory=list)
    unavailable: list[str] = field(default_factory=list)
    failed: list[Failure] = field(default_factory=list)
    seconds: float = 0.0
    log_file: Path | None = None  # where the detail went


@functools.lru_cache(maxsize=2)
def _brain_for(benchmark_path: str, content_hash: str, config: ScoringConfig) -> BrainData:
    """Brain data per process, built once per (benchmark, config) and reused for every model."""
    return BrainData.from_benchmark(Benchmark.open(benchmark_path), config)


def score_task(entry: ModelEntry, benchmark_path: str, config: ScoringConfig, options: RunOptions) -> ModelScores | Failure:
    """Score one model in any process; failures come back as :class:`Failure` values."""
    try:
        benchmark = Benchmark.open(benchmark_path)
        brain = _brain_for(str(benchmark_path), benchmark.content_hash, config)
        return score_model(entry, benchmark, config, options, brain)
    except ScoringError as error:
        tb = "".join(traceback.format_exception(error.error))
        return Failure(entry.model_uid, error.stage, f"{type(error.error).__name__}: {error.error}", tb)
    except Exception as error:
        return Failure(entry.model_uid, "setup", f"{type(error).__name__}: {error}", traceback.format_exc())


def compute_ceilings(
    benchmark: Benchmark, config: ScoringConfig, n_sims: int = 50, seed: int = 0, backend: str = "auto"
) -> pd.DataFrame:
    """GSN RSA noise ceilings of every subject x ROI group on the test images.

    Returns
    -------
    DataFrame
        Columns ``subject, roi, method, value, lower, upper, note``: the median Monte Carlo
        ceiling, the 2.5/97.5 percentiles of its simulations, and how the GSN scale grid was
        widened where it had to be (None otherwise).
    """
    from zooscope.pipeline.scoring import _subjects, split_label
    from zooscope.rsa import rsa_noise_ceiling

    groups = benchmark.groups(subjects=_subjects(benchmark, config.subjects), rois=list(config.rois) if config.rois else None)
    test = benchmark.splits[config.test_split]
    rows = []
    for label, units in tqdm(groups.items(), desc="noise ceilings", unit="group", disable=None):
        data = benchmark.responses(units, test)
        complete = ~np.isnan(data).any(axis=(0, 1))
        data = data[:, :, complete]  # GSN needs complete trials: keep repetitions present for all
        if data.shape[2] < 2:
            logger.warning("group %s has fewer than 2 complete repetitions: no ceiling", label)
            continue
        result = rsa_noise_ceiling(data, n_sims=n_sims, seed=seed, backend=backend)
        low, high = np.percentile(result.ncdist, [2.5, 97.5])
        subject, roi = split_label(label)
        rows.append({"subject": subject, "roi": roi, "method": RSA_CEILING_METHOD, "value": float(result.nc), "lower": float(low), "upper": float(high), "note": result.note})
        logger.debug("ceiling %s: %.3f [%.3f, %.3f]%s", label, result.nc, low, high, f" ({result.note})" if result.note else "")
    table = pd.DataFrame(rows, columns=["subject", "roi", "method", "value", "lower", "upper", "note"])
    if len(table):
        widened = int(table["note"].notna().sum())
        logger.info(
            "noise ceilings of %d subject x ROI group(s): %.3f to %.3f%s",
            len(table), table["value"].min(), table["value"].max(),
            f"; {widened} needed a wider GSN scale grid (noted in the ceilings table)" if widened else "",
        )
    return table


def _in_process(entries: Sequence[ModelEntry], benchmark_path: str, config: ScoringConfig, options: RunOptions) -> Iterator[ModelScores | Failure]:
    for entry in entries:
        yield score_task(entry, benchmark_path, config, options)


def _on_dask(entries: Sequence[ModelEntry], benchmark_path: str, config: ScoringConfig, options: RunOptions, client: Any, gpu: bool) -> Iterator[ModelScores | Failure]:
    from distributed import as_completed

    resources = {"GPU": 1} if gpu else None
    futures = [
        client.submit(score_task, entry, benchmark_path, config, options, key=f"score-{entry.model_uid}-{config.hash}", resources=resources, pure=False)
        for entry in entries
    ]
    for future in as_completed(futures):
        yield future.result()
        future.release()


def make_client(workers: int | None = None, scheduler: str | None = None, slurm: dict[str, Any] | None = None) -> Any:
    """A Dask client: a local cluster of ``workers`` processes, an existing scheduler, or Slurm.

    ``slurm`` holds dask-jobqueue ``SLURMCluster`` arguments (``queue``, ``cores``, ``memory``,
    ``walltime``, ``job_extra_directives``...) plus ``jobs`` (how many to start).
    """
    from distributed import Client, LocalCluster

    if scheduler:
        return Client(scheduler)
    if slurm is not None:
        from dask_jobqueue import SLURMCluster

        options = dict(slurm)
        jobs = int(options.pop("jobs", 1))
        cluster = SLURMCluster(**options)
        cluster.scale(jobs=jobs)
        return Client(cluster)
    cluster = LocalCluster(n_workers=workers or 1, threads_per_worker=1, processes=True, dashboard_address=None)
    return Client(cluster)


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
        Compute the benchmark's GSN noise ceilings first if the database lacks them.
    n_sims : int
        Monte Carlo simulations per ceiling.
    client : distributed.Client, optional
        Run models on this Dask cluster (see :func:`make_client`); in-process when None.
    gpu_resources : bool
        Ask Dask for a ``GPU`` worker resource per model.
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
    entries = list(manifest) if isinstance(manifest, Sequence) and not isinstance(manifest, str) else load_manifest(manifest)
    if models:
        known = {e.model_uid for e in entries}
        missing = sorted(set(models) - known)
        if missing:
            raise KeyError(f"model(s) not in the manifest: {', '.join(missing)}")
        entries = [e for e in entries if e.model_uid in set(models)]
    bench = Benchmark.open(benchmark)
    results = db if isinstance(db, ResultsDB) else ResultsDB(db)
    if log_file is None and current_log_file() is None:
        log_file = results.path.with_suffix(".log")
    try:
        with log_to_file(log_file) if log_file else contextlib.nullcontext():
            report = _survey(entries, benchmark, bench, results, config, options, retry_failed, ceilings, n_sims, client, gpu_resources)
    finally:
        if not isinstance(db, ResultsDB):
            results.close()
    report.seconds = time.perf_counter() - started
    report.log_file = Path(log_file) if log_file else current_log_file()
    return report


def _survey(
    entries: list[ModelEntry], benchmark: str | os.PathLike[str], bench: Benchmark, results: ResultsDB, config: ScoringConfig,
    options: RunOptions, retry_failed: bool, ceilings: bool, n_sims: int, client: Any, gpu_resources: bool,
) -> SurveyReport:
    """The body of :func:`survey`, with its log file attached."""
    manifest_name = entries[0].manifest if entries else None
    run_id = results.start_run(bench.content_hash, config.to_dict(), manifest_name)
    report = SurveyReport(run_id)
    try:
        if ceilings and results.ceilings(bench.content_hash).empty:
            results.write_ceilings(bench.content_hash, compute_ceilings(bench, config, n_sims=n_sims))
        if options.keep_predictions and set(UNIT_METRICS) & set(config.metrics):
            brain = _brain_for(str(benchmark), bench.content_hash, config)
            results.write_responses(bench.content_hash, observed_responses(brain))
        done = results.completed_models(bench.content_hash, config.hash)
        failed_before = set() if retry_failed else results.failed_models(bench.content_hash, config.hash)
        todo = []
        for entry in entries:
            if not entry.available:
                report.unavailable.append(entry.model_uid)
                logger.warning("skipping %s: marked unavailable (%s)", entry.model_uid, entry.unavailable_reason)
            elif entry.model_uid in done:
                report.skipped_complete.append(entry.model_uid)
            elif entry.model_uid in failed_before:
                report.skipped_failed.append(entry.model_uid)
            else:
                todo.append(entry)
        logger.info(
            "survey %s: %d to score, %d complete, %d failed before (use --retry-failed), %d unavailable",
            run_id, len(todo), len(report.skipped_complete), len(report.skipped_failed), len(report.unavailable),
        )
        stream = _on_dask(todo, str(benchmark), config, options, client, gpu_resources) if client is not None else _in_process(todo, str(benchmark), config, options)
        with tqdm(total=len(todo), desc="survey", unit="model", disable=None) as bar:
            for outcome in stream:
                if isinstance(outcome, Failure):
                    results.record_failure(run_id, outcome.model_uid, outcome.stage, outcome.error, outcome.traceback)
                    report.failed.append(outcome)
                    logger.error("%s failed at %s: %s", outcome.model_uid, outcome.stage, outcome.error)
                else:
                    results.write_model(run_id, outcome.model, outcome.layers, outcome.scores, outcome.rsms, outcome.seconds, outcome.predictions)
                    uid = outcome.model["model_uid"]
                    report.scored.append(uid)
                    best = ", ".join(f"{m} {v:.3f}" for m, v in sorted(outcome.best().items()))
                    logger.info("%s: %d layers in %.0fs; best-layer test: %s", uid, len(outcome.layers), outcome.seconds, best)
                    random_init = outcome.model.get("weights") == "random"
                    for line in model_summary_lines(uid, outcome.layers, outcome.scores, random_init=random_init):
                        logger.info(line)
                bar.update(1)
    finally:
        results.finish_run(run_id)
    return report
