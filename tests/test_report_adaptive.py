"""The report says only what its data support: small groups left out with their reason, one
colour per level in every figure, ROIs in hierarchy order, and formula text that matches the
computation."""

from __future__ import annotations

import html
import re

import numpy as np
import pandas as pd
import pytest
from browser import dump_dom, needs_chromium

from zooscope.metrics import get_metric
from zooscope.report import plots
from zooscope.report.elements import is_left_out, left_out_html, small_groups_text, table_html
from zooscope.report.html import build_report, default_roi, formula_text, roi_order
from zooscope.results.db import ResultsDB
from zooscope.results.importers import import_scores_table
from zooscope.results.summary import ceiled_score

#: Architecture class of each model: Hybrid is a group of one.
CLASSES = {"c1": "Convolutional", "c2": "Convolutional", "c3": "Convolutional",
           "t1": "Transformer", "t2": "Transformer", "h1": "Hybrid"}  # fmt: skip
#: (architecture, task): three trained/random twins, matched by architecture.
TWINS = {"c1": ("a", "classification"), "c2": ("a", "random"), "c3": ("b", "classification"),
         "t1": ("c", "classification"), "t2": ("c", "random"), "h1": ("b", "random")}  # fmt: skip


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    """A report of six models scored on two subjects (cRSA, OTC): its HTML and its path."""
    rng = np.random.default_rng(0)
    rows = [
        {"model_uid": uid, "display_name": f"Model {uid.upper()}", "arch_class": arch,
         "arch": TWINS[uid][0], "task": TWINS[uid][1], "subject": subject,
         "score": rng.uniform(0.1, 0.6)}
        for uid, arch in CLASSES.items()
        for subject in ("1", "2")
    ]  # fmt: skip
    table = pd.DataFrame(rows)
    root = tmp_path_factory.mktemp("adaptive")
    db = ResultsDB(root / "r.duckdb")
    import_scores_table(
        db, table, benchmark="toy", metric="crsa", metric_col=None, subject_col="subject",
        roi="OTC",
    )  # fmt: skip
    index = build_report(db, root / "report", n_boot=50)
    return index.read_text(encoding="utf-8"), index


def _section(page: str, title: str) -> str:
    """The HTML of the ``<h2>title</h2>`` section (up to the next ``<h2>``)."""
    start = page.index(f"<h2>{title}</h2>")
    end = page.find("<h2>", start + 1)
    return page[start : end if end > 0 else None]


def test_a_group_of_one_model_is_left_out_with_its_reason(report):
    page, _ = report
    contrasts = _section(page, "Contrasts by inductive bias")
    assert "Left out: groups Hybrid — Hybrid has 1 model (a group needs at least 2)." in contrasts
    tables = contrasts[contrasts.index("<table") :]
    assert "Hybrid" not in tables  # neither in the group means nor in the pairwise tests
    assert "Convolutional" in tables and "Transformer" in tables


def _first_table(fragment: str) -> pd.DataFrame:
    """The first ``<table>`` of ``fragment`` as strings (header row: column names)."""
    table = fragment[fragment.index("<table") : fragment.index("</table>")]
    rows = [re.findall(r"<t[hd][^>]*>(.*?)</t[hd]>", row, re.S)
            for row in re.findall(r"<tr[^>]*>(.*?)</tr>", table, re.S)]  # fmt: skip
    return pd.DataFrame(rows[1:], columns=rows[0])


def test_no_figure_is_drawn_twice(report):
    """The groups of the matched-pairs contrast are the "Contrast by task" figure: referred to."""
    page, _ = report
    captions = re.findall(r'<img alt="([^"]*)"', page)
    assert (
        "Contrast by task" in captions
        and "Matched pairs: classification vs random by arch" in captions
    )
    assert len(captions) == len(set(captions))
    pairs = html.unescape(_section(page, "Matched pairs and groups"))
    assert "The groups' figure: Contrast by task, above." in pairs


def test_contrast_tables_count_the_subjects_of_the_ranked_tables(report):
    page, _ = report
    group_table = _first_table(_section(page, "Contrasts by inductive bias"))
    ranked = _first_table(_section(page, "Models ranked"))
    assert set(ranked["n_subjects"]) == {"2"}
    assert set(group_table["n_subjects"]) == {"2"}
    assert set(group_table["group"]) == {"Convolutional", "Transformer"}


def test_small_groups_are_named_by_size():
    sizes = pd.Series({"A": 5, "B": 1, "C": 1, "D": 0, **{f"t{i:02d}": 1 for i in range(8)}})
    assert small_groups_text(sizes) == (
        "D has 0 models; B, C, t00, t01, t02, t03 and 4 more have 1 model each "
        "(a group needs at least 2)"
    )


def test_left_out_lines_are_recognised_and_nothing_else_is():
    line = left_out_html("score against x", "needs 3 models")
    assert is_left_out(line) and is_left_out(line + line)
    assert not is_left_out(line + "<table></table>") and not is_left_out("")


def _svg_colours(paths) -> set[str]:
    svg = next(p for p in paths if p.suffix == ".svg").read_text()
    return set(re.findall(r"fill: ?(#[0-9a-f]{6})", svg))


def test_one_colour_per_level_in_every_figure(tmp_path):
    """A level keeps its colour in figures that lack other levels (and in any order of rows)."""
    palette = plots.level_colors(["Convolutional", "Hybrid", "MLP-Mixer", "Transformer", None])
    assert plots.level_colors(["Transformer", "Convolutional", "MLP-Mixer", "Hybrid"]) == {
        k: v for k, v in palette.items()
    }
    hexes = {level: "#{:02x}{:02x}{:02x}".format(*(round(255 * c) for c in rgb))
             for level, rgb in palette.items()}  # fmt: skip
    scores = pd.DataFrame(
        {
            "model_uid": ["a", "b", "c", "d"],
            "display_name": ["A", "B", "C", "D"],
            "metric": "crsa",
            "score": [0.4, 0.3, 0.2, 0.1],
            "param_count": [1e6, 3e6, 2e7, 5e7],
            "arch_class": ["Transformer", "Hybrid", "Transformer", "Hybrid"],  # first seen first
        }
    )
    coords = pd.DataFrame(
        {"dim1": [0.0, 1, 2, 3], "dim2": [1.0, 0, 2, 1]}, index=scores["model_uid"]
    )
    hue = scores.set_index("model_uid")["arch_class"]
    figures = {
        "ranked": plots.plot_ranked_models(scores, tmp_path / "r", hue="arch_class", palette=palette),
        "correlate": plots.plot_correlate(scores, "param_count", tmp_path / "c", hue="arch_class",
                                          log_x=True, palette=palette),
        "mds": plots.plot_mds(coords, tmp_path / "m", hue=hue, palette=palette),
    }  # fmt: skip
    for name, paths in figures.items():
        colours = _svg_colours(paths)
        assert {hexes["Transformer"], hexes["Hybrid"]} <= colours, name
        assert hexes["Convolutional"] not in colours, name  # tab10's first colour: not reused


@pytest.mark.parametrize(
    ("low", "high", "first", "allowed"),
    [
        (2.5e6, 4.5e7, ["5M", "10M", "20M"], {"2M", "5M", "10M", "20M", "50M"}),  # ~1 decade
        (1e6, 5e8, ["1M", "10M", "100M"], {"1M", "10M", "100M", "1G"}),  # Conwell's 225 models
    ],
)
def test_log_axis_labels_do_not_overlap(low, high, first, allowed):
    """Parameter counts: short labels (``5M``), at most three a decade, none overlapping."""
    plt = plots._pyplot()
    fig, ax = plt.subplots(figsize=(3.6, 3.6))
    ax.scatter(np.geomspace(low, high, 8), np.linspace(0.1, 0.8, 8))
    plots._log_axis(ax.xaxis)
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    labels = [t for t in ax.get_xticklabels(which="both") if t.get_visible() and t.get_text()]
    lo, hi = ax.get_xlim()
    labels = [t for t in labels if lo <= t.get_position()[0] <= hi]
    texts = [t.get_text() for t in labels]
    assert texts[:3] == first and set(texts) <= allowed
    assert not plots._overlaps([t.get_window_extent(renderer) for t in labels])
    plt.close(fig)


def test_formula_text_matches_the_computation():
    text = formula_text(["crsa", "versa", "encoding_r", "predictivity"])
    assert "encoding r" not in text  # not ceiled, so no formula
    for metric, stated in [("crsa", "score² / noise ceiling²"), ("versa", "score² / noise ceiling²"),
                           ("predictivity", "score² / ceiling (Brain-Score's definition")]:  # fmt: skip
        assert f"{plots.metric_label(metric)}: {stated}" in text
        method = get_metric(metric).ceiling
        power = 2 if "ceiling²" in stated else 1
        assert method.power == power
        got = ceiled_score(np.array([0.82]), np.array([0.922]), method.name)
        assert got == pytest.approx([0.82**2 / 0.922**power], rel=1e-12)


def test_rois_in_hierarchy_order_and_the_neural_report_opens_on_v1():
    neural = ["IT|170-270", "IT|70-170", "V1|170-270", "V1|70-170", "V4|70-170", "V4|170-270"]
    assert roi_order(neural) == ["V1|70-170", "V1|170-270", "V4|70-170", "V4|170-270",
                                 "IT|70-170", "IT|170-270"]  # fmt: skip
    assert default_roi(roi_order(neural)) == "V1|70-170"
    assert default_roi(["EVC", "OTC"]) == "OTC"
    assert roi_order(["OTC", "EVC", "FFA"]) == ["EVC", "OTC", "FFA"]
    assert default_roi(["V4|0-50", "V4|50-100"]) == "V4|0-50"  # no standard bin: the first


#: Appended to a copy of the page: marks the body with the elements wider than the text column
#: (a table counts unless the block around it scrolls sideways and stays inside the column).
_SPILL_PROBE = """<script>
const column = document.body.getBoundingClientRect();
const over = e => e.getBoundingClientRect().right > column.right + 1;
const scrolls = e => e !== null && ["auto", "scroll"].includes(getComputedStyle(e).overflowX);
const spills = e => e.tagName === "TABLE"
  ? over(e) && !(scrolls(e.parentElement) && !over(e.parentElement)) : over(e);
const spill = [...document.querySelectorAll("table, div.table, figure, img, p, h2, h3")]
  .filter(spills).map(e => e.tagName);
document.body.setAttribute("data-spill", spill.join(",") || "none");
document.body.setAttribute("data-tables", document.querySelectorAll("table").length);
</script>"""


@needs_chromium
def test_nothing_spills_past_the_text_column_at_1400_px(report, tmp_path):
    """The report at 1,400 px, with a table far wider than the column added to it."""
    page, _ = report
    wide = pd.DataFrame({f"a_long_column_name_{i}": [0.123456] for i in range(40)})
    probe = tmp_path / "probe.html"
    probe.write_text(
        page.replace("</body>", table_html(wide) + _SPILL_PROBE + "</body>"), encoding="utf-8"
    )
    dom = dump_dom(probe, width=1400)
    assert 'data-spill="none"' in dom, re.search(r'data-spill="[^"]*"', dom)
    assert int(re.search(r'data-tables="(\d+)"', dom).group(1)) >= 4  # the probe saw the page
