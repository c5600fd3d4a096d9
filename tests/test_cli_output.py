"""Quiet output: logging set-up, per-model summary lines, the ridge-diagnostics table."""

from __future__ import annotations

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
    assert "best veRSA layer: EVC a 50%, OTC c 3% (a best layer is flagged too" in line
    layers, scores = _model(random_nan_layers=2)
    lines = model_summary_lines("r", layers, scores, random_init=True)
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
