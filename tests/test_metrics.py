"""The metric registry: declarations, and a metric added without touching the scorer.

A throwaway metric registered here (and removed afterwards) goes through the config, the brain
side, the scorer, the results database and the summary, none of which names a metric.
"""

from __future__ import annotations

import ast
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest

from zooscope import metrics
from zooscope.benchmark import Benchmark
from zooscope.config import ScoringConfig
from zooscope.metrics import base
from zooscope.pipeline.brain import BrainData
from zooscope.pipeline.scoring import score_layer
from zooscope.results import ResultsDB
from zooscope.rsa import crsa, rsm

ROOT = Path(__file__).resolve().parents[1] / "zooscope"


def test_the_built_in_metrics_in_the_published_order() -> None:
    assert metrics.metric_names()[:4] == ("crsa", "versa", "encoding_r", "predictivity")
    assert metrics.default_metrics() == ("crsa", "versa", "encoding_r")
    assert ScoringConfig().metrics == metrics.default_metrics()
    ceilings = {m.name: m.ceiling for m in metrics.registered()}
    assert ceilings["crsa"] is ceilings["versa"] is metrics.GSN_RSA
    assert ceilings["predictivity"] is metrics.INTERNAL_CONSISTENCY
    assert ceilings["encoding_r"] is None
    assert [c.name for c in metrics.ceiling_methods(["predictivity", "versa", "crsa"])] == [
        "gsn_rsa",
        "internal_consistency",
    ]
    assert (
        metrics.ceiling_power("gsn_rsa") == 2 and metrics.ceiling_power("internal_consistency") == 1
    )
    assert metrics.ceiling_power("a published ceiling") == 2


def test_declarations_say_what_the_scorer_prepares() -> None:
    assert metrics.needed(["crsa"], "rsm") and not metrics.needed(["crsa"], "srp")
    assert metrics.needed(["predictivity"], "srp") and not metrics.needed(["predictivity"], "rsm")
    assert not metrics.needed(["predictivity"], "brain_rsms")
    assert [m.name for m in metrics.storing(metrics.metric_names(), "unit_predictions")][:3] == [
        "versa",
        "encoding_r",
        "predictivity",
    ]
    with pytest.raises(ValueError, match="unknown metric 'nope'"):
        metrics.needed(["nope"], "rsm")


def test_a_metric_declares_only_known_needs_and_stores() -> None:
    class Bad(base.Metric):
        name = "bad"
        label = "bad"
        needs = frozenset({"telepathy"})

    with pytest.raises(ValueError, match="needs must be among"):
        base.register_metric(Bad())
    assert "bad" not in metrics.metric_names()


def test_a_metrics_own_settings_enter_the_hash_only_when_it_is_scored() -> None:
    plain = ScoringConfig(metrics=("crsa",))
    assert "regression" not in plain.to_dict()
    assert plain.hash == ScoringConfig(metrics=("crsa",), regression="pls").hash
    chosen = ScoringConfig(metrics=("crsa", "predictivity"))
    assert chosen.to_dict()["regression"] == "ridge"
    assert chosen.hash != ScoringConfig(metrics=("crsa", "predictivity"), regression="pls").hash


class SquaredCRSA(base.Metric):
    """A throwaway metric: cRSA squared, no ceiling."""

    name = "squared_crsa"
    label = "cRSA²"
    needs = frozenset({"rsm", "brain_rsms", "splits"})
    stores = frozenset({"scores"})

    def score(self, layer: base.LayerContext) -> base.LayerScores:
        brain, out = layer.brain, base.LayerScores()
        for label, comparator in brain.comparators.items():
            subject, roi = label.split("|", 1)
            for split, images in (("train", brain.train), ("test", brain.test)):
                r = crsa(layer.features.rsm[np.ix_(images, images)], comparator[split])
                out.rows.append(
                    {"subject": subject, "roi": roi, "metric": self.name, "split": split,
                     "score": r**2}
                )  # fmt: skip
        return out


@pytest.fixture
def squared_crsa(monkeypatch: pytest.MonkeyPatch) -> base.Metric:
    """The throwaway metric, registered for one test."""
    monkeypatch.setattr(base, "_REGISTRY", dict(base._REGISTRY))
    return base.register_metric(SquaredCRSA())


def test_a_registered_metric_is_scored_stored_and_summarised(
    squared_crsa: base.Metric, tmp_path: Path
) -> None:
    rng = np.random.default_rng(0)
    n_images, n_units = 16, 8
    bench = Benchmark.from_arrays(
        tmp_path / "bench.h5",
        rng.normal(size=(n_units, n_images, 2)),
        rng.integers(0, 255, size=(n_images, 8, 8, 3), dtype=np.uint8),
        {"subject": ["1"] * n_units, "OTC": np.ones(n_units, bool)},
    )
    config = ScoringConfig(metrics=("crsa", "squared_crsa"))
    brain = BrainData.from_benchmark(bench, config)
    features = rng.normal(size=(n_images, 5))
    layer = SimpleNamespace(name="layer", rsm=rsm(features, dtype="float64"), srp=None)
    rows, test_rsms = score_layer(layer, brain, config)
    by_metric = {(r["metric"], r["split"]): r["score"] for r in rows}
    assert by_metric[("squared_crsa", "test")] == pytest.approx(by_metric[("crsa", "test")] ** 2)
    assert set(test_rsms) == {("crsa", "1|OTC")}  # it stores scores only
    with ResultsDB(tmp_path / "r.duckdb") as db:
        run = db.start_run(bench.content_hash, config.to_dict())
        scores = [{"layer_index": 0, "layer_name": "layer", **row} for row in rows]
        layers = pd.DataFrame([{"layer_index": 0, "layer_name": "layer", "module_type": "x",
                                "n_features": 5}])  # fmt: skip
        db.write_model(run, {"model_uid": "m"}, layers, pd.DataFrame(scores), None, 1.0)
        summary = db.summary(metric="squared_crsa")
    assert summary["score"].iloc[0] == pytest.approx(by_metric[("squared_crsa", "test")])
    assert summary["ceiling"].isna().all()  # no ceiling declared


def _metric_tests(tree: ast.AST, names: set[str]) -> list[int]:
    """Lines that test a metric's name against a config's ``metrics``."""
    found = []
    for node in ast.walk(tree):
        if not isinstance(node, ast.Compare | ast.BinOp):
            continue
        parts = list(ast.walk(node))
        on_metrics = any(isinstance(p, ast.Attribute) and p.attr == "metrics" for p in parts)
        named = any(isinstance(p, ast.Constant) and p.value in names for p in parts)
        if on_metrics and named:
            found.append(node.lineno)
    return found


def test_no_metric_is_named_against_a_config_outside_the_registry() -> None:
    names = set(metrics.metric_names())
    found = [
        f"{path.relative_to(ROOT.parent)}:{line}"
        for path in sorted(ROOT.rglob("*.py"))
        if "metrics" not in path.relative_to(ROOT).parts[:1]
        for line in _metric_tests(ast.parse(path.read_text(encoding="utf-8")), names)
    ]
    assert found == []


def test_the_check_finds_a_metric_named_against_a_config() -> None:
    tree = ast.parse('if "crsa" in config.metrics or {"versa"} & set(config.metrics): pass')
    assert _metric_tests(tree, {"crsa", "versa"}) == [1, 1]
