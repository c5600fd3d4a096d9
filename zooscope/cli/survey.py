"""``zooscope survey``, ``zooscope ceiling`` and ``zooscope demo``."""

from __future__ import annotations

import contextlib
import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer

from zooscope.cli.output import echo_wrapped, emit
from zooscope.cli.validation import check_options
from zooscope.cli.vocabulary import comma_list

if TYPE_CHECKING:
    from zooscope.pipeline.survey import SurveyReport

logger = logging.getLogger(__name__)


def summary_line(report: SurveyReport) -> str:
    """The survey's last stdout line: what happened to each model, and what a rerun will do."""
    # lazy: `zooscope --help` stays fast
    from zooscope.failure_causes import RETRIED, describe_causes

    failed = f"failed {len(report.failed)}"
    if report.failed:
        retried = [f.cause for f in report.failed if f.cause in RETRIED]
        own = len(report.failed) - len(retried)
        parts = [f"a rerun retries {len(retried)} ({describe_causes(retried)})"] if retried else []
        if own:
            parts.append(f"{own} failed on their own: a rerun skips them unless --retry-failed")
        failed += f" ({'; '.join(parts)})"
    skipped = f"skipped after earlier failure {len(report.skipped_failed)}"
    if report.skipped_failed:
        skipped += " (--retry-failed retries them)"
    complete = f"already complete {len(report.skipped_complete) + len(report.completed_elsewhere)}"
    if report.completed_elsewhere:
        complete += f" ({len(report.completed_elsewhere)} by a concurrent survey)"
    detail = f"; detail in {report.log_file}" if report.log_file else ""
    return (
        f"scored {len(report.scored)}, {failed}, {complete}, "
        f"{skipped}, unavailable {len(report.unavailable)} in {report.seconds:.0f}s{detail}"
    )


def _exit_if_failed(report: SurveyReport, db: Path) -> None:
    """End a command that ran but left work undone with a last line and exit code 1."""
    if not (report.failed or report.ceiling_failures):
        return
    n_models, n_failed = len(report.scored) + len(report.failed), len(report.failed)
    parts = [f"{n_failed} of {n_models} model(s)"] if n_failed else []
    if report.ceiling_failures:
        parts.append(f"{len(report.ceiling_failures)} noise-ceiling group(s)")
    message = f"error: {' and '.join(parts)} failed; details: zooscope results failures --db {db}"
    typer.echo(message, err=True)
    raise typer.Exit(1)


def _print_estimate(
    manifest: str, benchmark: Path, db: Path, config: Any, options: Any, models: Any
) -> None:
    """``survey --estimate``: the predicted cost of the models the survey would score."""
    # lazy: `zooscope --help` stays fast
    from zooscope.benchmark import Benchmark
    from zooscope.pipeline.cost import estimate_lines, estimate_survey
    from zooscope.pipeline.survey import models_to_score

    bench = Benchmark.open(benchmark)
    entries = models_to_score(manifest, bench, db, config, models)
    result = estimate_survey(entries, bench, config, options)
    device = result.rates.key.get("device", "cpu")
    for line in estimate_lines(result, device):
        echo_wrapped(line)


def _client(workers: int | None, scheduler: str | None, slurm: Any) -> Any:
    """A Dask client of the cluster asked for; Dask's own INFO lines stay quiet unless -v."""
    # lazy: `zooscope --help` stays fast
    import distributed  # noqa: F401  (sets its loggers up on import)

    from zooscope.pipeline.cluster import make_client

    if not logging.getLogger("zooscope").isEnabledFor(logging.DEBUG):  # -v shows them
        for name in ("distributed", "dask_jobqueue"):  # ~100 INFO lines per worker
            logging.getLogger(name).setLevel(logging.WARNING)
    return make_client(workers=workers, scheduler=scheduler, slurm=slurm)


def _print_survey(report: Any, client: Any) -> None:
    """The survey's last lines: lost workers, replaced Slurm jobs, the counts, the failures."""
    # lazy: `zooscope --help` stays fast
    from zooscope.failure_causes import RETRIED

    for lost in report.workers_lost:
        typer.echo(f"  {lost.name}: {lost.message} (recorded in failures)", err=True)
    for line in getattr(client, "replaced", []):  # Slurm jobs that ended while the survey ran
        typer.echo(f"  {line}", err=True)
    typer.echo(summary_line(report))
    for failure in [*report.ceiling_failures, *report.failed]:
        retried = (
            "a rerun computes it again"
            if failure.stage == "ceiling"
            else "a rerun retries it"
            if failure.cause in RETRIED
            else "--retry-failed retries it"
        )
        typer.echo(
            f"  failed {failure.model_uid} at {failure.stage} ({failure.cause}; {retried}): "
            f"{failure.error.splitlines()[0]}",
            err=True,
        )


# long: one nested function per command, which typer's decorators register on ``app``
def register(app: typer.Typer) -> None:
    """Add ``survey``, ``ceiling`` and ``demo`` to ``app``."""

    # long: typer declares the command's 34 options in its signature (the body is short)
    @app.command("survey")
    def survey_command(
        ctx: typer.Context,
        manifest: str = typer.Option(
            ...,
            "--manifest",
            "-m",
            help="Manifest CSV or built-in name (demo, conwell2024, openclip).",
        ),
        benchmark: Path = typer.Option(
            ..., "--benchmark", "-b", exists=True, dir_okay=False, help="Benchmark .h5 file."
        ),
        db: Path = typer.Option(..., "--db", help="DuckDB results file (created if missing)."),
        models: str = typer.Option(None, help="Comma-separated model uids (default: every model)."),
        metrics: str = typer.Option(
            None,
            "--metrics",
            "--metric",
            help="Comma-separated metrics: crsa, versa, encoding_r, predictivity (default: crsa,versa,encoding_r; predictivity on a neural benchmark).",
        ),
        regression: str = typer.Option(
            None,
            help="predictivity: Brain-Score regression ridge (Ridge(alpha=1), closed form, fast; the default), pls (Brain-Score's public benchmarks; ~10x slower; the brainscore profile's) or ridgecv.",
        ),
        splits: str = typer.Option(
            "brainscore",
            "--splits",
            help="predictivity: cross-validation within each split, brainscore (10 stratified 90/10) or even-odd.",
        ),
        subjects: str = typer.Option(None, help="Comma-separated subjects (default: all)."),
        rois: str = typer.Option(
            None, help="Comma-separated ROIs (default: all in the benchmark)."
        ),
        layers: str = typer.Option(
            None, help="Regex: score only matching layers (default: every layer)."
        ),
        rsm_from: str = typer.Option(
            "full", help="cRSA RSMs from full features (exact) or from SRP features."
        ),
        profile: str = typer.Option(
            "default",
            "--profile",
            help="Scoring profile: default, conwell2024 (the published procedure step for step) or brainscore (Brain-Score's benchmark number: needs --commit-on and --pca-images); docs/profiles.md.",
        ),
        commit_on: list[Path] = typer.Option(
            [],
            "--commit-on",
            exists=True,
            dir_okay=False,
            help="--profile brainscore: a commitment Benchmark .h5 that chooses each of its regions' layer (repeatable: one file per region, or one with several; Brain-Score's: FreemanZiemba2013 V1/V2, MajajHong2015 V4/IT).",
        ),
        pca_images: Path = typer.Option(
            None,
            "--pca-images",
            help="--profile brainscore: folder of the images the commitment's layer PCA is fitted on: 1,000 ImageNet validation images, as Brain-Score uses.",
        ),
        pca_components: int = typer.Option(
            None,
            "--pca-components",
            help="--profile brainscore: components of the layer PCA (Brain-Score: 1000; --pca-images must hold at least as many images).",
        ),
        commit_time_bin: str = typer.Option(
            None,
            "--commit-time-bin",
            help="--profile brainscore: the commitment files' time bin, e.g. 70-170 (default: their only one).",
        ),
        activations_dtype: str = typer.Option(
            None,
            "--activations-dtype",
            help="--profile brainscore: float32 (as Brain-Score runs models; the default) or float64.",
        ),
        retry_failed: bool = typer.Option(
            False, "--retry-failed", help="Retry models whose last attempt failed."
        ),
        n_sims: int = typer.Option(50, help="Monte Carlo simulations per GSN noise ceiling."),
        ceilings: bool = typer.Option(
            True, "--ceilings/--no-ceilings", help="Compute GSN noise ceilings if missing."
        ),
        device: str = typer.Option("auto", help="auto, cpu, cuda or mps."),
        batch_size: int = typer.Option(32, help="Images per forward pass."),
        memory_budget: str = typer.Option(
            None,
            help="Memory each extraction may add to its loaded model (forward pass + buffers), e.g. 8GB (default: half the free memory).",
        ),
        workers: int = typer.Option(None, help="Start a local Dask cluster of N worker processes."),
        scheduler: str = typer.Option(
            None, help="Address of an existing Dask scheduler (tcp://host:8786)."
        ),
        slurm: bool = typer.Option(
            False, "--slurm", help="Start Dask workers as Slurm jobs (dask-jobqueue)."
        ),
        slurm_jobs: int = typer.Option(4, help="--slurm: number of jobs (one worker each)."),
        slurm_queue: str = typer.Option(None, help="--slurm: partition."),
        slurm_cores: int = typer.Option(8, help="--slurm: cores per job."),
        slurm_memory: str = typer.Option("32GB", help="--slurm: memory per job."),
        slurm_walltime: str = typer.Option("04:00:00", help="--slurm: walltime per job."),
        slurm_gpus: int = typer.Option(
            0, help="--slurm: GPUs per job (declared as the Dask resource GPU)."
        ),
        slurm_extra: list[str] = typer.Option(
            [],
            help="--slurm: another #SBATCH option, e.g. --slurm-extra=--account=lab (repeatable).",
        ),
        slurm_log_dir: Path = typer.Option(
            None,
            help="--slurm: folder of the jobs' .out/.err logs (default: slurm-logs/ next to --db).",
        ),
        slurm_interface: str = typer.Option(
            None,
            help="--slurm: network interface of scheduler and workers (e.g. ib0; lo on one machine).",
        ),
        slurm_timeout: float = typer.Option(
            900, help="--slurm: seconds to wait for a first worker before giving up (0: forever)."
        ),
        slurm_dry_run: bool = typer.Option(
            False,
            "--slurm-dry-run",
            help="Print the Slurm job script that --slurm would submit, and exit.",
        ),
        verify: bool = typer.Option(
            True,
            "--verify/--no-verify",
            help="Check the benchmark's content hash once at the start.",
        ),
        keep_grams: bool = typer.Option(
            False,
            "--keep-grams",
            help="Also store every scored layer's centred Gram matrix (n x n float64, counted in the memory budget) next to --db, for zooscope analyze layer-cka and the report's CKA section.",
        ),
        estimate: bool = typer.Option(
            False,
            "--estimate",
            help="Score nothing: print each model's predicted time, forward passes and peak memory on this machine, and the total.",
        ),
    ) -> None:
        """Score every model of a manifest against a benchmark into a results database.

        Resumable: models already complete for this benchmark and scoring config are skipped,
        so rerunning after a crash or kill continues where it stopped. Exit code 0 when every
        model was scored (or already complete), 1 when some failed (the last line says how many),
        2 for bad input. The database is opened only to write, so `zooscope results summary`
        can watch progress meanwhile.
        """
        check_options(ctx)
        # lazy: `zooscope --help` stays fast
        from zooscope.pipeline.cluster import (
            ClusterError,
            SlurmOptions,
            require_slurm,
            slurm_job_script,
        )

        if sum(bool(x) for x in (workers, scheduler, slurm or slurm_dry_run)) > 1:
            raise typer.BadParameter("choose one of --workers, --scheduler and --slurm")
        if slurm:
            try:
                require_slurm()  # before anything starts
            except ClusterError as error:
                typer.echo(f"error: {error}", err=True)
                raise typer.Exit(2) from None
        slurm_options = SlurmOptions(
            jobs=slurm_jobs,
            queue=slurm_queue,
            cores=slurm_cores,
            memory=slurm_memory,
            walltime=slurm_walltime,
            gpus=slurm_gpus,
            extra_directives=tuple(slurm_extra),
            interface=slurm_interface,
            timeout=slurm_timeout,
            log_directory=str((slurm_log_dir or db.parent / "slurm-logs").absolute()),
        )
        if slurm_dry_run:
            typer.echo(slurm_job_script(slurm_options))
            return
        # lazy: `zooscope --help` stays fast
        from zooscope.config import RunOptions, ScoringConfig
        from zooscope.metrics import default_metrics
        from zooscope.pipeline.survey import survey

        given = {  # options left out keep the profile's (or the config's) value
            "regression": regression,
            "pca_components": pca_components,
            "commit_time_bin": commit_time_bin,
            "activations_dtype": activations_dtype,
        }
        if profile == "brainscore":
            given["commit_on"] = tuple(str(p) for p in commit_on)
            given["pca_images"] = str(pca_images) if pca_images is not None else None
        elif commit_on or pca_images is not None:
            raise typer.BadParameter("--commit-on and --pca-images belong to --profile brainscore")
        try:
            config = ScoringConfig.from_profile(
                profile,
                metrics=comma_list(metrics) or default_metrics(benchmark),
                subjects=comma_list(subjects),
                rois=comma_list(rois),
                layers=layers,
                rsm_from=rsm_from,
                predictivity_splits=splits,
                **{name: value for name, value in given.items() if value is not None},
            )
        except (KeyError, ValueError) as error:
            raise typer.BadParameter(str(error)) from None
        options = RunOptions(
            device=device, batch_size=batch_size, memory_budget=memory_budget, keep_grams=keep_grams
        )
        if estimate:
            _print_estimate(manifest, benchmark, db, config, options, comma_list(models))
            return
        client = None
        try:
            if workers or scheduler or slurm:
                client = _client(workers, scheduler, slurm_options if slurm else None)
            report = survey(
                manifest,
                benchmark,
                db,
                config,
                options,
                models=comma_list(models),
                retry_failed=retry_failed,
                ceilings=ceilings,
                n_sims=n_sims,
                client=client,
                gpu_resources=bool(slurm and slurm_gpus),
                verify=verify,
            )
        except ClusterError as error:
            typer.echo(f"error: {error}", err=True)
            raise typer.Exit(2) from None
        finally:
            if client is not None:
                client.close()
        _print_survey(report, client)
        _exit_if_failed(report, db)

    @app.command("ceiling")
    def ceiling_command(
        ctx: typer.Context,
        benchmark: Path = typer.Argument(
            ..., exists=True, dir_okay=False, help="Benchmark .h5 file."
        ),
        db: Path = typer.Option(None, "--db", help="Store the ceilings in this results database."),
        subjects: str = typer.Option(None, help="Comma-separated subjects (default: all)."),
        rois: str = typer.Option(None, "--rois", help="Comma-separated ROIs (default: all)."),
        n_sims: int = typer.Option(50, help="Monte Carlo simulations."),
        seed: int = typer.Option(0, help="Seed of the simulations."),
        verify: bool = typer.Option(
            True,
            "--verify/--no-verify",
            help="Check the benchmark's content hash once at the start.",
        ),
    ) -> None:
        """GSN RSA noise ceilings (test images) of each subject x ROI of a benchmark.

        Units that cannot enter GSN (constant, infinite, all-NaN, ...) are left out and counted;
        with --db each group's ceiling is stored as soon as it is computed, and a group that
        fails is recorded in the failures table (exit code 1) while the others go on.
        """
        check_options(ctx)
        # lazy: `zooscope --help` stays fast
        import pandas as pd

        from zooscope.benchmark import Benchmark
        from zooscope.config import ScoringConfig
        from zooscope.metrics.ceilings import CEILING_COLUMNS, iter_ceilings
        from zooscope.pipeline.survey import store_ceiling, verify_benchmark
        from zooscope.results.claims import recorded_run
        from zooscope.results.session import ShortWrites

        bench = Benchmark.open(benchmark)
        if verify:
            verify_benchmark(bench)
        config = ScoringConfig(subjects=comma_list(subjects), rois=comma_list(rois))
        session = ShortWrites(db) if db is not None else None
        record = contextlib.nullcontext()
        if session is not None:
            with session.open() as database:
                run_id = database.start_run(
                    bench.content_hash, {"command": "ceiling", "n_sims": n_sims, "seed": seed}
                )
            record = recorded_run(session, run_id)
        rows, failed = [], []
        with record:
            for result in iter_ceilings(bench, config, n_sims=n_sims, seed=seed):
                if result.ok:
                    rows.append(result.row)
                else:
                    failed.append(result)
                if session is not None:
                    with session.open() as database:
                        store_ceiling(database, run_id, bench.content_hash, result)
        emit(
            pd.DataFrame(rows, columns=CEILING_COLUMNS), "table",
            title="noise ceilings of each subject x ROI (test images)",
        )  # fmt: skip
        if db is not None:
            typer.echo(f"stored {len(rows)} ceiling(s) in {db}")
        for result in failed:
            typer.echo(f"  no ceiling: {result.error}", err=True)
        if failed:
            where = f"; details: zooscope results failures --db {db}" if db is not None else ""
            typer.echo(
                f"error: {len(failed)} of {len(rows) + len(failed)} group(s) got no ceiling{where}",
                err=True,
            )
            raise typer.Exit(1)

    # long: typer declares the command's options in its signature
    @app.command("demo")
    def demo_command(
        ctx: typer.Context,
        out: Path = typer.Option(Path("zooscope-demo"), help="Output folder."),
        n_images: int = typer.Option(
            None,
            help="Shared images of the synthetic NSD (split half train, half test; default 100), or with --neural of each synthetic assembly (default 200).",
        ),
        subjects: str = typer.Option("1,2", help="Synthetic subjects."),
        layers: str = typer.Option(
            None, help="Regex: score only matching layers (default: every layer)."
        ),
        models: str = typer.Option(
            None, help="Comma-separated model uids of the demo manifest (default: all)."
        ),
        n_sims: int = typer.Option(20, help="Monte Carlo simulations per noise ceiling."),
        report: bool = typer.Option(True, "--report/--no-report", help="Write the HTML report."),
        memory_budget: str = typer.Option(
            None,
            help="Memory each extraction may add to its loaded model (forward pass + buffers), e.g. 2GB (default: half the free memory).",
        ),
        profile: str = typer.Option(
            "default",
            "--profile",
            help="Scoring profile: default or conwell2024; with --neural: default or brainscore (commitment on a second synthetic assembly, layer PCA on stand-in images).",
        ),
        neural: bool = typer.Option(
            False,
            "--neural",
            help="Instead: a synthetic macaque assembly (brainio format; V1, V4, IT; two time bins) -> import -> predictivity survey of the trained EfficientNet-Lite0 and its random twin (unless --models; 11 block-level layers unless --layers) -> committed layers.",
        ),
    ) -> None:
        """Run everything offline: synthetic NSD -> benchmark -> ceilings -> survey -> summary -> report.

        The synthetic voxels are driven by features of the genuinely trained EfficientNet-Lite0,
        so the trained model should come out on top and its random twin below it. With
        ``--neural``, the same for Brain-Score-style data, ending in each model's committed layer
        per region and time bin.
        """
        check_options(ctx)
        if neural:
            # lazy: `zooscope --help` stays fast
            from zooscope.cli.neural_demo import run_neural_demo

            if profile not in ("default", "brainscore"):
                raise typer.BadParameter("demo --neural runs profile default or brainscore")
            run_neural_demo(
                out,
                models=comma_list(models),
                layers=layers,
                memory_budget=memory_budget,
                report=report,
                profile=profile,
                **({"n_images": n_images} if n_images else {}),
            )
            return
        if profile == "brainscore":
            raise typer.BadParameter("profile brainscore scores neural benchmarks: add --neural")
        # lazy: `zooscope --help` stays fast
        from zooscope.config import RunOptions, ScoringConfig
        from zooscope.nsd import prepare, write_synthetic
        from zooscope.pipeline.survey import survey
        from zooscope.report.html import build_report
        from zooscope.results.db import ResultsDB

        out.mkdir(parents=True, exist_ok=True)
        subject_ids = tuple(int(s) for s in comma_list(subjects) or ())
        root, bench_path, db_path = out / "nsd", out / "benchmark.h5", out / "results.duckdb"
        if not bench_path.exists():
            logger.info("writing a synthetic NSD tree to %s and its benchmark %s", root, bench_path)
            write_synthetic(
                root, subjects=subject_ids, n_images=n_images or 100, n_sessions=3, image_size=224
            )
            prepare(root, bench_path, subjects=subject_ids, rois=("OTC", "EVC"))
        report_ = survey(
            "demo",
            bench_path,
            db_path,
            ScoringConfig.from_profile(profile, layers=layers),
            # Grams of the demo's few images are cheap; they give the report its CKA section
            RunOptions(device="auto", memory_budget=memory_budget, keep_grams=True),
            models=comma_list(models),
            n_sims=n_sims,
        )
        with ResultsDB(db_path, read_only=True) as database:
            # lazy: `zooscope --help` stays fast
            from zooscope.analyses.degenerate import profile_best_layer_scores

            table = database.summary(best=profile_best_layer_scores(database, profile))
            # One row per model (a long table per metric and ROI would fill the screen).
            wide = table.pivot_table(index="model_uid", columns=["roi", "metric"], values="score")
            wide.columns = [f"{roi} {metric}" for roi, metric in wide.columns]
            wide = wide.sort_values(list(wide.columns), ascending=False)
            emit(
                wide.reset_index().rename(columns={"model_uid": "model"}), "table",
                keep=["model"], title="best-layer test scores, mean over subjects, per region; "
                f"sorted by {wide.columns[0]} (explained variance: see the report)",
            )  # fmt: skip
            if report:
                index = build_report(database, out / "report", profile=profile)
                typer.echo(f"report: {index}")
        detail = f"; detail in {report_.log_file}" if report_.log_file else ""
        typer.echo(
            f"scored {len(report_.scored)} models, {len(report_.failed)} failed; results in {db_path}{detail}"
        )
        _exit_if_failed(report_, db_path)
