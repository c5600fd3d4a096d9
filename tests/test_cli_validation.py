"""Nothing a user types poisons a run (issue 24), through the real ``zooscope`` CLI.

Options are checked before any work (exit 2, one or two lines, nothing written); a failure
records its cause, and a rerun retries the failures of its settings or environment; inputs are
never written to; refused images, checkpoints, arrays and manifests are named; run records say
``failed`` (with the reason) or ``lost``. Concurrent surveys: ``tests/test_survey_claims.py``.
"""

from __future__ import annotations

import inspect
import os
import shutil
import subprocess
import zipfile
from pathlib import Path

import h5py
import numpy as np
import pandas as pd
import pytest
import typer
from PIL import Image
from test_cli_errors import HEADER, ZOOSCOPE, assert_clean_error, env_of, run, tiny_benchmark

from zooscope.benchmark import Benchmark
from zooscope.cli import app
from zooscope.cli.validation import COMMAND_RULES, RULES, UNCHECKED
from zooscope.errors import InputFileError
from zooscope.results.db import ResultsDB

DATA = Path(__file__).parent / "data"
ONE_LAYER = ["--layers", r"^conv1$", "--no-ceilings", "--device", "cpu"]


def commands() -> list[tuple[str, object]]:
    """Every command of the app: (``"models show"``, click command)."""
    found = []

    def walk(command: object, path: list[str]) -> None:
        if hasattr(command, "commands"):
            for name, sub in command.commands.items():
                walk(sub, [*path, name])
        else:
            found.append((" ".join(path), command))

    walk(typer.main.get_command(app), [])
    return found


def assert_one_clean_line(result, code: int, *names: str) -> None:
    """``assert_clean_error`` and at most two lines of output."""
    assert_clean_error(result, code, *names)
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) <= 2, result.output


@pytest.fixture
def manifest(tmp_path: Path) -> Path:
    path = tmp_path / "m.csv"
    rows = [f"r{s},torchvision,resnet18,random,R18 {s},Convolutional,random,,,{s}" for s in (0, 1)]
    path.write_text("\n".join([HEADER, *rows]) + "\n", encoding="utf-8")
    return path


# ------------------------------------------------------------------ 1. options checked first
def test_every_option_of_every_command_is_checked() -> None:
    """A new option without a rule (or a place in UNCHECKED) fails here, as does a command
    that does not call check_options."""
    unruled = []
    for path, command in commands():
        source = inspect.getsource(command.callback)
        assert "check_options(ctx)" in source, f"zooscope {path} does not check its options"
        for param in command.params:
            if param.name in ("help",):
                continue
            known = param.name in RULES or (path, param.name) in COMMAND_RULES
            if not known and param.name not in UNCHECKED:
                unruled.append(f"{path} --{param.name}")
    assert not unruled, f"options without a check: {unruled}"


def _no_gpu() -> bool:
    import torch

    return not torch.cuda.is_available()


BAD_SURVEY_OPTIONS = [
    (["--batch-size", "0"], "--batch-size 0", "at least 1"),
    (["--batch-size", "-3"], "--batch-size -3", "at least 1"),
    (["--memory-budget", "-5"], "--memory-budget '-5'", "not a memory size"),
    (["--memory-budget", "12XB"], "--memory-budget '12XB'", "not a memory size"),
    (["--memory-budget", "1KB"], "--memory-budget 1KB", "too small"),
    (["--memory-budget", "."], "not a memory size", "4GB"),
    (["--memory-budget", "900TB"], "--memory-budget 900TB", "more than the"),
    (["--device", "tpu"], "--device 'tpu'", "auto, cpu, cuda"),
    (["--device", "CPU"], "--device 'CPU'", "auto, cpu, cuda"),
    (["--layers", "["], "--layers '['", "regular expression"),
    (["--workers", "-3"], "--workers -3", "1 or more"),
    (["--workers", "0"], "--workers 0", "1 or more"),
    (["--workers", "100000"], "--workers 100000", "more than this machine can run"),
    (["--n-sims", "0"], "--n-sims 0", "at least 1"),
    (["--metrics", "foo"], "--metrics 'foo'", "crsa"),
    (["--regression", "foo"], "--regression 'foo'", "ridge"),
    (["--profile", "nope"], "--profile 'nope'", "conwell2024"),
    (["--slurm-dry-run", "--slurm-jobs", "0"], "--slurm-jobs 0", "at least 1"),
    (["--slurm-dry-run", "--slurm-walltime", "99:99"], "--slurm-walltime '99:99'", "Slurm time"),
    (["--slurm-dry-run", "--slurm-memory", "12XB"], "--slurm-memory '12XB'", "memory size"),
    (["--slurm-dry-run", "--device", "cuda"], "--device cuda with --slurm", "--slurm-gpus 1"),
    (["--slurm-dry-run", "--slurm-timeout", "-5"], "--slurm-timeout -5", "at least 0"),
]
if _no_gpu():
    BAD_SURVEY_OPTIONS += [
        (["--device", "cuda"], "--device cuda", "no CUDA GPU is available"),
        (["--device", "cuda:7"], "--device cuda:7", "no CUDA GPU is available"),
    ]


@pytest.mark.parametrize(("options", "first", "second"), BAD_SURVEY_OPTIONS)
def test_a_bad_survey_option_is_refused_before_anything_is_written(
    tmp_path: Path, manifest: Path, options: list[str], first: str, second: str
) -> None:
    bench = tiny_benchmark(tmp_path / "bench.h5")
    db = tmp_path / "r.duckdb"
    args = ["survey", "-m", str(manifest), "-b", str(bench), "--db", str(db), *options]
    assert_one_clean_line(run(*args), 2, first, second)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bench.h5", "m.csv"]


def test_bad_options_of_other_commands(tmp_path: Path) -> None:
    bench = tiny_benchmark(tmp_path / "bench.h5")
    folder = tmp_path / "images"
    folder.mkdir()
    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(folder / "a.png")
    db = tmp_path / "r.duckdb"
    ResultsDB(db).close()
    extract = [
        "extract",
        "--model",
        "resnet18_random",
        "--images",
        str(folder),
        "--out",
        str(tmp_path / "x"),
    ]
    cases = [
        ([*extract, "--batch-size", "0"], "--batch-size 0"),
        ([*extract, "--loader-workers", "-1"], "--loader-workers -1"),
        ([*extract, "--eps", "0"], "--eps 0"),
        ([*extract, "--eps", "1.5"], "--eps 1.5"),
        ([*extract, "--n-components", "0"], "--n-components 0"),
        ([*extract, "--max-depth", "-1"], "--max-depth -1"),
        ([*extract, "--max-image-pixels", "-1"], "--max-image-pixels -1"),
        ([*extract, "--alpha-background", "teal"], "--alpha-background 'teal'"),
        (["ceiling", str(bench), "--n-sims", "0"], "--n-sims 0"),
        (["ceiling", str(bench), "--seed", "-1"], "--seed -1"),
        (["analyze", "contrast", "--db", str(db), "--by", "arch_class", "--metric", "foo"], "--metric 'foo'"),
        (["analyze", "contrast", "--db", str(db), "--by", "x", "--metric", "crsa", "--stats-model", "foo"], "--stats-model 'foo'"),
        (["analyze", "contrast", "--db", str(db), "--by", "x", "--metric", "crsa", "--n-boot", "0"], "--n-boot 0"),
        (["analyze", "layer-cka", "--db", str(db), "--models", "a,b", "--depth", "2"], "--depth 2"),
        (["analyze", "similarity", "--db", str(db), "--metric", "crsa", "--out", str(tmp_path / "s"), "--n-clusters", "0"], "--n-clusters 0"),
        (["results", "summary", "--db", str(db), "--top", "-1"], "--top -1"),
        (["results", "summary", "--db", str(db), "--format", "xml"], "--format 'xml'"),
        (["results", "export", "--db", str(db), "--out", str(tmp_path / "e"), "--file-format", "xml"], "--file-format 'xml'"),
        (["report", "--db", str(db), "--out", str(tmp_path / "rep"), "--n-boot", "-1"], "--n-boot -1"),
        (["demo", "--n-images", "1", "--out", str(tmp_path / "demo")], "--n-images 1"),
        (["demo", "--subjects", "one", "--out", str(tmp_path / "demo")], "--subjects 'one'"),
        (["nsd", "synth", str(tmp_path / "syn"), "--n-images", "0"], "--n-images 0"),
        (["nsd", "synth", str(tmp_path / "syn"), "--volume-shape", "0", "4", "4"], "--volume-shape 0"),
        (["models", "check", "-m", "demo", "--weights", "random", "--device", "tpu"], "--device 'tpu'"),
        (["benchmark", "import-brainio", str(DATA / "brainio_assembly.nc"), "--stimuli", str(DATA / "brainio_stimuli.csv"),
          "--images", str(DATA / "brainio_stimuli.zip"), "--out", str(tmp_path / "b.h5"), "--image-size", "-1"], "--image-size -1"),
    ]  # fmt: skip
    if _no_gpu():
        cases += [
            ([*extract, "--device", "cuda"], "no CUDA GPU is available"),
            (["models", "show", "resnet18_random", "--load", "--device", "cuda"], "no CUDA GPU"),
            (
                ["models", "check", "-m", "demo", "--weights", "random", "--device", "cuda"],
                "no CUDA",
            ),
        ]
    for args, message in cases:
        assert_one_clean_line(run(*args), 2, message)
    assert not (tmp_path / "x").exists() and not (tmp_path / "syn").exists()
    assert not (tmp_path / "demo").exists() and not (tmp_path / "rep").exists()


def test_bad_environment_variables_are_refused_up_front(tmp_path: Path, manifest: Path) -> None:
    bench = tiny_benchmark(tmp_path / "bench.h5")
    args = ["survey", "-m", str(manifest), "-b", str(bench), "--db", str(tmp_path / "r.duckdb")]
    for name, value in (("ZOOSCOPE_DB_TIMEOUT", "abc"), ("ZOOSCOPE_LEASE_SECONDS", "0"),
                        ("ZOOSCOPE_MAX_IMAGE_PIXELS", "lots")):  # fmt: skip
        assert_one_clean_line(run(*args, env={name: value}), 2, name)
    assert not (tmp_path / "r.duckdb").exists()


# ------------------------------------------------------------------ 2. failure causes
def test_a_settings_failure_is_retried_by_the_corrected_command(
    tmp_path: Path, manifest: Path
) -> None:
    """A budget that passes the up-front check but is too small for the model: the failure is
    the settings', and the corrected command scores the model without --retry-failed."""
    bench = tiny_benchmark(tmp_path / "bench.h5")
    db = tmp_path / "r.duckdb"
    args = ["survey", "-m", str(manifest), "-b", str(bench), "--db", str(db), *ONE_LAYER,
            "--models", "r0"]  # fmt: skip
    result = run(*args, "--memory-budget", "20MB")
    assert result.exit_code == 1, result.output
    assert "failed 1 (a rerun retries 1 (1 settings))" in result.output
    assert "(settings; a rerun retries it)" in result.output
    with ResultsDB(db, read_only=True) as database:
        assert list(database.failures()["cause"]) == ["settings"]
    result = run(*args)
    assert result.exit_code == 0, result.output
    assert result.output.splitlines()[-1].startswith("scored 1, failed 0"), result.output
    with ResultsDB(db, read_only=True) as database:
        assert database.con.execute("SELECT model_uid FROM completions").fetchall() == [("r0",)]
        assert set(database.scores()["model_uid"]) == {"r0"}


def test_a_models_own_failure_is_still_skipped(tmp_path: Path) -> None:
    """A checkpoint that is a text file fails the model itself: the rerun skips it and says how
    to retry it."""
    bench = tiny_benchmark(tmp_path / "bench.h5")
    (tmp_path / "weights.pt").write_text("just some text\n")
    manifest = tmp_path / "ck.csv"
    manifest.write_text(
        f"{HEADER},arch\nck,checkpoint,weights.pt,pretrained,CK,Convolutional,classification,,,0,torchvision:resnet18\n",
        encoding="utf-8",
    )
    db = tmp_path / "r.duckdb"
    args = ["survey", "-m", str(manifest), "-b", str(bench), "--db", str(db), *ONE_LAYER]
    result = run(*args)
    assert result.exit_code == 1 and "1 failed on their own" in result.output, result.output
    assert "weights.pt: cannot read a PyTorch checkpoint: not a PyTorch checkpoint" in result.output
    result = run(*args)
    assert result.exit_code == 0, result.output
    assert "skipped after earlier failure 1 (--retry-failed retries them)" in result.output


def test_an_upgraded_database_retries_its_poisoned_models(tmp_path: Path, manifest: Path) -> None:
    """Schema 5 files: failures of a bad option are classified on upgrade, so the corrected
    survey scores the model instead of 'skipped after earlier failure'."""
    import duckdb

    from zooscope.config import ScoringConfig
    from zooscope.results.schema import MIGRATIONS

    bench = tiny_benchmark(tmp_path / "bench.h5")
    config = ScoringConfig(layers=r"^conv1$")
    db = tmp_path / "old.duckdb"
    con = duckdb.connect(str(db))
    for migration in MIGRATIONS[:5]:
        migration(con)
    con.execute("CREATE TABLE schema_info (version INTEGER)")
    con.execute("INSERT INTO schema_info VALUES (5)")
    con.execute(
        "INSERT INTO runs (run_id, benchmark_hash, config_hash, status) VALUES ('old', ?, ?, 'finished')",
        [Benchmark.open(bench).content_hash, config.hash],
    )
    for uid, error in (
        ("r0", "ValueError: batch_size should be a positive integer value, but got batch_size=0"),
        ("r1", "RuntimeError: mat1 and mat2 shapes cannot be multiplied"),
    ):
        con.execute("INSERT INTO failures VALUES ('old', ?, 'extract', ?, '', now())", [uid, error])
    con.close()
    result = run("survey", "-m", str(manifest), "-b", str(bench), "--db", str(db), *ONE_LAYER)
    assert result.exit_code == 0, result.output
    assert "scored 1" in result.output and "skipped after earlier failure 1" in result.output
    with ResultsDB(db, read_only=True) as database:
        causes = dict(
            zip(database.failures()["model_uid"], database.failures()["cause"], strict=True)
        )
        assert causes == {"r0": "settings", "r1": "model"}
        assert set(database.scores()["model_uid"]) == {"r0"}


# ------------------------------------------------------------------ 3. inputs are read-only
def test_no_command_writes_to_a_path_it_reads(tmp_path: Path) -> None:
    assembly = tmp_path / "assembly.nc"
    shutil.copy(DATA / "brainio_assembly.nc", assembly)
    before = assembly.read_bytes()
    (tmp_path / "link.h5").symlink_to(assembly)
    common = [
        "--stimuli",
        str(DATA / "brainio_stimuli.csv"),
        "--images",
        str(DATA / "brainio_stimuli.zip"),
    ]
    for out in (assembly, tmp_path / "link.h5", DATA / "brainio_stimuli.csv"):
        result = run("benchmark", "import-brainio", str(assembly), *common, "--out", str(out))
        assert_one_clean_line(result, 2, "--out", "which this command reads")
    assert assembly.read_bytes() == before
    folder = tmp_path / "images"
    folder.mkdir()
    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(folder / "a.png")
    result = run(
        "extract", "--model", "resnet18_random", "--images", str(folder), "--out", str(folder)
    )
    assert_one_clean_line(result, 2, "--out", "is --images")
    db = tmp_path / "r.duckdb"
    ResultsDB(db).close()
    assert_one_clean_line(run("results", "export", "--db", str(db), "--out", str(db)), 2, "is --db")
    bench = tiny_benchmark(tmp_path / "bench.h5")
    assert_one_clean_line(run("ceiling", str(bench), "--db", str(bench)), 2, "is BENCHMARK")
    grams = tmp_path / "results.grams.h5"  # the Gram store a survey writes next to --db
    shutil.copy(bench, grams)
    args = ["survey", "-m", "demo", "-b", str(grams), "--db", str(tmp_path / "results.duckdb")]
    assert_one_clean_line(run(*args), 2, "the Gram store next to --db", "--benchmark")
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "mine.txt").write_text("precious")
    assert_one_clean_line(run("nsd", "synth", str(tmp_path / "data")), 2, "holds other files")
    assert (tmp_path / "data" / "mine.txt").read_text() == "precious"


# ------------------------------------------------------------------ 4. images exact or refused
def test_refused_images_are_named_through_the_cli(tmp_path: Path) -> None:
    folder = tmp_path / "images"
    folder.mkdir()
    Image.new("L", (10000, 9000)).save(folder / "big.png")  # 90 M pixels, 90 kB
    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(folder / "small.png")
    extract = ["extract", "--model", "resnet18_random", "--out", str(tmp_path / "x"), "--device", "cpu",
               "--layers", "^conv1$", "--no-progress"]  # fmt: skip
    result = run(*extract, "--images", str(folder))
    assert_one_clean_line(result, 2, "big.png", "90,000,000 pixels", "--max-image-pixels 90000000")
    # The same refusals inside a zip name the zip and the member.
    source = zipfile.ZipFile(DATA / "brainio_stimuli.zip")
    good = source.read("im003.png")
    for name, replacement, message in (
        ("bomb.zip", (folder / "big.png").read_bytes(), "--max-image-pixels"),
        ("cut.zip", good[: len(good) // 2], "truncated"),
    ):
        with zipfile.ZipFile(tmp_path / name, "w") as archive:
            for member in source.namelist():
                archive.writestr(
                    member, replacement if member == "im003.png" else source.read(member)
                )
        result = run("benchmark", "import-brainio", str(DATA / "brainio_assembly.nc"), "--stimuli",
                     str(DATA / "brainio_stimuli.csv"), "--images", str(tmp_path / name), "--out",
                     str(tmp_path / "b.h5"), "--image-size", "16")  # fmt: skip
        assert_one_clean_line(result, 2, f"{name} (member im003.png)", message)
        assert not (tmp_path / "b.h5").exists()
    translucent = tmp_path / "alpha"
    translucent.mkdir()
    rgba = np.random.default_rng(0).integers(0, 256, (2, 16, 16, 4), dtype=np.uint8)
    for name, pixels in zip(("a.png", "b.png"), rgba, strict=True):
        Image.fromarray(pixels, "RGBA").save(translucent / name)
    result = run(*extract, "--images", str(translucent))
    assert_one_clean_line(result, 2, "a.png", "translucent", "--alpha-background")
    result = run(*extract, "--images", str(translucent), "--alpha-background", "gray")
    assert result.exit_code == 0, result.output


def test_arrays_that_are_not_pixels_are_named(tmp_path: Path) -> None:
    extract = [
        "extract",
        "--model",
        "resnet18_random",
        "--out",
        str(tmp_path / "x"),
        "--device",
        "cpu",
    ]
    text = tmp_path / "text.npy"
    text.write_text("hello, not numpy\n")
    np.save(tmp_path / "objects.npy", np.array([{"a": 1}], dtype=object), allow_pickle=True)
    np.save(tmp_path / "floats.npy", np.random.default_rng(0).random((4, 8, 8, 3)))
    for path, message in (
        (text, "not a NumPy .npy file"),
        (tmp_path / "objects.npy", "Python objects"),
        (tmp_path / "floats.npy", "float64 (4, 8, 8, 3)"),
    ):
        result = run(*extract, "--images", str(path))
        assert_one_clean_line(result, 2, path.name, message)
        assert "allow_pickle" not in result.output and "unsafe" not in result.output


# ------------------------------------------------------------------ 6. run records
def test_a_run_ended_by_bad_input_is_failed_with_its_reason(tmp_path: Path, manifest: Path) -> None:
    bench = tiny_benchmark(tmp_path / "bench.h5")
    db = tmp_path / "r.duckdb"
    args = ["survey", "-m", str(manifest), "-b", str(bench), "--db", str(db), *ONE_LAYER]
    result = run(*args, "--models", "r0")
    assert result.exit_code == 0, result.output
    (tmp_path / "r.grams.h5").write_text("not hdf5")  # the Gram store, damaged meanwhile
    assert_one_clean_line(run(*args, "--keep-grams"), 2, "r.grams.h5", "not an HDF5 file")
    # The library's survey has no up-front check of the store: it fails when it writes the
    # first model's Grams, and the run is recorded as failed, with the reason.
    from zooscope.config import RunOptions, ScoringConfig
    from zooscope.pipeline.survey import survey

    with pytest.raises(InputFileError, match=r"r\.grams\.h5"):
        survey(manifest, bench, db, ScoringConfig(layers=r"^conv1$"),
               RunOptions(device="cpu", keep_grams=True), ceilings=False)  # fmt: skip
    with ResultsDB(db, read_only=True) as database:
        last = database.runs().iloc[-1]
    assert last["status"] == "failed" and "r.grams.h5" in last["reason"], last.to_dict()
    result = run("results", "runs", "--db", str(db), "--format", "csv")
    assert result.exit_code == 0 and ",failed," in result.output, result.output


# ------------------------------------------------------------------ 7. messages
def test_messages_name_the_file_and_never_advise_unsafe_loading(tmp_path: Path) -> None:
    import pickle

    class Payload:
        def __reduce__(self):
            return (os.system, ("echo owned",))

    (tmp_path / "evil.pt").write_bytes(pickle.dumps({"w": Payload()}))
    (tmp_path / "text.pt").write_text("not a checkpoint at all\n")
    for name, message in (
        ("evil.pt", "Python objects besides tensors"),
        ("text.pt", "not a PyTorch checkpoint"),
    ):
        manifest = tmp_path / f"{name}.csv"
        manifest.write_text(
            f"{HEADER},arch\nck,checkpoint,{name},pretrained,CK,Convolutional,classification,,,0,torchvision:resnet18\n",
            encoding="utf-8",
        )
        result = run("models", "show", "ck", "-m", str(manifest), "--load")
        assert_clean_error(result, 2, name, message)
        assert "weights_only" not in result.output and "owned" not in result.output
    empty = tmp_path / "empty.csv"
    empty.write_text("")
    result = run("models", "list", "-m", str(empty))
    assert_one_clean_line(result, 2, "empty.csv:1", "the file is empty")
    quote = tmp_path / "quote.csv"
    quote.write_text(f'{HEADER}\nr,torchvision,resnet18,random,"R18,Convolutional,random,,,0\n')
    assert_one_clean_line(run("models", "list", "-m", str(quote)), 2, "quote.csv:2", "never closed")
    with pytest.raises(ValueError, match=r"one\.h5: cannot write a Benchmark: .*at least 3 images"):
        Benchmark.from_arrays(tmp_path / "one.h5", np.zeros((2, 1, 2), np.float32),
                              np.zeros((1, 4, 4, 3), np.uint8), pd.DataFrame({"subject": [1, 1]}))  # fmt: skip


def test_ceiling_checks_the_hash_and_names_infinite_units(tmp_path: Path) -> None:
    bench = tiny_benchmark(tmp_path / "bench.h5")
    with h5py.File(bench, "r+") as f:
        f["responses"][3] = np.inf  # damaged by hand: the content hash no longer matches
    assert_one_clean_line(run("ceiling", str(bench), "--n-sims", "5"), 2, "bench.h5", "--no-verify")
    result = run("ceiling", str(bench), "--n-sims", "5", "--no-verify")
    assert result.exit_code == 0, result.output
    assert "1 infinite" in result.output and "constant" not in result.output


def test_the_console_script_refuses_before_importing_models(tmp_path: Path, manifest: Path) -> None:
    """The real process: a bad option exits 2 with one line, and no database or log appears."""
    bench = tiny_benchmark(tmp_path / "bench.h5")
    command = [ZOOSCOPE, "survey", "-m", str(manifest), "-b", str(bench), "--db", str(tmp_path / "r.duckdb"),
               "--workers", "-3"]  # fmt: skip
    done = subprocess.run(command, capture_output=True, text=True, env=env_of(), timeout=120)
    assert done.returncode == 2, done.stderr
    assert done.stderr.strip().splitlines() == [
        "error: --workers -3: must be 1 or more (the number of local Dask workers)"
    ]
    assert not (tmp_path / "r.duckdb").exists() and not (tmp_path / "r.log").exists()
