"""The figures are written as valid PNG and SVG files."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from zooscope.analyses.contrasts import group_summary
from zooscope.analyses.correlates import spearman_correlates
from zooscope.analyses.similarity import classical_mds, correlation_matrix
from zooscope.report import plots


def _check(paths):
    png, svg = paths
    with Image.open(png) as im:
        im.verify()
    with Image.open(png) as im:
        assert im.size[0] > 200 and im.size[1] > 150
    assert svg.read_text().lstrip().startswith(("<?xml", "<svg"))


@pytest.fixture
def frame():
    rng = np.random.default_rng(0)
    n = 30
    return pd.DataFrame(
        {
            "model_uid": [f"m{i}" for i in range(n)] * 2,
            "display_name": [f"Model {i}" for i in range(n)] * 2,
            "metric": ["crsa"] * n + ["versa"] * n,
            "score": rng.uniform(0, 0.7, 2 * n),
            "arch_class": rng.choice(["CNN", "ViT"], 2 * n),
            "param_count": rng.lognormal(16, 1, 2 * n),
        }
    )


def test_all_figures(frame, tmp_path):
    _check(
        plots.plot_ranked_models(
            frame[frame.metric == "crsa"],
            tmp_path / "ranked",
            hue="arch_class",
            ceiling=(0.8, 0.7, 0.86),
        )
    )
    groups = group_summary(frame, "arch_class", n_boot=100)
    _check(plots.plot_contrast(frame, groups, "arch_class", tmp_path / "contrast"))
    stats = spearman_correlates(frame, "param_count", n_boot=100)
    _check(
        plots.plot_correlate(
            frame, "param_count", tmp_path / "corr", hue="arch_class", log_x=True, stats_table=stats
        )
    )
    vecs = np.random.default_rng(1).normal(size=(10, 45))
    sim = pd.DataFrame(
        correlation_matrix(vecs),
        index=[f"m{i}" for i in range(10)],
        columns=[f"m{i}" for i in range(10)],
    )
    coords, _ = classical_mds(sim)
    _check(
        plots.plot_mds(
            coords,
            tmp_path / "mds",
            hue=frame.drop_duplicates("model_uid").set_index("model_uid").arch_class,
        )
    )
    _check(plots.plot_matrix(sim, tmp_path / "sim", title="similarity"))
    layers = pd.DataFrame(
        [
            {
                "model_uid": m,
                "layer_index": i,
                "split": s,
                "metric": "crsa",
                "subject": "1",
                "score": i * 0.1,
            }
            for m in ("a", "b")
            for i in range(5)
            for s in ("train", "test")
        ]
    )
    _check(plots.plot_layer_profiles(layers, tmp_path / "layers", metric="crsa"))


def test_rsm_square_roundtrip():
    rng = np.random.default_rng(2)
    m = np.corrcoef(rng.normal(size=(6, 10)))
    iu = np.triu_indices(6, k=1)
    np.testing.assert_allclose(plots.rsm_square(m[iu]), m)


def _crowded(n=30, seed=0):
    """30 models, most of them in one tight cluster (as random-init twins end up in MDS)."""
    rng = np.random.default_rng(seed)
    xy = np.concatenate([0.02 * rng.standard_normal((n - 5, 2)), rng.standard_normal((5, 2))])
    names = [f"model_{i:02d}_with_a_long_name" for i in range(n)]
    return xy, names


def test_labels_of_a_crowded_scatter_do_not_overlap():
    plt = plots._pyplot()
    xy, names = _crowded()
    fig, ax = plt.subplots(figsize=(6.5, 5))
    ax.scatter(xy[:, 0], xy[:, 1], s=22)
    # without placement the cluster's labels pile up (the case this guards against)
    piled = [ax.text(x, y, n, fontsize=6) for (x, y), n in zip(xy, names, strict=True)]
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    assert plots._overlaps([t.get_window_extent(renderer) for t in piled])
    for t in piled:
        t.remove()
    texts = plots.label_points(ax, xy[:, 0], xy[:, 1], names)
    fig.canvas.draw()
    shown = [t for t in texts if t.get_visible()]
    boxes = [t.get_window_extent(renderer) for t in shown]
    assert plots._overlaps(boxes) == []
    assert len(shown) >= 0.8 * len(names)  # placement, not mass hiding, does the work
    plt.close(fig)


def test_mds_with_crowded_labels_draws(tmp_path):
    xy, names = _crowded()
    uids = [f"m{i}" for i in range(len(names))]
    coords = pd.DataFrame(xy, index=uids, columns=["dim1", "dim2"])
    paths = plots.plot_mds(coords, tmp_path / "mds", labels=pd.Series(names, index=uids))
    assert all(p.exists() for p in paths)
