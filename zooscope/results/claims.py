"""Claims and heartbeats: concurrent surveys share the work, and a run's record tells the truth.

A survey claims a model before it scores it: one row of the ``claims`` table per (benchmark hash,
config hash, model) names the run that scores it (run id, host, process) and when that run last
said it is alive (``heartbeat_at``). A background thread (:class:`Heartbeat`) renews the run's
claims and its ``runs.heartbeat_at`` every quarter of the lease, opening the database only for
that short write (:class:`~zooscope.results.session.ShortWrites`), so readers still get in.

Another survey with the same benchmark and config skips a claimed model while the claim is alive
and scores the others; it takes a claim over when the claimant's heartbeat is older than the
claimant's lease (``ZOOSCOPE_LEASE_SECONDS``, default :data:`DEFAULT_LEASE_SECONDS`), or at once
when the claimant ran on this machine and its process is gone (killed). A finished model is
skipped as before (``completions``), and a result is written only while no other run has
completed the model, so each model is completed once however the runs interleave.

A run whose status is still ``running`` but whose heartbeat is older than its lease (or whose
process on this machine is gone) is shown as ``lost`` (:func:`with_lost_runs`): it was killed
(SIGKILL, a node failure, the out-of-memory killer) without a chance to record how it ended.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import logging
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from zooscope.results.liveness import (
    DEFAULT_LEASE_SECONDS,
    lease_seconds,
    migrate_claims_and_causes,
    process_gone,
    process_identity,
    with_lost_runs,
)
from zooscope.results.liveness import utc_now as _now

if TYPE_CHECKING:
    from zooscope.results.db import ResultsDB
    from zooscope.results.session import ShortWrites

logger = logging.getLogger(__name__)

__all__ = [
    "CLAIMED",
    "COMPLETE",
    "DEFAULT_LEASE_SECONDS",
    "FAILED",
    "HELD",
    "Heartbeat",
    "Holder",
    "WorkQueue",
    "claim",
    "lease_seconds",
    "migrate_claims_and_causes",
    "process_gone",
    "process_identity",
    "recorded_run",
    "release",
    "renew",
    "with_lost_runs",
]

#: Outcomes of :func:`claim`.
CLAIMED, COMPLETE, HELD, FAILED = "claimed", "complete", "held", "failed"


# ------------------------------------------------------------------ claims
@dataclass(frozen=True)
class Holder:
    """The run that holds a claim."""

    run_id: str
    host: str
    heartbeat_at: _dt.datetime
    lease: float

    def describe(self, now: _dt.datetime) -> str:
        age = (now - self.heartbeat_at).total_seconds()
        return (
            f"run {self.run_id} on {self.host} (heartbeat {age:.0f} s ago, lease {self.lease:g} s)"
        )


def claim(
    db: ResultsDB,
    run_id: str,
    benchmark_hash: str,
    config_hash: str,
    model_uid: str,
    lease: float,
    skip_failed: bool = True,
) -> tuple[str, Holder | None]:
    """Claim one model for ``run_id``, in one transaction.

    Parameters
    ----------
    db : ResultsDB
        Open for writing.
    run_id, benchmark_hash, config_hash, model_uid : str
    lease : float
        This run's lease, stored with the claim (others take it over after that long without a
        heartbeat).
    skip_failed : bool
        Report :data:`FAILED` for a model whose last failure was its own (no ``--retry-failed``).

    Returns
    -------
    outcome : str
        :data:`CLAIMED` (this run may score it), :data:`COMPLETE` (done, by any run),
        :data:`FAILED` (failed for a reason of its own since) or :data:`HELD` (another live run
        scores it).
    holder : Holder or None
        The other run, for :data:`HELD` (and for a claim taken over, :data:`CLAIMED`).
    """
    key = [benchmark_hash, config_hash, model_uid]
    now = _now()
    with db._transaction() as con:
        if completed(db, benchmark_hash, config_hash, model_uid):
            return COMPLETE, None
        if skip_failed and model_uid in db.failed_models(benchmark_hash, config_hash):
            return FAILED, None
        row = con.execute(
            "SELECT run_id, host, process, lease_seconds, heartbeat_at FROM claims "
            "WHERE benchmark_hash = ? AND config_hash = ? AND model_uid = ?",
            key,
        ).fetchone()
        holder = None
        if row is not None and row[0] != run_id:
            holder = Holder(
                row[0], row[1] or "?", row[4] or now, float(row[3] or DEFAULT_LEASE_SECONDS)
            )
            fresh = (now - holder.heartbeat_at).total_seconds() <= holder.lease
            if fresh and not process_gone(row[2]):
                return HELD, holder
            logger.info("taking over %s from %s", model_uid, holder.describe(now))
        con.execute(
            "DELETE FROM claims WHERE benchmark_hash = ? AND config_hash = ? AND model_uid = ?",
            key,
        )
        con.execute(
            "INSERT INTO claims VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [*key, run_id, socket.gethostname(), process_identity(), lease, now, now],
        )
    return CLAIMED, holder


def completed(db: ResultsDB, benchmark_hash: str, config_hash: str, model_uid: str) -> bool:
    """Whether any run has completed ``model_uid`` for this benchmark and config."""
    with db._lock:
        row = db.con.execute(
            "SELECT 1 FROM completions WHERE benchmark_hash = ? AND config_hash = ? "
            "AND model_uid = ? LIMIT 1",
            [benchmark_hash, config_hash, model_uid],
        ).fetchone()
    return row is not None


def release(db: ResultsDB, run_id: str, model_uid: str | None = None) -> None:
    """Drop ``run_id``'s claim of ``model_uid`` (of every model when None)."""
    with db._lock:
        if model_uid is None:
            db.con.execute("DELETE FROM claims WHERE run_id = ?", [run_id])
        else:
            db.con.execute(
                "DELETE FROM claims WHERE run_id = ? AND model_uid = ?", [run_id, model_uid]
            )


def renew(db: ResultsDB, run_id: str) -> None:
    """Say that ``run_id`` is alive: its ``runs`` row and its claims get a new heartbeat."""
    now = _now()
    with db._transaction() as con:
        con.execute("UPDATE runs SET heartbeat_at = ? WHERE run_id = ?", [now, run_id])
        con.execute("UPDATE claims SET heartbeat_at = ? WHERE run_id = ?", [now, run_id])


class Heartbeat:
    """A daemon thread that renews a run's heartbeat (and claims) every ``lease / 4`` seconds.

    Parameters
    ----------
    session : ShortWrites
        Each renewal opens the database for one short write.
    run_id : str
    lease : float
        Seconds; renewals come four times per lease.
    """

    def __init__(self, session: ShortWrites, run_id: str, lease: float) -> None:
        self.session, self.run_id = session, run_id
        self.interval = max(0.2, lease / 4)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"heartbeat-{run_id}", daemon=True)
        self._warned = False

    def __enter__(self) -> Heartbeat:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                with self.session.open() as db:
                    renew(db, self.run_id)
            except Exception as error:  # the next beat tries again; never stop the survey
                if not self._warned:
                    self._warned = True
                    logger.warning(
                        "cannot renew the heartbeat of run %s (%s): another survey may take its "
                        "models over after the lease", self.run_id, error,
                    )  # fmt: skip


def _finish(session: ShortWrites, run_id: str, status: str, reason: str | None) -> None:
    """Record how the run ended; when that write fails too (a full disk), the run shows as lost."""
    try:
        with session.open() as db:
            db.finish_run(run_id, status, reason)
    except Exception as error:
        if status == "finished":
            raise
        logger.warning("could not record run %s as %s (%s); it will show as lost", run_id,
                       status, error)  # fmt: skip


@contextlib.contextmanager
def recorded_run(session: ShortWrites, run_id: str, lease: float | None = None) -> Iterator[None]:
    """Keep a run's heartbeat while the block runs, then record how it ended.

    ``finished`` when the block returns, ``interrupted`` on Ctrl-C or SIGTERM, ``failed`` on any
    other exception (bad input, a full disk, ...), with the exception's first line as the
    ``reason``; the exception itself goes on.

    Parameters
    ----------
    session : ShortWrites
    run_id : str
        From :meth:`ResultsDB.start_run`.
    lease : float, optional
        Default :func:`lease_seconds`.
    """
    status, reason = "interrupted", None
    try:
        with Heartbeat(session, run_id, lease_seconds() if lease is None else lease):
            yield
        status = "finished"
    except KeyboardInterrupt as error:
        reason = str(error) or "Ctrl-C"
        raise
    except BaseException as error:
        status, reason = "failed", (f"{type(error).__name__}: {error}".splitlines() or [""])[0]
        raise
    finally:
        _finish(session, run_id, status, reason)


@dataclass
class WorkQueue:
    """The models a survey still has to score, claimed one at a time as it gets to them.

    Attributes
    ----------
    pending : list of ModelEntry
        Not yet claimed by this run, nor finished or failed elsewhere (includes those held by
        other runs: they are waited for, and taken over if their claimant dies).
    completed_elsewhere, failed_elsewhere : list of str
        Models another run completed (or failed on, for a reason of the model's own) meanwhile.
    """

    session: ShortWrites
    run_id: str
    benchmark_hash: str
    config_hash: str
    pending: list[Any]
    retry_failed: bool = False
    lease: float = field(default_factory=lease_seconds)
    completed_elsewhere: list[str] = field(default_factory=list)
    failed_elsewhere: list[str] = field(default_factory=list)
    _held: dict[str, str] = field(default_factory=dict)

    @property
    def poll(self) -> float:
        """Seconds between looks at models held by other runs."""
        return min(10.0, max(0.2, self.lease / 4))

    def take(self, limit: int = 1) -> list[Any]:
        """Claim up to ``limit`` pending models (never waits); [] when every pending one is held."""
        taken: list[Any] = []
        if not self.pending or limit < 1:
            return taken
        with self.session.open() as db:
            for entry in list(self.pending):
                uid = entry.model_uid
                outcome, holder = claim(db, self.run_id, self.benchmark_hash, self.config_hash,
                                        uid, self.lease, skip_failed=not self.retry_failed)  # fmt: skip
                if outcome == HELD:
                    if uid not in self._held and holder is not None:
                        self._held[uid] = holder.run_id
                        logger.info("%s is being scored by %s: waiting for it", uid,
                                    holder.describe(_now()))  # fmt: skip
                    continue
                self.pending.remove(entry)
                if outcome == COMPLETE:
                    self.completed_elsewhere.append(uid)
                elif outcome == FAILED:
                    self.failed_elsewhere.append(uid)
                else:
                    taken.append(entry)
                    if len(taken) == limit:
                        break
        return taken

    def claimed(self, wait: bool = True) -> Iterator[Any]:
        """Claimed models one by one; with ``wait``, also those held by other runs as they free up.

        Without ``wait`` the iterator ends when every model left is held by another run (a Dask
        survey asks again once its submitted models are done).
        """
        while True:
            taken = self.take()
            if taken:
                yield taken[0]
            elif not self.pending or not wait:
                return
            else:
                time.sleep(self.poll)
