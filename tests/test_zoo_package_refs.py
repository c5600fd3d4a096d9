"""A manifest is data: ``package:<module>:<attr>`` checkpoints resolve only when declared.

Declared means listed in :data:`zooscope.zoo.checkpoints.DECLARED_PACKAGE_FILES` or registered by
an installed package as an entry point in the group ``zooscope.models``. Undeclared references are
manifest errors (file, line, column), and nothing is imported or called: the tests watch a
temporary folder (``tempfile.mkdtemp`` would create a folder in it) and a module that leaves a
marker file when it is imported.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from zooscope.zoo.checkpoints import (
    UndeclaredPackageReference,
    check_package_reference,
    resolve_package_file,
)

REPO = Path(__file__).resolve().parents[1]
HEADER = "model_uid,source,name,weights,display_name,arch_class,task,task_cluster,train_data,arch,checkpoint"


def _zooscope(
    args: list[str], tmp_path: Path, extra_path: Path | None = None
) -> subprocess.CompletedProcess[str]:
    """Run the real CLI with TMPDIR pointing at an empty folder we can watch."""
    env = {**os.environ, "TMPDIR": str(tmp_path / "tmp"), "ZOOSCOPE_OFFLINE": "1"}
    env["PYTHONPATH"] = os.pathsep.join(str(p) for p in (extra_path, REPO) if p is not None)
    return subprocess.run(
        [sys.executable, "-c", "from zooscope.cli import main; main()", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )


@pytest.fixture
def canary(tmp_path: Path) -> Path:
    """A folder with a module ``zoo_canary`` that writes ``imported`` beside itself on import."""
    folder = tmp_path / "site"
    folder.mkdir()
    (folder / "zoo_canary.py").write_text(
        "from pathlib import Path\n"
        "Path(__file__).with_name('imported').write_text('yes')\n"
        "def weights():\n    return __file__\n"
    )
    (tmp_path / "tmp").mkdir()
    return folder


def _manifest(tmp_path: Path) -> Path:
    rows = [
        "mk,checkpoint,package:tempfile:mkdtemp,pretrained,A,Convolutional,x,,d,timm:resnet18,",
        "cwd,checkpoint,package:os:getcwd,random,B,Convolutional,random,,,timm:resnet18,",
        "canary,ipcl,alexnet_gn,pretrained,C,Convolutional,x,,d,,package:zoo_canary:weights",
    ]
    path = tmp_path / "shared.csv"
    path.write_text("\n".join([HEADER, *rows]) + "\n", encoding="utf-8")
    return path


@pytest.mark.parametrize(
    "command",
    [["models", "list"], ["models", "show", "mk"], ["models", "check", "--weights", "random"]],
    ids=["list", "show", "check"],
)
def test_undeclared_package_references_are_refused_and_nothing_runs(
    tmp_path: Path, canary: Path, command: list[str]
) -> None:
    manifest = _manifest(tmp_path)
    result = _zooscope([*command, "--manifest", str(manifest)], tmp_path, extra_path=canary)
    assert result.returncode == 2, result.stdout + result.stderr
    lines = result.stderr.splitlines()
    assert any(
        f"{manifest}:2:name: package reference 'tempfile:mkdtemp' is not declared" in x
        for x in lines
    )
    assert any(
        f"{manifest}:3:name: package reference 'os:getcwd' is not declared" in x for x in lines
    )
    assert any(
        f"{manifest}:4:checkpoint: package reference 'zoo_canary:weights'" in x for x in lines
    )
    assert "Traceback" not in result.stderr
    assert list((tmp_path / "tmp").iterdir()) == []  # mkdtemp never ran
    assert not (canary / "imported").exists()  # the module was never imported


def test_check_package_reference_reads_no_module(
    canary: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.syspath_prepend(str(canary))
    problem = check_package_reference("package:zoo_canary:weights")
    assert problem is not None and "not declared" in problem
    with pytest.raises(UndeclaredPackageReference):
        resolve_package_file("package:zoo_canary:weights")
    assert "zoo_canary" not in sys.modules and not (canary / "imported").exists()
    assert "expected package:<module>:<attribute.path>" in (
        check_package_reference("package:os") or ""
    )
    assert check_package_reference("https://example.org/w.pth") is None


def test_entry_point_declares_a_package_file(tmp_path: Path, canary: Path) -> None:
    """A package that registers its file in group ``zooscope.models`` can be named by a manifest."""
    torch.save({"state_dict": {}}, canary / "unused.pt")
    package = canary / "zoo_weights"
    package.mkdir()
    from zooscope.zoo.sources.ipcl_source import AlexNetGN

    torch.manual_seed(0)
    torch.save({"state_dict": AlexNetGN().state_dict()}, package / "alexnet_gn.pth")
    (package / "__init__.py").write_text(
        "from pathlib import Path\n\ndef path():\n    return Path(__file__).with_name('alexnet_gn.pth')\n"
    )
    info = canary / "zoo_weights-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: zoo-weights\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text("[zooscope.models]\nalexnet_gn = zoo_weights:path\n")
    manifest = tmp_path / "declared.csv"
    manifest.write_text(
        HEADER
        + "\nipcl_pkg,ipcl,alexnet_gn,pretrained,I,Convolutional,x,,d,,package:zoo_weights:path\n"
    )
    result = _zooscope(
        ["models", "cache-path", "ipcl_pkg", "--manifest", str(manifest)], tmp_path, canary
    )
    assert result.returncode == 0, result.stderr
    assert Path(result.stdout.strip()) == package / "alexnet_gn.pth"
    result = _zooscope(["models", "check", "--manifest", str(manifest)], tmp_path, canary)
    assert result.returncode == 0, result.stderr
    assert "1 ok" in result.stdout
