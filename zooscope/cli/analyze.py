"""``zooscope import-scores``, ``analyze``, ``report`` and ``results``: the analyses on a results DB."""

from __future__ import annotations

from pathlib import Path

import typer

from zooscope.cli import compare
from zooscope.cli.output import echo_wrapped, emit, emit_sections
from zooscope.cli.validation import check_options
from zooscope.cli.vocabulary import VocabularyGroup, comma_list
from zooscope.profiles import get_profile

DB_OPTION = typer.Option(..., "--db", help="Results database (DuckDB file).")
PROFILE_OPTION = typer.Option(
    None,
    "--profile",
    help="Only results of this scoring profile (default, conwell2024, brainscore), best layers by its rule.",
)


# long: one nested function per command, which typer's decorators register on ``app``
def register(app: typer.Typer) -> None:
    """Add the analysis commands to ``app``."""
    imports = typer.Typer(
        cls=VocabularyGroup,
        help="Import published score tables into a results database.",
        no_args_is_help=True,
    )
    analyze = typer.Typer(
        cls=VocabularyGroup,
        help="Statistics across models: group contrasts, paired and group tests, scaling with "
        "training-set size, model-to-model similarity, unique variance and layer CKA.",
        no_args_is_help=True,
    )
    results = typer.Typer(
        cls=VocabularyGroup, help="Summarize or export a results database.", no_args_is_help=True
    )

    @imports.command("conwell2024")
    def import_conwell(
        ctx: typer.Context,
        directory: Path = typer.Argument(
            None,
            help="Source-data folder of Conwell et al. 2024. Default: fetch the published files "
            "from the paper's repository at pinned commits (checksums checked) into "
            "~/.cache/zooscope/published/conwell2024 (ZOOSCOPE_CACHE), or use them from there.",
            show_default=False,
        ),
        db: Path = DB_OPTION,
    ) -> None:
        """Import Conwell et al. (2024)'s published scores, models and noise ceilings."""
        check_options(ctx)
        # lazy: `zooscope --help` stays fast
        from zooscope.results.db import ResultsDB
        from zooscope.results.importers import import_conwell2024
        from zooscope.results.published import conwell2024_folder

        if directory is None:
            directory = conwell2024_folder()
            typer.echo(f"published files (checksums verified) in {directory}", err=True)
        with ResultsDB(db) as database:
            counts = import_conwell2024(database, directory)
        typer.echo(
            f"imported {counts['models']} models, {counts['scores']} scores, {counts['ceilings']} ceilings into {db}"
        )

    @imports.command("csv")
    def import_csv(
        ctx: typer.Context,
        file: Path = typer.Argument(..., help="CSV with one row per model, metric (and subject)."),
        db: Path = DB_OPTION,
        benchmark_key: str = typer.Option(
            ..., "--benchmark-key", help="Benchmark key the scores belong to (a name, not a file)."
        ),
        model_col: str = typer.Option("model_uid", help="Column with the model id."),
        score_col: str = typer.Option("score", help="Column with the score."),
        metric_col: str = typer.Option(None, help="Column with the metric name."),
        metric: str = typer.Option(None, help="The metric of every row (instead of --metric-col)."),
        subject_col: str = typer.Option(
            None, help="Column with the subject (default: subject means)."
        ),
        roi: str = typer.Option("all", help="ROI label stored with the scores."),
        metric_map: str = typer.Option("", help="Renames, e.g. 'wrsa=versa,srpr=encoding_r'."),
    ) -> None:
        """Import a generic table of published test scores."""
        check_options(ctx)
        # lazy: `zooscope --help` stays fast
        import pandas as pd

        from zooscope.results.db import ResultsDB
        from zooscope.results.importers import import_scores_table

        mapping = dict(item.split("=", 1) for item in metric_map.split(",") if item)
        with ResultsDB(db) as database:
            counts = import_scores_table(
                database, pd.read_csv(file), benchmark=benchmark_key, model_col=model_col, score_col=score_col,
                metric_col=metric_col, metric=metric, subject_col=subject_col, roi=roi, metric_map=mapping,
                source=str(file),
            )  # fmt: skip
        typer.echo(f"imported {counts['models']} models, {counts['scores']} scores into {db}")

    @analyze.command("contrast")
    def contrast(
        ctx: typer.Context,
        db: Path = DB_OPTION,
        by: str = typer.Option(
            ..., "--by", help="Grouping column of the models table (e.g. compare_architecture)."
        ),
        metric: str = typer.Option(..., help="crsa, versa or encoding_r."),
        stats_model: str = typer.Option(
            "groups",
            "--stats-model",
            help="Statistics model: groups (means + bootstrap CIs), pairwise, ols or mixed.",
        ),
        groups: str = typer.Option("", help="Comma-separated levels of --by to keep."),
        level: str = typer.Option(
            "auto", help="subject, model or auto (subject when per-subject scores exist)."
        ),
        pair_by: str = typer.Option(
            "name",
            "--pair-by",
            help="Mixed model: column matching models into pairs (architecture).",
        ),
        rois: str = compare.ROIS_OPTION,
        fmt: str = typer.Option("table", "--format", help="table or csv."),
        n_boot: int = typer.Option(1000, help="Bootstrap resamples."),
        seed: int = typer.Option(0, help="Bootstrap/permutation seed."),
        profile: str = PROFILE_OPTION,
    ) -> None:
        """Compare groups of models on one metric, per ROI."""
        check_options(ctx)
        # lazy: `zooscope --help` stays fast
        from zooscope.analyses import contrasts
        from zooscope.results.db import ResultsDB

        keep = [g for g in groups.split(",") if g] or None
        with ResultsDB(db, read_only=True) as database:
            frame = _frame(database, metric, level, by, keep, profile, comma_list(rois))
        if stats_model == "groups":
            out = contrasts.group_summary(frame, by, groups=keep, n_boot=n_boot, seed=seed)
            out = out[[*_keys(out), "group", "n_models", "mean", "ci_low", "ci_high"]]
        elif stats_model == "pairwise":
            out = contrasts.pairwise_contrasts(frame, by, groups=keep, n_boot=n_boot, seed=seed)
        elif stats_model == "ols":
            out = contrasts.ols_contrast(frame, by, groups=keep)
            out = out[[*_keys(out), "term", "estimate", "ci_low", "ci_high", "p_value"]]
        elif stats_model == "mixed":
            out = contrasts.mixed_contrast(frame, by, pair_by, groups=keep)
        else:
            raise typer.BadParameter("--stats-model must be groups, pairwise, ols or mixed")
        title = {
            "groups": f"models grouped by {by}",
            "pairwise": f"differences between the {by} groups",
            "ols": f"OLS, score ~ {by} + subject",
            "mixed": f"mixed model, score ~ {by} + subject, random effects by {pair_by}",
        }[stats_model]
        emit_sections(out, fmt, by=_keys(out), title=title)

    @analyze.command("similarity")
    def similarity_cmd(
        ctx: typer.Context,
        db: Path = DB_OPTION,
        metric: str = typer.Option(..., help="crsa or versa."),
        out: Path = typer.Option(
            ..., help="Output folder (matrix CSV, tidy pairs, MDS, clusters, figures)."
        ),
        published: Path = typer.Option(
            None, help="Use Conwell's model_uber_rsa.csv from this folder instead of stored RSMs."
        ),
        n_clusters: int = typer.Option(4, help="Clusters cut from the hierarchical tree."),
    ) -> None:
        """Model x model RSM similarity, hierarchical clustering and classical MDS."""
        check_options(ctx)
        # lazy: `zooscope --help` stays fast
        from zooscope.analyses import similarity
        from zooscope.report import plots
        from zooscope.results.db import ResultsDB
        from zooscope.results.importers import load_conwell_model_similarity

        with ResultsDB(db, read_only=True) as database:
            if published is not None:
                matrix = similarity.pairs_to_matrix(
                    load_conwell_model_similarity(published, metric)
                )
            else:
                matrix = similarity.similarity_from_db(database, metric)
            models = database.models().set_index("model_uid")
        out.mkdir(parents=True, exist_ok=True)
        matrix.to_csv(out / f"similarity_{metric}.csv")
        similarity.matrix_to_pairs(matrix).to_csv(
            out / f"similarity_{metric}_pairs.csv", index=False
        )
        coords, _ = similarity.classical_mds(matrix)
        clusters = similarity.cluster_models(matrix, n_clusters=n_clusters)
        coords.join(clusters["labels"]).to_csv(out / f"mds_{metric}.csv")
        hue = models["arch_class"] if "arch_class" in models else None
        plots.plot_mds(coords, out / f"mds_{metric}", hue=hue)
        plots.plot_matrix(
            matrix,
            out / f"similarity_{metric}",
            title=f"Model x model similarity ({metric})",
            order=clusters["order"],
        )
        typer.echo(f"{len(matrix)} models; wrote {out}")

    @app.command("report")
    def report(
        ctx: typer.Context,
        db: Path = DB_OPTION,
        out: Path = typer.Option(..., help="Output folder for index.html and figures/."),
        published: Path = typer.Option(
            None, help="Conwell source-data folder: use its model_uber_rsa.csv for similarity."
        ),
        n_boot: int = typer.Option(1000, help="Bootstrap resamples."),
        rois: str = typer.Option(
            None, "--rois", help="The ROI to report, one for now (default: OTC when present)."
        ),
        profile: str = PROFILE_OPTION,
        pair_by: str = typer.Option(None, "--pair-by", help="Column matching models into pairs."),
        contrast: str = typer.Option(
            None, "--contrast", help="COLUMN=A,B to compare (default: found in the models table)."
        ),
    ) -> None:
        """Write an offline HTML report (tables, figures, run provenance)."""
        check_options(ctx)
        # lazy: `zooscope --help` stays fast
        from zooscope.analyses import similarity
        from zooscope.report.html import build_report
        from zooscope.results.db import ResultsDB
        from zooscope.results.importers import load_conwell_model_similarity

        sims = None
        if published is not None:
            sims = {
                m: similarity.pairs_to_matrix(load_conwell_model_similarity(published, m))
                for m in ("crsa", "versa")
            }
        with ResultsDB(db, read_only=True) as database:
            index = build_report(
                database, out, model_similarity=sims, n_boot=n_boot, roi=_one_roi(rois),
                pair_by=pair_by, contrast=contrast, profile=profile,
            )  # fmt: skip
        typer.echo(f"report: {index}")

    @results.command("summary")
    def summary(
        ctx: typer.Context,
        db: Path = DB_OPTION,
        metric: str = typer.Option(None, help="Only this metric."),
        top: int = typer.Option(20, help="Rows per metric and ROI (0: all)."),
        fmt: str = typer.Option("table", "--format", help="table or csv."),
        profile: str = PROFILE_OPTION,
    ) -> None:
        """Models ranked by best-layer test score, with noise ceilings and explained variance."""
        check_options(ctx)
        # lazy: `zooscope --help` stays fast
        from zooscope.analyses.commitment import committed_layers, display_columns
        from zooscope.results.db import ResultsDB

        with ResultsDB(db, read_only=True) as database:
            table = database.summary(metric=metric, best=_profile_best(database, profile))
            committed = (
                committed_layers(database, profile=profile)
                if metric in (None, "predictivity")
                else None
            )
        if top:
            table = table.groupby(["metric", "roi"], group_keys=False).head(top)
        emit_sections(
            table.drop(columns=["benchmark_hash", "config_hash"]), fmt, by=["metric", "roi"],
            title="models ranked by subject-mean best-layer test score",
        )  # fmt: skip
        if committed is not None and len(committed) and fmt == "table":
            # Region commitment: each model's best predictivity layer per region x time bin.
            typer.echo("")
            emit(
                committed[display_columns(committed)], fmt,
                title="committed layers (best on train images, scored on test images):",
            )  # fmt: skip

    @results.command("failures")
    def failures(
        ctx: typer.Context,
        db: Path = DB_OPTION,
        run: str = typer.Option(None, help="Only this run id (default: every run)."),
        fmt: str = typer.Option("table", "--format", help="table or csv."),
    ) -> None:
        """Models (and noise-ceiling groups) that failed: run, stage, cause and the error's first line.

        The cause is ``model`` for a model's own failure (a rerun skips it unless
        --retry-failed) or a setting or environment cause (out-of-memory, disk-full, device,
        settings, worker-lost, weights-unavailable, input), which a rerun retries.
        """
        check_options(ctx)
        # lazy: `zooscope --help` stays fast
        from zooscope.results.db import ResultsDB

        with ResultsDB(db, read_only=True) as database:
            table = database.failures()
        if run is not None:
            table = table[table["run_id"] == run]
        table = table.assign(error=table["error"].astype(str).str.split("\n").str[0])
        emit(table[["time", "run_id", "model_uid", "stage", "cause", "error"]], fmt)

    @results.command("runs")
    def runs(
        ctx: typer.Context,
        db: Path = DB_OPTION,
        fmt: str = typer.Option("table", "--format", help="table or csv."),
    ) -> None:
        """Runs (surveys, ceilings, imports): when, what, and how each ended.

        Status: running, finished, interrupted (Ctrl-C, SIGTERM), failed (with the reason:
        bad input, a full disk, ...) or lost (its heartbeat stopped: killed without a word).
        """
        check_options(ctx)
        # lazy: `zooscope --help` stays fast
        from zooscope.results.db import ResultsDB

        with ResultsDB(db, read_only=True) as database:
            table = database.runs()
        columns = ["run_id", "started_at", "finished_at", "status", "reason", "host", "manifest"]
        emit(table[[c for c in columns if c in table.columns]], fmt)

    @results.command("status")
    def status(
        ctx: typer.Context,
        db: Path = DB_OPTION,
        run: str = typer.Option(None, "--run", help="Run id (default: the latest survey run)."),
    ) -> None:
        """Where a survey stands: models done, running, failed and remaining, and its ETA.

        Reads the database while the survey writes it (a survey opens the file only for each
        write), so it works from another shell or a cluster's login node. The ETA is the
        remaining models times the mean measured seconds per model of this survey's config so
        far, divided by the models running at once.
        """
        check_options(ctx)
        # lazy: `zooscope --help` stays fast
        from zooscope.results.db import ResultsDB
        from zooscope.results.status import survey_status
        from zooscope.validation import OptionError

        with ResultsDB(db, read_only=True) as database:
            try:
                state = survey_status(database, run)
            except ValueError as error:
                raise OptionError(str(error)) from None
        for line in state.lines():
            echo_wrapped(line)

    @results.command("upgrade")
    def upgrade(ctx: typer.Context, db: Path = DB_OPTION) -> None:
        """Upgrade a results database to this zooscope's schema (keeps a copy of the old file)."""
        check_options(ctx)
        # lazy: `zooscope --help` stays fast
        from zooscope.results.db import ResultsDB

        if not db.is_file():
            raise FileNotFoundError(f"no results database at {db}")
        with ResultsDB(db) as database:
            typer.echo(f"{db}: schema version {database.schema_version}")

    @results.command("export")
    def export(
        ctx: typer.Context,
        db: Path = DB_OPTION,
        out: Path = typer.Option(
            ..., help="FILE.parquet/.csv: one tidy table; a folder: one file per table."
        ),
        file_format: str = typer.Option(
            "parquet",
            "--file-format",
            help="With --out a folder: each table's file format, parquet or csv (a FILE's suffix "
            "decides for one file).",
        ),
    ) -> None:
        """Export the database."""
        check_options(ctx)
        # lazy: `zooscope --help` stays fast
        from zooscope.results.db import ResultsDB

        with ResultsDB(db, read_only=True) as database:
            paths = database.export(out, fmt=file_format)
        typer.echo("\n".join(str(p) for p in paths))

    compare.register(analyze)  # paired, groups, scaling, unique-variance, layer-cka
    app.add_typer(imports, name="import-scores")
    app.add_typer(analyze, name="analyze")
    app.add_typer(results, name="results")


def _one_roi(rois: str | None) -> str | None:
    """The one ROI the report shows (``--rois`` names regions everywhere; the report takes one)."""
    names = comma_list(rois)
    return names[0] if names else None


def _keys(table) -> list[str]:
    """The columns naming what a row of an analysis is about: metric, region, time bin."""
    return [c for c in ("metric", "roi", "time_bin") if c in table.columns]


def _profile_best(database, profile: str | None):
    """Best-layer rows of one profile (its own selection rule), or None for every result."""
    if profile is None:
        return None
    # lazy: `zooscope --help` stays fast
    from zooscope.analyses.degenerate import profile_best_layer_scores

    try:
        get_profile(profile)
    except KeyError as error:
        raise typer.BadParameter(str(error.args[0]), param_hint="--profile") from None
    return profile_best_layer_scores(database, profile)


def _frame(
    database,
    metric: str,
    level: str,
    by: str,
    keep: list[str] | None,
    profile: str | None = None,
    rois: list[str] | None = None,
):
    """Score frame at subject level when every kept model has per-subject scores, else model level.

    ``rois``: the ROIs (names or regions) to keep, each in its own rows; None keeps every ROI.
    """
    # lazy: `zooscope --help` stays fast
    from zooscope.analyses.contrasts import score_frame

    if level not in ("auto", "subject", "model"):
        raise typer.BadParameter("--level must be auto, subject or model")
    if level != "auto":
        return score_frame(database, metric=metric, level=level, profile=profile, roi=rois)
    models = score_frame(database, metric=metric, level="model", profile=profile, roi=rois)
    subjects = score_frame(database, metric=metric, level="subject", profile=profile, roi=rois)
    wanted = models.dropna(subset=[by]) if by in models.columns else models
    if keep is not None and by in wanted.columns:
        wanted = wanted[wanted[by].astype(str).isin(keep)]
    if len(subjects) and set(wanted["model_uid"]) <= set(subjects["model_uid"]):
        return subjects
    return models
