"""Layer CKA: the exact feature-centred Gram accumulator, the sidecar Gram store, depth alignment."""

from __future__ import annotations

import h5py
import numpy as np
import pytest

from zooscope.analyses.layer_cka import (
    layer_cka,
    layer_cka_from_grams,
    model_cka_matrix,
    relative_depth,
)
from zooscope.feature_extraction.cka_gram import CentredGramAccumulator, pack_gram, unpack_gram
from zooscope.results.grams import GramStore, grams_path
from zooscope.rsa import cka, cka_matrix


def _gram(X: np.ndarray) -> np.ndarray:
    """Brute force: H X X^T H in float64."""
    n = X.shape[0]
    H = np.eye(n) - np.ones((n, n)) / n
    X = X.astype(np.float64)
    return H @ X @ X.T @ H


def test_accumulator_equals_brute_force_in_any_chunk_order():
    rng = np.random.default_rng(0)
    X = (rng.standard_normal((40, 700)) + 50.0).astype(np.float32)  # large means: no cancellation
    acc = CentredGramAccumulator(40, 700)
    for start in (500, 0, 300):  # out of order, uneven chunks
        acc.add(X[:, start : start + {500: 200, 0: 300, 300: 200}[start]])
    assert acc.complete
    np.testing.assert_allclose(acc.gram(), _gram(X), rtol=1e-10, atol=1e-8)
    with pytest.raises(ValueError, match="more features"):
        acc.add(X[:, :1])


def _offset_activations(seed: int, n: int = 25, p: int = 900) -> np.ndarray:
    """Large, feature-dependent means (a post-ReLU-like offset pattern) and large image means."""
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, p)) + 40.0 + 5.0 * rng.standard_normal(p)
    return (X + 30.0 * rng.standard_normal((n, 1))).astype(np.float32)


def test_float32_products_keep_cka_to_1e_7():
    # What an extraction uses: float32 blocks (more than one of BLOCK columns), centred in place
    # or in copies; large feature and image means (see _offset_activations)
    X, Y = _offset_activations(4, 30, 5000), _offset_activations(5, 30, 3000)
    Y[:, :1000] += 3.0 * X[:, :1000]  # related representations: CKA well inside (0, 1)
    grams, expected = [], []
    for A in (X, Y):
        acc = CentredGramAccumulator(30, A.shape[1], product="float32")
        work = A.copy()
        acc.add(work[:, 1000:], overwrite=True)
        acc.add(work[:, :1000])  # a copy is centred: the chunk is left as it was
        np.testing.assert_array_equal(work[:, :1000], A[:, :1000])
        scale = np.abs(np.diag(_gram(A))).max()
        np.testing.assert_allclose(acc.gram(), _gram(A), rtol=0, atol=1e-6 * scale)
        grams.append(acc.gram())
        expected.append(A.astype(np.float64))
    for debiased in (False, True):
        assert cka(grams[0], grams[1], debiased=debiased, gram=True) == pytest.approx(
            cka(expected[0], expected[1], debiased=debiased), abs=1e-7
        )


def test_accumulator_agrees_with_rsa_cka_on_the_activations():
    rng = np.random.default_rng(1)
    X = rng.standard_normal((30, 300)).astype(np.float32)
    Y = (X[:, :50] @ rng.standard_normal((50, 80)) + rng.standard_normal((30, 80))).astype(
        np.float32
    )
    grams = []
    for A in (X, Y):
        acc = CentredGramAccumulator(30, A.shape[1])
        for start in range(0, A.shape[1], 64):
            acc.add(A[:, start : start + 64])
        grams.append(acc.gram())
    for debiased in (False, True):
        assert cka(grams[0], grams[1], debiased=debiased, gram=True) == pytest.approx(
            cka(X.astype(np.float64), Y.astype(np.float64), debiased=debiased), abs=1e-12
        )


def test_store_round_trip_and_replace(tmp_path):
    rng = np.random.default_rng(2)
    store = GramStore(grams_path(tmp_path / "results.duckdb"))
    assert store.path.name == "results.grams.h5"
    layers = [(i, f"l{i}", _gram(rng.standard_normal((6, 4 + i)))) for i in range(3)]
    assert store.write("bench", "m", layers) == 3
    got = store.read("m")
    assert [(i, n) for i, n, _ in got] == [(0, "l0"), (1, "l1"), (2, "l2")]
    for (_, _, a), (_, _, b) in zip(got, layers, strict=True):
        np.testing.assert_array_equal(np.triu(a), np.triu(b))  # stored: the upper triangle
        np.testing.assert_array_equal(a, a.T)
    store.write("bench", "m", layers[:1])  # a rerun replaces the model's layers
    assert len(store.read("m")) == 1
    with h5py.File(store.path, "a") as f:  # a killed write leaves only an .incomplete group
        f["bench"].create_group("x.incomplete")
    assert store.models() == {"bench": ["m"]}
    with pytest.raises(KeyError, match="no Gram matrices of 'x'"):
        store.read("x")
    # packed triangles (what a survey holds) are stored as they are; names= reads a subset
    store.write("bench", "p", [(i, n, pack_gram(g)) for i, n, g in layers])
    for (_, _, a), (_, _, b) in zip(store.read("p"), layers, strict=True):
        np.testing.assert_array_equal(a, unpack_gram(pack_gram(b)))
        np.testing.assert_array_equal(np.triu(a), np.triu(b))
    assert [n for _, n, _ in store.read("p", names=["l2"])] == ["l2"]
    with pytest.raises(ValueError, match="not an n"):
        pack_gram(np.zeros(5))
    store.write("other", "p", layers[:1])
    assert store.shared_benchmark(["m", "p"]) == "bench"
    with pytest.raises(KeyError, match="choose one"):
        store.shared_benchmark(["p"])


def test_identical_models_give_one_at_every_layer_and_depths_align(tmp_path):
    rng = np.random.default_rng(3)
    acts = [rng.standard_normal((20, 10 * (i + 1))) for i in range(5)]
    a = [(i, f"a{i}", _gram(x)) for i, x in enumerate(acts)]
    same = layer_cka_from_grams(a, a)
    np.testing.assert_allclose(same["cka"], 1.0, atol=1e-12)
    np.testing.assert_allclose(same["cka_debiased"], 1.0, atol=1e-12)
    # B has 3 layers at depths 0, 0.5, 1: A's depths 0, .25, .5, .75, 1 map to 0, 0, .5, .5, 1
    # (ties go to the shallower layer)
    b = [(i, f"b{i}", _gram(rng.standard_normal((20, 7)))) for i in range(3)]
    aligned = layer_cka_from_grams(a, b)
    assert list(aligned["layer_b"]) == ["b0", "b0", "b1", "b1", "b2"]
    np.testing.assert_allclose(aligned["depth_a"], relative_depth(5))
    store = GramStore(tmp_path / "g.h5")
    store.write("bench", "A", a)
    store.write("bench", "B", b)
    table = layer_cka(store, "A", "B")
    np.testing.assert_allclose(table["cka"], aligned["cka"], rtol=1e-14)
    matrix = model_cka_matrix(store, ["A", "B"], depth=1.0)
    assert matrix.loc["A", "B"] == pytest.approx(cka_matrix([a[-1][2], b[-1][2]])[0, 1], rel=1e-14)
    named = model_cka_matrix(store, ["A", "B"], layers={"A": "a0"}, debiased=True)
    assert named.loc["A", "B"] == pytest.approx(cka(a[0][2], b[2][2], debiased=True, gram=True))


def test_cli_layer_cka_reads_the_store_next_to_the_database(tmp_path):
    from io import StringIO

    import pandas as pd
    from typer.testing import CliRunner

    from zooscope.cli import app

    rng = np.random.default_rng(4)
    db = tmp_path / "results.duckdb"
    store = GramStore(grams_path(db))
    acts = [rng.standard_normal((15, 12)) for _ in range(4)]
    store.write("bench", "A", [(i, f"l{i}", _gram(x)) for i, x in enumerate(acts)])
    store.write("bench", "B", [(i, f"l{i}", _gram(x + 0.5 * i * rng.standard_normal(x.shape)))
                               for i, x in enumerate(acts)])  # fmt: skip
    result = CliRunner().invoke(
        app, ["analyze", "layer-cka", "--db", str(db), "--models", "A,B",
              "--format", "csv", "--out", str(tmp_path / "out")],
    )  # fmt: skip
    assert result.exit_code == 0, result.output + repr(result.exception)
    got = pd.read_csv(StringIO(result.stdout))
    pd.testing.assert_series_equal(got["cka"], layer_cka(store, "A", "B")["cka"], rtol=1e-12)
    assert got["cka"].iloc[0] == pytest.approx(1.0) and got["cka"].iloc[-1] < 0.95
    assert (tmp_path / "out" / "layer_cka.png").exists()
    assert (tmp_path / "out" / "model_cka.csv").exists()
