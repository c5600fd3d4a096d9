"""Tests of the results database (zooscope.results.db)."""

from __future__ import annotations

import duckdb
import numpy as np
import pandas as pd
import pytest

from zooscope._hashing import hash_json
from zooscope.results.db import SCHEMA_VERSION, SUBJECT_MEAN, ResultsDB


def _layers(n_layers: int) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "layer_index": range(n_layers),
            "layer_name": [f"l{i}" for i in range(n_layers)],
            "module_type": "Conv2d",
            "n_features": [100 * (i + 1) for i in range(n_layers)],
        }
    )


def _scores(rng: np.random.Generator, n_layers: int, subjects=("1", "2")) -> pd.DataFrame:
    rows = []
    for layer in range(n_layers):
        for subject in subjects:
            for metric in ("crsa", "versa"):
                for split in ("train", "test"):
                    rows.append((layer, f"l{layer}", subject, "OTC", metric, split, rng.normal()))
    return pd.DataFrame(
        rows, columns=["layer_index", "layer_name", "subject", "roi", "metric", "split", "score"]
    )


@pytest.fixture
def db(tmp_path):
    with ResultsDB(tmp_path / "r.duckdb") as database:
        yield database


def test_write_and_best_layer(db):
    rng = np.random.default_rng(0)
    run = db.start_run("bench", {"metrics": ["crsa", "versa"]})
    scores = _scores(rng, 4)
    db.write_model(
        run,
        {"model_uid": "m1", "display_name": "M1", "compare_x": "a"},
        _layers(4),
        scores,
        None,
        1.5,
    )
    db.finish_run(run)
    config_hash = hash_json({"metrics": ["crsa", "versa"]})
    assert db.completed_models("bench", config_hash) == {"m1"}
    best = db.best_layer_scores()
    assert len(best) == 4  # 2 subjects x 2 metrics
    # reference with pandas: argmax of train, lowest index on ties, its test score
    train = scores[scores.split == "train"].sort_values(
        ["score", "layer_index"], ascending=[False, True]
    )
    ref = train.groupby(["subject", "metric"]).head(1)
    test = scores[scores.split == "test"].set_index(["subject", "metric", "layer_index"])["score"]
    for row in ref.itertuples():
        got = best[(best.subject == row.subject) & (best.metric == row.metric)].iloc[0]
        assert got.layer_index == row.layer_index
        assert got.train_score == pytest.approx(row.score)
        assert got.test_score == pytest.approx(test[(row.subject, row.metric, row.layer_index)])
    models = db.models()
    assert models.loc[0, "compare_x"] == "a"
    assert db.duplicate_score_keys().empty


def test_best_layer_ties_and_nan(db):
    run = db.start_run("b", {})
    scores = pd.DataFrame(
        {
            "layer_index": [0, 1, 2, 0, 1, 2],
            "layer_name": ["a", "b", "c"] * 2,
            "subject": "1",
            "roi": "OTC",
            "metric": "crsa",
            "split": ["train"] * 3 + ["test"] * 3,
            "score": [np.nan, 0.5, 0.5, 10.0, 20.0, 30.0],
        }
    )
    db.write_model(run, {"model_uid": "m"}, _layers(3), scores, None, 0.0)
    best = db.best_layer_scores()
    assert best.layer_index.tolist() == [1]  # NaN never wins, tie -> lowest index
    assert best.test_score.tolist() == [20.0]


def test_published_rows_pass_through(db):
    run = db.start_run("pub", {"source": "paper"})
    scores = pd.DataFrame(
        {
            "layer_index": pd.array([None, None, None], dtype="Int64"),
            "layer_name": [None] * 3,
            "subject": ["1", "2", SUBJECT_MEAN],
            "roi": "OTC",
            "metric": "crsa",
            "split": "test",
            "score": [0.2, 0.4, 0.3],
        }
    )
    db.write_model(run, {"model_uid": "p"}, None, scores, None, 0.0)
    best = db.best_layer_scores()
    assert set(best.selection) == {"published"}
    assert best.layer_index.isna().all()
    db.write_ceilings(
        "pub",
        pd.DataFrame(
            {
                "subject": ["1", "2"],
                "roi": "OTC",
                "method": "gsn_rsa",
                "value": [0.8, 0.6],
                "lower": np.nan,
                "upper": np.nan,
            }
        ),
    )
    summary = db.summary()
    assert summary.n_subjects.tolist() == [2]
    assert summary.score.tolist() == pytest.approx([0.3])
    assert summary.ceiling.tolist() == pytest.approx([0.7])
    assert summary.explained_variance.tolist() == pytest.approx([0.3**2 / 0.7**2])


def test_rewrite_replaces_rows(db):
    rng = np.random.default_rng(1)
    run = db.start_run("b", {})
    db.write_model(run, {"model_uid": "m"}, _layers(3), _scores(rng, 3), None, 0.0)
    new = _scores(rng, 2)
    db.write_model(run, {"model_uid": "m"}, _layers(2), new, None, 0.0)
    got = db.scores().sort_values(["layer_index", "subject", "metric", "split"])["score"].to_numpy()
    ref = new.sort_values(["layer_index", "subject", "metric", "split"])["score"].to_numpy()
    np.testing.assert_array_equal(got, ref)
    assert len(db.layers()) == 2


def test_write_model_is_atomic(db):
    rng = np.random.default_rng(2)
    run = db.start_run("b", {})
    db.write_model(run, {"model_uid": "m"}, _layers(2), _scores(rng, 2), None, 0.0)
    before = db.scores()
    bad_rsms = pd.DataFrame(
        {
            "metric": ["crsa"],
            "subject": ["1"],
            "roi": ["OTC"],
            "layer_name": ["l0"],
            "split": ["test"],
            "rsm": [np.zeros(3)],
        }
    )
    # n_features not an integer -> fails inside the transaction, after the DELETEs
    layers = _layers(2).assign(n_features=["x", "y"])
    with pytest.raises((duckdb.Error, ValueError, TypeError)):
        db.write_model(run, {"model_uid": "m"}, layers, _scores(rng, 2), bad_rsms, 0.0)
    pd.testing.assert_frame_equal(db.scores(), before)
    assert len(db.con.execute("select * from completions").fetchall()) == 1


def test_failure_injected_inside_transaction_rolls_back(db, monkeypatch):
    rng = np.random.default_rng(3)
    run = db.start_run("b", {})
    db.write_model(run, {"model_uid": "m"}, _layers(2), _scores(rng, 2), None, 0.0)
    before = db.scores()
    original = ResultsDB._insert_frame

    def exploding(self, con, table, frame, columns):
        if table == "scores":
            raise RuntimeError("disk full")
        return original(self, con, table, frame, columns)

    monkeypatch.setattr(ResultsDB, "_insert_frame", exploding)
    with pytest.raises(RuntimeError, match="disk full"):
        db.write_model(
            run, {"model_uid": "m", "display_name": "new"}, _layers(2), _scores(rng, 2), None, 0.0
        )
    pd.testing.assert_frame_equal(db.scores(), before)
    assert len(db.layers()) == 2
    assert db.models().display_name.isna().all()


def test_validation_errors(db):
    run = db.start_run("b", {})
    scores = _scores(np.random.default_rng(0), 1)
    with pytest.raises(ValueError, match="metric"):
        db.write_model(run, {"model_uid": "m"}, _layers(1), scores.assign(metric="wrsa"), None, 0)
    with pytest.raises(ValueError, match="repeat"):
        db.write_model(run, {"model_uid": "m"}, _layers(1), pd.concat([scores, scores]), None, 0)
    with pytest.raises(ValueError, match="model_uid"):
        db.write_model(run, {"name": "m"}, _layers(1), scores, None, 0)
    with pytest.raises(KeyError, match="start_run"):
        db.write_model("nope", {"model_uid": "m"}, _layers(1), scores, None, 0)


def test_failed_models(db):
    run = db.start_run("b", {"a": 1})
    ch = hash_json({"a": 1})
    db.record_failure(run, "bad", "load", "KeyError: x", "Traceback ...")
    db.record_failure(run, "later_ok", "score", "boom", "tb")
    assert db.failed_models("b", ch) == {"bad", "later_ok"}
    db.write_model(
        run, {"model_uid": "later_ok"}, _layers(1), _scores(np.random.default_rng(0), 1), None, 0
    )
    assert db.failed_models("b", ch) == {"bad"}
    assert db.failed_models("other", ch) == set()
    assert db.failures().stage.tolist() == ["load", "score"]


def test_rsms_roundtrip(db):
    rng = np.random.default_rng(4)
    run = db.start_run("b", {})
    n = 7
    vecs = [rng.normal(size=n * (n - 1) // 2).astype(np.float32) for _ in range(2)]
    rsms = pd.DataFrame(
        {
            "metric": ["crsa", "versa"],
            "subject": ["1", "1"],
            "roi": "OTC",
            "layer_name": "l0",
            "split": "test",
            "rsm": vecs,
        }
    )
    db.write_model(run, {"model_uid": "m"}, _layers(1), _scores(rng, 1), rsms, 0)
    got = db.rsms(metric="versa")
    assert got.n_images.tolist() == [n]
    np.testing.assert_array_equal(got.rsm.iloc[0], vecs[1])
    with pytest.raises(ValueError, match="upper triangle"):
        db.write_model(
            run,
            {"model_uid": "m"},
            _layers(1),
            _scores(rng, 1),
            rsms.assign(rsm=[np.zeros(4)] * 2),
            0,
        )


def test_migration_from_version_zero_and_newer_refused(tmp_path):
    path = tmp_path / "old.duckdb"
    duckdb.connect(str(path)).close()  # an empty (version 0) file
    with ResultsDB(path) as db:
        assert db.schema_version == SCHEMA_VERSION
    con = duckdb.connect(str(path))
    con.execute("UPDATE schema_info SET version = 999")
    con.close()
    with pytest.raises(RuntimeError, match="newer"):
        ResultsDB(path)


def test_version_one_file_upgrades_keeping_rows(tmp_path):
    from zooscope.results import schema as db_module

    path = tmp_path / "v1.duckdb"
    con = duckdb.connect(str(path))
    db_module.MIGRATIONS[0](con)  # a file as version 1 wrote it, with one model's rows
    con.execute("CREATE TABLE schema_info (version INTEGER); INSERT INTO schema_info VALUES (1)")
    con.execute("INSERT INTO layers VALUES ('m', 'b', 'c', 0, 'l0', 'Conv2d', 10, NULL, 'r')")
    con.execute(
        "INSERT INTO scores VALUES ('m', 0, 'l0', '1', 'OTC', 'crsa', 'train', 0.5, 'b', 'c', 'r')"
    )
    con.execute(
        "INSERT INTO scores VALUES ('m', 0, 'l0', '1', 'OTC', 'crsa', 'test', 0.4, 'b', 'c', 'r')"
    )
    con.execute("INSERT INTO ceilings VALUES ('b', '1', 'OTC', 'gsn_rsa', 0.8, 0.7, 0.9)")
    con.close()
    with ResultsDB(path) as db:
        assert db.schema_version == SCHEMA_VERSION
        assert np.isnan(db.layers().loc[0, "alpha_edge_fraction"])
        assert pd.isna(db.ceilings().loc[0, "note"])
        best = db.best_layer_scores()
        assert best[["layer_name", "train_score", "test_score"]].values.tolist() == [
            ["l0", 0.5, 0.4]
        ]
        views = db.con.execute("SELECT count(*) FROM duckdb_views() WHERE NOT internal").fetchone()
        assert views[0] == 0  # the best-layer rule lives in Python only


def test_alpha_edge_and_ceiling_note_are_stored(db):
    run = db.start_run("b", {})
    layers = _layers(2).assign(alpha_edge_fraction=[0.25, np.nan])
    db.write_model(run, {"model_uid": "m"}, layers, _scores(np.random.default_rng(0), 2), None, 0)
    np.testing.assert_array_equal(db.layers()["alpha_edge_fraction"], [0.25, np.nan])
    ceilings = pd.DataFrame(
        {
            "subject": ["1", "2"],
            "roi": "OTC",
            "method": "gsn_rsa",
            "value": [0.8, 0.9],
            "lower": np.nan,
            "upper": np.nan,
            "note": ["scale grid widened to 0..4", None],
        }
    )
    db.write_ceilings("b", ceilings)
    notes = db.ceilings()["note"]
    assert notes.iloc[0] == "scale grid widened to 0..4" and pd.isna(notes.iloc[1])


def test_export(db, tmp_path):
    rng = np.random.default_rng(5)
    run = db.start_run("b", {})
    rsms = pd.DataFrame(
        {
            "metric": ["crsa"],
            "subject": ["1"],
            "roi": "OTC",
            "layer_name": "l0",
            "split": "test",
            "rsm": [np.ones(3, np.float32)],
        }
    )
    db.write_model(
        run, {"model_uid": "m", "arch_class": "CNN"}, _layers(2), _scores(rng, 2), rsms, 0
    )
    tidy = tmp_path / "tidy.csv"
    db.export(tidy)
    df = pd.read_csv(tidy)
    assert len(df) == len(db.scores()) and (df.arch_class == "CNN").all()
    files = db.export(tmp_path / "tables", fmt="parquet")
    assert {p.stem for p in files} >= {"models", "scores", "rsms", "best_layer_scores"}
    assert len(pd.read_parquet(tmp_path / "tables" / "rsms.parquet").rsm.iloc[0]) == 3
    files = db.export(tmp_path / "csv", fmt="csv")
    assert "rsms" not in {p.stem for p in files}
