"""GSN noise ceilings of a benchmark's subject x ROI groups, degrading gracefully.

:data:`GSN_RSA` divides the RSA metrics (cRSA, veRSA): explained variance ``score**2 / ceiling**2``.

Units that cannot enter GSN are left out of their group's ceiling, counted per reason in the log
and in the stored row (``n_units``, ``n_dropped``, ``note``):

* ``all-NaN`` -- no data on any test image and repetition;
* ``stray NaN`` -- NaN where most units of the group have data (a damaged unit; keeping it would
  drop whole repetitions of every unit);
* ``infinite`` -- an infinite value on some test trial (a damaged unit: no variance exists);
* ``constant`` -- the same value on every test trial;
* ``no trial-to-trial variability`` -- identical repetitions of every image (zero noise variance,
  which GSN's noise covariance cannot take).

A group that still fails (too few repetitions or images, no usable unit, GSN itself raising) comes
back as a failed :class:`CeilingResult` naming the group; the other groups go on.
"""

from __future__ import annotations

import logging
import traceback
from collections.abc import Callable, Collection, Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from zooscope.benchmark import Benchmark, split_label
from zooscope.metrics.base import CeilingMethod
from zooscope.rsa import rsa_noise_ceiling

logger = logging.getLogger(__name__)

__all__ = [
    "CEILING_COLUMNS",
    "GSN_RSA",
    "CeilingResult",
    "compute_ceilings",
    "iter_ceilings",
    "usable_units",
]

#: The ``method`` of GSN's RSA noise ceiling in the ``ceilings`` table.
RSA_CEILING_METHOD = "gsn_rsa"

CEILING_COLUMNS = [
    "subject",
    "roi",
    "method",
    "value",
    "lower",
    "upper",
    "n_units",
    "n_dropped",
    "note",
]


@dataclass
class CeilingResult:
    """The ceiling of one group, or why it has none.

    Attributes
    ----------
    label : str
        ``"<subject>|<roi>"``.
    row : dict or None
        :data:`CEILING_COLUMNS` values when the ceiling was computed.
    n_units : int
        Units that entered GSN.
    dropped : dict of str to int
        Units left out, per reason.
    error, traceback : str or None
        Why the group has no ceiling.
    """

    label: str
    row: dict[str, Any] | None = None
    n_units: int = 0
    dropped: dict[str, int] = field(default_factory=dict)
    error: str | None = None
    traceback: str | None = None

    @property
    def ok(self) -> bool:
        return self.row is not None


def _note(dropped: dict[str, int]) -> str:
    return ", ".join(f"{n} {reason}" for reason, n in dropped.items() if n)


def usable_units(data: np.ndarray) -> tuple[np.ndarray, np.ndarray, dict[str, int]]:
    """Units and repetitions of a group that GSN can use.

    Parameters
    ----------
    data : ndarray, shape (n_units, n_images, n_reps)
        Single-trial responses, NaN where missing.

    Returns
    -------
    units : ndarray of bool, shape (n_units,)
        Units kept.
    reps : ndarray of bool, shape (n_reps,)
        Repetitions present for every kept unit and image.
    dropped : dict of str to int
        Units left out per reason (see the module docstring), in a fixed order.
    """
    missing = np.isnan(data)
    all_nan = missing.all(axis=(1, 2))
    # A cell is "commonly missing" when most units with any data lack it (a trial not shown).
    others = missing[~all_nan]
    common = others.mean(axis=0) > 0.5 if others.size else np.zeros(data.shape[1:], bool)
    stray = (missing & ~common).any(axis=(1, 2)) & ~all_nan
    infinite = np.isinf(data).any(axis=(1, 2)) & ~all_nan & ~stray
    keep = ~all_nan & ~stray & ~infinite
    reps = ~missing[keep].any(axis=(0, 1)) if keep.any() else np.zeros(data.shape[2], bool)
    constant = np.zeros(data.shape[0], bool)
    noiseless = np.zeros(data.shape[0], bool)
    if keep.any() and reps.any():
        x = data[keep][:, :, reps].astype(np.float64)  # complete: no NaN left
        total = x.reshape(x.shape[0], -1).var(axis=1)
        within = x.var(axis=2).sum(axis=1) if reps.sum() > 1 else np.ones(len(x))
        constant[keep] = ~(total > 0)
        noiseless[keep] = (total > 0) & ~(within > 0)
    keep &= ~constant & ~noiseless
    dropped = {
        "all-NaN": int(all_nan.sum()),
        "stray NaN": int(stray.sum()),
        "infinite": int(infinite.sum()),
        "constant": int(constant.sum()),
        "no trial-to-trial variability": int(noiseless.sum()),
    }
    return keep, reps, dropped


def _one_group(label: str, data: np.ndarray, n_sims: int, seed: int, backend: str) -> CeilingResult:
    keep, reps, dropped = usable_units(data)
    result = CeilingResult(label, n_units=int(keep.sum()), dropped=dropped)
    lost = f" ({_note(dropped)} left out)" if any(dropped.values()) else ""
    if not keep.any():
        result.error = f"group {label}: no unit can enter GSN{lost}"
    elif reps.sum() < 2:
        result.error = (
            f"group {label}: {int(reps.sum())} of {data.shape[2]} repetitions have data for every "
            f"test image; GSN needs at least 2{lost}"
        )
    elif data.shape[1] < 3:
        result.error = f"group {label}: {data.shape[1]} test images; GSN needs at least 3"
    if result.error:
        return result
    try:
        nc = rsa_noise_ceiling(data[keep][:, :, reps], n_sims=n_sims, seed=seed, backend=backend)
    except Exception as error:  # recorded like a model failure; the other groups go on
        result.error = f"group {label}: {type(error).__name__}: {error}{lost}"
        result.traceback = traceback.format_exc()
        return result
    low, high = np.percentile(nc.ncdist, [2.5, 97.5])
    subject, roi = split_label(label)
    result.row = {
        "subject": subject, "roi": roi, "method": RSA_CEILING_METHOD, "value": float(nc.nc),
        "lower": float(low), "upper": float(high), "n_units": result.n_units,
        "n_dropped": int(sum(dropped.values())),
        "note": "; ".join(n for n in (_note(dropped), nc.note) if n) or None,
    }  # fmt: skip
    return result


def iter_ceilings(
    benchmark: Benchmark,
    config: Any,
    n_sims: int = 50,
    seed: int = 0,
    backend: str = "auto",
    skip: Collection[str] = (),
    claim: Callable[[str], bool] | None = None,
) -> Iterator[CeilingResult]:
    """GSN RSA noise ceiling of each subject x ROI group on the test images, one at a time.

    Parameters
    ----------
    benchmark : Benchmark
    config : ScoringConfig
        Its subjects, ROIs and test split select the groups and images.
    n_sims : int
        Monte Carlo simulations per ceiling.
    seed : int
    backend : str
        Array backend of the simulations.
    skip : collection of str
        Group labels (``"1|OTC"``) not to compute (e.g. already stored).
    claim : callable, optional
        Asked with each group's label just before it is computed; False skips the group (a
        concurrent survey computes it, or has stored it meanwhile).

    Yields
    ------
    CeilingResult
        One per group, as soon as it is computed (so a caller can store it at once).
    """
    groups = config.groups(benchmark)
    test = benchmark.splits[config.test_split]
    todo = {label: units for label, units in groups.items() if label not in set(skip)}
    for label, units in tqdm(todo.items(), desc="noise ceilings", unit="group", disable=None):
        if claim is not None and not claim(label):
            continue
        result = _one_group(label, benchmark.responses(units, test), n_sims, seed, backend)
        if result.ok:
            row = result.row or {}
            left = (
                f"; {_note(result.dropped)} unit(s) left out"
                if any(result.dropped.values())
                else ""
            )
            logger.debug(  # per group: detail; the survey sums the ceilings up in one line
                "ceiling %s: %.3f [%.3f, %.3f] from %d units%s",
                label,
                row["value"],
                row["lower"],
                row["upper"],
                result.n_units,
                left,
            )
        else:
            logger.warning("no noise ceiling: %s", result.error)
        yield result


def compute_ceilings(
    benchmark: Benchmark,
    config: Any,
    n_sims: int = 50,
    seed: int = 0,
    backend: str = "auto",
    on_result: Callable[[CeilingResult], None] | None = None,
) -> pd.DataFrame:
    """GSN RSA noise ceilings of every subject x ROI group on the test images.

    A group that cannot get a ceiling is logged and left out (see :func:`iter_ceilings`);
    ``on_result`` sees every group's :class:`CeilingResult`, failed ones included.

    Returns
    -------
    DataFrame
        Columns :data:`CEILING_COLUMNS`: the median Monte Carlo ceiling, the 2.5/97.5 percentiles
        of its simulations, and the units used and left out.
    """
    rows = []
    for result in iter_ceilings(benchmark, config, n_sims=n_sims, seed=seed, backend=backend):
        if on_result is not None:
            on_result(result)
        if result.ok:
            rows.append(result.row)
    return pd.DataFrame(rows, columns=CEILING_COLUMNS)


GSN_RSA = CeilingMethod(
    RSA_CEILING_METHOD,
    power=2,
    compute=iter_ceilings,
    description="GSN's RSA noise ceiling (split-half RSA of the denoised signal), on the test images",
)
