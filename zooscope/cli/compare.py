"""``zooscope analyze paired | groups | scaling | unique-variance | layer-cka``: comparing models."""

from __future__ import annotations

from pathlib import Path

import typer

from zooscope.cli.output import emit
from zooscope.cli.validation import check_options
from zooscope.cli.vocabulary import comma_list

DB_OPTION = typer.Option(..., "--db", help="Results database (DuckDB file).")
CONTRAST_OPTION = typer.Option(
    ..., "--contrast", help="COLUMN=A,B of the models table, e.g. task=memorability,classification."
)
METRIC_OPTION = typer.Option(None, "--metric", help="Only this metric (default: every metric).")
ROIS_OPTION = typer.Option(
    None, "--rois", help="Comma-separated ROIs (default: every ROI, each in its own rows)."
)
OUT_OPTION = typer.Option(None, "--out", help="Folder for the table (CSV) and the figure.")
FORMAT_OPTION = typer.Option("table", "--format", help="table or csv.")


def _scores(db: Path, metric: str | None, rois: str | None, level: str = "model"):
    # lazy: `zooscope --help` stays fast
    from zooscope.analyses.contrasts import score_frame
    from zooscope.results.db import ResultsDB

    if level not in ("model", "subject"):
        raise typer.BadParameter("--level must be model or subject")
    with ResultsDB(db, read_only=True) as database:
        return score_frame(database, metric=metric, level=level, roi=comma_list(rois))


def _contrast(text: str) -> tuple[str, tuple[str, str]]:
    # lazy: `zooscope --help` stays fast
    from zooscope.analyses.compare import parse_contrast

    try:
        return parse_contrast(text)
    except ValueError as err:
        raise typer.BadParameter(str(err), param_hint="--contrast") from err


def _write(out: Path | None, name: str, table) -> None:
    if out is not None:
        out.mkdir(parents=True, exist_ok=True)
        # lazy: `zooscope --help` stays fast
        from zooscope._files import replacing

        with replacing(out / f"{name}.csv") as temporary:
            table.to_csv(temporary, index=False)


# long: one nested function per command, which typer's decorators register on ``analyze``
def register(analyze: typer.Typer) -> None:
    """Add the model-comparison commands to the ``analyze`` group."""

    @analyze.command("paired")
    def paired(
        ctx: typer.Context,
        db: Path = DB_OPTION,
        pair_by: str = typer.Option(..., "--pair-by", help="Column matching models (e.g. arch)."),
        contrast: str = CONTRAST_OPTION,
        metric: str = METRIC_OPTION,
        rois: str = ROIS_OPTION,
        level: str = typer.Option(
            "model", help="model (subject means) or subject (pairs matched within subjects)."
        ),
        out: Path = OUT_OPTION,
        fmt: str = FORMAT_OPTION,
    ) -> None:
        """Paired t-test and Wilcoxon signed-rank test across matched pairs of models."""
        check_options(ctx)
        # lazy: `zooscope --help` stays fast
        from zooscope.analyses import compare
        from zooscope.report import plots

        column, levels = _contrast(contrast)
        scores = _scores(db, metric, rois, level)
        try:
            tests = compare.paired_tests(scores, pair_by, column, levels)
            pairs = compare.paired_scores(scores, pair_by, column, levels)
        except ValueError as err:
            raise typer.BadParameter(str(err)) from err
        _write(out, f"paired_{column}", tests)
        if out is not None and len(pairs):
            _write(out, f"pairs_{column}", pairs)
            plots.plot_paired(pairs, out / f"paired_{column}", level_a=levels[0], level_b=levels[1])
        emit(
            tests.drop(columns=["contrast", "pair_by"]), fmt,
            title=f"{column}: {levels[0]} vs {levels[1]}, models paired by {pair_by}; paired "
            "t-test and Wilcoxon signed-rank test per metric and region",
        )  # fmt: skip

    @analyze.command("groups")
    def groups(
        ctx: typer.Context,
        db: Path = DB_OPTION,
        contrast: str = CONTRAST_OPTION,
        metric: str = METRIC_OPTION,
        rois: str = ROIS_OPTION,
        out: Path = OUT_OPTION,
        fmt: str = FORMAT_OPTION,
    ) -> None:
        """Mann-Whitney U test between two groups of models (e.g. seeds of two objectives)."""
        check_options(ctx)
        # lazy: `zooscope --help` stays fast
        from zooscope.analyses import compare

        column, levels = _contrast(contrast)
        try:
            table = compare.group_tests(_scores(db, metric, rois), column, levels)
        except ValueError as err:
            raise typer.BadParameter(str(err)) from err
        _write(out, f"groups_{column}", table)
        emit(
            table, fmt,
            title=f"{column}: {levels[0]} vs {levels[1]}; Mann-Whitney U test per metric and region",
        )  # fmt: skip

    @analyze.command("scaling")
    def scaling(
        ctx: typer.Context,
        db: Path = DB_OPTION,
        x: str = typer.Option("train_data_size", "--x", help="Size column of the models table."),
        metric: str = METRIC_OPTION,
        rois: str = ROIS_OPTION,
        out: Path = OUT_OPTION,
        fmt: str = FORMAT_OPTION,
    ) -> None:
        """OLS of score on log10(training-set size), slope CI, and the fit's confidence band."""
        check_options(ctx)
        # lazy: `zooscope --help` stays fast
        from zooscope.analyses import compare
        from zooscope.report import plots

        scores = _scores(db, metric, rois)
        try:
            fit = compare.scaling_fit(scores, x)
        except ValueError as err:
            raise typer.BadParameter(str(err)) from err
        if out is not None:
            _write(out, f"scaling_{x}", fit)
            band = compare.scaling_band(scores, x)
            _write(out, f"scaling_{x}_band", band)
            plots.plot_scaling(compare.scaling_frame(scores, x), band, out / f"scaling_{x}", x=x)
        emit(fit, fmt, title=f"OLS of score on log10({x}) per metric and region")

    @analyze.command("unique-variance")
    def unique_variance_cmd(
        ctx: typer.Context,
        db: Path = DB_OPTION,
        model: str = typer.Option(..., "--model", help="Model A (model_uid)."),
        control: list[str] = typer.Option(
            ..., "--control", help="Control model B (repeat for several; each analysed alone)."
        ),
        metric: str = typer.Option(
            "encoding_r",
            help="Whose best layer's predictions: encoding_r, versa or predictivity (the committed layer).",
        ),
        out: Path = OUT_OPTION,
        fmt: str = FORMAT_OPTION,
    ) -> None:
        """Per-unit r and partial r of model A's predictions controlling for each control's."""
        check_options(ctx)
        # lazy: `zooscope --help` stays fast
        from zooscope.analyses import unique_variance
        from zooscope.report import plots
        from zooscope.results.db import ResultsDB

        with ResultsDB(db, read_only=True) as database:
            try:
                units = unique_variance.unique_variance(database, model, control, metric=metric)
            except ValueError as err:
                raise typer.BadParameter(str(err)) from err
        summary = unique_variance.summarize_unique_variance(units)
        if out is not None:
            _write(out, f"unique_variance_{model}_units", units)
            _write(out, f"unique_variance_{model}", summary)
            plots.plot_unique_variance(units, out / f"unique_variance_{model}", model=model)
        emit(
            summary, fmt,
            title=f"{model} against each control: medians over units of r and partial r (each "
            "model's predictions controlling for the other's)",
        )  # fmt: skip

    @analyze.command("layer-cka")
    def layer_cka_cmd(
        ctx: typer.Context,
        db: Path = DB_OPTION,
        models: list[str] = typer.Option(
            ...,
            "--models",
            help="Model uids, comma-separated or repeated (at least 2; each is compared with the first).",
        ),
        benchmark: Path = typer.Option(
            None, help="Benchmark file: extract the Grams of models missing from the store."
        ),
        manifest: str = typer.Option(None, "--manifest", "-m", help="Manifest of the models."),
        layers: str = typer.Option(None, help="Regex: only matching layers when extracting."),
        depth: float = typer.Option(1.0, help="Relative depth of the model x model matrix."),
        memory_budget: str = typer.Option(None, help="Extraction memory budget, e.g. 2GB."),
        device: str = typer.Option("auto", help="Extraction device."),
        out: Path = OUT_OPTION,
        fmt: str = FORMAT_OPTION,
    ) -> None:
        """Layer-by-layer linear CKA (biased and debiased), aligned by relative depth.

        Reads the Gram store next to the database (``results.grams.h5``; a survey with
        ``--keep-grams`` fills it); with ``--benchmark`` and ``--manifest``, first extracts the
        Gram matrices of the models not yet stored for that benchmark.
        """
        check_options(ctx)
        # lazy: `zooscope --help` stays fast
        import pandas as pd

        from zooscope.analyses import layer_cka
        from zooscope.report import plots
        from zooscope.results.grams import GramStore, grams_path

        model = list(comma_list(models) or ())
        if len(model) < 2:
            raise typer.BadParameter("name at least two models", param_hint="--models")
        store = GramStore(grams_path(db))
        try:
            if benchmark is not None:
                bench_hash = _extract_grams(
                    store, model, benchmark, manifest, layers, memory_budget, device
                )
            else:
                bench_hash = store.shared_benchmark(model)
                if bench_hash is None:
                    raise KeyError(
                        f"no benchmark has stored Grams of every model in {store.path}; survey "
                        "with --keep-grams, or pass --benchmark and --manifest to extract them"
                    )
            tables = [
                layer_cka.layer_cka(store, model[0], other, bench_hash) for other in model[1:]
            ]
        except KeyError as err:
            raise typer.BadParameter(str(err.args[0])) from err
        table = pd.concat(tables, ignore_index=True)
        if out is not None:
            _write(out, "layer_cka", table)
            curves = table.assign(pair=table["model_a"] + " vs " + table["model_b"])
            curves = curves.rename(columns={"depth_a": "depth"})
            plots.plot_layer_cka(curves, out / "layer_cka")
            matrix = layer_cka.model_cka_matrix(
                store, model, depth=depth, benchmark_hash=bench_hash
            )
            matrix.to_csv(out / "model_cka.csv")
            plots.plot_matrix(matrix, out / "model_cka", title=f"Linear CKA at depth {depth:g}",
                              label="CKA")  # fmt: skip
        emit(table, fmt, title="linear CKA of each layer of model a with the layer of model b "
             "at the nearest relative depth")  # fmt: skip


def _extract_grams(store, models, benchmark, manifest, layers, memory_budget, device) -> str:
    """Extract and store the Gram matrices of the models the store lacks; the benchmark's hash."""
    # lazy: `zooscope --help` stays fast
    from zooscope.benchmark import Benchmark
    from zooscope.feature_extraction import LayerSelection
    from zooscope.feature_extraction.cka_consumer import store_layer_grams
    from zooscope.zoo import load_manifest, load_model

    if manifest is None:
        raise typer.BadParameter("--benchmark needs --manifest to load the models")
    bench = Benchmark.open(benchmark)
    present = set(store.models(bench.content_hash).get(bench.content_hash, []))
    entries = {e.model_uid: e for e in load_manifest(manifest)}
    for uid in models:
        if uid in present:
            continue
        if uid not in entries:
            raise typer.BadParameter(f"{uid!r} is not in the manifest", param_hint="--models")
        selection = LayerSelection(include=layers) if layers else None
        n = store_layer_grams(
            load_model(entries[uid], device=device), bench.stimuli, store, bench.content_hash,
            layers=selection, memory_budget=memory_budget,
        )  # fmt: skip
        typer.echo(f"{uid}: {n} layers")
    return bench.content_hash
