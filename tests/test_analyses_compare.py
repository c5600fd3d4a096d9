"""Paired, group and scaling statistics (zooscope.analyses.compare) against scipy, statsmodels and
brute-force enumeration, on scores read back from a results database by manifest metadata."""

from __future__ import annotations

import itertools

import numpy as np
import pandas as pd
import pytest
import statsmodels.api as sm
from scipy import stats

from zooscope.analyses import compare
from zooscope.analyses.contrasts import score_frame
from zooscope.results.db import ResultsDB

# Hand-written test scores (subject 1 and 2) of five architectures x two objectives; the two
# memorability seeds of "res" are averaged into one member of its pair.
SCORES = {
    # uid: (arch, task, seed, train_data_size, subject-1 score, subject-2 score)
    "alex_mem": ("alex", "memorability", 0, 60_000, 0.31, 0.35),
    "alex_cls": ("alex", "classification", 0, 1_281_167, 0.27, 0.29),
    "res_mem_s0": ("res", "memorability", 0, 60_000, 0.40, 0.38),
    "res_mem_s1": ("res", "memorability", 1, 60_000, 0.44, 0.42),
    "res_cls": ("res", "classification", 0, 1_281_167, 0.36, 0.40),
    "vgg_mem": ("vgg", "memorability", 0, 60_000, 0.22, 0.26),
    "vgg_cls": ("vgg", "classification", 0, 1_281_167, 0.25, 0.21),
    "dense_mem": ("dense", "memorability", 0, 60_000, 0.37, 0.33),
    "dense_cls": ("dense", "classification", 0, 1_281_167, 0.30, 0.30),
    "mob_mem": ("mob", "memorability", 0, 60_000, 0.29, 0.33),
    "mob_cls": ("mob", "classification", 0, 1_281_167, 0.24, 0.20),
    "vit_cls": ("vit", "classification", 0, 14_000_000, 0.33, 0.35),
    "vit_big": ("vit", "classification", 1, 300_000_000, 0.41, 0.39),
    "alone_mem": ("alone", "memorability", 0, 10_000, 0.18, 0.20),
}


@pytest.fixture(scope="module")
def db(tmp_path_factory):
    path = tmp_path_factory.mktemp("cmp") / "r.duckdb"
    with ResultsDB(path) as database:
        run = database.start_run("bench", {"metrics": ["versa"]})
        for uid, (arch, task, seed, size, s1, s2) in SCORES.items():
            rows = [
                (0, "l0", subject, "IT", "versa", split, value + (0.1 if split == "train" else 0))
                for subject, value in (("1", s1), ("2", s2))
                for split in ("train", "test")
            ]
            scores = pd.DataFrame(
                rows,
                columns=["layer_index", "layer_name", "subject", "roi", "metric", "split", "score"],
            )
            model = {
                "model_uid": uid,
                "arch": arch,
                "task": task,
                "seed": seed,
                "train_data_size": size,
            }
            database.write_model(run, model, None, scores, None, 0.0)
        database.finish_run(run)
    with ResultsDB(path, read_only=True) as database:
        yield database


def _mean(uid: str) -> float:
    return (SCORES[uid][4] + SCORES[uid][5]) / 2


def test_parse_contrast():
    assert compare.parse_contrast("task=memorability,classification") == (
        "task",
        ("memorability", "classification"),
    )
    for bad in ("task", "task=a", "task=a,a", "=a,b", "task=a,b,c"):
        with pytest.raises(ValueError, match="COLUMN=LEVEL_A,LEVEL_B"):
            compare.parse_contrast(bad)


def test_pairs_are_matched_by_metadata_and_seeds_averaged(db):
    frame = score_frame(db, metric="versa", level="model")
    pairs = compare.paired_scores(frame, "arch", "task", ("memorability", "classification"))
    assert list(pairs["pair"]) == ["alex", "dense", "mob", "res", "vgg"]  # vit, alone: no pair
    res = pairs.set_index("pair").loc["res"]
    assert res["n_a"] == 2 and res["models_a"] == "res_mem_s0,res_mem_s1"
    assert res["score_a"] == pytest.approx((_mean("res_mem_s0") + _mean("res_mem_s1")) / 2)
    assert res["score_b"] == pytest.approx(_mean("res_cls"))


def test_paired_t_and_wilcoxon_match_scipy(db):
    frame = score_frame(db, metric="versa", level="model")
    got = compare.paired_tests(frame, "arch", "task", ("memorability", "classification"))
    assert len(got) == 1
    got = got.iloc[0]
    archs = ["alex", "dense", "mob", "res", "vgg"]
    a = np.array(
        [
            _mean(f"{x}_mem") if x != "res" else (_mean("res_mem_s0") + _mean("res_mem_s1")) / 2
            for x in archs
        ]
    )
    b = np.array([_mean(f"{x}_cls") for x in archs])
    ref = stats.ttest_rel(a, b)
    interval = ref.confidence_interval(0.95)
    assert got["n_pairs"] == 5 and got["df"] == 4
    assert got["t"] == pytest.approx(ref.statistic, rel=1e-12)
    assert got["p_t"] == pytest.approx(ref.pvalue, rel=1e-10)
    assert got["ci_low"] == pytest.approx(interval.low, rel=1e-10)
    assert got["ci_high"] == pytest.approx(interval.high, rel=1e-10)
    assert got["mean_diff"] == pytest.approx(np.mean(a - b), rel=1e-12)
    wil = stats.wilcoxon(a, b)
    assert got["w"] == wil.statistic and got["p_wilcoxon"] == pytest.approx(wil.pvalue, rel=1e-12)


def test_wilcoxon_p_equals_exact_enumeration_of_sign_flips():
    rng = np.random.default_rng(3)
    d = rng.normal(0.3, 1.0, size=9)
    a, b = d + 1.0, np.ones(9)
    got = compare.paired_tests(
        pd.DataFrame(
            {
                "model_uid": [f"m{i}{s}" for i in range(9) for s in "ab"],
                "pair": np.repeat(np.arange(9), 2),
                "g": ["a", "b"] * 9,
                "score": np.ravel(np.column_stack([a, b])),
            }
        ),
        "pair",
        "g",
        ("a", "b"),
    ).iloc[0]
    ranks = stats.rankdata(np.abs(d))
    observed = min(ranks[d > 0].sum(), ranks[d < 0].sum())
    flips = np.array(list(itertools.product([0, 1], repeat=9)), dtype=bool)
    plus = (flips * ranks).sum(axis=1)
    null = np.minimum(plus, ranks.sum() - plus)
    assert got["w"] == observed
    assert got["p_wilcoxon"] == pytest.approx(np.mean(null <= observed), rel=1e-12)


def test_mann_whitney_matches_scipy_and_enumeration(db):
    frame = score_frame(db, metric="versa", level="model")
    got = compare.group_tests(frame, "task", ("memorability", "classification")).iloc[0]
    mem = [u for u in SCORES if SCORES[u][1] == "memorability"]
    cls = [u for u in SCORES if SCORES[u][1] == "classification"]
    a, b = np.array([_mean(u) for u in mem]), np.array([_mean(u) for u in cls])
    ref = stats.mannwhitneyu(a, b, alternative="two-sided")
    assert (got["n_a"], got["n_b"]) == (7, 7)
    assert got["u"] == ref.statistic and got["p_mwu"] == pytest.approx(ref.pvalue, rel=1e-12)
    # exact two-sided p by enumerating every split of the pooled scores (no ties here)
    pooled = np.concatenate([a, b])
    assert len(np.unique(pooled)) == pooled.size
    ranks = stats.rankdata(pooled)
    u_of = lambda idx: ranks[list(idx)].sum() - a.size * (a.size + 1) / 2  # noqa: E731
    null = np.array([u_of(c) for c in itertools.combinations(range(pooled.size), a.size)])
    centre = a.size * b.size / 2
    p_exact = np.mean(np.abs(null - centre) >= abs(u_of(range(a.size)) - centre) - 1e-9)
    assert got["p_mwu"] == pytest.approx(p_exact, rel=1e-12)
    greater = sum(x > y for x in a for y in b)
    assert got["rank_biserial"] == pytest.approx(2 * greater / (a.size * b.size) - 1)


def test_scaling_fit_and_band_match_statsmodels(db):
    frame = score_frame(db, metric="versa", level="model")
    fit = compare.scaling_fit(frame).iloc[0]
    band = compare.scaling_band(frame, n_points=7)
    x = np.log10([SCORES[u][3] for u in sorted(SCORES)])
    y = np.array([_mean(u) for u in sorted(SCORES)])
    ols = sm.OLS(y, sm.add_constant(x)).fit()
    assert fit["n"] == len(SCORES)
    assert fit["slope"] == pytest.approx(ols.params[1], rel=1e-10)
    assert fit["intercept"] == pytest.approx(ols.params[0], rel=1e-10)
    assert fit["slope_se"] == pytest.approx(ols.bse[1], rel=1e-10)
    assert fit["p_slope"] == pytest.approx(ols.pvalues[1], rel=1e-8)
    assert [fit["slope_ci_low"], fit["slope_ci_high"]] == pytest.approx(
        list(ols.conf_int(0.05)[1]), rel=1e-10
    )
    assert fit["r2"] == pytest.approx(ols.rsquared, rel=1e-10)
    grid = band["log_x"].to_numpy()
    assert grid[0] == pytest.approx(x.min()) and grid[-1] == pytest.approx(x.max())
    ref = ols.get_prediction(sm.add_constant(grid)).summary_frame(alpha=0.05)
    np.testing.assert_allclose(band["fit"], ref["mean"], rtol=1e-10)
    np.testing.assert_allclose(band["ci_low"], ref["mean_ci_lower"], rtol=1e-10)
    np.testing.assert_allclose(band["ci_high"], ref["mean_ci_upper"], rtol=1e-10)


def test_subject_level_pairs_within_subjects(db):
    frame = score_frame(db, metric="versa", level="subject")
    pairs = compare.paired_scores(frame, "arch", "task", ("memorability", "classification"))
    assert len(pairs) == 10 and set(pairs["subject"]) == {"1", "2"}
    alex1 = pairs[(pairs["pair"] == "alex") & (pairs["subject"] == "1")].iloc[0]
    assert (alex1["score_a"], alex1["score_b"]) == pytest.approx((0.31, 0.27))


def test_too_few_pairs_give_nan_not_an_error():
    frame = pd.DataFrame(
        {
            "model_uid": ["a", "b"],
            "arch": ["x", "x"],
            "task": ["m", "c"],
            "score": [0.3, 0.2],
            "metric": "versa",
            "roi": "IT",
        }
    )
    got = compare.paired_tests(frame, "arch", "task", ("m", "c")).iloc[0]
    assert got["n_pairs"] == 1 and got["mean_diff"] == pytest.approx(0.1)
    assert np.isnan(got["t"]) and np.isnan(got["p_wilcoxon"])
    with pytest.raises(ValueError, match="not found in 'task'"):
        compare.paired_tests(frame, "arch", "task", ("m", "memorability"))


def _cli(args):
    from io import StringIO

    from typer.testing import CliRunner

    from zooscope.cli import app

    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output + repr(result.exception)
    return pd.read_csv(StringIO(result.stdout)) if "csv" in args else result.stdout


def test_cli_paired_groups_and_scaling(db, tmp_path):
    base = ["--db", str(db.path), "--metric", "versa", "--format", "csv"]
    contrast = ["--contrast", "task=memorability,classification"]
    paired = _cli(
        ["analyze", "paired", *base, "--pair-by", "arch", *contrast, "--out", str(tmp_path)]
    )
    frame = score_frame(db, metric="versa", level="model")
    ref = compare.paired_tests(frame, "arch", "task", ("memorability", "classification"))
    assert paired.loc[0, "p_t"] == pytest.approx(ref.loc[0, "p_t"], rel=1e-9)
    assert (tmp_path / "paired_task.png").exists() and (tmp_path / "pairs_task.csv").exists()
    groups = _cli(["analyze", "groups", *base, *contrast])
    assert groups.loc[0, "n_a"] == 7 and groups.loc[0, "u"] == pytest.approx(
        compare.group_tests(frame, "task", ("memorability", "classification")).loc[0, "u"]
    )
    scaling = _cli(["analyze", "scaling", *base, "--out", str(tmp_path)])
    assert scaling.loc[0, "slope"] == pytest.approx(compare.scaling_fit(frame).loc[0, "slope"])
    assert (tmp_path / "scaling_train_data_size.png").exists()
    subject = _cli(
        ["analyze", "paired", *base, "--pair-by", "arch", *contrast, "--level", "subject"]
    )
    assert subject.loc[0, "n_pairs"] == 10


def test_cli_rejects_a_malformed_contrast(db):
    from typer.testing import CliRunner

    from zooscope.cli import app

    result = CliRunner().invoke(
        app, ["analyze", "groups", "--db", str(db.path), "--contrast", "task=memorability"]
    )
    assert result.exit_code != 0 and "COLUMN=LEVEL_A,LEVEL_B" in result.output


def test_report_has_the_comparison_sections(db, tmp_path):
    from zooscope.report.html import build_report

    index = build_report(db, tmp_path / "report", n_boot=50, roi="IT")
    page = index.read_text(encoding="utf-8")
    assert "<h2>Matched pairs and groups</h2>" in page and "Mann–Whitney" in page
    assert "<h2>Training-set size</h2>" in page
    explicit = build_report(
        db, tmp_path / "r2", n_boot=50, roi="IT", pair_by="arch",
        contrast="task=classification,memorability",
    ).read_text(encoding="utf-8")  # fmt: skip
    assert "classification against memorability (task); models matched by arch" in explicit
