"""CLI: zooscope nsd synth / info / prepare and zooscope benchmark info."""

from __future__ import annotations

from typer.testing import CliRunner

from zooscope.benchmark import Benchmark
from zooscope.cli import app


def test_synth_info_prepare_benchmark_info(tmp_path):
    runner = CliRunner()
    root = tmp_path / "nsd"
    res = runner.invoke(
        app,
        ["nsd", "synth", str(root), "-s", "1", "-s", "2", "--n-images", "20", "--n-sessions", "2",
         "--image-size", "16", "--volume-shape", "6", "6", "5", "--random-features", "5"],
    )  # fmt: skip
    assert res.exit_code == 0, res.output
    res = runner.invoke(app, ["nsd", "info", str(root)])
    assert res.exit_code == 0, res.output
    assert "subj02  sessions hdf5: 2 (1-2); nii.gz: 2 (1-2)  ROI files complete" in res.output
    out = tmp_path / "b.h5"
    res = runner.invoke(
        app,
        ["nsd", "prepare", "--nsd-root", str(root), "--out", str(out), "-s", "1", "-s", "2",
         "-r", "OTC", "-r", "v=streams:ventral", "--ncsnr-threshold", "0.3"],
    )  # fmt: skip
    assert res.exit_code == 0, res.output
    with Benchmark.open(out) as b:
        assert b.roi_names == ["OTC", "v"] and b.n_images == 20
        assert b.attrs["ncsnr_threshold"] == 0.3
        assert (b.units.loc[b.units["OTC"], "ncsnr"] >= 0.3).all()
        digest = b.content_hash
    res = runner.invoke(app, ["benchmark", "info", str(out), "--verify"], env={"COLUMNS": "80"})
    assert res.exit_code == 0, res.output
    assert digest in res.output and "verified: yes" in res.output and "group 1|OTC" in res.output
    # provenance as wrapped `key: value` lines, not a JSON dump
    assert "    ncsnr_threshold: 0.3" in res.output and '"' not in res.output
    assert "subjects 1, 2; ROIs OTC, v" in res.output
    assert all(len(line) <= 80 for line in res.output.splitlines()), res.output


def test_info_on_empty_root(tmp_path):
    res = CliRunner().invoke(app, ["nsd", "info", str(tmp_path)])
    assert res.exit_code == 1
    assert "MISSING" in res.output and "no subject has betas" in res.output
