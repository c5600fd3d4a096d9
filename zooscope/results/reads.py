"""Reading the results database: tables, best layers, the ranked summary and export."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from zooscope._files import replacing
from zooscope.metrics import GSN_RSA, metric_names
from zooscope.results.liveness import with_lost_runs
from zooscope.results.summary import model_summary
from zooscope.rsa.selection import select_best_layers

logger = logging.getLogger(__name__)


__all__ = ["SCORE_KEY", "SUBJECT_MEAN", "ResultsReads"]

#: Reserved subject label of a score averaged over subjects (published summary tables).
SUBJECT_MEAN = "mean"

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

#: Key of a best-layer selection in the ``scores`` table.
_BEST_LAYER_KEY = ("model_uid", "subject", "roi", "metric", "benchmark_hash", "config_hash")


def _sql_path(path: Path) -> str:
    """A path quoted for a DuckDB string literal (COPY does not take parameters)."""
    return str(path).replace("'", "''")


def _matrices(df: pd.DataFrame, array: str, dtype: type = np.float64) -> pd.DataFrame:
    """Reshape the flat list column ``array`` into ``[n_images, n_units]`` arrays."""
    df[array] = [
        np.asarray(v, dtype=dtype).reshape(int(i), int(u))
        for v, i, u in zip(df[array], df["n_images"], df["n_units"], strict=True)
    ]
    return df


class ResultsReads:
    """Queries, the summary and export (mixed into :class:`~zooscope.results.db.ResultsDB`, whose
    connection and lock it uses)."""

    def runs(self) -> pd.DataFrame:
        """All runs, oldest first; a running run whose heartbeat stopped shows as ``lost``."""
        return with_lost_runs(self._query("SELECT * FROM runs ORDER BY started_at"))

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

    def completed_models(self, benchmark_hash: str, config_hash: str) -> set[str]:
        """Models whose rows for this benchmark and config are complete."""
        df = self._query(
            "SELECT DISTINCT model_uid FROM completions WHERE benchmark_hash = ? AND config_hash = ?",
            [benchmark_hash, config_hash],
        )
        return set(df["model_uid"])

    def failed_models(self, benchmark_hash: str, config_hash: str) -> set[str]:
        """Models whose last failure for this benchmark and config was their own, not completed since.

        A failure caused by the run's settings or environment (``failures.cause`` other than
        ``model``: out of memory, a full disk, a missing device, ...) does not count: a rerun
        tries the model again.
        """
        df = self._query(
            """
            WITH latest AS (
                SELECT f.model_uid, f.cause, f.time, r.benchmark_hash, r.config_hash,
                       row_number() OVER (PARTITION BY f.model_uid ORDER BY f.time DESC) AS rk
                FROM failures f JOIN runs r USING (run_id)
                WHERE r.benchmark_hash = ? AND r.config_hash = ?)
            SELECT l.model_uid FROM latest l
            WHERE l.rk = 1 AND coalesce(l.cause, 'model') = 'model' AND NOT EXISTS (
                SELECT 1 FROM completions c WHERE c.model_uid = l.model_uid
                  AND c.benchmark_hash = l.benchmark_hash AND c.config_hash = l.config_hash
                  AND c.finished_at >= l.time)
            """,
            [benchmark_hash, config_hash],
        )
        return set(df["model_uid"])

    def completions(self, **filters: Any) -> pd.DataFrame:
        """Completion markers (model, benchmark, config, run, finish time, seconds), filtered."""
        return self._select("completions", filters, " ORDER BY finished_at")

    def claims(self, **filters: Any) -> pd.DataFrame:
        """Models claimed by a run now (run, host, process, lease, heartbeat), filtered."""
        return self._select("claims", filters, " ORDER BY claimed_at")

    def failures(self) -> pd.DataFrame:
        """All recorded failures, oldest first."""
        return self._query("SELECT * FROM failures ORDER BY time")

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
        ceiling_method: str = GSN_RSA.name,
        profile: str | None = None,
        best: pd.DataFrame | None = None,
    ) -> pd.DataFrame:
        """Models ranked by their subject-mean best-layer test score, per metric.

        Fetches the best-layer rows and ceilings and ranks them with
        :func:`zooscope.results.summary.model_summary` (which documents the score, ceiling and
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
            by a profile's selection rule, :func:`zooscope.analyses.degenerate.profile_best_layer_scores`);
            the view is used when None.

        Returns
        -------
        DataFrame
            Columns ``metric, rank, model_uid, display_name, benchmark_hash, config_hash,
            profile, roi, score, n_subjects, ceiling, explained_variance``, sorted by metric,
            ROI and rank.
        """
        if metric is not None and metric not in metric_names():
            raise ValueError(f"metric must be one of {list(metric_names())}, got {metric!r}")
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

    TABLES = (
        "models", "runs", "layers", "scores", "ceilings", "failures", "rsms", "completions",
        "unit_predictions", "unit_responses", "unit_scores", "claims",
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
                with self._lock, replacing(path) as temporary:
                    self.con.execute(f"COPY {table} TO '{_sql_path(temporary)}' (FORMAT parquet)")
            else:
                self._write(self._query(f"SELECT * FROM {table}"), path)
            written.append(path)
        return written

    @staticmethod
    def _write(df: pd.DataFrame, path: Path) -> None:
        with replacing(path) as temporary:  # a reader never sees half a file
            if path.suffix == ".parquet":
                df.to_parquet(temporary, index=False)
            else:
                df.to_csv(temporary, index=False)
