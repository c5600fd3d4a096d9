"""The CKA Gram consumer on real networks (needs the extraction-consumer interface).

Acceptance of layer CKA: two copies of the trained EfficientNet-Lite0 give CKA 1 at every layer;
the network against its random twin gives a curve that falls with depth; the consumer's values
equal ``rsa.cka`` on activations taken independently with forward hooks (<= 1e-6), also when a
small memory budget splits layers into column chunks.
"""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

pytest.importorskip("zooscope.feature_extraction.consumers")

from zooscope.analyses.layer_cka import layer_cka_from_grams
from zooscope.feature_extraction import LayerSelection, extract
from zooscope.feature_extraction.cka_consumer import CKAGramConsumer
from zooscope.rsa import cka
from zooscope.zoo import load_manifest, load_model

LAYERS = r"^blocks\.\d\.\d+$"  # EfficientNet-Lite0's block outputs


@pytest.fixture(scope="module")
def images() -> np.ndarray:
    # smooth random scenes (upsampled noise) rather than pixel noise
    rng = np.random.default_rng(0)
    small = rng.uniform(0, 255, size=(40, 8, 8, 3))
    return np.kron(small, np.ones((1, 16, 16, 1))).astype(np.uint8)


@pytest.fixture(scope="module")
def entries():
    return {e.model_uid: e for e in load_manifest("demo")}


def _extract(entry, images, memory_budget=None, rsm=False):
    loaded = load_model(entry, device="cpu")
    stream = extract(
        loaded, images, layers=LayerSelection(include=LAYERS), srp=False, rsm=rsm,
        consumers=[CKAGramConsumer()], batch_size=8, progress=False, memory_budget=memory_budget,
    )  # fmt: skip
    return sorted(stream, key=lambda f: f.index)


def _grams(entry, images, memory_budget=None):
    return [
        (f.index, f.name, f.outputs["cka_gram"]) for f in _extract(entry, images, memory_budget)
    ]


@pytest.fixture(scope="module")
def trained(entries, images):
    return _grams(entries["effnet_lite0"], images)


def test_two_copies_of_a_network_give_one_at_every_layer(entries, images, trained):
    copy = _grams(entries["effnet_lite0"], images)  # loaded again, extracted again
    table = layer_cka_from_grams(trained, copy)
    assert len(table) == len(trained) >= 8  # block outputs left after deduplication
    np.testing.assert_allclose(table["cka"], 1.0, atol=1e-6)
    np.testing.assert_allclose(table["cka_debiased"], 1.0, atol=1e-6)


def test_random_twin_falls_with_depth(entries, images, trained):
    twin = _grams(entries["effnet_lite0_random"], images)
    table = layer_cka_from_grams(trained, twin)
    # Debiased CKA (biased CKA is inflated with 40 images and thousands of features; measured:
    # debiased 0.46 at blocks.1.1 falling to 0.07 at blocks.5.3, biased 0.91 -> 0.83)
    rho = stats.spearmanr(table["depth_a"], table["cka_debiased"]).statistic
    assert rho < -0.8, table[["layer_a", "cka", "cka_debiased"]]
    assert table["cka_debiased"].iloc[-1] < table["cka_debiased"].iloc[0] - 0.2
    assert table["cka"].iloc[-1] < table["cka"].iloc[0]


def test_consumer_equals_rsa_cka_on_independent_activations(
    entries, images, trained, hooked_activations
):
    names = [trained[i][1] for i in (0, len(trained) // 2, -1)]
    acts = hooked_activations(
        load_model(entries["effnet_lite0_random"], device="cpu"), images, names
    )
    # 18 MB: several passes, the largest block output (75k features) split into column chunks;
    # with the exact RSMs, which share the columns' buffer and centre it in place after the CKA
    # Gram has read it
    chunked = _extract(entries["effnet_lite0_random"], images, memory_budget="18MB", rsm=True)
    assert {f.name for f in chunked} >= set(names)
    trained_acts = hooked_activations(
        load_model(entries["effnet_lite0"], device="cpu"), images, names
    )
    gram = {f.name: f.outputs["cka_gram"] for f in chunked}
    rsm = {f.name: f.rsm for f in chunked}
    gram_trained = {name: g for _, name, g in trained}
    for name in names:
        for debiased in (False, True):
            expected = cka(trained_acts[name], acts[name], debiased=debiased)
            got = cka(gram_trained[name], gram[name], debiased=debiased, gram=True)
            assert got == pytest.approx(expected, abs=1e-6)
        np.testing.assert_allclose(rsm[name], np.corrcoef(acts[name]), atol=1e-5)
