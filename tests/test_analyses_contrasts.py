"""Tests of the group contrasts against statsmodels/pandas and Conwell et al.'s published data."""

from __future__ import annotations

import itertools
import logging

import numpy as np
import pandas as pd
import pytest
import statsmodels.formula.api as smf
from reference_data import CONWELL, needs_conwell2024

from zooscope.analyses.contrasts import (
    cohens_d,
    group_summary,
    mixed_contrast,
    normalize_within_subject,
    ols_contrast,
    pairwise_contrasts,
    permutation_pvalue,
    score_frame,
)
from zooscope.results.db import ResultsDB
from zooscope.results.importers import import_conwell2024

needs_conwell = needs_conwell2024


@pytest.fixture(scope="module")
def figure2():
    fig = pd.read_csv(CONWELL / "figure_data" / "Figure2.csv")
    return fig.rename(columns={"architecture": "model_uid"}).assign(
        subj_id=lambda d: d.subj_id.astype(str)
    )


@pytest.fixture(scope="module")
def db(tmp_path_factory):
    with ResultsDB(tmp_path_factory.mktemp("db") / "c.duckdb") as database:
        import_conwell2024(database, CONWELL)
        yield database


@needs_conwell
def test_ols_matches_statsmodels_on_figure2(figure2):
    got = ols_contrast(figure2, "contrast", subject="subj_id")
    for metric, sub in figure2.groupby("metric"):
        ref = smf.ols("score ~ contrast + C(subj_id)", data=sub).fit()
        conf = ref.conf_int()
        mine = got[got.metric == metric].set_index("term")
        names = {"Intercept": "Intercept", "contrast[T.Transformer]": "contrast[T.Transformer]"}
        names.update({f"C(subj_id)[T.{s}]": f"subject[T.{s}]" for s in ("2", "5", "7")})
        for ref_name, my_name in names.items():
            assert mine.loc[my_name, "estimate"] == pytest.approx(ref.params[ref_name], rel=1e-10)
            assert mine.loc[my_name, "ci_low"] == pytest.approx(conf.loc[ref_name, 0], rel=1e-10)
            assert mine.loc[my_name, "ci_high"] == pytest.approx(conf.loc[ref_name, 1], rel=1e-10)
            assert mine.loc[my_name, "p_value"] == pytest.approx(ref.pvalues[ref_name], rel=1e-8)


@needs_conwell
def test_ols_reference_level(figure2):
    got = ols_contrast(figure2, "contrast", subject="subj_id", reference="Transformer")
    default = ols_contrast(figure2, "contrast", subject="subj_id")
    a = got[got.term == "contrast[T.CNN]"].estimate.to_numpy()
    b = default[default.term == "contrast[T.Transformer]"].estimate.to_numpy()
    np.testing.assert_allclose(a, -b)


@needs_conwell
def test_bootstrap_reproducible_with_seed(figure2):
    one = group_summary(figure2, "contrast", subject="subj_id", seed=3, n_boot=500)
    two = group_summary(figure2, "contrast", subject="subj_id", seed=3, n_boot=500)
    other = group_summary(figure2, "contrast", subject="subj_id", seed=4, n_boot=500)
    pd.testing.assert_frame_equal(one, two)
    assert not np.allclose(one.ci_low, other.ci_low)
    ref = (
        figure2.groupby(["metric", "contrast", "model_uid"])
        .score.mean()
        .groupby(["metric", "contrast"])
        .mean()
    )
    np.testing.assert_allclose(one["mean"], ref.to_numpy())
    assert (one.ci_low < one["mean"]).all() and (one["mean"] < one.ci_high).all()
    assert (one.ci_subject_low < one["mean"]).all() and (one["mean"] < one.ci_subject_high).all()
    assert (one.n_subjects == 4).all()


@needs_conwell
@pytest.mark.parametrize("column", ["compare_training", "compare_diet_imagenetsize"])
def test_group_means_equal_pandas_groupby(db, column):
    ref = pd.read_csv(CONWELL / "results_summary.csv").dropna(subset=[column])
    ref["metric"] = ref.metric.map({"crsa": "crsa", "wrsa": "versa", "srpr": "encoding_r"})
    ref = ref.groupby(["metric", column]).score.agg(["mean", "size"])
    got = group_summary(score_frame(db, level="model"), column, n_boot=200).set_index(
        ["metric", "group"]
    )
    assert len(got) == len(ref)
    np.testing.assert_allclose(got.loc[ref.index, "mean"], ref["mean"], rtol=0, atol=1e-12)
    np.testing.assert_array_equal(got.loc[ref.index, "n_models"], ref["size"])


@needs_conwell
def test_within_subject_normalization_reproduces_figure4a():
    fig = pd.read_csv(CONWELL / "figure_data" / "Figure4A.csv")
    raw = fig.assign(score=fig.score - fig.grand_mean + fig.subj_mean)
    np.testing.assert_allclose(
        raw.groupby(["metric", "subj_id"]).score.transform("mean"), fig.subj_mean, atol=1e-12
    )
    np.testing.assert_allclose(
        normalize_within_subject(raw, subject="subj_id"), fig.score, atol=1e-12
    )


def _planted(rng, n_per=12, effect=0.1, subjects=("1", "2", "5", "7")):
    rows = []
    for g, shift in (("a", 0.0), ("b", effect), ("c", 2 * effect)):
        for m in range(n_per):
            base = rng.normal(0.3 + shift, 0.03)
            for k, s in enumerate(subjects):
                rows.append(
                    {
                        "model_uid": f"{g}{m}",
                        "group": g,
                        "subject": s,
                        "metric": "crsa",
                        "score": base + 0.02 * k + rng.normal(0, 0.005),
                    }
                )
    return pd.DataFrame(rows)


def test_pairwise_contrasts_planted():
    rng = np.random.default_rng(0)
    df = _planted(rng)
    got = pairwise_contrasts(df, "group", n_perm=2000, seed=1)
    assert list(zip(got.group_a, got.group_b, strict=True)) == [("a", "b"), ("a", "c"), ("b", "c")]
    model = df.groupby(["group", "model_uid"]).score.mean()
    for row in got.itertuples():
        a, b = model[row.group_a].to_numpy(), model[row.group_b].to_numpy()
        assert row.diff == pytest.approx(a.mean() - b.mean())
        pooled = np.sqrt(
            ((a.size - 1) * a.var(ddof=1) + (b.size - 1) * b.var(ddof=1)) / (a.size + b.size - 2)
        )
        assert row.cohen_d == pytest.approx((a.mean() - b.mean()) / pooled)
        assert row.ci_low < row.diff < row.ci_high
        assert row.p_perm < 0.01 and row.p_holm >= row.p_perm
    assert (got.p_fdr <= got.p_holm + 1e-15).all()
    # planted differences -0.1, -0.2, -0.1 lie inside the intervals
    assert (got.ci_low < np.array([-0.1, -0.2, -0.1])).all() and (
        np.array([-0.1, -0.2, -0.1]) < got.ci_high
    ).all()


def test_permutation_pvalue_matches_exact_enumeration():
    a = np.array([0.1, 0.4, 0.35, 0.5])
    b = np.array([0.2, 0.05, 0.15, 0.3, 0.12])
    pooled = np.concatenate([a, b])
    obs = abs(a.mean() - b.mean())
    extreme = total = 0
    for idx in itertools.combinations(range(pooled.size), a.size):
        mask = np.zeros(pooled.size, bool)
        mask[list(idx)] = True
        total += 1
        extreme += abs(pooled[mask].mean() - pooled[~mask].mean()) >= obs - 1e-12
    exact = extreme / total
    mc = permutation_pvalue(a, b, 20000, np.random.default_rng(0))
    assert mc == pytest.approx(exact, abs=0.01)
    assert cohens_d(a, b) > 0


def test_mixed_model_matches_statsmodels_and_recovers_effect():
    rng = np.random.default_rng(2)
    rows = []
    for arch in range(15):
        intercept, slope = rng.normal(0.1, 0.03), rng.normal(0.25, 0.04)
        for trained in (0, 1):
            for s in ("1", "2", "5", "7"):
                rows.append(
                    {
                        "model_uid": f"m{arch}_{trained}",
                        "name": f"arch{arch}",
                        "training": ["random", "trained"][trained],
                        "subject": s,
                        "metric": "versa",
                        "score": intercept + slope * trained + 0.01 * int(s) + rng.normal(0, 0.01),
                    }
                )
    df = pd.DataFrame(rows)
    got = mixed_contrast(df, "training", "name").set_index("term")
    ref = smf.mixedlm(
        "score ~ C(training) + C(subject)", df, groups=df["name"], re_formula="~C(training)"
    ).fit(reml=True)
    assert got.loc["training[T.trained]", "estimate"] == pytest.approx(
        ref.fe_params["C(training)[T.trained]"], rel=1e-6
    )
    assert got.loc["training[T.trained]", "se"] == pytest.approx(
        ref.bse_fe["C(training)[T.trained]"], rel=1e-5
    )
    assert (
        got.loc["training[T.trained]", "ci_low"] < 0.25 < got.loc["training[T.trained]", "ci_high"]
    )
    assert got.random_effects.iloc[0] == "(group | name)"
    # one row per model: random intercept only
    single = df.groupby(["model_uid", "name", "training", "metric"], as_index=False).score.mean()
    got1 = mixed_contrast(single, "training", "name", subject="subject")
    assert got1.random_effects.iloc[0] == "(1 | name)"


def test_errors():
    df = _planted(np.random.default_rng(0))
    with pytest.raises(ValueError, match="not in the score frame"):
        group_summary(df, "nope")
    with pytest.raises(ValueError, match="not found"):
        group_summary(df, "group", groups=["a", "zz"])
    with pytest.raises(ValueError, match="reference"):
        ols_contrast(df, "group", reference="zz")


def _one_pair(rng, names):
    """Trained and random models in which only ``arch0`` has both: too few pairs to fit."""
    rows = []
    for arch, training in names:
        for s in ("1", "2"):
            rows.append(
                {
                    "model_uid": f"{arch}_{training}", "name": arch, "training": training,
                    "subject": s, "metric": "versa", "roi": "OTC",
                    "score": 0.3 * (training == "trained") + 0.02 * int(s) + rng.normal(0, 0.01),
                }
            )  # fmt: skip
    return pd.DataFrame(rows)


def test_mixed_model_that_does_not_converge_says_so_in_one_sentence(caplog, recwarn):
    rng = np.random.default_rng(0)
    names = [("arch0", "trained"), ("arch0", "random")] + [(f"a{i}", "random") for i in range(4)]
    with caplog.at_level(logging.WARNING, logger="zooscope.analyses.contrasts"):
        got = mixed_contrast(_one_pair(rng, names), "training", "name")
    (said,) = [r.getMessage() for r in caplog.records]
    assert said.startswith("versa, OTC: the mixed model did not converge (1 pair(s) hold models")
    assert "use the ols or groups statistics model (--stats-model ols)" in said
    assert ("standard errors" in said) and got["se"].isna().any() == ("not available" in said)
    noisy = ("ConvergenceWarning", "RuntimeWarning")
    assert not [w for w in recwarn if w.category.__name__ in noisy]  # caught, not printed


def test_mixed_model_that_cannot_be_fitted_says_why():
    rng = np.random.default_rng(0)
    names = [("a", "trained"), ("b", "random"), ("c", "random"), ("d", "trained")]
    with pytest.raises(ValueError, match=r"the mixed model cannot be fitted .* use the ols"):
        mixed_contrast(_one_pair(rng, names), "training", "name")
