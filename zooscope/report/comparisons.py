"""Report sections that compare models with each other: matched pairs, groups, training-set size
scaling, unique variance and layer-by-layer CKA (:mod:`zooscope.analyses.compare`,
:mod:`zooscope.analyses.unique_variance`, :mod:`zooscope.report.cka_section`).

Where the caller names no contrast, one is found in the models table (:func:`auto_contrast`), so
the demo database gets every section its data allow; an analysis whose data do not suffice is one
line saying why (:func:`~zooscope.report.elements.left_out_html`).
"""

from __future__ import annotations

import html
import itertools
import logging
from collections.abc import Collection
from pathlib import Path

import pandas as pd

from zooscope.analyses import compare, contrasts, unique_variance
from zooscope.benchmark import split_region
from zooscope.report import plots
from zooscope.report.cka_section import cka_section
from zooscope.report.elements import (
    MIN_GROUP_MODELS,
    figure_html,
    group_sizes,
    is_left_out,
    left_out_html,
    note_html,
    small_groups_text,
    table_html,
)
from zooscope.results.db import ResultsDB

logger = logging.getLogger(__name__)

#: Columns that match models into pairs, and columns whose levels are contrasted, in the order
#: :func:`auto_contrast` tries them.
PAIR_COLUMNS = ("arch", "name")
CONTRAST_COLUMNS = ("task", "weights", "training", "train_data")


def auto_contrast(scores: pd.DataFrame) -> tuple[str, str, tuple[str, str]] | None:
    """The first (pair_by, column, (a, b)) of the known columns that yields at least one pair.

    ``a`` and ``b`` are the two levels of ``column`` that most pairs have both of (ties: sorted
    order); None when no pair exists.
    """
    for pair_by, column in itertools.product(PAIR_COLUMNS, CONTRAST_COLUMNS):
        if pair_by not in scores.columns or column not in scores.columns:
            continue
        data = scores.dropna(subset=[pair_by, column])
        levels = data.groupby(pair_by)[column].agg(lambda s: tuple(sorted(set(map(str, s)))))
        counts: dict[tuple[str, str], int] = {}
        for present in levels:
            for pair in itertools.combinations(present, 2):
                counts[pair] = counts.get(pair, 0) + 1
        if counts:
            best = max(sorted(counts), key=lambda p: counts[p])
            return pair_by, column, best
    return None


def comparison_sections(
    db: ResultsDB,
    scores: pd.DataFrame,
    figdir: Path,
    roi: str,
    *,
    pair_by: str | None = None,
    contrast: str | None = None,
    scaling_x: str = "train_data_size",
    contrast_figures: Collection[str] = (),
) -> list[str]:
    """HTML sections (``<h2>`` and body) comparing models; empty list when nothing applies.

    Parameters
    ----------
    db : ResultsDB
    scores : DataFrame
        Model-level scores of the report's ROI with the model columns
        (:func:`~zooscope.analyses.contrasts.score_frame`).
    figdir : Path
        Where figures go.
    roi : str
    pair_by, contrast : str, optional
        E.g. ``"arch"`` and ``"task=memorability,classification"``; found automatically when
        not given (:func:`auto_contrast`).
    scaling_x : str
        The training-set size column.
    contrast_figures : collection of str
        Columns whose group contrast the report draws elsewhere: the groups part refers to that
        figure instead of drawing it again.
    """
    spec = _contrast_spec(scores, pair_by, contrast)
    sections = [
        ""
        if spec is None
        else pairs_and_groups_section(scores, figdir, spec, spec[1] in contrast_figures),
        scaling_section(scores, figdir, scaling_x),
        _unique_variance_section(db, scores, figdir, roi, spec),
        cka_section(db, scores, figdir, roi, spec),
    ]
    return [section for section in sections if section]


def _contrast_spec(
    scores: pd.DataFrame, pair_by: str | None, contrast: str | None
) -> tuple[str | None, str, tuple[str, str]] | None:
    """``(pair_by, column, (a, b))`` named by the caller, else found (:func:`auto_contrast`)."""
    if contrast is not None:
        column, levels = compare.parse_contrast(contrast)
        return pair_by, column, levels
    found = auto_contrast(scores)
    if found is not None and pair_by in (None, found[0]):
        return found
    return None


def pairs_and_groups_section(
    scores: pd.DataFrame,
    figdir: Path,
    spec: tuple[str | None, str, tuple[str, str]],
    figure_above: bool = False,
) -> str:
    """Matched pairs (paired t and Wilcoxon tests) and the two groups (Mann-Whitney U).

    Each part needs :data:`~zooscope.report.elements.MIN_GROUP_MODELS` pairs (or models per
    group); a part without them is one line saying why, and a section of such lines only is
    returned as those lines (the report gathers them). ``figure_above``: the report's contrast
    section draws this column's groups already (the figure is referred to, not repeated).
    """
    pair_col, column, (a, b) = spec
    parts = []
    if pair_col is not None:
        parts.append(_pairs_html(scores, figdir, pair_col, column, (a, b)))
    sizes = group_sizes(scores, column).reindex([a, b], fill_value=0)
    if (sizes >= MIN_GROUP_MODELS).all():
        groups = compare.group_tests(scores, column, (a, b))
        if figure_above:
            figure = note_html(f"The groups' figure: Contrast by {column}, above.")
        else:
            summary = contrasts.group_summary(scores, column, groups=[a, b], n_boot=200)
            shown = scores[scores[column].astype(str).isin((a, b))]
            paths = plots.plot_contrast(shown, summary, column, figdir / f"groups_{column}")
            figure = figure_html(paths, f"{a} vs {b} ({column})")
        parts.append(
            f"<h3>Groups: Mann–Whitney U, {html.escape(a)} vs {html.escape(b)}</h3>"
            + figure
            + table_html(groups.drop(columns=["roi"], errors="ignore"), "{:.3g}")
        )
    else:
        parts.append(left_out_html(f"Mann–Whitney U, {a} vs {b} ({column})",
                                   small_groups_text(sizes)))  # fmt: skip
    if all(is_left_out(part) for part in parts):
        return "".join(parts)
    intro = note_html(
        f"{a} against {b} ({column}); models matched by {pair_col or '(none)'}; one score "
        "per model (mean over subjects; seeds of one cell averaged). Paired t-test and "
        "Wilcoxon signed-rank test across pairs."
    )
    return "<h2>Matched pairs and groups</h2>" + intro + "".join(parts)


def _pairs_html(
    scores: pd.DataFrame, figdir: Path, pair_col: str, column: str, levels: tuple[str, str]
) -> str:
    """The matched pairs' figure and tests, or the line that says why they are left out."""
    a, b = levels
    pairs = compare.paired_scores(scores, pair_col, column, levels)
    n_pairs = pairs.groupby(["metric"])["pair"].nunique().max() if len(pairs) else 0
    if n_pairs < MIN_GROUP_MODELS:
        pairs = pairs.assign(models_a=_display(scores, pairs["models_a"]),
                             models_b=_display(scores, pairs["models_b"]))  # fmt: skip
        found = ", ".join(sorted(f"{m} vs {n}" for m, n in
                                 set(zip(pairs["models_a"], pairs["models_b"], strict=True))))  # fmt: skip
        return left_out_html(
            f"paired tests of {a} vs {b} (matched by {pair_col})",
            f"{int(n_pairs)} matched pair{'s' if n_pairs != 1 else ''}"
            + (f" ({found})" if found else "")
            + f"; the tests need at least {MIN_GROUP_MODELS}",
        )
    tests = compare.paired_tests(scores, pair_col, column, levels)
    paths = plots.plot_paired(
        pairs, figdir / f"paired_{column}", level_a=a, level_b=b,
        title=f"{a} vs {b}, matched by {pair_col}",
    )  # fmt: skip
    cols = ["metric", "n_pairs", "mean_a", "mean_b", "mean_diff", "ci_low", "ci_high",
            "t", "df", "p_t", "cohen_dz", "w", "p_wilcoxon"]  # fmt: skip
    body = figure_html(paths, f"Matched pairs: {a} vs {b} by {pair_col}")
    body += table_html(tests[cols], "{:.3g}")
    if len(pairs) <= 40:
        body += table_html(pairs.drop(columns=["roi"], errors="ignore"), "{:.3f}")
    return body


def _display(scores: pd.DataFrame, uids: pd.Series) -> pd.Series:
    """Comma-joined model uids (a cell of :func:`compare.paired_scores`) as display names."""
    names = scores.drop_duplicates("model_uid").set_index("model_uid")
    names = names["display_name"].dropna().to_dict() if "display_name" in names else {}
    return uids.map(lambda cell: ", ".join(names.get(u, u) for u in str(cell).split(",")))


def scaling_section(scores: pd.DataFrame, figdir: Path, scaling_x: str) -> str:
    """Score against log10 of the training-set size: OLS fit and its 95% band.

    Without 3 models of known size (and two distinct sizes), the one line saying so.
    """
    if scaling_x not in scores.columns:
        return ""
    points = compare.scaling_frame(scores, scaling_x)
    fit = compare.scaling_fit(scores, scaling_x)
    if not len(fit.dropna(subset=["slope"])):
        n = points.groupby("metric")["model_uid"].nunique().max() if len(points) else 0
        return left_out_html(
            f"score against {scaling_x}",
            f"the fit needs at least 3 models with a known {scaling_x} (and two distinct "
            f"sizes); this ROI has {int(n)}",
        )
    band = compare.scaling_band(scores, scaling_x)
    paths = plots.plot_scaling(points, band, figdir / f"scaling_{scaling_x}", x=scaling_x)
    return (
        "<h2>Training-set size</h2>"
        + note_html(
            f"OLS of score on log10({scaling_x}), one point per model; band: 95% CI of the mean."
        )
        + figure_html(paths, f"Score against log10 {scaling_x}")
        + table_html(fit.drop(columns=["roi", "x"], errors="ignore"), "{:.3g}")
    )


def _unique_variance_section(
    db: ResultsDB, scores: pd.DataFrame, figdir: Path, roi: str, spec
) -> str:
    """The best encoding model against its matched partner(s), or else the runner-up."""
    present = set(scores["metric"])
    metric = (
        "encoding_r" if "encoding_r" in present or "predictivity" not in present else "predictivity"
    )
    stored = db.con.execute(
        "SELECT DISTINCT model_uid FROM unit_predictions WHERE metric = ? AND roi = ?",
        [metric, roi],
    ).df()["model_uid"]
    ranked = scores[(scores["metric"] == metric) & scores["model_uid"].isin(stored)]
    ranked = ranked.sort_values("score", ascending=False)["model_uid"].tolist()
    if len(ranked) < 2:
        return ""
    model, controls = ranked[0], []
    if spec is not None and spec[0] is not None and spec[0] in scores.columns:
        key = scores.set_index("model_uid")[spec[0]].drop_duplicates()
        if pd.notna(key.get(model)):
            controls = [m for m in ranked[1:] if key.get(m) == key.get(model)]
    controls = controls or ranked[1:2]
    units = unique_variance.unique_variance(db, model, controls, metric=metric)
    region, time_bin = split_region(roi)
    if "time_bin" in units.columns:  # the group label "IT|70-170" came back split
        units = units[(units["roi"] == region) & (units["time_bin"] == time_bin)]
    else:
        units = units[units["roi"] == roi]
    if units.empty:
        return ""
    summary = unique_variance.summarize_unique_variance(units)
    names = db.models(expand_metadata=False).set_index("model_uid")["display_name"].to_dict()
    name = names.get(model) or model
    units = units.assign(control=units["control"].map(lambda c: names.get(c) or c))
    summary = summary.assign(control=summary["control"].map(lambda c: names.get(c) or c))
    paths = plots.plot_unique_variance(units, figdir / "unique_variance", model=name)
    return (
        "<h2>Unique variance</h2>"
        + note_html(
            f"Per unit: r of the measured test responses with {name}'s held-out predictions "
            f"(best {metric} layer; {roi}), and the partial r controlling for each control model's. "
            "p_partial: Wilcoxon of the partial r against 0 across units; p_model_vs_control: "
            "paired Wilcoxon of the model's against the control's partial r. Choose models with "
            "zooscope analyze unique-variance."
        )
        + figure_html(
            paths,
            f"Unique variance of {name} beyond " + ", ".join(names.get(c) or c for c in controls),
        )
        + table_html(summary.drop(columns=["roi", "time_bin"], errors="ignore"), "{:.3g}")
    )
