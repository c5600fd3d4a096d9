"""A self-contained HTML report of a results database (opens offline: images are embedded)."""

from __future__ import annotations

import base64
import datetime as _dt
import html
import logging
from pathlib import Path

import pandas as pd

from zooscope.pipeline.diagnostics import ALPHA_EDGE_CONCERN, alpha_edge_table
from zooscope.report import plots
from zooscope.results.db import ResultsDB
from zooscope.rsa.vocabulary import RSA_CEILING_METHOD
from zooscope.stats import contrasts, correlates, similarity

logger = logging.getLogger(__name__)

#: Grouping columns the report tries, in order (those with >= 2 levels in the database are used).
REPORT_CONTRASTS = (
    "compare_training",
    "compare_architecture",
    "compare_diet_imagenetsize",
    "compare_goal_contrastive",
    "compare_goal_slip",
    "compare_goal_taskonomy_tasks",
    "compare_goal_taskonomy_cluster",
    "compare_diet_ipcl",
    "compare_goal_expertise",
    "arch_class",
    "task",
)
REPORT_CORRELATES = (("imagenet_top1", False), ("param_count", True), ("effective_dim", False))

_CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Helvetica,Arial,sans-serif;margin:2em auto;max-width:1100px;color:#222;line-height:1.4}
h1{font-size:1.6em}h2{border-bottom:1px solid #ccc;padding-bottom:.2em;margin-top:2em}
table{border-collapse:collapse;font-size:.82em;margin:.6em 0}th,td{border:1px solid #ddd;padding:.25em .5em;text-align:right}
th{background:#f3f3f3}td:first-child,th:first-child{text-align:left}img{max-width:100%;margin:.5em 0}
.note{color:#555;font-size:.9em}code{background:#f5f5f5;padding:0 .2em}
"""


def _table(df: pd.DataFrame, floatfmt: str = "{:.3f}") -> str:
    return df.to_html(index=False, escape=True, na_rep="–", float_format=floatfmt.format, border=0)


def _img(paths: list[Path], alt: str) -> str:
    png = next(p for p in paths if p.suffix == ".png")
    data = base64.b64encode(png.read_bytes()).decode("ascii")
    svg = next((p for p in paths if p.suffix == ".svg"), None)
    link = f' <a href="figures/{html.escape(svg.name)}">SVG</a>' if svg else ""
    return f'<figure><img alt="{html.escape(alt)}" src="data:image/png;base64,{data}"><figcaption class="note">{html.escape(alt)}{link}</figcaption></figure>'


def build_report(
    db: ResultsDB,
    out: str | Path,
    *,
    metrics: tuple[str, ...] = ("crsa", "versa", "encoding_r", "predictivity"),
    model_similarity: dict[str, pd.DataFrame] | None = None,
    n_boot: int = 1000,
    seed: int = 0,
    title: str = "zooscope report",
    roi: str | None = None,
    profile: str | None = None,
    pair_by: str | None = None,
    contrast: str | None = None,
) -> Path:
    """Write ``out/index.html`` (figures embedded as PNG, SVG copies in ``out/figures/``).

    Parameters
    ----------
    db : ResultsDB
    out : str or Path
        Output folder.
    metrics : tuple of str
        Metrics to report (those without scores are skipped).
    model_similarity : dict, optional
        ``{metric: model x model DataFrame}`` to use instead of the database's stored RSMs (e.g.
        Conwell's published ``model_uber_rsa.csv``).
    n_boot, seed
        Bootstrap settings of the contrasts and correlates.
    roi : str, optional
        The ROI every section reports (rankings, contrasts and similarity mix nothing across
        ROIs). Default: ``OTC`` when the database has it, else the first ROI in sort order.
    profile : str, optional
        Report only the results of this scoring profile, best layers chosen by its rule (all
        results when None).
    pair_by, contrast : str, optional
        The matched-pairs comparison (e.g. ``"arch"``, ``"task=memorability,classification"``);
        found in the models table when not given
        (:func:`zooscope.report.comparisons.auto_contrast`).

    Returns
    -------
    Path
        The ``index.html`` written.
    """
    out = Path(out)
    figdir = out / "figures"
    figdir.mkdir(parents=True, exist_ok=True)
    models = db.models()
    best = None
    if profile is not None:
        from zooscope.stats.degenerate import profile_best_layer_scores

        best = profile_best_layer_scores(db, profile)
    summary = db.summary(best=best)
    rois = sorted(summary["roi"].dropna().unique())
    roi = roi or ("OTC" if "OTC" in rois or not rois else rois[0])
    if rois and roi not in rois:
        raise ValueError(f"no scores for ROI {roi!r}; the database has {', '.join(rois)}")
    summary = summary[summary["roi"] == roi]
    metrics = tuple(m for m in metrics if m in set(summary["metric"]))
    model_scores = contrasts.score_frame(
        db, metric=list(metrics), level="model", roi=roi, profile=profile
    )
    sections: list[str] = []

    # --- ranked models
    others = [r for r in rois if r != roi]
    body = [
        f'<p class="note">ROI: <b>{html.escape(roi)}</b>'
        + (
            f" (also in the database: {html.escape(', '.join(others))}; choose with <code>--roi</code>)"
            if others
            else ""
        )
        + ". Score: best layer (highest train score) evaluated on test images, averaged over subjects. "
        "Explained variance = score² / noise ceiling² (RSA metrics only).</p>"
    ]
    ceil = db.ceilings()
    ceil = ceil[(ceil["method"] == RSA_CEILING_METHOD) & (ceil["roi"] == roi)]
    for metric in metrics:
        s = summary[summary["metric"] == metric].merge(
            models[["model_uid", "arch_class"]], on="model_uid", how="left"
        )
        band = None
        if metric in ("crsa", "versa") and len(ceil):
            band = (ceil["value"].mean(), ceil["value"].min(), ceil["value"].max())
        paths = plots.plot_ranked_models(
            s, figdir / f"ranked_{metric}", hue="arch_class", ceiling=band
        )
        body.append(
            _img(
                paths,
                f"All models ranked by {plots._label(metric)}; band: range of the subject noise ceilings",
            )
        )
        cols = [
            "rank",
            "display_name",
            "model_uid",
            "score",
            "n_subjects",
            "ceiling",
            "explained_variance",
        ]
        body.append(
            f"<h3>Top 15, {html.escape(plots._label(metric))}</h3>" + _table(s[cols].head(15))
        )
    sections.append("<h2>Models ranked</h2>" + "".join(body))

    # --- region commitment (neural predictivity)
    from zooscope.stats.commitment import committed_layers

    committed = committed_layers(db, profile=profile)
    if len(committed):
        columns = ["display_name", "profile", "region", "time_bin", "layer_name",
                   "relative_depth", "train_score", "test_score", "error", "ceiling", "ceiled"]  # fmt: skip
        if not committed["error"].notna().any():
            columns.remove("error")
        sections.append(
            "<h2>Committed layers</h2>"
            '<p class="note">Per model, region and time bin: the layer with the best neural '
            "predictivity on the commitment (train) images and its held-out (test) score; relative "
            "depth 0 = first scored layer, 1 = last; ceiled = r² / internal-consistency ceiling. "
            "Profile brainscore: the train score is the commitment benchmark's ceiled score, the "
            "test score Brain-Score's raw score on all of the benchmark's images (subjects pooled), "
            "error its standard error over cross-validation splits.</p>"
            + _table(committed[columns])
        )

    # --- contrasts
    body = []
    for column in REPORT_CONTRASTS:
        if column not in model_scores.columns or model_scores[column].nunique() < 2:
            continue
        groups = contrasts.group_summary(model_scores, column, n_boot=n_boot, seed=seed)
        pairs = contrasts.pairwise_contrasts(
            model_scores, column, n_boot=n_boot, n_perm=2000, seed=seed
        )
        paths = plots.plot_contrast(model_scores, groups, column, figdir / f"contrast_{column}")
        body.append(
            f"<h3>{html.escape(column)}</h3>"
            + _img(paths, f"Contrast by {column}")
            + _table(groups.drop(columns=["ci_subject_low", "ci_subject_high"]))
        )
        if len(pairs) <= 30:
            body.append(
                _table(
                    pairs[
                        [
                            "metric",
                            "group_a",
                            "group_b",
                            "n_a",
                            "n_b",
                            "diff",
                            "ci_low",
                            "ci_high",
                            "cohen_d",
                            "p_perm",
                            "p_holm",
                            "p_fdr",
                        ]
                    ],
                    "{:.3g}",
                )
            )
    if body:
        sections.append(
            "<h2>Contrasts by inductive bias</h2>"
            '<p class="note">Group means of model-level scores, 95% bootstrap CIs over models; pairwise '
            "differences with permutation p-values, Holm and Benjamini-Hochberg corrected per metric.</p>"
            + "".join(body)
        )

    # --- correlates
    body = []
    present = [
        (x, log)
        for x, log in REPORT_CORRELATES
        if x in model_scores.columns and model_scores[x].notna().sum() >= 3
    ]
    if present:
        table = correlates.spearman_correlates(
            model_scores, [x for x, _ in present], n_boot=n_boot, seed=seed
        )
        for x, log in present:
            paths = plots.plot_correlate(
                model_scores,
                x,
                figdir / f"correlate_{x}",
                hue="training" if "training" in model_scores.columns else "arch_class",
                log_x=log,
                stats_table=table,
            )
            body.append(_img(paths, f"Score against {x}"))
        body.append(_table(table))
        sections.append("<h2>Correlates</h2>" + "".join(body))

    # --- model similarity
    body = []
    for metric in metrics:
        matrix = (model_similarity or {}).get(metric)
        if matrix is None and len(db.rsms(metric=metric)) > 0:
            matrix = similarity.similarity_from_db(db, metric, roi=roi)
        if matrix is None or len(matrix) < 3:
            continue
        coords, _ = similarity.classical_mds(matrix)
        indexed = models.set_index("model_uid")
        hue = indexed["arch_class"] if "arch_class" in indexed else None
        style = indexed["training"] if "training" in indexed else None
        paths = plots.plot_mds(
            coords,
            figdir / f"mds_{metric}",
            hue=hue,
            style=style,
            title=f"Model similarity ({plots._label(metric)} RSMs), classical MDS",
            labels=indexed["display_name"] if "display_name" in indexed else None,
        )
        order = similarity.cluster_models(matrix)["order"]
        heat = plots.plot_matrix(
            matrix,
            figdir / f"similarity_{metric}",
            title=f"Model x model RSM correlation ({plots._label(metric)}), clustered",
            order=order,
        )
        body.append(
            _img(paths, f"MDS of model-to-model similarity, {metric}, {roi}")
            + _img(heat, f"Model x model similarity, {metric}")
        )
    if body:
        sections.append("<h2>Model-to-model similarity</h2>" + "".join(body))

    # --- ridge diagnostics
    edges = alpha_edge_table(db.layers(), db.best_layer_scores().query("roi == @roi"))
    if len(edges):
        sections.append(
            "<h2>Ridge diagnostics</h2>"
            f'<p class="note">Per model: layers in which more than {100 * ALPHA_EDGE_CONCERN:.0f}% '
            "of the units chose the smallest or largest ridge alpha of the grid (their score may "
            "be limited by the grid; units without predictable signal choose the largest), the "
            f"median fraction over layers, and the fraction at the best veRSA layer ({html.escape(roi)}).</p>"
            + _table(edges, "{:.2f}")
        )

    # --- comparing models with each other (pairs, groups, scaling, unique variance)
    from zooscope.report.comparisons import comparison_sections

    sections += comparison_sections(
        db, model_scores, figdir, roi, pair_by=pair_by, contrast=contrast
    )

    # --- provenance
    runs = db.runs()
    failures = db.failures()
    body = [
        f"<p>Database <code>{html.escape(str(db.path))}</code>, schema version {db.schema_version}; "
        f"{len(models)} models, {len(runs)} runs, {len(failures)} failures. Report written "
        f"{_dt.datetime.now(_dt.UTC):%Y-%m-%d %H:%M} UTC.</p>",
        _table(runs.drop(columns=["config"]).astype(str)),
    ]
    if len(ceil):
        body.append("<h3>Noise ceilings</h3>" + _table(db.ceilings()))
    if len(failures):
        body.append(
            "<h3>Failures</h3>"
            + _table(failures[["run_id", "model_uid", "stage", "error", "time"]].astype(str))
        )
    sections.append("<h2>Run provenance</h2>" + "".join(body))

    page = (
        f'<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)}</title>'
        f"<style>{_CSS}</style></head><body><h1>{html.escape(title)}</h1>"
        + "".join(sections)
        + "</body></html>"
    )
    index = out / "index.html"
    index.write_text(page, encoding="utf-8")
    logger.debug("report written to %s", index)
    return index
