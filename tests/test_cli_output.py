"""Quiet output: logging set-up, per-model summary lines, the ridge-diagnostics table."""

from __future__ import annotations

import io
import logging
import os
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from zooscope.logs import configure_logging, current_log_file, log_to_file
from zooscope.pipeline.diagnostics import alpha_edge_table, model_summary_lines


@pytest.fixture
def restore_logging():
    root = logging.getLogger()
    saved = (root.handlers[:], root.level, logging.getLogger("zooscope").level)
    env = os.environ.get("DASK_LOGGING__DISTRIBUTED")
    yield
    for handler in root.handlers[:]:
        if handler not in saved[0]:
            root.removeHandler(handler)
            handler.close()
    for handler in saved[0]:
        if handler not in root.handlers:
            root.addHandler(handler)
    root.setLevel(saved[1])
    logging.getLogger("zooscope").setLevel(saved[2])
    for name in ("distributed", "dask", "bokeh", "tornado"):
        logging.getLogger(name).setLevel(logging.NOTSET)
    if env is None:
        os.environ.pop("DASK_LOGGING__DISTRIBUTED", None)
    else:
        os.environ["DASK_LOGGING__DISTRIBUTED"] = env


def _emit():
    logging.getLogger("zooscope.x").debug("layer detail")
    logging.getLogger("zooscope.x").info("model summary")
    logging.getLogger("zooscope.x").warning("act now")
    logging.getLogger("distributed.worker").info("worker started")
    logging.getLogger("timm").info("library chatter")


@pytest.mark.parametrize(
    ("verbosity", "shown", "hidden"),
    [
        (-1, ["act now"], ["model summary", "layer detail", "worker started"]),
        (0, ["model summary", "act now"], ["layer detail", "worker started", "library chatter"]),
        (1, ["layer detail", "worker started", "library chatter"], []),
    ],
)
def test_terminal_shows_by_verbosity_and_the_file_holds_the_detail(
    restore_logging, capsys, tmp_path, verbosity, shown, hidden
):
    log = tmp_path / "run.log"
    configure_logging(verbosity, log)
    assert current_log_file() == log
    _emit()
    terminal = capsys.readouterr().err
    for text in shown:
        assert text in terminal
    for text in hidden:
        assert text not in terminal
    detail = log.read_text()
    for text in ("layer detail", "model summary", "act now", "library chatter"):
        assert text in detail  # whatever the terminal shows, the file has it all
    assert os.environ["DASK_LOGGING__DISTRIBUTED"] == ("info" if verbosity >= 1 else "warning")


def test_log_to_file_is_scoped(tmp_path):
    path = tmp_path / "survey.log"
    with log_to_file(path):
        logging.getLogger("zooscope.pipeline").debug("inside")
    logging.getLogger("zooscope.pipeline").debug("outside")
    text = path.read_text()
    assert "inside" in text and "outside" not in text


def _model(random_nan_layers=0):
    layers = pd.DataFrame(
        {
            "layer_index": range(4),
            "layer_name": ["a", "b", "c", "d"],
            "alpha_edge_fraction": [0.5, 0.3, 0.03, 0.1],
        }
    )
    rows = []
    for li, name in enumerate(layers["layer_name"]):
        for subject in ("1", "2"):
            train = 0.9 if name == "c" else 0.1 * li
            if li < random_nan_layers:
                train = np.nan
            for split, value in (("train", train), ("test", train)):
                rows.append((li, name, subject, "OTC", "versa", split, value))
    scores = pd.DataFrame(
        rows, columns=["layer_index", "layer_name", "subject", "roi", "metric", "split", "score"]
    )
    return layers, scores


def test_model_summary_lines():
    layers, scores = _model()
    assert model_summary_lines("m", layers, scores) == [
        "m: 2/4 layers had >20% of units at an alpha-grid edge; best veRSA layer: OTC c 3% "
        "(no action needed: the best layers are below it, and units without predictable signal "
        "pick the largest alpha)"
    ]
    # a second region gets its own best layer, and a flagged best layer is named as such
    evc = scores.assign(roi="EVC")
    evc.loc[evc["layer_name"] == "a", "score"] = 2.0
    (line,) = model_summary_lines("m", layers, pd.concat([scores, evc]))
    assert "best veRSA layer: EVC a 50%, OTC c 3% (a best layer is among them" in line
    assert "score this model again with a wider grid (ScoringConfig(alphas=...)" in line
    layers, scores = _model(random_nan_layers=2)
    lines = model_summary_lines("r", layers, scores, random_init=True)
    assert lines[0].endswith(
        "(expected for a random-init model, whose units have little "
        "predictable signal and pick the largest alpha: no action needed)"
    )
    assert lines[1] == (
        "r: 2/4 layers have NaN scores (features constant on some images; expected for a "
        "random-init model)"
    )
    quiet = layers.assign(alpha_edge_fraction=0.0)
    assert model_summary_lines("q", quiet, scores.dropna()) == []


def test_alpha_edge_table():
    layers, scores = _model()
    layers = layers.assign(model_uid="m")
    best = scores.assign(model_uid="m")
    from zooscope.rsa.selection import select_best_layers

    chosen = select_best_layers(best, ["model_uid", "subject", "roi", "metric"])
    table = alpha_edge_table(layers, chosen)
    assert table.to_dict("records") == [
        {
            "model_uid": "m",
            "roi": "OTC",
            "layers": 4,
            "layers_over": 2,
            "median_fraction": pytest.approx(0.2),
            "best_layer": "c",
            "best_layer_fraction": pytest.approx(0.03),
        }
    ]
    assert alpha_edge_table(layers.assign(alpha_edge_fraction=np.nan), chosen).empty


def test_open_clip_random_init_notice_goes_to_debug(caplog):
    from zooscope.zoo.sources.open_clip_source import _random_init_expected

    with caplog.at_level(logging.DEBUG), _random_init_expected():
        logging.warning(
            "No pretrained weights loaded for model 'RN50'. Model initialized randomly."
        )
        logging.warning("something else")
    levels = {r.getMessage(): r.levelno for r in caplog.records}
    assert levels["something else"] == logging.WARNING
    notice = [m for m in levels if "No pretrained" in m]
    assert notice and all(levels[m] == logging.DEBUG for m in notice)


def test_exit_if_failed_names_what_failed(capsys):
    from types import SimpleNamespace

    import typer

    from zooscope.cli.survey import _exit_if_failed

    _exit_if_failed(SimpleNamespace(scored=["a"], failed=[], ceiling_failures=[]), Path("r.duckdb"))
    assert capsys.readouterr().err == ""
    bad = SimpleNamespace(scored=["a"], failed=["b"], ceiling_failures=["c", "d"])
    with pytest.raises(typer.Exit) as exit_:
        _exit_if_failed(bad, Path("r.duckdb"))
    assert exit_.value.exit_code == 1
    assert capsys.readouterr().err.strip() == (
        "error: 1 of 2 model(s) and 2 noise-ceiling group(s) failed; "
        "details: zooscope results failures --db r.duckdb"
    )


# --- Tables and help at the terminal's width -----------------------------------------------

# uid: (display name, arch_class, weights, name, score offset)
MODELS = {
    "effnet_lite0": ("EfficientNet-Lite0 (ImageNet)", "Convolutional", "pretrained", "effnet", 0.3),
    "effnet_lite0_random": ("EfficientNet-Lite0 (random)", "Convolutional", "random", "effnet", 0),
    "mobilenet_v3_small_random": ("MobileNet-V3-Small (random)", "Convolutional", "random", "mnv3",
                                  0.05),
    "clip_rn50_random": ("CLIP RN50 image encoder (random)", "Convolutional", "random", "rn50", 0.02),
    "vit_tiny_random": ("ViT-Ti/16 (random)", "Transformer", "random", "vit", 0.01),
    "levit_128s_random": ("LeViT-128S (random)", "Hybrid", "random", "levit", 0.03),
}  # fmt: skip
WIDTHS = (80, 110, 200)
CONTRAST = ("analyze", "contrast", "--by", "arch_class")


@pytest.fixture(scope="module")
def scores_db(tmp_path_factory):
    """A results database of six models, two subjects, two ROIs and three metrics."""
    from zooscope.results.db import ResultsDB

    path = tmp_path_factory.mktemp("term") / "r.duckdb"
    rng = np.random.default_rng(0)
    with ResultsDB(path) as database:
        run = database.start_run("bench", {"metrics": ["crsa", "versa", "encoding_r"]})
        for uid, (display, arch_class, weights, name, offset) in MODELS.items():
            rows = [
                (li, f"layer{li}", subject, roi, metric, split, 0.2 + offset + rng.uniform(0, 0.1))
                for li in range(2)
                for subject in ("1", "2")
                for roi in ("EVC", "OTC")
                for metric in ("crsa", "versa", "encoding_r")
                for split in ("train", "test")
            ]
            scores = pd.DataFrame(
                rows,
                columns=["layer_index", "layer_name", "subject", "roi", "metric", "split", "score"],
            )
            model = {
                "model_uid": uid, "display_name": display, "arch_class": arch_class,
                "weights": weights, "name": name,
            }  # fmt: skip
            database.write_model(run, model, None, scores, None, 0.0)
        database.finish_run(run)
    return path


def _run(width: int, *args: str) -> str:
    """Run the CLI at a terminal width; its stdout (the exit code must be 0)."""
    from typer.testing import CliRunner

    from zooscope.cli import app

    result = CliRunner().invoke(app, list(args), env={"COLUMNS": str(width)})
    assert result.exit_code == 0, result.output
    return result.stdout


def _assert_readable(text: str, width: int) -> None:
    for line in text.splitlines():
        assert len(line) <= width, f"{len(line)} > {width}: {line!r}"
    assert "…" not in text and "[bold]" not in text and "<bool>" not in text


@pytest.mark.parametrize("width", WIDTHS)
@pytest.mark.parametrize(
    "args",
    [
        ("results", "summary"),
        ("results", "runs"),
        ("results", "failures"),
        (*CONTRAST, "--metric", "versa"),
        (*CONTRAST, "--metric", "versa", "--stats-model", "pairwise"),
        (*CONTRAST, "--metric", "crsa", "--stats-model", "ols"),
        ("analyze", "paired", "--pair-by", "name", "--contrast", "weights=pretrained,random"),
        ("analyze", "groups", "--contrast", "weights=pretrained,random"),
        ("analyze", "scaling", "--x", "seed"),
    ],
    ids=lambda a: " ".join(a[:4]) if isinstance(a, tuple) else None,
)
def test_tables_fit_the_terminal(scores_db, args, width):
    text = _run(width, *args, "--db", str(scores_db))
    _assert_readable(text, width)
    for uid in MODELS if args[:2] == ("results", "summary") else ():
        assert uid in text  # model uids (what other commands take) are never cut


def test_summary_is_one_table_per_metric_and_roi_and_says_its_order(scores_db):
    text = _run(80, "results", "summary", "--db", str(scores_db), "--metric", "versa")
    titles = [line for line in text.splitlines() if "ranked by" in line]
    assert titles == [
        f"versa, {roi}: models ranked by subject-mean best-layer test score"
        for roi in ("EVC", "OTC")
    ]
    assert "EfficientNet-Lite0" in text and "0.5" in text  # whole numbers, 3 decimals


def test_mixed_model_warnings_become_one_sentence(scores_db, caplog):
    from typer.testing import CliRunner

    from zooscope.cli import app

    args = ["analyze", "contrast", "--db", str(scores_db), "--by", "weights", "--metric", "versa"]
    with caplog.at_level(logging.WARNING):
        result = CliRunner().invoke(app, [*args, "--stats-model", "mixed"], env={"COLUMNS": "80"})
    assert result.exit_code == 0, result.output
    assert "ConvergenceWarning" not in result.output and "RuntimeWarning" not in result.output
    said = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(said) == 2  # one sentence per ROI
    assert all("the mixed model did not converge" in s and "--stats-model ols" in s for s in said)
    _assert_readable(result.stdout, 80)


def _commands(group, path=()):
    for name, command in group.commands.items():
        yield (*path, name)
        if hasattr(command, "commands"):
            yield from _commands(command, (*path, name))


def test_help_is_tidy_everywhere():
    import typer

    from zooscope.cli import app

    root = typer.main.get_command(app)
    commands = [(), *_commands(root)]
    assert len(commands) > 30
    for path in commands:
        text = _run(80, *path, "--help")
        usage = next(line for line in text.splitlines() if "Usage:" in line)
        assert "{" not in usage, usage
        for bad in ("``", ":func:", ":class:", "<bool>"):
            assert bad not in text, (path, bad)
        assert all(len(line) <= 80 for line in text.splitlines()), path
    analyze = _run(80, "analyze", "--help")
    assert "7" not in analyze  # described by what its subcommands do, not a count
    for word in ("contrasts", "paired", "scaling", "similarity", "unique variance", "CKA"):
        assert word in " ".join(analyze.split()), word
    assert "--version" in _run(80, "--help") and "UID" in _run(80, "models", "show", "--help")


def test_emit_formats_and_moves_constant_columns(capsys, monkeypatch):
    from zooscope.cli.output import emit, format_value

    assert [format_value(v) for v in (0.12345, 3.0, 2e-5, float("nan"), None, "", 12345.6)] == [
        "0.123", "3", "2.00e-05", "–", "–", "–", "1.235e+04",
    ]  # fmt: skip
    monkeypatch.setenv("COLUMNS", "40")
    table = pd.DataFrame(
        {"model_uid": ["a_long_model_uid_1", "b"], "profile": ["default"] * 2, "score": [0.5, 0.25]}
    )
    emit(table, "table", title="ranked by score")
    lines = capsys.readouterr().out.splitlines()
    assert lines[:2] == ["ranked by score", "profile: default"]
    assert any("a_long_model_uid_1" in line and "0.500" in line for line in lines)
    wide = pd.DataFrame({f"column_{i}": [f"value_number_{i}"] for i in range(6)})
    emit(wide, "table")  # too wide for 40 columns: on its side, one row per column
    lines = capsys.readouterr().out.splitlines()
    assert all(len(line) <= 40 for line in lines)
    assert next(line.split() for line in lines if "column" in line) == [
        "column",
        "0",
        "value_number_0",
    ]
    emit(pd.DataFrame({"a": [1, 1], "b": ["x", "x"]}), "table")  # all alike: one column stays
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == "b: x" and lines[1].strip() == "a" and lines[-1].strip() == "1"
    emit(table, "csv")
    assert capsys.readouterr().out.splitlines()[0] == "model_uid,profile,score"


def test_mapping_lines_wrap_long_values(monkeypatch, capsys):
    from zooscope.cli.output import emit_mapping

    monkeypatch.setenv("COLUMNS", "40")
    emit_mapping({"source": "word " * 20, "rois": {"EVC": "EVC"}}, indent=2)
    lines = capsys.readouterr().out.splitlines()
    assert lines[:2] == ["  rois:", "    EVC: EVC"]
    assert lines[2].startswith("  source: word") and lines[3].startswith("      word")
    assert all(len(line) <= 40 for line in lines)


def test_ceiling_notes_text_says_what_to_do():
    from zooscope.pipeline.diagnostics import ceiling_notes_text

    assert ceiling_notes_text(["", ""]) == ""
    text = ceiling_notes_text(
        ["scale grid widened from 0..2 to 0..4: ...", "", "3 all-NaN; scale grid widened ..."]
    )
    assert "; 2 needed a wider GSN signal-scale grid" in text and "nothing to do" in text
    assert "; 1 left out units without usable data" in text


def test_contrast_takes_rois_and_reports_each_region_apart(scores_db):
    from typer.testing import CliRunner

    from zooscope.cli import app

    args = ["analyze", "contrast", "--db", str(scores_db), "--by", "weights", "--metric", "versa"]
    every = CliRunner().invoke(app, [*args, "--format", "csv"])
    assert every.exit_code == 0, every.output
    table = pd.read_csv(io.StringIO(every.stdout))
    assert sorted(table["roi"].unique()) == ["EVC", "OTC"]  # per region, never pooled
    one = CliRunner().invoke(app, [*args, "--format", "csv", "--rois", "OTC"])
    assert one.exit_code == 0, one.output
    otc = pd.read_csv(io.StringIO(one.stdout))
    assert set(otc["roi"]) == {"OTC"}
    expected = table[table["roi"] == "OTC"].reset_index(drop=True)
    # the same groups and means (the bootstrap draws its CIs from one stream over the cells)
    columns = ["metric", "roi", "group", "n_models", "mean"]
    pd.testing.assert_frame_equal(otc[columns], expected[columns])


def test_the_paired_figure_has_one_panel_per_metric_and_region(scores_db, tmp_path):
    from typer.testing import CliRunner

    from zooscope.cli import app

    result = CliRunner().invoke(
        app,
        [
            "analyze", "paired", "--db", str(scores_db), "--pair-by", "name",
            "--contrast", "weights=pretrained,random", "--metric", "versa", "--out", str(tmp_path),
        ],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    svg = (tmp_path / "paired_weights.svg").read_text()
    assert "veRSA (r), EVC" in svg and "veRSA (r), OTC" in svg
