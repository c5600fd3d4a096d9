"""Whether a run is alive: its process identity, its lease, its heartbeat (schema version 6).

The bottom of :mod:`zooscope.results.claims`, kept apart so that the database's schema, reads
and writes can use it without importing the claims (which use the database): a run records its
process (``host/boot id|pid|start time``) and lease when it starts (:func:`run_identity`), and
:func:`with_lost_runs` shows a running run whose heartbeat is older than its lease, or whose
process on this machine is gone, as ``lost``.
"""

from __future__ import annotations

import datetime as _dt
import os
import socket
from pathlib import Path
from typing import Any

import pandas as pd

from zooscope.failure_causes import classify
from zooscope.validation import check_env_number

__all__ = [
    "DEFAULT_LEASE_SECONDS",
    "LEASE_ENV",
    "lease_seconds",
    "migrate_claims_and_causes",
    "process_gone",
    "process_identity",
    "run_identity",
    "utc_now",
    "with_lost_runs",
]

#: Seconds without a heartbeat after which a claim may be taken over and a run shows as lost.
DEFAULT_LEASE_SECONDS = 300.0
LEASE_ENV = "ZOOSCOPE_LEASE_SECONDS"


def utc_now() -> _dt.datetime:
    """Current UTC time without tzinfo (the database's TIMESTAMPs are UTC)."""
    return _dt.datetime.now(_dt.UTC).replace(tzinfo=None)


def lease_seconds() -> float:
    """The lease: ``$ZOOSCOPE_LEASE_SECONDS`` or :data:`DEFAULT_LEASE_SECONDS`."""

    value = check_env_number(LEASE_ENV, 0.0, above=True)
    return DEFAULT_LEASE_SECONDS if value is None else value


# ------------------------------------------------------------------ processes
def _read(path: str) -> str:
    try:
        return Path(path).read_text().strip()
    except OSError:
        return ""


def _start_time(pid: int) -> str:
    """The start time of process ``pid`` in clock ticks since boot ('' when unknown)."""
    stat = _read(f"/proc/{pid}/stat")
    return stat.rsplit(")", 1)[-1].split()[19] if stat else ""


def _machine() -> str:
    """This boot of this machine and this pid namespace: where a process id means one process."""
    boot = _read("/proc/sys/kernel/random/boot_id")
    try:
        namespace = str(os.stat("/proc/self/ns/pid").st_ino)
    except OSError:
        namespace = ""
    return f"{socket.gethostname()}/{boot}/{namespace}" if boot else ""


def process_identity(pid: int | None = None) -> str:
    """``machine|pid|start time`` of this (or another local) process, for :func:`process_gone`."""
    pid = os.getpid() if pid is None else pid
    return f"{_machine()}|{pid}|{_start_time(pid)}"


def process_gone(identity: str | None) -> bool:
    """True only when ``identity`` is a process of this machine that no longer runs.

    A process of another machine (or pid namespace), or one whose identity is unknown, is never
    declared gone: only its heartbeat can tell.
    """
    if not identity:
        return False
    machine, _, rest = identity.partition("|")
    pid, _, started = rest.partition("|")
    if not machine or machine != _machine() or not pid.isdigit():
        return False
    return _start_time(int(pid)) != started  # '' (no such process) or a reused pid


# ------------------------------------------------------------------ schema
def migrate_claims_and_causes(con: Any) -> None:
    """Schema version 6: failure causes, run heartbeats and reasons, the claims table.

    ``failures.cause`` (:mod:`zooscope.failure_causes`; existing rows are classified from their
    stage and message), ``runs.heartbeat_at``, ``runs.lease_seconds``, ``runs.process`` and
    ``runs.reason`` (why a ``failed`` run failed), and ``claims``.
    """

    con.execute("ALTER TABLE failures ADD COLUMN cause VARCHAR")
    rows = con.execute("SELECT DISTINCT stage, error FROM failures").fetchall()
    for stage, error in rows:
        con.execute(
            "UPDATE failures SET cause = ? WHERE stage IS NOT DISTINCT FROM ? "
            "AND error IS NOT DISTINCT FROM ?",
            [classify(stage=stage or "", message=error or ""), stage, error],
        )
    for column, kind in (("heartbeat_at", "TIMESTAMP"), ("lease_seconds", "DOUBLE"),
                         ("process", "VARCHAR"), ("reason", "VARCHAR")):  # fmt: skip
        con.execute(f"ALTER TABLE runs ADD COLUMN {column} {kind}")
    con.execute(
        """
        CREATE TABLE claims (
            benchmark_hash VARCHAR, config_hash VARCHAR, model_uid VARCHAR, run_id VARCHAR,
            host VARCHAR, process VARCHAR, lease_seconds DOUBLE, claimed_at TIMESTAMP,
            heartbeat_at TIMESTAMP, PRIMARY KEY (benchmark_hash, config_hash, model_uid))
        """
    )


def run_identity() -> dict[str, Any]:
    """The columns :meth:`ResultsDB.start_run` records so that a lost run can be told apart."""
    return {"process": process_identity(), "lease_seconds": lease_seconds()}


def with_lost_runs(runs: pd.DataFrame, now: _dt.datetime | None = None) -> pd.DataFrame:
    """``runs`` with ``status = 'lost'`` for running runs whose heartbeat (or process) is gone.

    Parameters
    ----------
    runs : DataFrame
        The ``runs`` table.
    now : datetime, optional
        UTC; default now.

    Returns
    -------
    DataFrame
    """
    if not len(runs) or "heartbeat_at" not in runs:
        return runs
    now = now or utc_now()
    alive = pd.to_datetime(runs["heartbeat_at"]).fillna(pd.to_datetime(runs["started_at"]))
    lease = pd.to_numeric(runs["lease_seconds"]).fillna(DEFAULT_LEASE_SECONDS)
    age = (pd.Timestamp(now) - alive).dt.total_seconds()
    gone = runs["process"].map(
        lambda identity: isinstance(identity, str) and process_gone(identity)
    )
    lost = (runs["status"] == "running") & ((age > lease) | age.isna() | gone)
    return runs.assign(status=runs["status"].where(~lost, "lost"))
