"""The HTML report and the analysis CLI, on Conwell et al.'s published data."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import statsmodels.formula.api as smf
from browser import needs_chromium, screenshot
from PIL import Image
from reference_data import CONWELL, needs_conwell2024
from typer.testing import CliRunner

from zooscope.cli import app

pytestmark = needs_conwell2024
runner = CliRunner()


@pytest.fixture(scope="module")
def db(tmp_path_factory):
    path = tmp_path_factory.mktemp("db") / "c.duckdb"
    result = runner.invoke(app, ["import-scores", "conwell2024", str(CONWELL), "--db", str(path)])
    assert result.exit_code == 0, result.output
    return path


def _csv(result):
    from io import StringIO

    assert result.exit_code == 0, result.output
    return pd.read_csv(StringIO(result.stdout))


@pytest.mark.parametrize("metric", ["crsa", "versa"])
def test_cli_ols_reproduces_figure2(db, metric):
    result = runner.invoke(
        app,
        ["analyze", "contrast", "--db", str(db), "--by", "compare_architecture", "--groups", "Convolutional,Transformer",
         "--metric", metric, "--stats-model", "ols", "--format", "csv"],
    )  # fmt: skip
    table = _csv(result)
    # every row says which metric and ROI it is (the published scores are of one ROI)
    assert list(table.columns) == [
        "metric", "roi", "term", "estimate", "ci_low", "ci_high", "p_value",
    ]  # fmt: skip
    assert table["roi"].nunique() == 1
    got = table.set_index("term")
    fig = pd.read_csv(CONWELL / "figure_data" / "Figure2.csv")
    fig = fig[fig.metric == {"crsa": "crsa", "versa": "wrsa"}[metric]]
    ref = smf.ols(
        "score ~ contrast + C(subj_id)", data=fig.assign(subj_id=fig.subj_id.astype(str))
    ).fit()
    term = "compare_architecture[T.Transformer]"
    assert got.loc[term, "estimate"] == pytest.approx(
        ref.params["contrast[T.Transformer]"], rel=1e-9
    )
    assert got.loc[term, "ci_low"] == pytest.approx(
        ref.conf_int().loc["contrast[T.Transformer]", 0], rel=1e-9
    )


def test_cli_group_means_and_summary(db):
    got = _csv(
        runner.invoke(
            app,
            [
                "analyze",
                "contrast",
                "--db",
                str(db),
                "--by",
                "compare_diet_imagenetsize",
                "--metric",
                "crsa",
                "--format",
                "csv",
            ],
        )
    )
    assert list(got.columns) == ["metric", "roi", "group", "n_models", "mean", "ci_low", "ci_high"]
    ref = (
        pd.read_csv(CONWELL / "results_summary.csv")
        .query("metric == 'crsa'")
        .groupby("compare_diet_imagenetsize")
        .score.mean()
    )
    assert got.set_index("group")["mean"].to_dict() == pytest.approx(ref.to_dict(), abs=1e-12)
    summary = _csv(
        runner.invoke(
            app,
            [
                "results",
                "summary",
                "--db",
                str(db),
                "--metric",
                "crsa",
                "--top",
                "5",
                "--format",
                "csv",
            ],
        )
    )
    assert summary["rank"].tolist() == [1, 2, 3, 4, 5]


def test_cli_similarity_and_export(db, tmp_path):
    result = runner.invoke(
        app,
        [
            "analyze",
            "similarity",
            "--db",
            str(db),
            "--metric",
            "versa",
            "--published",
            str(CONWELL),
            "--out",
            str(tmp_path / "sim"),
        ],
    )
    assert result.exit_code == 0, result.output
    matrix = pd.read_csv(tmp_path / "sim" / "similarity_versa.csv", index_col=0)
    assert matrix.shape == (225, 225)
    assert (tmp_path / "sim" / "mds_versa.png").exists()
    result = runner.invoke(
        app, ["results", "export", "--db", str(db), "--out", str(tmp_path / "all.parquet")]
    )
    assert result.exit_code == 0, result.output
    assert len(pd.read_parquet(tmp_path / "all.parquet")) == 1616


@pytest.fixture(scope="module")
def report(db, tmp_path_factory):
    out = tmp_path_factory.mktemp("report")
    result = runner.invoke(
        app,
        [
            "report",
            "--db",
            str(db),
            "--out",
            str(out),
            "--published",
            str(CONWELL),
            "--n-boot",
            "200",
        ],
    )
    assert result.exit_code == 0, result.output
    return out / "index.html"


def test_report_is_self_contained(report):
    text = report.read_text()
    assert text.count("data:image/png;base64,") >= 10
    assert "Run provenance" in text and "compare_training" in text
    assert "http://" not in text and "https://" not in text  # nothing fetched from the network


@needs_chromium
def test_report_renders_in_headless_chromium(report, tmp_path):
    shot = screenshot(report, tmp_path / "shot.png", width=1200, height=1600)
    with Image.open(shot) as im:
        im = im.convert("L")
        assert im.size == (1200, 1600)
        # a rendered page is not blank: many distinct grey levels (text, bars)
        assert len(np.unique(np.asarray(im))) > 20
    # Regenerate docs/report_screenshot.png with ZOOSCOPE_SAVE_SCREENSHOT=1 (tests never write the repo otherwise).
    if os.environ.get("ZOOSCOPE_SAVE_SCREENSHOT"):
        shutil.copy(shot, Path(__file__).resolve().parents[1] / "docs" / "report_screenshot.png")
