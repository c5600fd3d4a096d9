"""The results database's schema: its version, the ordered migrations, upgrading a file."""

from __future__ import annotations

import logging
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

from zooscope.errors import SchemaVersionError
from zooscope.results.liveness import migrate_claims_and_causes
from zooscope.results.locking import connect_waiting

logger = logging.getLogger(__name__)

__all__ = ["MIGRATIONS", "SCHEMA_VERSION", "SchemaMigrations"]


SCHEMA_VERSION = 7


# long: one CREATE statement per table of the first schema (a migration is never edited)
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


def _migration_7_score_errors(con: Any) -> None:
    """Version 7: ``scores.error``, the error a metric reports with a score (NULL when none)."""
    con.execute("ALTER TABLE scores ADD COLUMN error DOUBLE")


#: Ordered migrations: ``MIGRATIONS[v]`` upgrades a file from version ``v`` to ``v + 1``.
MIGRATIONS: tuple[Callable[[Any], None], ...] = (
    _migration_1_initial,
    _migration_2_unit_predictions,
    _migration_3_run_status_ceiling_units,
    _migration_4_unit_scores,
    _migration_5_quiet_diagnostics,
    migrate_claims_and_causes,
    _migration_7_score_errors,
)
assert len(MIGRATIONS) == SCHEMA_VERSION


def _backup_path(path: Path, version: int) -> Path:
    """Where an upgrade keeps the version-``version`` copy of a results database."""
    return path.with_name(f"{path.name}.schema{version}.bak")


class SchemaMigrations:
    """Upgrading an older file on open (mixed into :class:`~zooscope.results.db.ResultsDB`, whose
    connection, lock and transactions it uses)."""

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
        for target, migration in enumerate(MIGRATIONS[version:], start=version + 1):
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
