"""The results database: one DuckDB file holding models, runs, layers, scores, ceilings and RSMs.

Schema (version :data:`SCHEMA_VERSION`; older files are upgraded on open by the ordered list of
migration functions in :mod:`zooscope.results.schema`):

``schema_info(version)``
    One row, the schema version of the file.
``models``
    One row per model: the manifest columns that every analysis uses as real columns, every other
    manifest column (``compare_*``, notes, published statistics, ...) in ``metadata`` (JSON).
``runs``
    One row per survey or import run: timing, zooscope version, benchmark hash, scoring config
    (JSON) and its hash, host and manifest; ``status`` is ``running``, ``finished``,
    ``interrupted`` (Ctrl-C, SIGTERM) or ``failed`` (bad input, a full disk, ...: ``reason``
    says why); ``finished_at`` is set only for a finished run. A running run renews
    ``heartbeat_at`` (:mod:`zooscope.results.claims`); :meth:`ResultsDB.runs` shows a running
    run whose heartbeat is older than its ``lease_seconds`` (or whose ``process`` on this
    machine is gone) as ``lost``.
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
    Models that raised, with the stage, error, traceback and ``cause``
    (:mod:`zooscope.failure_causes`: ``model`` for the model's own failures, which a rerun skips
    unless ``--retry-failed``; settings and environment causes are retried).
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
``claims``
    Which run scores which model (benchmark_hash, config_hash, model_uid) now, with its host,
    process, lease and heartbeat, so concurrent surveys share the work
    (:mod:`zooscope.results.claims`).
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
import logging
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pandas as pd

from zooscope.results.locking import connect_waiting
from zooscope.results.reads import SCORE_KEY, SUBJECT_MEAN, ResultsReads
from zooscope.results.schema import SCHEMA_VERSION, SchemaMigrations
from zooscope.results.writes import MODEL_COLUMNS, RUN_STATUSES, ResultsWrites, model_row

logger = logging.getLogger(__name__)

__all__ = [
    "MODEL_COLUMNS",
    "RUN_STATUSES",
    "SCHEMA_VERSION",
    "SCORE_KEY",
    "SUBJECT_MEAN",
    "ResultsDB",
    "model_row",
]


class ResultsDB(SchemaMigrations, ResultsWrites, ResultsReads):
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

    def _query(self, sql: str, params: list[Any] | None = None) -> pd.DataFrame:
        with self._lock:
            return self.con.execute(sql, params or []).df()
