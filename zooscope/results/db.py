"""The results database: one DuckDB file holding models, runs, layers, scores, ceilings and RSMs.

Schema (version :data:`SCHEMA_VERSION`; older files are upgraded on open by the ordered list of
migration functions in ``_MIGRATIONS``):

``schema_info(version)``
    One row, the schema version of the file.
``models``
    One row per model: the manifest columns that every analysis uses as real columns, every other
    manifest column (``compare_*``, notes, published statistics, ...) in ``metadata`` (JSON).
``runs``
    One row per survey or import run: timing, zooscope version, benchmark hash, scoring config
    (JSON) and its hash, host and manifest; ``status`` is ``running``, ``finished`` or
    ``interrupted`` (``finished_at`` is set only for a finished run; a killed one stays
    ``running`` with no finish time).
``layers``
    Per model, benchmark and config: layer index, name, module type, feature count and
    (optionally) effective dimensionality.
``scores``
    Tidy scores: model, layer, subject, ROI, metric (``crsa``, ``versa``, ``encoding_r``), split
    (``train``, ``test``), score, and the score's ``error`` where its metric gives one (the
    brainscore profile's test scores: Brain-Score's standard error over cross-validation splits;
    NULL otherwise). The key (model_uid, layer_index, subject, roi, metric, split,
    benchmark_hash, config_hash) is unique (enforced by :meth:`ResultsDB.write_model`, checked by
    :meth:`ResultsDB.duplicate_score_keys`).
``ceilings``
    Noise ceilings per benchmark, subject, ROI and method (value and interval), with the number
    of units used (``n_units``) and left out (``n_dropped``: constant, all-NaN, ...; ``note``).
``failures``
    Models that raised, with the stage, error and traceback.
``rsms``
    Best-layer test RSMs (upper triangle above the diagonal, row-major as ``np.triu_indices(n,
    k=1)``) per model, metric, subject and ROI, for model-to-model similarity.
``unit_predictions``
    Per model, metric, subject and ROI: the best layer's predicted test responses of every unit
    (row-major ``[n_images, n_units]`` float64, the units in the benchmark's group order), for
    the metrics that predict units (veRSA's ridge, encoding r), so cross-model analyses (unique
    variance) need no re-extraction.
``unit_responses``
    Per benchmark, subject, ROI and split: the measured (repetition-averaged) responses the
    predictions are scored against, in the same layout, in float32 like the benchmark's.
``completions``
    The marker that a model's rows for a (benchmark_hash, config_hash) are complete.
``unit_scores``
    Per-neuron scores of every layer (``predictivity``: each neuron's r averaged over the
    cross-validation splits), keyed like ``scores`` plus the benchmark ``unit`` index.

Best layers (:meth:`ResultsDB.best_layer_scores`, computed by
:func:`zooscope.rsa.select_best_layers`, not stored): per (model, subject, roi, metric,
benchmark_hash, config_hash) the layer with the best *train* score (ties: lowest layer index; NaN
scores never win) and that layer's *test* score.

Published scores without layers
-------------------------------
Tables such as Conwell et al.'s ``results_summary.csv`` give only a test score per model (already
the best layer's, averaged over subjects). They are stored as ``scores`` rows with
``layer_index`` and ``layer_name`` NULL and ``split = 'test'``; a subject average is stored under
the reserved subject :data:`SUBJECT_MEAN`. ``best_layer_scores`` passes such rows through unchanged
(``layer_index``/``train_score`` NULL, ``selection = 'published'``) for every key that has no layered
train scores; layer-wise rows win where both exist.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import json
import logging
import math
import shutil
import socket
import threading
import uuid
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from zooscope._hashing import hash_json
from zooscope.errors import SchemaVersionError
from zooscope.results.locking import connect_waiting
from zooscope.rsa.vocabulary import METRICS, RSA_CEILING_METHOD, SPLITS
from zooscope.zoo.manifest import REQUIRED_COLUMNS

logger = logging.getLogger(__name__)

SCHEMA_VERSION = 6
#: Reserved subject label of a score averaged over subjects (published summary tables).
SUBJECT_MEAN = "mean"

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
SCORE_KEY = (
    "model_uid",
    "layer_index",
    "subject",
    "roi",
    "metric",
    "split",
    "benchmark_hash",
    "config_hash",
)
_LAYER_INPUT = ("layer_index", "layer_name", "module_type", "n_features")
_SCORE_INPUT = ("layer_index", "layer_name", "subject", "roi", "metric", "split", "score")
_RSM_INPUT = ("metric", "subject", "roi", "layer_name", "split", "rsm")
_CEILING_INPUT = ("subject", "roi", "method", "value", "lower", "upper")
_PREDICTION_INPUT = ("metric", "subject", "roi", "layer_name", "split", "prediction")
_RESPONSE_INPUT = ("subject", "roi", "split", "response")
_CEILING_OPTIONAL = {"n_units": "Int64", "n_dropped": "Int64", "note": object}
#: ``runs.status`` values.
RUN_STATUSES = ("running", "finished", "interrupted")
#: Key of a best-layer selection in the ``scores`` table.
_BEST_LAYER_KEY = ("model_uid", "subject", "roi", "metric", "benchmark_hash", "config_hash")


# --------------------------------------------------------------------------------------------
# schema and migrations
# --------------------------------------------------------------------------------------------
def _migration_1_initial(con: Any) -> None:
    """Version 1: every table of the results database and the ``best_layer_scores`` view."""
    con.execute(
        """
        CREATE TABLE models (
            model_uid VARCHAR PRIMARY KEY, source VARCHAR, name VARCHAR, weights VARCHAR,
            display_name VARCHAR, arch_class VARCHAR, task VARCHAR, task_cluster VARCHAR,
            train_data VARCHAR, train_data_size BIGINT, seed BIGINT, model_string VARCHAR,
            param_count BIGINT, manifest VARCHAR, metadata JSON)
        """
    )
    con.execute(
        """
        CREATE TABLE runs (
            run_id VARCHAR PRIMARY KEY, started_at TIMESTAMP, finished_at TIMESTAMP,
            zooscope_version VARCHAR, benchmark_hash VARCHAR, config_hash VARCHAR,
            config JSON, host VARCHAR, manifest VARCHAR)
        """
    )
    con.execute(
        """
        CREATE TABLE layers (
            model_uid VARCHAR, benchmark_hash VARCHAR, config_hash VARCHAR, layer_index INTEGER,
            layer_name VARCHAR, module_type VARCHAR, n_features BIGINT,
            effective_dim DOUBLE, run_id VARCHAR)
        """
    )
    con.execute(
        """
        CREATE TABLE scores (
            model_uid VARCHAR, layer_index INTEGER, layer_name VARCHAR, subject VARCHAR,
            roi VARCHAR, metric VARCHAR, split VARCHAR, score DOUBLE, benchmark_hash VARCHAR,
            config_hash VARCHAR, run_id VARCHAR)
        """
    )
    con.execute(
        """
        CREATE TABLE ceilings (
            benchmark_hash VARCHAR, subject VARCHAR, roi VARCHAR, method VARCHAR,
            value DOUBLE, lower DOUBLE, upper DOUBLE)
        """
    )
    con.execute(
        """
        CREATE TABLE failures (
            run_id VARCHAR, model_uid VARCHAR, stage VARCHAR, error VARCHAR,
            traceback VARCHAR, time TIMESTAMP)
        """
    )
    con.execute(
        """
        CREATE TABLE rsms (
            model_uid VARCHAR, metric VARCHAR, subject VARCHAR, roi VARCHAR, layer_name VARCHAR,
            split VARCHAR, benchmark_hash VARCHAR, config_hash VARCHAR, n_images INTEGER,
            rsm FLOAT[])
        """
    )
    con.execute(
        """
        CREATE TABLE completions (
            model_uid VARCHAR, benchmark_hash VARCHAR, config_hash VARCHAR, run_id VARCHAR,
            finished_at TIMESTAMP, seconds DOUBLE)
        """
    )
    # isnan() guard: DuckDB orders NaN above every number, so a NaN train score would win.
    con.execute(
        """
        CREATE VIEW best_layer_scores AS
        WITH ranked AS (
            SELECT model_uid, subject, roi, metric, benchmark_hash, config_hash, layer_index,
                   layer_name, score AS train_score,
                   row_number() OVER (
                       PARTITION BY model_uid, subject, roi, metric, benchmark_hash, config_hash
                       ORDER BY CASE WHEN isnan(score) THEN NULL ELSE score END DESC NULLS LAST,
                                layer_index ASC) AS rk
            FROM scores WHERE split = 'train' AND layer_index IS NOT NULL
        ), best AS (SELECT * EXCLUDE (rk) FROM ranked WHERE rk = 1)
        SELECT b.model_uid, b.subject, b.roi, b.metric, b.benchmark_hash, b.config_hash,
               b.layer_index, b.layer_name, b.train_score, t.score AS test_score,
               'best_train_layer' AS selection
        FROM best b LEFT JOIN scores t
          ON t.split = 'test' AND t.model_uid = b.model_uid AND t.layer_index = b.layer_index
         AND t.subject = b.subject AND t.roi = b.roi AND t.metric = b.metric
         AND t.benchmark_hash = b.benchmark_hash AND t.config_hash = b.config_hash
        UNION ALL
        SELECT s.model_uid, s.subject, s.roi, s.metric, s.benchmark_hash, s.config_hash,
               NULL::INTEGER, NULL::VARCHAR, NULL::DOUBLE, s.score, 'published'
        FROM scores s
        WHERE s.layer_index IS NULL AND s.split = 'test' AND NOT EXISTS (
            SELECT 1 FROM best b WHERE b.model_uid = s.model_uid AND b.subject = s.subject
              AND b.roi = s.roi AND b.metric = s.metric
              AND b.benchmark_hash = s.benchmark_hash AND b.config_hash = s.config_hash)
        """
    )


def _migration_2_unit_predictions(con: Any) -> None:
    """Version 2: best-layer per-unit test predictions and the measured responses they predict."""
    con.execute(
        """
        CREATE TABLE unit_predictions (
            model_uid VARCHAR, metric VARCHAR, subject VARCHAR, roi VARCHAR, layer_name VARCHAR,
            split VARCHAR, benchmark_hash VARCHAR, config_hash VARCHAR, n_images INTEGER,
            n_units INTEGER, prediction DOUBLE[])
        """
    )
    con.execute(
        """
        CREATE TABLE unit_responses (
            benchmark_hash VARCHAR, subject VARCHAR, roi VARCHAR, split VARCHAR,
            n_images INTEGER, n_units INTEGER, response FLOAT[])
        """
    )


def _migration_3_run_status_ceiling_units(con: Any) -> None:
    """Version 3: ``runs.status`` (an interrupted run is not finished) and ceiling unit counts."""
    con.execute("ALTER TABLE runs ADD COLUMN status VARCHAR")
    con.execute(
        "UPDATE runs SET status = CASE WHEN finished_at IS NULL THEN 'running' ELSE 'finished' END"
    )
    con.execute("ALTER TABLE ceilings ADD COLUMN n_units BIGINT")
    con.execute("ALTER TABLE ceilings ADD COLUMN n_dropped BIGINT")
    con.execute("ALTER TABLE ceilings ADD COLUMN note VARCHAR")


def _migration_4_unit_scores(con: Any) -> None:
    """Version 4: per-neuron scores (neural predictivity) of every layer, for later analyses."""
    con.execute(
        """
        CREATE TABLE unit_scores (
            model_uid VARCHAR, layer_index INTEGER, layer_name VARCHAR, subject VARCHAR,
            roi VARCHAR, metric VARCHAR, split VARCHAR, unit BIGINT, score DOUBLE,
            benchmark_hash VARCHAR, config_hash VARCHAR, run_id VARCHAR)
        """
    )


def _migration_5_quiet_diagnostics(con: Any) -> None:
    """Per-layer alpha-edge diagnostic; best layers chosen in Python, not by a view.

    ``layers.alpha_edge_fraction``: the fraction of units whose ridge alpha sits at an edge of
    the grid. The ``best_layer_scores`` view goes: the one best-layer
    rule is :func:`zooscope.rsa.select_best_layers`, which :meth:`ResultsDB.best_layer_scores`
    calls (a view frozen into each file would become a second rule).
    """
    con.execute("ALTER TABLE layers ADD COLUMN alpha_edge_fraction DOUBLE")
    con.execute("DROP VIEW IF EXISTS best_layer_scores")


def _migration_6_score_errors(con: Any) -> None:
    """Version 6: ``scores.error``, the error a metric reports with a score (NULL when none)."""
    con.execute("ALTER TABLE scores ADD COLUMN error DOUBLE")


#: Ordered migrations: ``_MIGRATIONS[v]`` upgrades a file from version ``v`` to ``v + 1``.
_MIGRATIONS: tuple[Callable[[Any], None], ...] = (
    _migration_1_initial,
    _migration_2_unit_predictions,
    _migration_3_run_status_ceiling_units,
    _migration_4_unit_scores,
    _migration_5_quiet_diagnostics,
    _migration_6_score_errors,
)
assert len(_MIGRATIONS) == SCHEMA_VERSION


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
        _check_values(frame["metric"], METRICS, f"{what} of {uid!r}: metric")
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


def _n_images_from_triu(length: int) -> int:
    """Number of images n such that n (n - 1) / 2 == length."""
    n = round((1 + math.sqrt(1 + 8 * length)) / 2)
    if n * (n - 1) // 2 != length:
        raise ValueError(
            f"an RSM upper triangle of length {length} is not n (n - 1) / 2 for any n; "
            "store np.triu_indices(n, k=1) entries"
        )
    return n


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


class ResultsDB:
    """The survey's results database (one DuckDB file).

    Only one process may write the file at a time (DuckDB's own file lock enforces it); within a
    process the connection is guarded by a lock, so a Dask client's callbacks may call it from
    several threads. Workers never write: they return tables to the client.

    Parameters
    ----------
    path : str or Path
        The database file; created (with parent folders) if absent, migrated if older.
    read_only : bool
        Open without write access (no migration; fails on a file that needs one).
    timeout : float, optional
        Seconds to wait while another process holds the file's lock (default
        ``$ZOOSCOPE_DB_TIMEOUT`` or 600); see :mod:`zooscope.results.locking`.

    Examples
    --------
    >>> with ResultsDB("results.duckdb") as db:  # doctest: +SKIP
    ...     run_id = db.start_run("abc123", {"metrics": ["crsa"]})
    ...     db.write_model(run_id, {"model_uid": "alexnet"}, layers, scores, None, 12.0)
    ...     db.finish_run(run_id)
    """

    def __init__(
        self, path: str | Path, read_only: bool = False, timeout: float | None = None
    ) -> None:
        self.path = Path(path)
        if not read_only:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        elif not self.path.exists():
            raise FileNotFoundError(f"no results database at {self.path}")
        self._lock = threading.RLock()
        self._timeout = timeout
        self._con = connect_waiting(self.path, read_only=read_only, timeout=timeout)
        self.read_only = read_only
        self._migrate()

    # ---------------------------------------------------------------- lifecycle
    def close(self) -> None:
        """Close the connection (idempotent)."""
        with self._lock:
            if self._con is not None:
                self._con.close()
                self._con = None

    def __enter__(self) -> ResultsDB:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"ResultsDB({str(self.path)!r})"

    @property
    def con(self) -> Any:
        """The DuckDB connection (for read-only ad-hoc SQL)."""
        if self._con is None:
            raise RuntimeError(f"{self!r} is closed")
        return self._con

    @contextlib.contextmanager
    def _transaction(self) -> Iterator[Any]:
        with self._lock:
            con = self.con
            con.execute("BEGIN TRANSACTION")
            try:
                yield con
            except BaseException:
                con.execute("ROLLBACK")
                raise
            con.execute("COMMIT")

    @property
    def schema_version(self) -> int:
        """The schema version of the open file."""
        tables = {
            r[0]
            for r in self.con.execute("SELECT table_name FROM information_schema.tables").fetchall()
        }
        if "schema_info" not in tables:
            return 0
        row = self.con.execute("SELECT max(version) FROM schema_info").fetchone()
        return int(row[0]) if row and row[0] is not None else 0

    def _migrate(self) -> None:
        version = self.schema_version
        if version > SCHEMA_VERSION:
            raise SchemaVersionError(
                f"{self.path} has schema version {version}, newer than this zooscope "
                f"({SCHEMA_VERSION})\n  upgrade zooscope to read it, or go back to the copy the "
                f"upgrade kept: {_backup_path(self.path, SCHEMA_VERSION)} (results written since are "
                "not in it)"
            )
        if version == SCHEMA_VERSION:
            return
        if self.read_only:
            raise SchemaVersionError(
                f"{self.path} has schema version {version} < {SCHEMA_VERSION}\n  open it once for "
                "writing to upgrade it (e.g. zooscope results upgrade --db FILE)"
            )
        if version > 0:
            self._backup_before_upgrade(version)
        for target, migration in enumerate(_MIGRATIONS[version:], start=version + 1):
            # A new file passes through every migration: only upgrades of old files are news.
            logger.log(
                logging.INFO if version else logging.DEBUG,
                "migrating %s to schema version %d",
                self.path,
                target,
            )
            with self._transaction() as con:
                migration(con)
                con.execute("CREATE TABLE IF NOT EXISTS schema_info (version INTEGER)")
                con.execute("DELETE FROM schema_info")
                con.execute("INSERT INTO schema_info VALUES (?)", [target])

    def _backup_before_upgrade(self, version: int) -> None:
        """Copy the file before migrating it: the way back for an older zooscope (a downgrade)."""
        backup = _backup_path(self.path, version)
        self._con.close()
        try:
            if not backup.exists():
                shutil.copy2(self.path, backup)
                logger.info(
                    "upgrading %s; the version-%d file is kept as %s", self.path, version, backup
                )
        finally:
            self._con = connect_waiting(self.path, read_only=False, timeout=self._timeout)

    def _insert_frame(self, con: Any, table: str, frame: Any, columns: list[str]) -> None:
        """Insert a DataFrame or Arrow table through registration (no values in SQL text)."""
        name = f"_zooscope_insert_{uuid.uuid4().hex}"
        con.register(name, frame)
        try:
            cols = ", ".join(columns)
            con.execute(f"INSERT INTO {table} ({cols}) SELECT {cols} FROM {name}")
        finally:
            con.unregister(name)

    def _query(self, sql: str, params: list[Any] | None = None) -> pd.DataFrame:
        with self._lock:
            return self.con.execute(sql, params or []).df()

    # ---------------------------------------------------------------- runs
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
        from zooscope import __version__

        if not benchmark_hash:
            raise ValueError("benchmark_hash must be a non-empty string")
        config_hash = hash_json(config)
        started = _now()
        run_id = f"{started:%Y%m%dT%H%M%S}-{uuid.uuid4().hex[:8]}"
        with self._lock:
            self.con.execute(
                "INSERT INTO runs (run_id, started_at, finished_at, zooscope_version, "
                "benchmark_hash, config_hash, config, host, manifest, status) "
                "VALUES (?, ?, NULL, ?, ?, ?, ?, ?, ?, 'running')",
                [
                    run_id,
                    started,
                    __version__,
                    benchmark_hash,
                    config_hash,
                    json.dumps(config, sort_keys=True, default=str),
                    socket.gethostname(),
                    None if manifest is None else str(manifest),
                ],
            )
        return run_id

    def finish_run(self, run_id: str, status: str = "finished") -> None:
        """Set a run's status; a ``finished`` run also gets its finish time.

        Parameters
        ----------
        run_id : str
        status : {"finished", "interrupted"}
            ``interrupted`` (Ctrl-C, SIGTERM from a scheduler) leaves ``finished_at`` NULL.
        """
        if status not in RUN_STATUSES[1:]:
            raise ValueError(f"status must be one of {RUN_STATUSES[1:]}, got {status!r}")
        with self._lock:
            self._run(run_id)
            finished = _now() if status == "finished" else None
            self.con.execute(
                "UPDATE runs SET finished_at = ?, status = ? WHERE run_id = ?",
                [finished, status, run_id],
            )

    def _run(self, run_id: str) -> tuple[str, str]:
        row = self.con.execute(
            "SELECT benchmark_hash, config_hash FROM runs WHERE run_id = ?", [run_id]
        ).fetchone()
        if row is None:
            raise KeyError(f"unknown run_id {run_id!r}; call start_run first")
        return row[0], row[1]

    def runs(self) -> pd.DataFrame:
        """All runs, oldest first."""
        return self._query("SELECT * FROM runs ORDER BY started_at")

    def config_profiles(self) -> pd.DataFrame:
        """``config_hash -> profile`` of every run's scoring config (``default`` when it names none)."""
        return self._query(
            "SELECT DISTINCT config_hash, coalesce(json_extract_string(config, '$.profile'), 'default') "
            "AS profile FROM runs ORDER BY config_hash"
        )

    def profile_config_hashes(self, profile: str) -> list[str]:
        """Config hashes of the runs made under scoring profile ``profile``."""
        table = self.config_profiles()
        return sorted(table.loc[table["profile"] == profile, "config_hash"])

    # ---------------------------------------------------------------- resumability
    def completed_models(self, benchmark_hash: str, config_hash: str) -> set[str]:
        """Models whose rows for this benchmark and config are complete."""
        df = self._query(
            "SELECT DISTINCT model_uid FROM completions WHERE benchmark_hash = ? AND config_hash = ?",
            [benchmark_hash, config_hash],
        )
        return set(df["model_uid"])

    def failed_models(self, benchmark_hash: str, config_hash: str) -> set[str]:
        """Models that failed for this benchmark and config and have not completed since."""
        df = self._query(
            """
            SELECT DISTINCT f.model_uid FROM failures f JOIN runs r USING (run_id)
            WHERE r.benchmark_hash = ? AND r.config_hash = ? AND NOT EXISTS (
                SELECT 1 FROM completions c WHERE c.model_uid = f.model_uid
                  AND c.benchmark_hash = r.benchmark_hash AND c.config_hash = r.config_hash
                  AND c.finished_at >= f.time)
            """,
            [benchmark_hash, config_hash],
        )
        return set(df["model_uid"])

    # ---------------------------------------------------------------- writing
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
        _check_values(rsms["metric"], METRICS, f"rsms of {uid!r}: metric")
        _check_values(rsms["split"], SPLITS, f"rsms of {uid!r}: split")
        vectors = [np.asarray(v, dtype=np.float32) for v in rsms["rsm"]]
        if any(v.ndim != 1 for v in vectors):
            raise ValueError(f"rsms of {uid!r}: each rsm must be a 1-D upper triangle")
        n_images = [_n_images_from_triu(v.size) for v in vectors]
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
        self, run_id: str, model_uid: str, stage: str, error: str, traceback: str
    ) -> None:
        """Record that a model raised at ``stage`` (e.g. ``load``, ``extract``, ``score``)."""
        with self._lock:
            self._run(run_id)
            self.con.execute(
                "INSERT INTO failures VALUES (?, ?, ?, ?, ?, ?)",
                [run_id, model_uid, stage, str(error), str(traceback), _now()],
            )

    def failures(self) -> pd.DataFrame:
        """All recorded failures, oldest first."""
        return self._query("SELECT * FROM failures ORDER BY time")

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

    def unit_predictions(self, **filters: Any) -> pd.DataFrame:
        """Stored best-layer unit predictions; ``prediction`` holds ``[n_images, n_units]`` arrays."""
        return _matrices(
            self._select("unit_predictions", filters, " ORDER BY model_uid, metric, roi, subject"),
            "prediction",
        )

    def unit_responses(self, **filters: Any) -> pd.DataFrame:
        """Stored measured responses; ``response`` holds ``[n_images, n_units]`` float32 arrays."""
        return _matrices(
            self._select("unit_responses", filters, " ORDER BY benchmark_hash, roi, subject"),
            "response",
            np.float32,
        )

    # ---------------------------------------------------------------- reading
    def _select(self, table: str, filters: dict[str, Any], order: str = "") -> pd.DataFrame:
        columns = set(self._query(f"SELECT * FROM {table} LIMIT 0").columns)
        clauses, params = [], []
        for column, value in filters.items():
            if value is None:
                continue
            if column not in columns:
                raise ValueError(f"{table} has no column {column!r}; columns: {sorted(columns)}")
            if isinstance(value, (list, tuple, set, frozenset)):
                values = list(value)
                if not values:
                    clauses.append("FALSE")
                    continue
                clauses.append(f"{column} IN ({', '.join('?' * len(values))})")
                params.extend(values)
            else:
                clauses.append(f"{column} = ?")
                params.append(value)
        where = f" WHERE {' AND '.join(clauses)}" if clauses else ""
        return self._query(f"SELECT * FROM {table}{where}{order}", params)

    def ceilings(self, benchmark_hash: str | None = None) -> pd.DataFrame:
        """Noise ceilings, optionally of one benchmark."""
        return self._select(
            "ceilings", {"benchmark_hash": benchmark_hash}, " ORDER BY benchmark_hash, roi, subject"
        )

    def models(self, expand_metadata: bool = True) -> pd.DataFrame:
        """The models table; with ``expand_metadata`` every metadata key becomes a column."""
        df = self._query("SELECT * FROM models ORDER BY model_uid")
        if not expand_metadata:
            return df
        meta = pd.DataFrame.from_records(
            [json.loads(m) if m else {} for m in df["metadata"]], index=df.index
        )
        meta = meta.drop(columns=[c for c in meta.columns if c in df.columns])
        return pd.concat([df.drop(columns="metadata"), meta], axis=1)

    def layers(self, **filters: Any) -> pd.DataFrame:
        """Layer metadata, filtered by equality (or membership for lists) on any column."""
        return self._select("layers", filters, " ORDER BY model_uid, layer_index")

    def scores(self, **filters: Any) -> pd.DataFrame:
        """Scores, filtered by equality (or membership for lists) on any column."""
        return self._select("scores", filters)

    def best_layer_scores(
        self, benchmark_hash: str | None = None, config_hash: str | list[str] | None = None
    ) -> pd.DataFrame:
        """Best layer per model, subject, ROI, metric, benchmark and config.

        The rule is :func:`zooscope.rsa.select_best_layers`; published rows pass through (see
        the module docstring); ``config_hash`` may be a list.

        Returns
        -------
        DataFrame
            Columns ``model_uid, subject, roi, metric, benchmark_hash, config_hash, layer_index,
            layer_name, train_score, test_score, selection`` (``"best_train_layer"`` or
            ``"published"``), sorted by model, metric, ROI and subject.
        """
        from zooscope.rsa.selection import select_best_layers

        keys = list(_BEST_LAYER_KEY)
        scores = self.scores(benchmark_hash=benchmark_hash, config_hash=config_hash)
        layered = scores["layer_index"].notna()
        best = select_best_layers(
            scores.loc[layered, [*keys, "layer_index", "layer_name", "split", "score"]], keys
        ).assign(selection="best_train_layer")
        published = scores[~layered & (scores["split"] == "test")]
        published = published[~published.set_index(keys).index.isin(best.set_index(keys).index)]
        published = published[[*keys, "score"]].rename(columns={"score": "test_score"})
        published = published.assign(
            layer_index=pd.NA, layer_name=None, train_score=np.nan, selection="published"
        )
        frames = [f for f in (best, published) if len(f)]
        if not frames:
            return pd.DataFrame(columns=[*best.columns])
        out = pd.concat(frames, ignore_index=True)[list(best.columns)]
        out["layer_index"] = out["layer_index"].astype("Int32")
        return out.sort_values(["model_uid", "metric", "roi", "subject"]).reset_index(drop=True)

    def unit_scores(self, **filters: Any) -> pd.DataFrame:
        """Per-neuron scores, filtered by equality (or membership for lists) on any column."""
        return self._select("unit_scores", filters, " ORDER BY model_uid, layer_index, roi, unit")

    def duplicate_score_keys(self) -> pd.DataFrame:
        """Score keys that occur more than once (always empty unless the file was edited by hand)."""
        key = ", ".join(SCORE_KEY)
        return self._query(f"SELECT {key}, count(*) AS n FROM scores GROUP BY ALL HAVING n > 1")

    def rsms(self, **filters: Any) -> pd.DataFrame:
        """Stored RSMs; the ``rsm`` column holds 1-D float32 arrays (upper triangles)."""
        df = self._select("rsms", filters, " ORDER BY model_uid, metric, roi, subject")
        df["rsm"] = [np.asarray(v, dtype=np.float32) for v in df["rsm"]]
        return df

    def summary(
        self,
        metric: str | None = None,
        benchmark_hash: str | None = None,
        roi: str | None = None,
        ceiling_method: str = RSA_CEILING_METHOD,
        profile: str | None = None,
        best: pd.DataFrame | None = None,
    ) -> pd.DataFrame:
        """Models ranked by their subject-mean best-layer test score, per metric.

        Fetches the best-layer rows and ceilings and ranks them with
        :func:`zooscope.stats.summary.model_summary` (which documents the score, ceiling and
        ``explained_variance`` columns).

        Parameters
        ----------
        metric, benchmark_hash, roi : str, optional
            Only these rows.
        ceiling_method : str
            The ceiling of the RSA metrics.
        profile : str, optional
            Only results made under this scoring profile (see :meth:`config_profiles`).
        best : DataFrame, optional
            Best-layer rows shaped like the ``best_layer_scores`` view, chosen elsewhere (e.g.
            by a profile's selection rule, :func:`zooscope.stats.degenerate.profile_best_layer_scores`);
            the view is used when None.

        Returns
        -------
        DataFrame
            Columns ``metric, rank, model_uid, display_name, benchmark_hash, config_hash,
            profile, roi, score, n_subjects, ceiling, explained_variance``, sorted by metric,
            ROI and rank.
        """
        from zooscope.stats.summary import model_summary

        if metric is not None and metric not in METRICS:
            raise ValueError(f"metric must be one of {list(METRICS)}, got {metric!r}")
        if best is None:
            hashes = None if profile is None else self.profile_config_hashes(profile)
            best = self.best_layer_scores(benchmark_hash=benchmark_hash, config_hash=hashes)
        elif benchmark_hash is not None:
            best = best[best["benchmark_hash"] == benchmark_hash]
        if roi is not None:
            best = best[best["roi"] == roi]
        if metric is not None:
            best = best[best["metric"] == metric]
        return model_summary(
            best,
            self.ceilings(benchmark_hash),
            self._query("SELECT model_uid, display_name FROM models"),
            self.config_profiles(),
            ceiling_method=ceiling_method,
            subject_mean=SUBJECT_MEAN,
        )

    # ---------------------------------------------------------------- export
    TABLES = (
        "models", "runs", "layers", "scores", "ceilings", "failures", "rsms", "completions",
        "unit_predictions", "unit_responses", "unit_scores",
    )  # fmt: skip
    #: Tables with array columns: exported as Parquet only.
    ARRAY_TABLES = ("rsms", "unit_predictions", "unit_responses")

    def tidy_scores(self) -> pd.DataFrame:
        """Every score row joined with its model's columns (metadata expanded)."""
        return self.scores().merge(self.models(), on="model_uid", how="left")

    def export(self, out: str | Path, fmt: str = "parquet") -> list[Path]:
        """Export the database.

        Parameters
        ----------
        out : str or Path
            A file ending in ``.parquet`` or ``.csv``: one tidy table, every score joined with its
            model's columns (:meth:`tidy_scores`). Anything else is a folder that receives one file
            per table (:attr:`TABLES` and ``best_layer_scores``) in format ``fmt``; CSV exports skip
            the ``rsms`` table (arrays do not fit in CSV cells; export Parquet to keep them).
        fmt : {"parquet", "csv"}
            Format of the per-table export.

        Returns
        -------
        paths : list of Path
            The files written.
        """
        out = Path(out)
        if fmt not in ("parquet", "csv"):
            raise ValueError(f"fmt must be 'parquet' or 'csv', got {fmt!r}")
        if out.suffix in (".parquet", ".csv"):
            out.parent.mkdir(parents=True, exist_ok=True)
            self._write(self.tidy_scores(), out)
            return [out]
        out.mkdir(parents=True, exist_ok=True)
        written = []
        for table in (*self.TABLES, "best_layer_scores"):
            if table in self.ARRAY_TABLES and fmt == "csv":
                logger.info("CSV export skips the %s table (use parquet to keep arrays)", table)
                continue
            path = out / f"{table}.{fmt}"
            if table == "best_layer_scores":
                self._write(self.best_layer_scores(), path)
            elif table in self.ARRAY_TABLES:
                with self._lock:
                    self.con.execute(f"COPY {table} TO '{_sql_path(path)}' (FORMAT parquet)")
            else:
                self._write(self._query(f"SELECT * FROM {table}"), path)
            written.append(path)
        return written

    @staticmethod
    def _write(df: pd.DataFrame, path: Path) -> None:
        if path.suffix == ".parquet":
            df.to_parquet(path, index=False)
        else:
            df.to_csv(path, index=False)


def _backup_path(path: Path, version: int) -> Path:
    """Where an upgrade keeps the version-``version`` copy of a results database."""
    return path.with_name(f"{path.name}.schema{version}.bak")


def _sql_path(path: Path) -> str:
    """A path quoted for a DuckDB string literal (COPY does not take parameters)."""
    return str(path).replace("'", "''")


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
        _check_values(df["metric"], METRICS, f"{what}: metric")
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


def _matrices(df: pd.DataFrame, array: str, dtype: type = np.float64) -> pd.DataFrame:
    """Reshape the flat list column ``array`` into ``[n_images, n_units]`` arrays."""
    df[array] = [
        np.asarray(v, dtype=dtype).reshape(int(i), int(u))
        for v, i, u in zip(df[array], df["n_images"], df["n_units"], strict=True)
    ]
    return df
