"""One word, one meaning (issue 27): the renamed options, and their old spellings still working.

Each old spelling of :data:`zooscope.cli.vocabulary.RENAMED` gives the same command as its new
one, with one line on stderr naming the new spelling; the new spellings are the ones ``--help``
shows.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
import typer
from test_cli_errors import run, tiny_benchmark

from zooscope.cli import app
from zooscope.cli.vocabulary import RENAMED, comma_list, rewrite_renamed
from zooscope.results.db import ResultsDB

# Two architectures x two tasks, two subjects, two ROIs: enough for every analysis below.
MODELS = {"a_mem": ("a", "mem"), "a_cls": ("a", "cls"), "b_mem": ("b", "mem"),
          "b_cls": ("b", "cls"), "c_mem": ("c", "mem"), "c_cls": ("c", "cls")}  # fmt: skip


@pytest.fixture(scope="module")
def db(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("vocab") / "r.duckdb"
    with ResultsDB(path) as database:
        run_id = database.start_run("bench", {"metrics": ["versa"]})
        for k, (uid, (arch, task)) in enumerate(MODELS.items()):
            rows = [
                (0, "l0", subject, roi, "versa", split, 0.1 * k + 0.01 * int(subject) + shift)
                for subject in ("1", "2")
                for roi, shift in (("EVC", 0.0), ("OTC", 0.3))
                for split in ("train", "test")
            ]
            columns = ["layer_index", "layer_name", "subject", "roi", "metric", "split", "score"]
            model = {"model_uid": uid, "arch": arch, "task": task, "train_data_size": 10 ** (k + 3)}
            database.write_model(
                run_id, model, None, pd.DataFrame(rows, columns=columns), None, 0.0
            )
        database.finish_run(run_id)
    return path


def _command(path: str) -> object:
    command = typer.main.get_command(app)
    for name in path.split():
        command = command.commands[name]  # type: ignore[attr-defined]
    return command


def _flags(command: object) -> set[str]:
    return {
        f
        for p in command.params
        for f in (*getattr(p, "opts", ()), *getattr(p, "secondary_opts", ()))
    }


@pytest.mark.parametrize("path", sorted(RENAMED))
def test_every_old_spelling_is_gone_from_its_command_and_its_new_one_is_there(path: str) -> None:
    flags = _flags(_command(path))
    for old, new in RENAMED[path].items():
        assert old not in flags, f"zooscope {path} still declares {old}"
        assert new in flags, f"zooscope {path} has no {new}"


def test_one_word_one_meaning_across_commands() -> None:
    """The words the issue found overloaded now mean one thing wherever they appear."""
    helps: dict[str, dict[str, str]] = {}
    devices = {}
    for path in ("extract", "survey", "models show", "models check", "analyze layer-cka"):
        devices[path] = next(p.default for p in _command(path).params if p.name == "device")
    assert set(devices.values()) == {"auto"}, devices
    for path in ("analyze contrast", "analyze paired", "results summary", "results export"):
        params = {p.name: p for p in _command(path).params}
        helps[path] = {f: params[n].help for n in params for f in params[n].opts}
    assert "--format" not in helps["results export"] and "--file-format" in helps["results export"]
    assert "--model" not in helps["analyze contrast"]
    assert "--stats-model" in helps["analyze contrast"] and "--pair-by" in helps["analyze contrast"]
    assert "--workers" not in _flags(_command("extract"))
    assert "--rois" in _flags(_command("ceiling")) and "--roi" not in _flags(_command("ceiling"))


def test_rewrite_only_touches_options_not_their_values() -> None:
    command = _command("analyze contrast")
    args = ["--by", "--model", "--model=ols", "--pair", "arch", "--", "--model"]
    got, used = rewrite_renamed(args, RENAMED["analyze contrast"], command)
    assert got == ["--by", "--model", "--stats-model=ols", "--pair-by", "arch", "--", "--model"]
    assert used == [("--model", "--stats-model"), ("--pair", "--pair-by")]


def test_comma_list_takes_commas_and_repeats() -> None:
    assert comma_list("a, b,,c") == ("a", "b", "c")
    assert comma_list(["a,b", "c"]) == ("a", "b", "c")
    assert comma_list("") is None and comma_list(None) is None


def _same(old: list[str], new: list[str], renamed: str) -> str:
    """Run both spellings: the same exit and stdout; the old one's stderr names the new flag."""
    before, after = run(*old), run(*new)
    assert after.exit_code == 0, after.output
    assert before.exit_code == 0, before.output
    assert before.stdout == after.stdout
    notes = [line for line in before.stderr.splitlines() if " is now " in line]
    assert len(notes) == 1 and renamed in notes[0], before.stderr
    assert " is now " not in after.stderr
    return after.stdout


def test_old_spellings_of_the_analyses_still_work(db: Path, tmp_path: Path) -> None:
    base = ["--db", str(db), "--metric", "versa", "--format", "csv"]
    contrast = ["analyze", "contrast", *base, "--by", "arch"]
    _same(
        [*contrast, "--model", "ols"],
        [*contrast, "--stats-model", "ols"],
        "--model is now --stats-model",
    )
    mixed = [*contrast, "--stats-model", "mixed", "--level", "model"]
    _same([*mixed, "--pair", "task"], [*mixed, "--pair-by", "task"], "--pair is now --pair-by")
    pairs = ["--pair-by", "arch", "--contrast", "task=mem,cls"]
    for command, extra in (("paired", pairs), ("groups", pairs[2:]), ("scaling", [])):
        args = ["analyze", command, *base, *extra]
        out = _same([*args, "--roi", "OTC"], [*args, "--rois", "OTC"], "--roi is now --rois")
        assert "OTC" in out and "EVC" not in out
    both = run("analyze", "groups", *base, *pairs[2:], "--rois", "OTC,EVC")
    assert both.exit_code == 0 and {"OTC", "EVC"} <= set(both.stdout.replace(",", " ").split())
    export = ["results", "export", "--db", str(db)]
    old = run(*export, "--out", str(tmp_path / "old"), "--format", "csv")
    new = run(*export, "--out", str(tmp_path / "new"), "--file-format", "csv")
    assert old.exit_code == new.exit_code == 0, old.output + new.output
    assert "--format is now --file-format" in old.stderr
    assert sorted(p.name for p in (tmp_path / "old").iterdir()) == sorted(
        p.name for p in (tmp_path / "new").iterdir()
    )
    assert {p.suffix for p in (tmp_path / "new").iterdir()} == {".csv"}


def test_old_spellings_of_ceiling_and_import_still_work(tmp_path: Path) -> None:
    bench = str(tiny_benchmark(tmp_path / "bench.h5"))
    common = ["ceiling", bench, "--n-sims", "3"]
    roi = tiny_roi(bench)
    _same([*common, "--roi", roi], [*common, "--rois", roi], "--roi is now --rois")
    table = tmp_path / "scores.csv"
    table.write_text("model_uid,score\nm1,0.5\nm2,0.4\n", encoding="utf-8")
    args = ["import-scores", "csv", str(table), "--metric", "versa"]
    old = run(*args, "--db", str(tmp_path / "old.duckdb"), "--benchmark", "lab-2024")
    new = run(*args, "--db", str(tmp_path / "new.duckdb"), "--benchmark-key", "lab-2024")
    assert old.exit_code == new.exit_code == 0, old.output + new.output
    assert "--benchmark is now --benchmark-key (zooscope import-scores csv)" in old.stderr
    for name in ("old", "new"):
        with ResultsDB(tmp_path / f"{name}.duckdb", read_only=True) as database:
            assert len(database.summary()) == 2


def tiny_roi(bench: str) -> str:
    from zooscope.benchmark import Benchmark

    with Benchmark.open(bench) as opened:
        return opened.roi_names[0]


def test_a_wrong_value_under_an_old_spelling_names_the_new_option(db: Path) -> None:
    result = run("analyze", "contrast", "--db", str(db), "--by", "arch", "--metric", "versa",
                 "--model", "anova")  # fmt: skip
    assert result.exit_code == 2
    assert "--model is now --stats-model" in result.stderr
    assert "--stats-model 'anova'" in result.stderr


def test_the_report_takes_one_roi_under_rois(db: Path, tmp_path: Path) -> None:
    result = run("report", "--db", str(db), "--out", str(tmp_path / "r"), "--rois", "OTC,EVC")
    assert result.exit_code == 2 and "--rois 'OTC,EVC'" in result.stderr
    assert not (tmp_path / "r").exists()


def test_old_spelling_of_models_check_still_works() -> None:
    args = ["models", "check", "-m", "demo", "--weights", "random", "--no-forward"]
    old = run(*args, "--uids", "effnet_lite0_random")
    assert old.exit_code == 0, old.output
    assert "--uids is now --models (zooscope models check)" in old.stderr
    assert "1 ok, 0 failed" in old.stdout


@pytest.mark.parametrize(
    ("path", "old", "new"),
    [
        ("extract", ["--workers", "2"], ["--loader-workers", "2"]),
        ("analyze layer-cka", ["--model", "a", "--model", "b"], ["--models", "a", "--models", "b"]),
        ("nsd prepare", ["--images=shared1000"], ["--image-set=shared1000"]),
    ],
)
def test_old_spellings_of_the_slow_commands_parse_as_the_new_ones(
    path: str, old: list[str], new: list[str]
) -> None:
    """Commands too slow to run here (a model, an NSD tree): the old spelling parses the same."""
    command = _command(path)
    got, used = rewrite_renamed(old, RENAMED[path], command)
    assert got == new and used == [(old[0].split("=")[0], new[0].split("=")[0])]
    required = {"extract": ["--model", "m", "--images", ".", "--out", "o"],
                "analyze layer-cka": ["--db", "r.duckdb"], "nsd prepare": ["--nsd-root", ".", "--out", "o.h5"]}  # fmt: skip
    parsed = command.make_context(path, [*required[path], *got]).params
    assert parsed == command.make_context(path, [*required[path], *new]).params
