"""Where a survey stands, read from its results database while it runs (``zooscope results status``).

A survey writes each model's rows, its claims and its heartbeats to the database as it goes
(:mod:`zooscope.results.claims`), so a second process (on a login node, for a cluster run) can
count the models done, running, failed and remaining for the survey's benchmark and scoring
config, and estimate when it ends: the remaining models times the mean measured seconds of the
models completed for that config so far, divided by the models running at once.
"""

from __future__ import annotations

import datetime as _dt
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import pandas as pd

from zooscope.zoo.manifest import load_manifest

if TYPE_CHECKING:
    from zooscope.results.db import ResultsDB

__all__ = ["SurveyStatus", "survey_status"]


@dataclass
class SurveyStatus:
    """One run's survey, counted by model.

    Attributes
    ----------
    run_id, status : str
        The run and its status (``running``, ``finished``, ``interrupted``, ``failed``, ``lost``).
    benchmark_hash, config_hash : str
        What the run scores; counts are over every run of this pair (a resumed survey's too).
    manifest : str or None
        The manifest the run's models come from.
    done, failed : list of str
        Models complete, and models whose last failure was their own (a rerun skips them).
    running : list of str
        Models claimed by a live run now.
    remaining : list of str or None
        Available manifest models in none of the lists above; None when the manifest cannot be
        read here (e.g. a path on another machine).
    mean_seconds : float or None
        Mean measured seconds per completed model of this config (None before the first).
    started_at : datetime
    """

    run_id: str
    status: str
    benchmark_hash: str
    config_hash: str
    manifest: str | None
    started_at: _dt.datetime
    done: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)
    running: list[str] = field(default_factory=list)
    remaining: list[str] | None = None
    mean_seconds: float | None = None

    @property
    def eta_seconds(self) -> float | None:
        """Seconds until the remaining and running models are done, at the measured pace."""
        if self.mean_seconds is None or self.remaining is None:
            return None
        todo = len(self.remaining) + len(self.running)
        return todo * self.mean_seconds / max(1, len(self.running))

    def lines(self) -> list[str]:
        """What ``zooscope results status`` prints."""
        remaining = "?" if self.remaining is None else str(len(self.remaining))
        eta = self.eta_seconds
        pace = (
            f"; {self.mean_seconds:.0f} s per model so far" if self.mean_seconds is not None else ""
        )
        out = [
            f"run {self.run_id} ({self.status}, started {self.started_at:%Y-%m-%d %H:%M} UTC), "
            f"manifest {self.manifest or '-'}",
            f"models: {len(self.done)} done, {len(self.running)} running, {len(self.failed)} "
            f"failed, {remaining} remaining{pace}",
        ]
        if self.running:
            out.append(f"running: {', '.join(self.running)}")
        if eta is not None and (self.remaining or self.running):
            out.append(f"ETA: {_duration(eta)} at this pace")
        elif self.remaining is None:
            out.append("ETA: unknown (the manifest cannot be read here)")
        return out


def _duration(seconds: float) -> str:
    minutes = round(seconds / 60)
    return f"{minutes // 60} h {minutes % 60:02d} min" if minutes >= 60 else f"{minutes} min"


def survey_status(db: ResultsDB, run_id: str | None = None) -> SurveyStatus:
    """Count the models of run ``run_id``'s survey (default: the latest survey run).

    Parameters
    ----------
    db : ResultsDB
        Open read-only while the survey writes: a survey opens the file only for each write.
    run_id : str, optional

    Returns
    -------
    SurveyStatus

    Raises
    ------
    ValueError
        No such run, or no survey run in the database.
    """
    every = db.runs()  # a running run whose heartbeat stopped shows as lost
    runs = every[every["config_hash"].notna()] if len(every) else every
    if run_id is not None:
        runs = runs[runs["run_id"] == run_id]
    if not len(runs):
        what = f"no run {run_id!r}" if run_id else "no survey run"
        raise ValueError(f"{db.path}: {what}; `zooscope results runs --db {db.path}` lists them")
    run = runs.iloc[-1]
    keys = {"benchmark_hash": run["benchmark_hash"], "config_hash": run["config_hash"]}
    completions = db.completions(**keys)
    claims = db.claims(**keys)
    live = set(every.loc[every["status"] == "running", "run_id"])
    done = sorted(set(completions["model_uid"]))
    running = sorted(set(claims.loc[claims["run_id"].isin(live), "model_uid"]) - set(done))
    failed = sorted(db.failed_models(*keys.values()) - set(done))
    seconds = pd.to_numeric(completions["seconds"], errors="coerce").dropna()
    status = SurveyStatus(
        run_id=str(run["run_id"]),
        status=str(run["status"]),
        benchmark_hash=str(run["benchmark_hash"]),
        config_hash=str(run["config_hash"]),
        manifest=None if pd.isna(run["manifest"]) else str(run["manifest"]),
        started_at=pd.Timestamp(run["started_at"]).to_pydatetime(),
        done=done,
        failed=failed,
        running=running,
        mean_seconds=float(seconds.mean()) if len(seconds) else None,
    )
    status.remaining = _remaining(status)
    return status


def _remaining(status: SurveyStatus) -> list[str] | None:
    """Available manifest models not done, failed or running; None when unreadable here."""
    if status.manifest is None:
        return None
    try:
        entries = load_manifest(status.manifest)
    except Exception:  # a manifest on another machine, or changed since: counts still shown
        return None
    seen = {*status.done, *status.failed, *status.running}
    return [e.model_uid for e in entries if e.available and e.model_uid not in seen]
