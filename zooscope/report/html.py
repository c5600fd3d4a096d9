"""A self-contained HTML report of a results database (opens offline: images are embedded).

:func:`build_report` reads the rows of one ROI once (:class:`ReportData`) and joins the sections,
each a function of those rows that returns its HTML (empty when its data do not apply): models
ranked, committed layers, contrasts, correlates, model-to-model similarity, ridge diagnostics,
the comparisons of :mod:`zooscope.report.comparisons` and the run's provenance. A new section is
one such function and one line in :func:`build_report`.
"""

from __future__ import annotations

import datetime as _dt
import html
import logging
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from zooscope.analyses import contrasts, correlates, similarity
from zooscope.analyses.commitment import committed_layers
from zooscope.analyses.degenerate import profile_best_layer_scores
from zooscope.benchmark import split_region
from zooscope.metrics import GSN_RSA, get_metric, metric_names
from zooscope.pipeline.diagnostics import ALPHA_EDGE_CONCERN, alpha_edge_table
from zooscope.report import plots
from zooscope.report.comparisons import comparison_sections
from zooscope.report.elements import (
    MIN_GROUP_MODELS,
    figure_html,
    group_sizes,
    is_left_out,
    left_out_html,
    small_groups_text,
    table_html,
)
from zooscope.results.db import ResultsDB

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
#: Regions in the order of the visual hierarchy (others follow, sorted): how ROIs are listed, and
#: the first one present opens a report without ``OTC``.
REGION_ORDER = ("V1", "V2", "V4", "IT", "EVC", "OTC")
#: The time bin a neural report opens on when the region has it: Brain-Score's standard window
#: (70-170 ms after stimulus onset; Majaj et al. 2015).
STANDARD_TIME_BIN = "70-170"

_CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Helvetica,Arial,sans-serif;margin:2em auto;max-width:1100px;color:#222;line-height:1.4}
h1{font-size:1.6em}h2{border-bottom:1px solid #ccc;padding-bottom:.2em;margin-top:2em}
div.table{max-width:100%;overflow-x:auto}
table{border-collapse:collapse;font-size:.78em;margin:.6em 0}th,td{border:1px solid #ddd;padding:.25em .5em;text-align:right}
th{background:#f3f3f3}td:first-child,th:first-child{text-align:left}img{max-width:100%;margin:.5em 0}
.note{color:#555;font-size:.9em}code{background:#f5f5f5;padding:0 .2em}
"""


@dataclass
class ReportData:
    """What every section of the report reads: the database and the rows of the report's ROI.

    Attributes
    ----------
    db : ResultsDB
    figdir : Path
        Where figures go (``out/figures``).
    models : DataFrame
        The models table, metadata expanded.
    summary : DataFrame
        :meth:`ResultsDB.summary` rows of the report's ROI (best layers by the profile's rule).
    rois : list of str
        Every ROI with scores.
    roi : str
        The ROI every section reports.
    metrics : tuple of str
        The metrics reported (those with scores).
    model_scores : DataFrame
        Model-level scores of the ROI with the model columns
        (:func:`~zooscope.analyses.contrasts.score_frame`).
    n_boot, seed : int
        Bootstrap settings of the contrasts and correlates.
    profile : str, optional
        Only results of this scoring profile (None: every profile).
    """

    db: ResultsDB
    figdir: Path
    models: pd.DataFrame
    summary: pd.DataFrame
    rois: list[str]
    roi: str
    metrics: tuple[str, ...]
    model_scores: pd.DataFrame
    n_boot: int = 1000
    seed: int = 0
    profile: str | None = None

    def palette(self, column: str) -> dict:
        """``{level: colour}`` of a models-table column, the same in every figure of the report."""
        values = self.models[column] if column in self.models else pd.Series(dtype=object)
        return plots.level_colors(values)

    @property
    def names(self) -> dict[str, str]:
        """``{model_uid: display_name}`` (the uid where a model has no display name)."""
        names = self.models.set_index("model_uid")["display_name"]
        return names.fillna(pd.Series(names.index, index=names.index)).to_dict()

    @property
    def rsa_ceilings(self) -> pd.DataFrame:
        """GSN RSA noise ceilings of the report's ROI."""
        ceil = self.db.ceilings()
        return ceil[(ceil["method"] == GSN_RSA.name) & (ceil["roi"] == self.roi)]


def build_report(
    db: ResultsDB,
    out: str | Path,
    *,
    metrics: tuple[str, ...] | None = None,
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
    metrics : tuple of str, optional
        Metrics to report (those without scores are skipped); default: every registered one.
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
    data = _report_data(db, out / "figures", metrics, roi, profile, n_boot, seed)
    sections = _gather_left_out([
        ranked_section(data),
        committed_section(data),
        contrasts_section(data),
        correlates_section(data),
        similarity_section(data, model_similarity),
        ridge_section(data),
        *comparison_sections(
            db, data.model_scores, data.figdir, data.roi, pair_by=pair_by, contrast=contrast,
            contrast_figures=drawn_contrasts(data),
        ),
        provenance_section(data),
    ])  # fmt: skip
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


def _gather_left_out(sections: list[str]) -> list[str]:
    """The sections, those that are only left-out lines moved into one section before the last.

    A whole analysis the data cannot support is one line under "Not shown", not an empty
    section of its own.
    """
    lines = [s for s in sections if is_left_out(s)]
    kept = [s for s in sections if s and not is_left_out(s)]
    if lines:
        kept.insert(len(kept) - 1, "<h2>Not shown</h2>" + "".join(lines))
    return kept


def _report_data(
    db: ResultsDB,
    figdir: Path,
    metrics: tuple[str, ...] | None,
    roi: str | None,
    profile: str | None,
    n_boot: int,
    seed: int,
) -> ReportData:
    """The report's rows: best layers by the profile's rule, of one ROI (``ValueError`` if absent)."""
    figdir.mkdir(parents=True, exist_ok=True)
    best = None if profile is None else profile_best_layer_scores(db, profile)
    summary = db.summary(best=best)
    rois = roi_order(summary["roi"].dropna().unique())
    roi = roi or default_roi(rois)
    if rois and roi not in rois:
        raise ValueError(f"no scores for ROI {roi!r}; the database has {', '.join(rois)}")
    summary = summary[summary["roi"] == roi]
    metrics = tuple(m for m in metrics or metric_names() if m in set(summary["metric"]))
    model_scores = contrasts.score_frame(
        db, metric=list(metrics), level="model", roi=roi, profile=profile
    )
    return ReportData(db, figdir, db.models(), summary, rois, roi, metrics, model_scores,
                      n_boot, seed, profile)  # fmt: skip


def roi_order(rois) -> list[str]:
    """ROIs by :data:`REGION_ORDER` (others after, sorted), time bins by their start (ms)."""

    def key(roi: str) -> tuple:
        region, time_bin = split_region(roi)
        rank = REGION_ORDER.index(region) if region in REGION_ORDER else len(REGION_ORDER)
        start = time_bin.split("-")[0] if time_bin else ""
        return rank, region, (float(start) if start.isdigit() else float("inf")), time_bin or ""

    return sorted(set(rois), key=key)


def default_roi(rois: list[str]) -> str | None:
    """``OTC`` when present; else the first region of :func:`roi_order` at the standard time bin
    (:data:`STANDARD_TIME_BIN`) when it has one, else its first; None without ROIs."""
    if not rois:
        return "OTC"
    if "OTC" in rois:
        return "OTC"
    ordered = roi_order(rois)
    region = split_region(ordered[0])[0]
    standard = f"{region}|{STANDARD_TIME_BIN}"
    return standard if standard in ordered else ordered[0]


def formula_text(metrics) -> str:
    """How ``explained_variance`` is computed for each ceiled metric of ``metrics``, as computed.

    The power of the ceiling comes from the metric's ceiling (:attr:`CeilingMethod.power
    <zooscope.metrics.base.CeilingMethod.power>`), the number :func:`~zooscope.results.summary.
    ceiled_score` divides by, so the text cannot drift from the computation.
    """
    parts = []
    for metric in metrics:
        ceiling = get_metric(metric).ceiling
        if ceiling is None:
            continue
        label = plots.metric_label(metric)
        if ceiling.power == 2:
            parts.append(f"{label}: score² / noise ceiling² (the ceiling is a correlation)")
        else:
            parts.append(
                f"{label}: score² / ceiling (Brain-Score's definition, Schrimpf et al. 2018: "
                "the split-half internal consistency is already a variance fraction)"
            )
    if not parts:
        return ""
    return "Explained variance = " + "; ".join(parts) + "."


def ranked_section(data: ReportData) -> str:
    """Models ranked per metric (figure and top 15), with the noise-ceiling band of RSA metrics."""
    others = [r for r in data.rois if r != data.roi]
    body = [
        f'<p class="note">ROI: <b>{html.escape(data.roi)}</b>'
        + (
            f" (also in the database: {html.escape(', '.join(others))}; choose with <code>--rois</code>)"
            if others
            else ""
        )
        + ". Score: in each subject the best layer (highest train score) evaluated on test "
        "images, averaged over subjects. " + html.escape(formula_text(data.metrics)) + "</p>"
    ]
    ceil = data.rsa_ceilings
    for metric in data.metrics:
        s = data.summary[data.summary["metric"] == metric].merge(
            data.models[["model_uid", "arch_class"]], on="model_uid", how="left"
        )
        band = None
        if get_metric(metric).ceiling is GSN_RSA and len(ceil):
            band = (ceil["value"].mean(), ceil["value"].min(), ceil["value"].max())
        paths = plots.plot_ranked_models(
            s, data.figdir / f"ranked_{metric}", hue="arch_class", ceiling=band,
            palette=data.palette("arch_class"),
        )  # fmt: skip
        label = plots.metric_label(metric)
        band_text = "; band: range of the subject noise ceilings" if band else ""
        body.append(figure_html(paths, f"All models ranked by {label}{band_text}"))
        cols = ["rank", "display_name", "model_uid", "score", "n_subjects", "ceiling",
                "explained_variance"]  # fmt: skip
        body.append(f"<h3>Top 15, {html.escape(label)}</h3>" + table_html(s[cols].head(15)))
    return "<h2>Models ranked</h2>" + "".join(body)


def committed_section(data: ReportData) -> str:
    """Each model's committed layer per region and time bin (neural predictivity), if any."""
    committed = committed_layers(data.db, profile=data.profile)
    if not len(committed):
        return ""
    columns = ["display_name", "profile", "region", "time_bin", "layer_name", "relative_depth",
               "train_score", "test_score", "error", "ceiling", "ceiled"]  # fmt: skip
    if not committed["error"].notna().any():
        columns.remove("error")
    order = {roi: i for i, roi in enumerate(roi_order(committed["roi"]))}
    committed = committed.sort_values(
        ["display_name", "roi"], key=lambda c: c.map(order) if c.name == "roi" else c
    )
    return (
        "<h2>Committed layers</h2>"
        '<p class="note">Per model, region and time bin: the layer with the best neural '
        "predictivity on the commitment (train) images, averaged over subjects, and its held-out "
        "(test) score. One layer serves every subject here, so the test score can differ from "
        "the ranked score above, where each subject has its own best layer. Relative "
        "depth 0 = first scored layer, 1 = last; ceiled = r² / internal-consistency ceiling "
        "(Brain-Score's definition). "
        "Profile brainscore: the train score is the commitment benchmark's ceiled score, the "
        "test score Brain-Score's raw score on all of the benchmark's images (subjects pooled), "
        "error its standard error over cross-validation splits.</p>"
        + table_html(committed[columns])
    )


def contrasts_section(data: ReportData) -> str:
    """Group means and pairwise contrasts for each grouping column with two groups of 2+ models.

    Groups of fewer than :data:`~zooscope.report.elements.MIN_GROUP_MODELS` models are left out
    (a mean of one model has no CI, a test of it no power), each column with one line saying so.
    """
    scores, body = data.model_scores, []
    for column in REPORT_CONTRASTS:
        if column not in scores.columns or scores[column].nunique() < 2:
            continue
        body.append(_contrast_html(data, column))
    if all(is_left_out(part) for part in body):
        return "".join(body)  # only left-out lines (or nothing): gathered under "Not shown"
    return (
        "<h2>Contrasts by inductive bias</h2>"
        '<p class="note">Group means of model-level scores (each the mean over subjects), 95% '
        "bootstrap CIs over models; pairwise differences with permutation p-values, Holm and "
        "Benjamini-Hochberg corrected per metric.</p>" + "".join(body)
    )


def drawn_contrasts(data: ReportData) -> list[str]:
    """The grouping columns :func:`contrasts_section` draws (two or more groups of 2+ models)."""
    scores = data.model_scores
    return [
        column
        for column in REPORT_CONTRASTS
        if column in scores.columns and (group_sizes(scores, column) >= MIN_GROUP_MODELS).sum() >= 2
    ]


def _contrast_html(data: ReportData, column: str) -> str:
    """One grouping column's figure and tables, or the line that says why it is left out."""
    scores = data.model_scores
    sizes = group_sizes(scores, column)
    kept = sorted(sizes[sizes >= MIN_GROUP_MODELS].index)
    heading = f"<h3>{html.escape(column)}</h3>"
    if len(kept) < 2:
        return left_out_html(
            f"contrast by {column}", f"fewer than two groups to compare: {small_groups_text(sizes)}"
        )
    body = [heading]
    if len(kept) < len(sizes):
        body.append(left_out_html("groups " + ", ".join(sorted(set(sizes.index) - set(kept))),
                                  small_groups_text(sizes)))  # fmt: skip
    groups = contrasts.group_summary(
        scores, column, groups=kept, n_boot=data.n_boot, seed=data.seed
    ).assign(n_subjects=lambda g: g["group"].map(_subjects_per_group(data, column)))
    pairs = contrasts.pairwise_contrasts(
        scores, column, groups=kept, n_boot=data.n_boot, n_perm=2000, seed=data.seed
    )
    shown = scores[scores[column].astype(str).isin(kept)]
    paths = plots.plot_contrast(shown, groups, column, data.figdir / f"contrast_{column}")
    body.append(
        figure_html(paths, f"Contrast by {column}")
        + table_html(groups.drop(columns=["ci_subject_low", "ci_subject_high"]))
    )
    if len(pairs) <= 30:
        columns = ["metric", "group_a", "group_b", "n_a", "n_b", "diff", "ci_low", "ci_high",
                   "cohen_d", "p_perm", "p_holm", "p_fdr"]  # fmt: skip
        body.append(table_html(pairs[columns], "{:.3g}"))
    return "".join(body)


def _subjects_per_group(data: ReportData, column: str) -> dict[str, int]:
    """Subjects behind each group's model scores (the ranked tables' ``n_subjects``, largest).

    The report's scores are subject means, so the contrast frame itself holds one "subject".
    """
    counts = data.summary.groupby("model_uid")["n_subjects"].max()
    models = data.model_scores.drop_duplicates("model_uid").dropna(subset=[column])
    per_group = models.assign(n=models["model_uid"].map(counts)).groupby(
        models[column].astype(str)
    )["n"]
    return per_group.max().fillna(0).astype(int).to_dict()


def correlates_section(data: ReportData) -> str:
    """Spearman correlation of the scores with each model property known for 3 models or more."""
    scores = data.model_scores
    present = [
        (x, log)
        for x, log in REPORT_CORRELATES
        if x in scores.columns and scores[x].notna().sum() >= 3
    ]
    if not present:
        return ""
    table = correlates.spearman_correlates(
        scores, [x for x, _ in present], n_boot=data.n_boot, seed=data.seed
    )
    body = []
    hue = "training" if "training" in scores.columns else "arch_class"
    for x, log in present:
        paths = plots.plot_correlate(
            scores,
            x,
            data.figdir / f"correlate_{x}",
            hue=hue,
            log_x=log,
            stats_table=table,
            palette=data.palette(hue),
        )
        body.append(figure_html(paths, f"Score against {x}"))
    body.append(table_html(table))
    return "<h2>Correlates</h2>" + "".join(body)


def similarity_section(
    data: ReportData, model_similarity: dict[str, pd.DataFrame] | None = None
) -> str:
    """Model-to-model similarity of the stored best-layer RSMs: classical MDS and a heatmap."""
    body = []
    for metric in data.metrics:
        matrix = (model_similarity or {}).get(metric)
        if matrix is None and len(data.db.rsms(metric=metric)) > 0:
            matrix = similarity.similarity_from_db(data.db, metric, roi=data.roi)
        if matrix is None or len(matrix) < 3:
            continue
        coords, _ = similarity.classical_mds(matrix)
        indexed = data.models.set_index("model_uid")
        label = plots.metric_label(metric)
        paths = plots.plot_mds(
            coords,
            data.figdir / f"mds_{metric}",
            hue=indexed["arch_class"] if "arch_class" in indexed else None,
            style=indexed["training"] if "training" in indexed else None,
            title=f"Model similarity ({label} RSMs), classical MDS",
            labels=indexed["display_name"] if "display_name" in indexed else None,
            palette=data.palette("arch_class"),
        )
        heat = plots.plot_matrix(
            matrix,
            data.figdir / f"similarity_{metric}",
            title=f"Model x model RSM correlation ({label}), clustered",
            order=similarity.cluster_models(matrix)["order"],
            names=data.names,
        )
        body.append(
            figure_html(paths, f"MDS of model-to-model similarity, {metric}, {data.roi}")
            + figure_html(heat, f"Model x model similarity, {metric}")
        )
    return "<h2>Model-to-model similarity</h2>" + "".join(body) if body else ""


def ridge_section(data: ReportData) -> str:
    """Per model: how many layers had many units at an edge of the ridge-alpha grid."""
    best = data.db.best_layer_scores()
    edges = alpha_edge_table(data.db.layers(), best[best["roi"] == data.roi])
    if not len(edges):
        return ""
    edges.insert(0, "display_name", edges["model_uid"].map(data.names))
    percent = ["median_fraction", "best_layer_fraction"]
    edges[percent] = edges[percent].map(lambda f: f"{100 * f:.0f}%" if pd.notna(f) else "–")
    return (
        "<h2>Ridge diagnostics</h2>"
        f'<p class="note">Per model: layers in which more than {100 * ALPHA_EDGE_CONCERN:.0f}% '
        "of the units chose the smallest or largest ridge alpha of the grid (their score may "
        "be limited by the grid; units without predictable signal choose the largest), the "
        f"median fraction over layers, and the fraction at the best veRSA layer "
        f"({html.escape(data.roi)}; the terminal prints the same numbers for every ROI).</p>"
        + table_html(edges, "{:.2f}")
    )


def provenance_section(data: ReportData) -> str:
    """The database, its runs, the noise ceilings and the failures."""
    db = data.db
    runs, failures = db.runs(), db.failures()
    body = [
        f"<p>Database <code>{html.escape(str(db.path))}</code>, schema version {db.schema_version}; "
        f"{len(data.models)} models, {len(runs)} runs, {len(failures)} failures. Report written "
        f"{_dt.datetime.now(_dt.UTC):%Y-%m-%d %H:%M} UTC.</p>",
        table_html(runs.drop(columns=["config", "process"], errors="ignore").astype(str)),
    ]
    if len(data.rsa_ceilings):
        body.append("<h3>Noise ceilings</h3>" + table_html(db.ceilings()))
    if len(failures):
        body.append(
            "<h3>Failures</h3>"
            + table_html(
                failures[["run_id", "model_uid", "stage", "cause", "error", "time"]].astype(str)
            )
        )
    return "<h2>Run provenance</h2>" + "".join(body)
