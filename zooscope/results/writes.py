"""Writing the results database: runs, one model's rows in one transaction, ceilings, failures."""

from __future__ import annotations

import datetime as _dt
import json
import math
import socket
import uuid
from collections.abc import Iterable
from typing import Any

import numpy as np
import pandas as pd

from zooscope import __version__
from zooscope._hashing import hash_json
from zooscope.failure_causes import MODEL
from zooscope.metrics import metric_names
from zooscope.results.liveness import run_identity
from zooscope.rsa.rsm import triangle_size
from zooscope.rsa.vocabulary import SPLITS
from zooscope.zoo.manifest import REQUIRED_COLUMNS

__all__ = ["MODEL_COLUMNS", "RUN_STATUSES", "ResultsWrites", "model_row"]

#: The manifest's required columns, then the optional ones a model row keeps as columns.
MODEL_COLUMNS = (
    *REQUIRED_COLUMNS,
    "train_data_size",
    "seed",
    "model_string",
    "param_count",
    "manifest",
)

_INT_MODEL_COLUMNS = ("train_data_size", "seed", "param_count")

_LAYER_INPUT = ("layer_index", "layer_name", "module_type", "n_features")

_SCORE_INPUT = ("layer_index", "layer_name", "subject", "roi", "metric", "split", "score")

_RSM_INPUT = ("metric", "subject", "roi", "layer_name", "split", "rsm")

_CEILING_INPUT = ("subject", "roi", "method", "value", "lower", "upper")

_PREDICTION_INPUT = ("metric", "subject", "roi", "layer_name", "split", "prediction")

_RESPONSE_INPUT = ("subject", "roi", "split", "response")

_CEILING_OPTIONAL = {"n_units": "Int64", "n_dropped": "Int64", "note": object}

#: ``runs.status`` values.
RUN_STATUSES = ("running", "finished", "interrupted", "failed")


def _now() -> _dt.datetime:
    """Current UTC time without tzinfo (stored as DuckDB TIMESTAMP, documented as UTC)."""
    return _dt.datetime.now(_dt.UTC).replace(tzinfo=None)


def _require_columns(df: pd.DataFrame, columns: Iterable[str], what: str) -> None:
    missing = [c for c in columns if c not in df.columns]
    if missing:
        raise ValueError(f"{what} is missing columns {missing}; it has {list(df.columns)}")


def _check_values(series: pd.Series, allowed: tuple[str, ...], what: str) -> None:
    bad = sorted(set(series.dropna().astype(str)) - set(allowed))
    if bad or series.isna().any():
        raise ValueError(f"{what} must be one of {list(allowed)}; got {bad or ['<missing>']}")


def _typed_score_columns(frame: pd.DataFrame, uid: str, what: str) -> dict[str, Any]:
    """The key and score columns of score-like rows, validated and typed for storage."""
    if len(frame):
        _check_values(frame["metric"], metric_names(), f"{what} of {uid!r}: metric")
        _check_values(frame["split"], SPLITS, f"{what} of {uid!r}: split")
    return {
        "model_uid": uid,
        "layer_index": pd.array(frame["layer_index"], dtype="Int32"),
        "layer_name": frame["layer_name"].astype(object),
        "subject": frame["subject"].astype(str),
        "roi": frame["roi"].astype(str),
        "metric": frame["metric"].astype(str),
        "split": frame["split"].astype(str),
        "score": frame["score"].astype(float),
    }


def _to_int_or_none(value: Any, column: str) -> int | None:
    if value is None or (isinstance(value, float) and math.isnan(value)) or value is pd.NA:
        return None
    if isinstance(value, str) and not value.strip():
        return None
    try:
        number = float(value)
    except (TypeError, ValueError) as err:
        raise ValueError(f"model column {column!r} must be an integer, got {value!r}") from err
    if not number.is_integer():
        raise ValueError(f"model column {column!r} must be an integer, got {value!r}")
    return int(number)


def _json_value(value: Any) -> Any:
    """Make a manifest value JSON-safe (NaN -> None, numpy scalars -> Python)."""
    if isinstance(value, np.generic):
        value = value.item()
    if value is pd.NA or (isinstance(value, float) and math.isnan(value)):
        return None
    return value


def model_row(model: dict[str, Any]) -> dict[str, Any]:
    """Split a manifest-style dict into the ``models`` columns and a JSON ``metadata`` string.

    Parameters
    ----------
    model : dict
        Must contain ``model_uid``; keys in :data:`MODEL_COLUMNS` become columns, every other key
        goes into ``metadata``.

    Returns
    -------
    row : dict
        Keys :data:`MODEL_COLUMNS` plus ``metadata``.
    """
    uid = model.get("model_uid")
    if uid is None or not str(uid).strip():
        raise ValueError(f"a model needs a non-empty 'model_uid'; got keys {sorted(model)}")
    row: dict[str, Any] = {}
    for column in MODEL_COLUMNS:
        value = _json_value(model.get(column))
        if column in _INT_MODEL_COLUMNS:
            value = _to_int_or_none(value, column)
        elif value is not None:
            value = str(value)
        row[column] = value
    extra = {k: _json_value(v) for k, v in model.items() if k not in MODEL_COLUMNS}
    row["metadata"] = json.dumps(extra, sort_keys=True, default=str)
    return row


def _matrix_table(
    df: pd.DataFrame | None,
    columns: tuple[str, ...],
    array: str,
    what: str,
    dtype: type = np.float64,
) -> Any:
    """An Arrow table of the key columns plus 2-D arrays flattened row-major into a list column.

    Adds ``n_images`` and ``n_units`` (the arrays' shape); None for an empty or absent frame.
    """
    if df is None or len(df) == 0:
        return None
    import pyarrow as pa

    _require_columns(df, columns, what)
    if "metric" in columns:
        _check_values(df["metric"], metric_names(), f"{what}: metric")
    _check_values(df["split"], SPLITS, f"{what}: split")
    matrices = [np.asarray(v, dtype=dtype) for v in df[array]]
    if any(m.ndim != 2 for m in matrices):
        raise ValueError(f"{what}: each {array} must be a 2-D array [n_images, n_units]")
    offsets = np.concatenate([[0], np.cumsum([m.size for m in matrices])]).astype(np.int64)
    values = np.concatenate([m.ravel() for m in matrices])
    keys = [c for c in columns if c != array]
    table = {c: pa.array(df[c].astype(str).tolist(), pa.string()) for c in keys}
    table["n_images"] = pa.array([m.shape[0] for m in matrices], pa.int32())
    table["n_units"] = pa.array([m.shape[1] for m in matrices], pa.int32())
    # Flat values + offsets: no per-element Python conversion (large lists: > 2**31 values fit).
    values = pa.array(values, pa.float32() if dtype == np.float32 else pa.float64())
    table[array] = pa.LargeListArray.from_arrays(pa.array(offsets), values)
    return pa.table(table)


def _with_constants(table: Any, constants: dict[str, str]) -> Any:
    """``table`` with one constant string column per item of ``constants``."""
    import pyarrow as pa

    for name, value in constants.items():
        table = table.append_column(name, pa.array([value] * table.num_rows, pa.string()))
    return table


class ResultsWrites:
    """What the survey writes (mixed into :class:`~zooscope.results.db.ResultsDB`, whose
    connection, lock and transactions it uses). Only the process that owns the file writes."""

    def start_run(
        self, benchmark_hash: str, config: dict[str, Any], manifest: str | None = None
    ) -> str:
        """Record the start of a run and return its id.

        Parameters
        ----------
        benchmark_hash : str
            Content hash of the benchmark the run scores against.
        config : dict
            The scoring config (JSON-serialisable); its :func:`zooscope._hashing.hash_json` keys
            the results together with ``benchmark_hash``.
        manifest : str, optional
            The manifest file the models come from.

        Returns
        -------
        run_id : str
        """
        if not benchmark_hash:
            raise ValueError("benchmark_hash must be a non-empty string")
        config_hash = hash_json(config)
        started = _now()
        run_id = f"{started:%Y%m%dT%H%M%S}-{uuid.uuid4().hex[:8]}"
        alive = run_identity()
        with self._lock:
            self.con.execute(
                "INSERT INTO runs (run_id, started_at, finished_at, zooscope_version, "
                "benchmark_hash, config_hash, config, host, manifest, status, heartbeat_at, "
                "lease_seconds, process) VALUES (?, ?, NULL, ?, ?, ?, ?, ?, ?, 'running', ?, ?, ?)",
                [
                    run_id,
                    started,
                    __version__,
                    benchmark_hash,
                    config_hash,
                    json.dumps(config, sort_keys=True, default=str),
                    socket.gethostname(),
                    None if manifest is None else str(manifest),
                    started,
                    alive["lease_seconds"],
                    alive["process"],
                ],
            )
        return run_id

    def finish_run(self, run_id: str, status: str = "finished", reason: str | None = None) -> None:
        """Set a run's status (and release its claims); a ``finished`` run gets its finish time.

        Parameters
        ----------
        run_id : str
        status : {"finished", "interrupted", "failed"}
            ``interrupted`` (Ctrl-C, SIGTERM from a scheduler) and ``failed`` leave
            ``finished_at`` NULL.
        reason : str, optional
            Why the run failed or was interrupted (one line).
        """
        if status not in RUN_STATUSES[1:]:
            raise ValueError(f"status must be one of {RUN_STATUSES[1:]}, got {status!r}")
        with self._transaction() as con:
            self._run(run_id)
            finished = _now() if status == "finished" else None
            con.execute(
                "UPDATE runs SET finished_at = ?, status = ?, reason = ?, heartbeat_at = ? "
                "WHERE run_id = ?",
                [finished, status, reason, _now(), run_id],
            )
            con.execute("DELETE FROM claims WHERE run_id = ?", [run_id])

    def _run(self, run_id: str) -> tuple[str, str]:
        row = self.con.execute(
            "SELECT benchmark_hash, config_hash FROM runs WHERE run_id = ?", [run_id]
        ).fetchone()
        if row is None:
            raise KeyError(f"unknown run_id {run_id!r}; call start_run first")
        return row[0], row[1]

    def write_model(
        self,
        run_id: str,
        model: dict[str, Any],
        layers: pd.DataFrame,
        scores: pd.DataFrame,
        rsms: pd.DataFrame | None,
        seconds: float,
        predictions: pd.DataFrame | None = None,
        unit_scores: pd.DataFrame | None = None,
    ) -> None:
        """Write every row of one model in ONE transaction (all or nothing).

        Upserts the ``models`` row, deletes the model's earlier ``layers``/``scores``/``rsms``
        rows for the run's (benchmark_hash, config_hash), inserts the new ones and the
        ``completions`` marker. On any error the transaction is rolled back and the error raised.

        Parameters
        ----------
        run_id : str
            From :meth:`start_run`; gives benchmark_hash and config_hash.
        model : dict
            Manifest row; needs ``model_uid`` (see :func:`model_row`).
        layers : DataFrame, shape (n_layers, 4 to 6)
            Columns ``layer_index, layer_name, module_type, n_features[, effective_dim]
            [, alpha_edge_fraction]``.
        scores : DataFrame, shape (n_rows, 7 or 8)
            Columns ``layer_index, layer_name, subject, roi, metric, split, score[, error]``;
            ``layer_index`` may be missing (NA) for published scores without layers.
        rsms : DataFrame or None, shape (n_rsms, 6)
            Columns ``metric, subject, roi, layer_name, split, rsm``; ``rsm`` holds 1-D arrays of
            length n (n - 1) / 2 (upper triangle, ``np.triu_indices(n, k=1)`` order).
        seconds : float
            Time the model took (stored with the completion marker).
        predictions : DataFrame or None, shape (n_groups, 6)
            Columns ``metric, subject, roi, layer_name, split, prediction``; ``prediction`` holds
            2-D arrays ``[n_images, n_units]`` (the best layer's predicted responses).
        unit_scores : DataFrame or None, shape (n_rows, 8)
            Columns ``layer_index, layer_name, subject, roi, metric, split, unit, score``.
        """
        row = model_row(model)
        uid = row["model_uid"]
        layer_frame = self._prepare_layers(layers, uid)
        score_frame = self._prepare_scores(scores, uid)
        rsm_table = self._prepare_rsms(rsms, uid)
        unit_frame = self._prepare_unit_scores(unit_scores, uid)
        prediction_table = _matrix_table(
            predictions, _PREDICTION_INPUT, "prediction", f"predictions of {uid!r}"
        )
        with self._lock:
            benchmark_hash, config_hash = self._run(run_id)
            for frame in (layer_frame, score_frame, unit_frame):
                frame["benchmark_hash"] = benchmark_hash
                frame["config_hash"] = config_hash
                frame["run_id"] = run_id
            with self._transaction() as con:
                con.execute(
                    f"INSERT OR REPLACE INTO models VALUES ({', '.join('?' * (len(MODEL_COLUMNS) + 1))})",
                    [row[c] for c in (*MODEL_COLUMNS, "metadata")],
                )
                for table in ("layers", "scores", "rsms", "unit_predictions", "unit_scores"):
                    con.execute(
                        f"DELETE FROM {table} WHERE model_uid = ? AND benchmark_hash = ? "
                        "AND config_hash = ?",
                        [uid, benchmark_hash, config_hash],
                    )
                if len(layer_frame):
                    self._insert_frame(con, "layers", layer_frame, list(layer_frame.columns))
                if len(score_frame):
                    self._insert_frame(con, "scores", score_frame, list(score_frame.columns))
                if len(unit_frame):
                    self._insert_frame(con, "unit_scores", unit_frame, list(unit_frame.columns))
                if rsm_table is not None:
                    import pyarrow as pa

                    n = rsm_table.num_rows
                    rsm_table = rsm_table.append_column(
                        "benchmark_hash", pa.array([benchmark_hash] * n, pa.string())
                    ).append_column("config_hash", pa.array([config_hash] * n, pa.string()))
                    self._insert_frame(con, "rsms", rsm_table, rsm_table.column_names)
                if prediction_table is not None:
                    keys = {"model_uid": uid, "benchmark_hash": benchmark_hash,
                            "config_hash": config_hash}  # fmt: skip
                    prediction_table = _with_constants(prediction_table, keys)
                    self._insert_frame(
                        con, "unit_predictions", prediction_table, prediction_table.column_names
                    )
                con.execute(
                    "INSERT INTO completions VALUES (?, ?, ?, ?, ?, ?)",
                    [uid, benchmark_hash, config_hash, run_id, _now(), float(seconds)],
                )

    @staticmethod
    def _prepare_layers(layers: pd.DataFrame | None, uid: str) -> pd.DataFrame:
        if layers is None:
            layers = pd.DataFrame(columns=list(_LAYER_INPUT))
        _require_columns(layers, _LAYER_INPUT, f"layers of {uid!r}")
        out = pd.DataFrame(
            {
                "model_uid": uid,
                "layer_index": pd.array(layers["layer_index"], dtype="Int32"),
                "layer_name": layers["layer_name"].astype(object),
                "module_type": layers["module_type"].astype(object),
                "n_features": pd.array(layers["n_features"], dtype="Int64"),
                **{
                    column: (
                        layers[column].astype(float)
                        if column in layers
                        else np.full(len(layers), np.nan)
                    )
                    for column in ("effective_dim", "alpha_edge_fraction")
                },
            }
        )
        if out["layer_index"].duplicated().any():
            raise ValueError(f"layers of {uid!r} repeat a layer_index")
        return out

    @staticmethod
    def _prepare_scores(scores: pd.DataFrame, uid: str) -> pd.DataFrame:
        _require_columns(scores, _SCORE_INPUT, f"scores of {uid!r}")
        out = pd.DataFrame(_typed_score_columns(scores, uid, "scores"))
        if "error" in scores.columns:  # optional: the metric's error of each score
            out["error"] = scores["error"].astype(float).to_numpy()
        key = ["layer_index", "subject", "roi", "metric", "split"]
        dup = out.duplicated(key, keep=False)
        if dup.any():
            raise ValueError(
                f"scores of {uid!r} repeat keys {key}:\n{out.loc[dup, key].head().to_string()}"
            )
        return out

    @staticmethod
    def _prepare_unit_scores(unit_scores: pd.DataFrame | None, uid: str) -> pd.DataFrame:
        columns = (
            "layer_index",
            "layer_name",
            "subject",
            "roi",
            "metric",
            "split",
            "unit",
            "score",
        )
        if unit_scores is None:
            unit_scores = pd.DataFrame(columns=list(columns))
        _require_columns(unit_scores, columns, f"unit scores of {uid!r}")
        return pd.DataFrame(
            {
                **_typed_score_columns(unit_scores, uid, "unit scores"),
                "unit": pd.array(unit_scores["unit"], dtype="Int64"),
            }
        )

    @staticmethod
    def _prepare_rsms(rsms: pd.DataFrame | None, uid: str) -> Any:
        if rsms is None or len(rsms) == 0:
            return None
        import pyarrow as pa

        _require_columns(rsms, _RSM_INPUT, f"rsms of {uid!r}")
        _check_values(rsms["metric"], metric_names(), f"rsms of {uid!r}: metric")
        _check_values(rsms["split"], SPLITS, f"rsms of {uid!r}: split")
        vectors = [np.asarray(v, dtype=np.float32) for v in rsms["rsm"]]
        if any(v.ndim != 1 for v in vectors):
            raise ValueError(f"rsms of {uid!r}: each rsm must be a 1-D upper triangle")
        n_images = [triangle_size(v.size) for v in vectors]
        offsets = np.concatenate([[0], np.cumsum([v.size for v in vectors])]).astype(np.int32)
        values = np.concatenate(vectors) if vectors else np.zeros(0, np.float32)
        # Arrow list built from flat values + offsets: no per-element Python conversion.
        rsm_array = pa.ListArray.from_arrays(pa.array(offsets), pa.array(values, pa.float32()))
        n = len(vectors)
        return pa.table(
            {
                "model_uid": pa.array([uid] * n, pa.string()),
                "metric": pa.array(rsms["metric"].astype(str).tolist(), pa.string()),
                "subject": pa.array(rsms["subject"].astype(str).tolist(), pa.string()),
                "roi": pa.array(rsms["roi"].astype(str).tolist(), pa.string()),
                "layer_name": pa.array(rsms["layer_name"].astype(str).tolist(), pa.string()),
                "split": pa.array(rsms["split"].astype(str).tolist(), pa.string()),
                "n_images": pa.array(n_images, pa.int32()),
                "rsm": rsm_array,
            }
        )

    def record_failure(
        self,
        run_id: str,
        model_uid: str,
        stage: str,
        error: str,
        traceback: str,
        cause: str = MODEL,
    ) -> None:
        """Record that a model raised at ``stage`` (e.g. ``load``, ``extract``, ``score``).

        ``cause`` is one of :data:`zooscope.failure_causes.CAUSES`; only ``model`` makes a
        later run skip the model (:meth:`failed_models`).
        """
        with self._lock:
            self._run(run_id)
            self.con.execute(
                "INSERT INTO failures (run_id, model_uid, stage, error, traceback, time, cause) "
                "VALUES (?, ?, ?, ?, ?, ?, ?)",
                [run_id, model_uid, stage, str(error), str(traceback), _now(), cause],
            )

    def write_ceilings(
        self, benchmark_hash: str, df: pd.DataFrame, groups_only: bool = False
    ) -> None:
        """Replace a benchmark's noise ceilings of the methods in ``df`` (others are kept), or with
        ``groups_only``, only the given (subject, roi, method) groups.

        Parameters
        ----------
        benchmark_hash : str
        df : DataFrame, shape (n_rows, 6 to 9)
            Columns ``subject, roi, method, value, lower, upper`` (``lower``/``upper`` may be NaN),
            optionally ``n_units, n_dropped, note``.
        groups_only : bool
            Replace only the rows of the (subject, roi, method) keys in ``df``, keeping the others
            (a ceiling stored as soon as it is computed).
        """
        _require_columns(df, _CEILING_INPUT, "ceilings")
        notes = df["note"] if "note" in df else pd.Series([None] * len(df), index=df.index)
        frame = pd.DataFrame(
            {
                "benchmark_hash": benchmark_hash,
                "subject": df["subject"].astype(str),
                "roi": df["roi"].astype(str),
                "method": df["method"].astype(str),
                "value": df["value"].astype(float),
                "lower": df["lower"].astype(float),
                "upper": df["upper"].astype(float),
                "note": notes.astype(object).where(notes.notna(), None),
            }
        )
        for column, dtype in _CEILING_OPTIONAL.items():
            if column in df.columns:
                frame[column] = df[column].astype(dtype)
        if frame.duplicated(["subject", "roi", "method"]).any():
            raise ValueError("ceilings repeat a (subject, roi, method)")
        methods = sorted(set(frame["method"]))
        with self._transaction() as con:
            if groups_only:
                for subject, roi, method in frame[["subject", "roi", "method"]].itertuples(
                    index=False
                ):
                    con.execute(
                        "DELETE FROM ceilings WHERE benchmark_hash = ? AND subject = ? AND roi = ? "
                        "AND method = ?",
                        [benchmark_hash, subject, roi, method],
                    )
            elif methods:
                con.execute(
                    "DELETE FROM ceilings WHERE benchmark_hash = ? AND method IN "
                    f"({', '.join('?' * len(methods))})",
                    [benchmark_hash, *methods],
                )
            self._insert_frame(con, "ceilings", frame, list(frame.columns))

    def write_responses(self, benchmark_hash: str, df: pd.DataFrame) -> None:
        """Store the measured responses that a benchmark's unit predictions are scored against.

        Rows with the same (subject, roi, split) as a row of ``df`` are replaced.

        Parameters
        ----------
        benchmark_hash : str
        df : DataFrame, shape (n_groups, 4)
            Columns ``subject, roi, split, response``; ``response`` holds 2-D arrays
            ``[n_images, n_units]`` (stored as float32, the benchmark's precision).
        """
        table = _matrix_table(df, _RESPONSE_INPUT, "response", "responses", np.float32)
        if table is None:
            return
        frame = df[["subject", "roi", "split"]].astype(str)
        if frame.duplicated().any():
            raise ValueError("responses repeat a (subject, roi, split)")
        with self._transaction() as con:
            for subject, roi, split in frame.itertuples(index=False):
                con.execute(
                    "DELETE FROM unit_responses WHERE benchmark_hash = ? AND subject = ? "
                    "AND roi = ? AND split = ?",
                    [benchmark_hash, subject, roi, split],
                )
            table = _with_constants(table, {"benchmark_hash": benchmark_hash})
            self._insert_frame(con, "unit_responses", table, table.column_names)

    def _insert_frame(self, con: Any, table: str, frame: Any, columns: list[str]) -> None:
        """Insert a DataFrame or Arrow table through registration (no values in SQL text)."""
        name = f"_zooscope_insert_{uuid.uuid4().hex}"
        con.register(name, frame)
        try:
            cols = ", ".join(columns)
            con.execute(f"INSERT INTO {table} ({cols}) SELECT {cols} FROM {name}")
        finally:
            con.unregister(name)
