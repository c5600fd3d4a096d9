"""Figures of the analyses (matplotlib/seaborn), each saved as PNG and SVG.

Every function takes tidy DataFrames (as returned by :mod:`zooscope.analyses` and :mod:`zooscope.results`),
draws one figure, writes ``<out>.png`` and ``<out>.svg`` and returns the two paths.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from zooscope.metrics import metric_names, registered
from zooscope.rsa.rsm import triangle_size

logger = logging.getLogger(__name__)


def _pyplot():
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    return plt


def _save(fig, out: str | Path) -> list[Path]:
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    paths = [out.with_suffix(".png"), out.with_suffix(".svg")]
    fig.savefig(paths[0], dpi=130, bbox_inches="tight")
    fig.savefig(paths[1], bbox_inches="tight")
    _pyplot().close(fig)
    return paths


def _metric_order(metrics) -> list:
    """Metrics in the registry's order (cRSA, veRSA, encoding r, ...), unknown ones last."""
    known = list(metric_names())
    return sorted(
        set(metrics), key=lambda m: (known.index(m) if m in known else len(known), str(m))
    )


def _metric_panels(
    plt: Any, frame: pd.DataFrame, width: float, height: float, pad: float
) -> tuple[Any, Any, list]:
    """A row of panels, one per metric of ``frame`` (one panel when it has no ``metric`` column).

    Returns the figure, its axes ``[1, n_panels]`` and the metrics (None for the single panel),
    in the paper's order.
    """
    metrics = _metric_order(frame["metric"].unique()) if "metric" in frame.columns else [None]
    fig, axes = plt.subplots(
        1, len(metrics), figsize=(width * len(metrics) + pad, height), squeeze=False
    )
    return fig, axes, metrics


def _of_metric(frame: pd.DataFrame, metric: str | None) -> pd.DataFrame:
    """The rows of one panel's metric (every row for the single panel)."""
    return frame[frame["metric"] == metric] if metric is not None else frame


def metric_label(metric: str | None) -> str:
    """The axis label of ``metric`` (:attr:`Metric.label <zooscope.metrics.Metric.label>`)."""
    labels = {m.name: m.label for m in registered()}
    return labels.get(metric or "", metric or "score")


#: The colour of a missing level (``"n/a"``) in every figure.
MISSING_COLOR = (0.6, 0.6, 0.6)


def level_colors(levels) -> dict[str, tuple[float, float, float]]:
    """One colour per level of a grouping variable, the same in every figure that is given them.

    Levels are sorted (as strings) and take the ``tab10`` colours in that order (``tab20``
    beyond 10 levels); ``"n/a"`` (missing) is grey. Pass every level the report knows (e.g. the
    models table's column), not only those of one figure, so a level keeps its colour when a
    figure lacks another.

    Parameters
    ----------
    levels : iterable
        Values of the variable (repeats and NaN allowed; NaN is ``"n/a"``).

    Returns
    -------
    dict
        ``{level: RGB}``, levels as strings.
    """
    import seaborn as sns

    names = sorted({"n/a" if pd.isna(v) else str(v) for v in levels} - {"n/a"})
    colors = sns.color_palette("tab10" if len(names) <= 10 else "tab20", len(names))
    palette = dict(zip(names, colors, strict=True))
    palette["n/a"] = MISSING_COLOR
    return palette


def _levels(values: pd.Series) -> pd.Series:
    """``values`` as the strings :func:`level_colors` keys on (NaN as ``"n/a"``)."""
    return values.astype(object).where(values.notna(), "n/a").astype(str)


def _overlaps(boxes: list) -> list[tuple[int, int]]:
    """Pairs (i, j), i < j, of display-space bounding boxes that overlap."""
    return [
        (i, j)
        for i in range(len(boxes))
        for j in range(i + 1, len(boxes))
        if boxes[i].overlaps(boxes[j])
    ]


def label_points(ax, x, y, labels, *, fontsize: float = 6) -> list:
    """Name scatter points with labels that do not overlap one another.

    adjustText moves the labels apart (with a thin line back to their point where one moved);
    a label it could not free is hidden rather than drawn over another (logged).

    Parameters
    ----------
    ax : matplotlib Axes
    x, y : array-like, shape (n_points,)
        Data coordinates of the points.
    labels : sequence of str, length n_points

    Returns
    -------
    list of matplotlib.text.Text
        The labels, in the order given (hidden ones have ``get_visible() == False``).
    """
    from adjustText import adjust_text

    texts = [
        ax.text(xi, yi, str(name), fontsize=fontsize, color="0.25")
        for xi, yi, name in zip(x, y, labels, strict=True)
    ]
    if len(texts) < 2:
        return texts
    adjust_text(
        texts,
        x=np.asarray(x, float),
        y=np.asarray(y, float),
        ax=ax,
        expand=(1.1, 1.3),
        iter_lim=2000,
        arrowprops={"arrowstyle": "-", "color": "0.6", "lw": 0.5},
    )
    renderer = ax.figure.canvas.get_renderer()
    hidden = []
    for _ in range(len(texts)):
        boxes = [t.get_window_extent(renderer) if t.get_visible() else None for t in texts]
        clashes = _overlaps([b for b in boxes if b is not None])
        if not clashes:
            break
        visible = [k for k, b in enumerate(boxes) if b is not None]
        worst = visible[max(j for _, j in clashes)]  # keep earlier labels, hide a later one
        texts[worst].set_visible(False)
        hidden.append(str(texts[worst].get_text()))
    if hidden:
        logger.debug(
            "hid %d crowded label(s) that would overlap: %s", len(hidden), ", ".join(hidden)
        )
    return texts


def plot_ranked_models(
    summary: pd.DataFrame,
    out: str | Path,
    *,
    hue: str | None = None,
    ceiling: tuple[float, float, float] | None = None,
    top: int | None = None,
    label: str = "display_name",
    palette: dict | None = None,
) -> list[Path]:
    """Models ranked by score (one metric), colored by ``hue``, with the noise-ceiling band.

    Parameters
    ----------
    summary : DataFrame
        One row per model: ``score`` plus ``label`` / ``hue`` columns (e.g. :meth:`ResultsDB.summary`
        merged with the models table).
    ceiling : (value, lower, upper), optional
        Mean noise ceiling and its interval, drawn as a line and a band.
    top : int, optional
        Show only the best ``top`` models (names are readable up to ~60).
    palette : dict, optional
        ``{level: colour}`` of ``hue`` (:func:`level_colors`; default: from this figure's levels).
    """
    import seaborn as sns

    plt = _pyplot()
    df = (
        summary.dropna(subset=["score"])
        .sort_values("score", ascending=False)
        .reset_index(drop=True)
    )
    if top is not None:
        df = df.head(top)
    metric = df["metric"].iloc[0] if "metric" in df.columns and len(df) else None
    n = len(df)
    show_names = n <= 60
    fig, ax = plt.subplots(figsize=(max(6.0, 0.18 * n + 2) if show_names else 10.0, 4.5))
    names = df[label].fillna(df["model_uid"]) if label in df.columns else df["model_uid"]
    from matplotlib.patches import Patch

    colors = None
    handles: list = []
    if hue is not None and hue in df.columns:
        values = _levels(df[hue])
        palette = palette or level_colors(df[hue])
        colors = [palette[v] for v in values]
        for level in sorted(set(values), key=list(palette).index):
            handles.append(Patch(color=palette[level], label=level))
    ax.bar(np.arange(n), df["score"], color=colors or "#4C72B0", width=0.85)
    if ceiling is not None:
        value, lower, upper = ceiling
        ax.axhspan(lower, upper, color="0.6", alpha=0.3, lw=0)
        handles.append(
            ax.axhline(
                value,
                color="0.3",
                ls="--",
                lw=1,
                label=f"noise ceiling {value:.2f}\n(band: subject range)",
            )
        )
    if show_names:
        ax.set_xticks(np.arange(n), names, rotation=90, fontsize=7)
    else:
        ax.set_xticks([])
        ax.set_xlabel(f"{n} models, ranked by score")
    ax.set_xlim(-0.8, n - 0.2)
    ax.set_ylabel(f"{metric_label(metric)}, best layer, test images")
    ax.set_title(f"Models ranked by {metric_label(metric)}")
    if handles:
        ax.legend(
            handles=handles,
            frameon=False,
            fontsize=8,
            title=hue,
            loc="upper left",
            bbox_to_anchor=(1, 1),
        )
    sns.despine(ax=ax)
    return _save(fig, out)


def plot_contrast(
    scores: pd.DataFrame,
    groups: pd.DataFrame,
    by: str,
    out: str | Path,
    *,
    value: str = "score",
    model: str = "model_uid",
) -> list[Path]:
    """Crossbar plot of a contrast: one dot per model, group mean and bootstrap CI as a crossbar.

    Parameters
    ----------
    scores : DataFrame
        Model-level scores (one row per model and metric) with columns ``metric``, ``by``, ``value``.
        Within-subject normalize first (:func:`~zooscope.analyses.contrasts.normalize_within_subject`)
        when plotting per-subject data.
    groups : DataFrame
        :func:`~zooscope.analyses.contrasts.group_summary` output (``metric, group, mean, ci_low,
        ci_high, n_models``).
    """
    plt = _pyplot()
    import seaborn as sns

    metrics = _metric_order(groups["metric"].dropna().unique()) or [None]
    fig, axes = plt.subplots(1, len(metrics), figsize=(3.2 * len(metrics) + 1, 4), squeeze=False)
    rng = np.random.default_rng(0)  # jitter only; fixed so the figure is reproducible
    for ax, metric in zip(axes[0], metrics, strict=True):
        g = groups[groups["metric"] == metric] if metric is not None else groups
        s = scores[scores["metric"] == metric] if "metric" in scores.columns and metric else scores
        model_means = s.dropna(subset=[by]).groupby([by, model])[value].mean().reset_index()
        order = list(g["group"])
        for i, level in enumerate(order):
            pts = model_means.loc[model_means[by].astype(str) == level, value].to_numpy()
            ax.scatter(
                i + rng.uniform(-0.18, 0.18, pts.size), pts, s=12, color="0.55", alpha=0.7, lw=0
            )
            row = g.iloc[i]
            ax.add_patch(
                plt.Rectangle(
                    (i - 0.3, row["ci_low"]),
                    0.6,
                    row["ci_high"] - row["ci_low"],
                    color="C0",
                    alpha=0.35,
                    lw=0,
                )
            )
            ax.plot([i - 0.3, i + 0.3], [row["mean"]] * 2, color="C0", lw=2.5)
        ax.set_xticks(
            range(len(order)),
            [f"{o}\n(n={n})" for o, n in zip(order, g["n_models"], strict=True)],
            rotation=30 if len(order) > 3 else 0,
            fontsize=8,
        )
        ax.set_title(metric_label(metric))
        ax.set_xlim(-0.6, len(order) - 0.4)
        sns.despine(ax=ax)
    axes[0][0].set_ylabel("score (dots: models; bar: mean, 95% bootstrap CI)")
    fig.suptitle(f"Contrast by {by}", y=1.02)
    fig.tight_layout()
    return _save(fig, out)


def plot_correlate(
    df: pd.DataFrame,
    x: str,
    out: str | Path,
    *,
    y: str = "score",
    hue: str | None = None,
    log_x: bool = False,
    stats_table: pd.DataFrame | None = None,
    palette: dict | None = None,
) -> list[Path]:
    """Scatter of score against a model property, one panel per metric, Spearman rho in the title.

    ``palette`` (:func:`level_colors`) colours the levels of ``hue`` as in the report's other
    figures; by default it is made from ``df[hue]``. A log axis is labelled at 1, 2 and 5 times
    the powers of ten in short engineering notation (``3M``), so no two labels overlap.
    """
    plt = _pyplot()
    import seaborn as sns

    hue = hue if hue in df.columns else None
    order = None
    if hue is not None:
        df = df.assign(**{hue: _levels(df[hue])})
        palette = palette or level_colors(df[hue])
        order = [level for level in palette if level in set(df[hue])]
    fig, axes, metrics = _metric_panels(plt, df, 3.6, 3.6, 0.6)
    for ax, metric in zip(axes[0], metrics, strict=True):
        sub = _of_metric(df, metric).dropna(subset=[x, y])
        sns.scatterplot(
            data=sub,
            x=x,
            y=y,
            hue=hue,
            hue_order=order,
            palette=palette if hue else None,
            ax=ax,
            s=18,
            legend=ax is axes[0][-1],
        )
        if log_x:
            _log_axis(ax.xaxis)
        title = metric_label(metric)
        if stats_table is not None:
            row = stats_table[(stats_table["x"] == x) & (stats_table["metric"] == metric)]
            if len(row):
                r = row.iloc[0]
                title += f"\nSpearman ρ = {r.rho:.2f} [{r.ci_low:.2f}, {r.ci_high:.2f}], n = {r.n}"
        ax.set_title(title, fontsize=9)
        ax.set_xlabel(x.replace("_", " "))
        ax.set_ylabel(metric_label(metric))
        sns.despine(ax=ax)
    if hue and axes[0][-1].get_legend() is not None:
        sns.move_legend(
            axes[0][-1], "upper left", bbox_to_anchor=(1, 1), frameon=False, fontsize=7, title=hue
        )
    fig.tight_layout()
    return _save(fig, out)


def _log_axis(axis) -> None:
    """A log scale labelled in engineering notation (``3M``), minor ticks unlabelled.

    Labels at 1, 2 and 5 x 10^k over up to 1.5 decades of data, at 10^k over more. Matplotlib's
    default labels minor ticks of an axis spanning about one decade in scientific
    notation (``3×10⁶``), and neighbouring labels run into each other.
    """
    from matplotlib.ticker import EngFormatter, LogLocator, NullFormatter

    axis.axes.set_xscale("log") if axis.axis_name == "x" else axis.axes.set_yscale("log")
    low, high = sorted(axis.get_data_interval())
    decades = np.log10(high / low) if low > 0 else np.inf
    subs = (1.0, 2.0, 5.0) if decades <= 1.5 else (1.0,)  # wider: one label a decade
    axis.set_major_locator(LogLocator(base=10, subs=subs))
    axis.set_major_formatter(EngFormatter(sep=""))
    axis.set_minor_formatter(NullFormatter())


def plot_mds(
    coords: pd.DataFrame,
    out: str | Path,
    *,
    hue: pd.Series | None = None,
    style: pd.Series | None = None,
    title: str = "",
    labels: pd.Series | None = None,
    max_labels: int = 30,
    palette: dict | None = None,
) -> list[Path]:
    """MDS map of models (``dim1``, ``dim2``), colored by ``hue`` and marked by ``style``.

    ``hue``, ``style`` and ``labels`` are Series indexed by model uid (e.g. architecture class,
    training, display name). Points are named when there are at most ``max_labels`` of them.
    ``palette`` (:func:`level_colors`) colours the levels of ``hue`` as in the report's other
    figures (default: from ``hue``).
    """
    plt = _pyplot()
    import seaborn as sns

    df = coords.copy()
    hue_col = (hue.name if hue is not None else None) or "group"
    df[hue_col] = _levels(hue.reindex(df.index)) if hue is not None else "models"
    palette = palette or level_colors(df[hue_col])
    if hue is None:
        palette = {"models": "C0"}
    style_col = None
    if style is not None:
        style_col = style.name or "style"
        df[style_col] = style.reindex(df.index).fillna("n/a").astype(str)
    fig, ax = plt.subplots(figsize=(6.5, 5))
    sns.scatterplot(
        data=df, x="dim1", y="dim2", hue=hue_col, style=style_col, ax=ax, s=22,
        hue_order=[k for k in palette if k in set(df[hue_col])], palette=palette,
    )  # fmt: skip
    if len(df) <= max_labels:
        names = (
            labels.reindex(df.index).fillna(pd.Series(df.index, index=df.index))
            if labels is not None
            else pd.Series(df.index, index=df.index)
        )
        ax.set_aspect(
            "equal", adjustable="datalim"
        )  # before placing: placement is in display space
        label_points(ax, df["dim1"], df["dim2"], [names[uid] for uid in df.index])
    ax.set_xlabel("MDS dimension 1")
    ax.set_ylabel("MDS dimension 2")
    ax.set_title(title or "Model-to-model similarity (classical MDS of √(2(1 − r)))", fontsize=10)
    ax.set_aspect("equal", adjustable="datalim")
    sns.move_legend(
        ax,
        "upper left",
        bbox_to_anchor=(1, 1),
        frameon=False,
        fontsize=8,
    )
    sns.despine(ax=ax)
    return _save(fig, out)


def plot_layer_profiles(
    scores: pd.DataFrame, out: str | Path, *, metric: str, models: list[str] | None = None
) -> list[Path]:
    """Per-model score across layers (relative depth 0-1), train and test, mean over subjects."""
    plt = _pyplot()
    import seaborn as sns

    df = scores[(scores["metric"] == metric) & scores["layer_index"].notna()]
    if models is not None:
        df = df[df["model_uid"].isin(models)]
    if df.empty:
        raise ValueError(f"no layer-wise {metric} scores to plot")
    df = df.groupby(["model_uid", "layer_index", "split"], as_index=False)["score"].mean()
    df["depth"] = df.groupby("model_uid")["layer_index"].transform(
        lambda i: (i - i.min()) / max(i.max() - i.min(), 1)
    )
    fig, ax = plt.subplots(figsize=(6.5, 4))
    sns.lineplot(data=df, x="depth", y="score", hue="model_uid", style="split", ax=ax, lw=1.2)
    ax.set_xlabel("relative layer depth (0 = input side, 1 = output)")
    ax.set_ylabel(metric_label(metric))
    ax.set_title(f"Layer profiles, {metric_label(metric)} (mean over subjects)")
    sns.move_legend(ax, "upper left", bbox_to_anchor=(1, 1), frameon=False, fontsize=7)
    sns.despine(ax=ax)
    return _save(fig, out)


def plot_matrix(
    matrix: pd.DataFrame,
    out: str | Path,
    *,
    title: str,
    order: list[str] | None = None,
    label: str = "r",
    limit: float | None = None,
    names: dict | pd.Series | None = None,
) -> list[Path]:
    """Heatmap of a square matrix (an RSM or a model x model similarity), optionally reordered.

    The colour scale spans ``±limit`` (default: the largest off-diagonal magnitude); up to 12
    rows get their values written in the cells. ``names`` maps row labels (model uids) to the
    tick labels (display names); labels it lacks are shown as they are.
    """
    plt = _pyplot()

    if order is not None:
        matrix = matrix.loc[order, order]
    n = len(matrix)
    fig, ax = plt.subplots(figsize=(6.5, 5.5))
    values = matrix.to_numpy(dtype=float)
    off = values[~np.eye(n, dtype=bool)]
    lim = limit if limit is not None else (np.nanmax(np.abs(off)) if off.size else 1.0)
    im = ax.imshow(values, cmap="RdBu_r", vmin=-lim, vmax=lim, interpolation="nearest")
    if n <= 12:
        for (i, j), v in np.ndenumerate(values):
            ax.text(j, i, f"{v:.2f}", ha="center", va="center", fontsize=7,
                    color="white" if abs(v) > 0.6 * lim else "black")  # fmt: skip
    fig.colorbar(im, ax=ax, shrink=0.8, label=label)
    if n <= 40:
        names = dict(names if names is not None else {})
        ticks = [
            str(names.get(k, k)) if pd.notna(names.get(k, k)) else str(k) for k in matrix.index
        ]
        ax.set_xticks(range(n), ticks, rotation=90, fontsize=6)
        ax.set_yticks(range(n), ticks, fontsize=6)
    else:
        ax.set_xticks([])
        ax.set_yticks([])
        ax.set_xlabel(f"{n} items (clustered order)" if order is not None else f"{n} items")
    ax.set_title(title, fontsize=10)
    return _save(fig, out)


def rsm_square(vector: np.ndarray) -> np.ndarray:
    """Square symmetric RSM (unit diagonal) from its upper triangle (``np.triu_indices(n, 1)``).

    Returns
    -------
    array, shape (n_images, n_images)
    """
    v = np.asarray(vector, dtype=np.float64)
    n = triangle_size(v.size)
    m = np.eye(n)
    iu = np.triu_indices(n, k=1)
    m[iu] = v
    m.T[iu] = v
    return m


# --------------------------------------------------------------------------------------------
# comparing models with each other (zooscope.analyses.compare, unique_variance, layer_cka)
# --------------------------------------------------------------------------------------------
def plot_paired(
    pairs: pd.DataFrame, out: str | Path, *, level_a: str, level_b: str, title: str = ""
) -> list[Path]:
    """Matched pairs: one line per pair from level ``a`` to level ``b``, one panel per metric and ROI.

    Parameters
    ----------
    pairs : DataFrame
        :func:`~zooscope.analyses.compare.paired_scores` output (``metric, [roi,] pair, score_a,
        score_b``; several subjects per pair are averaged here, regions never are).
    """
    plt = _pyplot()
    import seaborn as sns

    keys = [c for c in ("metric", "roi") if c in pairs.columns]
    panels = list(pairs.groupby(keys, sort=False)) if keys else [((), pairs)]
    if "metric" in keys:  # the paper's metric order, regions in their order of appearance
        order = {m: i for i, m in enumerate(_metric_order(pairs["metric"].unique()))}
        panels.sort(key=lambda panel: order[_tuple(panel[0])[0]])
    fig, axes = plt.subplots(1, len(panels), figsize=(2.6 * len(panels) + 1, 3.8), squeeze=False)
    for ax, (key, frame) in zip(axes[0], panels, strict=True):
        labels = dict(zip(keys, _tuple(key), strict=True))
        sub = frame.groupby("pair")[["score_a", "score_b"]].mean()
        for _, row in sub.iterrows():
            up = row["score_a"] > row["score_b"]
            ax.plot([0, 1], [row["score_a"], row["score_b"]], "-o", ms=3, lw=1,
                    color="C3" if up else "C0", alpha=0.7)  # fmt: skip
        ax.set_xticks([0, 1], [level_a, level_b], fontsize=8)
        ax.set_xlim(-0.3, 1.3)
        name = metric_label(labels.get("metric"))
        region = f", {labels['roi']}" if "roi" in labels else ""
        ax.set_title(f"{name}{region}\n{len(sub)} pairs", fontsize=9)
        sns.despine(ax=ax)
    axes[0][0].set_ylabel("score (one line per matched pair)")
    if title:
        fig.suptitle(title, y=1.03, fontsize=10)
    fig.tight_layout()
    return _save(fig, out)


def _tuple(key: Any) -> tuple:
    """A groupby key as a tuple (pandas gives a scalar for one column in some versions)."""
    return key if isinstance(key, tuple) else (key,)


def plot_scaling(
    points: pd.DataFrame, band: pd.DataFrame, out: str | Path, *, x: str = "train_data_size"
) -> list[Path]:
    """Score against training-set size (log axis) with the OLS fit and its confidence band.

    Parameters
    ----------
    points : DataFrame
        :func:`~zooscope.analyses.compare.scaling_frame` output (``metric, x, score``).
    band : DataFrame
        :func:`~zooscope.analyses.compare.scaling_band` output (``metric, x, fit, ci_low, ci_high``).
    """
    plt = _pyplot()
    import seaborn as sns

    fig, axes, metrics = _metric_panels(plt, points, 3.6, 3.6, 0.6)
    for ax, metric in zip(axes[0], metrics, strict=True):
        sub = _of_metric(points, metric)
        ax.scatter(sub["x"], sub["score"], s=14, color="0.3")
        line = _of_metric(band, metric) if len(band) else band
        if len(line):
            ax.plot(line["x"], line["fit"], color="C0", lw=1.5)
            ax.fill_between(
                line["x"], line["ci_low"], line["ci_high"], color="C0", alpha=0.25, lw=0
            )
        ax.set_xscale("log")
        ax.set_xlabel(x.replace("_", " "))
        ax.set_ylabel(metric_label(metric))
        ax.set_title(f"{metric_label(metric)}: fit and 95% CI of the mean", fontsize=9)
        sns.despine(ax=ax)
    fig.tight_layout()
    return _save(fig, out)


def plot_unique_variance(
    units: pd.DataFrame, out: str | Path, *, model: str = "model"
) -> list[Path]:
    """Controlled against uncontrolled predictivity: ``partial_model`` vs ``r_model`` per unit.

    One panel per unit group (ROI, and time bin when present), one colour per control; points
    on the diagonal owe nothing to the control, points near 0 are explained by it.
    """
    plt = _pyplot()
    import seaborn as sns

    keys = [k for k in ("roi", "time_bin") if k in units.columns]
    panels = list(units.groupby(keys, sort=True, dropna=False)) if keys else [("all", units)]
    fig, axes = plt.subplots(1, len(panels), figsize=(3.4 * len(panels) + 1, 3.6), squeeze=False)
    for ax, (key, sub) in zip(axes[0], panels, strict=True):
        sns.scatterplot(data=sub, x="r_model", y="partial_model", hue="control", s=10, ax=ax,
                        linewidth=0, alpha=0.6, legend=ax is axes[0][-1])  # fmt: skip
        lim = [min(0.0, float(np.nanmin(sub[["r_model", "partial_model"]].to_numpy()))), 1.0]
        ax.plot(lim, lim, color="0.6", lw=0.8, ls="--")
        ax.axhline(0, color="0.8", lw=0.8)
        ax.set_xlabel(f"r(y, {model})")
        ax.set_ylabel(f"partial r(y, {model} | control)")
        ax.set_title(" / ".join(map(str, key if isinstance(key, tuple) else (key,))), fontsize=9)
        sns.despine(ax=ax)
    if axes[0][-1].get_legend() is not None:
        sns.move_legend(axes[0][-1], "upper left", bbox_to_anchor=(1, 1), frameon=False, fontsize=7)
    fig.tight_layout()
    return _save(fig, out)


def plot_layer_cka(curves: pd.DataFrame, out: str | Path, *, title: str = "") -> list[Path]:
    """CKA against relative depth: mean ± s.e.m. over model pairs, one line per group.

    Parameters
    ----------
    curves : DataFrame
        Columns ``depth`` (0-1), ``cka``, ``pair`` (e.g. "A vs B") and optionally ``group``
        (e.g. within vs across objectives); pairs are averaged on a common depth grid.
    """
    plt = _pyplot()
    import seaborn as sns

    df = curves.copy()
    if "group" not in df.columns:
        df["group"] = "pairs"
    fig, ax = plt.subplots(figsize=(6, 4))
    for i, (group, sub) in enumerate(df.groupby("group", sort=True)):
        grid = np.linspace(0, 1, 21)
        lines = np.array([np.interp(grid, p["depth"], p["cka"]) for _, p in sub.groupby("pair")])
        mean = lines.mean(axis=0)
        sem = lines.std(axis=0, ddof=1) / np.sqrt(len(lines)) if len(lines) > 1 else 0 * mean
        label = f"{group} ({len(lines)} pair{'s' if len(lines) != 1 else ''})"
        ax.plot(grid, mean, color=f"C{i}", lw=1.8, label=label)
        ax.fill_between(grid, mean - sem, mean + sem, color=f"C{i}", alpha=0.25, lw=0)
    ax.set_xlabel("relative depth (0 = first layer, 1 = last)")
    ax.set_ylabel("linear CKA")
    ax.set_ylim(-0.05, 1.05)
    ax.set_title(title or "Layer-by-layer CKA (mean ± s.e.m. over pairs)", fontsize=10)
    ax.legend(frameon=False, fontsize=8)
    sns.despine(ax=ax)
    return _save(fig, out)
