"""NSD experimental design: which image each trial showed, and where its beta lives.

From ``nsd_expdesign.mat`` (1-based MATLAB indices throughout):

- ``masterordering`` (1 x 30000): per trial, an index into the subject's 10k image list;
- ``subjectim`` (8 x 10000): per subject, 73k ids of its images; the first 1000 are shared;
- ``sharedix`` (1 x 1000): 73k ids of the shared images.

0-based trial ``t`` of subject ``s`` showed the 0-based 73k image
``subjectim[s - 1, masterordering[t] - 1] - 1``; it is a shared image exactly when
``masterordering[t] <= n_shared``. Trials are chronological: session ``t // T + 1`` and column
``t % T`` of that session's beta file, with ``T`` trials per session (750 in NSD; taken from the
beta files so that smaller trees work too).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
from numpy.typing import ArrayLike

from zooscope.errors import reading
from zooscope.nsd.layout import NSDLayout

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["NSDDesign", "repetition_index"]


@dataclass(frozen=True)
class NSDDesign:
    """The NSD design (0-based copies of the ``.mat`` fields are built on demand).

    Parameters
    ----------
    masterordering : ndarray of int64, shape (n_trials,)
        1-based index into a subject's image list, per trial.
    subjectim : ndarray of int64, shape (8, n_subject_images)
        1-based 73k ids per subject; the first ``n_shared`` columns are the shared images.
    sharedix : ndarray of int64, shape (n_shared,)
        1-based 73k ids of the shared images.
    """

    masterordering: np.ndarray
    subjectim: np.ndarray
    sharedix: np.ndarray

    @classmethod
    def load(cls, layout: NSDLayout) -> NSDDesign:
        """Read ``nsd_expdesign.mat`` of ``layout``."""
        from scipy.io import loadmat

        path = layout.require(layout.expdesign, "the trial-to-image mapping (design)")
        with reading(path, "nsd_expdesign.mat (MATLAB file)"):
            mat = loadmat(path)
        missing = [k for k in ("masterordering", "subjectim", "sharedix") if k not in mat]
        if missing:
            raise ValueError(f"{path} lacks the field(s) {missing}; is it nsd_expdesign.mat?")
        design = cls(
            masterordering=np.asarray(mat["masterordering"], dtype=np.int64).ravel(),
            subjectim=np.atleast_2d(np.asarray(mat["subjectim"], dtype=np.int64)),
            sharedix=np.asarray(mat["sharedix"], dtype=np.int64).ravel(),
        )
        design._check(path)
        return design

    def _check(self, source: object) -> None:
        n_list = self.subjectim.shape[1]
        if self.masterordering.min() < 1 or self.masterordering.max() > n_list:
            raise ValueError(f"{source}: masterordering must be 1-based indices <= {n_list}")
        n_shared = self.n_shared
        for row in range(self.subjectim.shape[0]):
            if not np.array_equal(self.subjectim[row, :n_shared], self.sharedix):
                raise ValueError(
                    f"{source}: the first {n_shared} images of subject {row + 1} differ from "
                    "sharedix; expected the shared images first (NSD convention)"
                )

    @property
    def n_trials(self) -> int:
        """Trials in the full design (30000 in NSD)."""
        return int(self.masterordering.size)

    @property
    def n_shared(self) -> int:
        """Number of shared images (1000 in NSD)."""
        return int(self.sharedix.size)

    def shared_image_ids(self) -> np.ndarray:
        """int64 [n_shared] 0-based 73k ids of the shared images, ascending."""
        return np.sort(self.sharedix - 1)

    def trials(
        self, subject: int, trials_per_session: int = 750, n_sessions: int | None = None
    ) -> pd.DataFrame:
        """Trial table of one subject.

        Parameters
        ----------
        subject : int
            1-based subject.
        trials_per_session : int, default=750
            Trials per session (beta-file columns).
        n_sessions : int, optional
            Keep only the trials of the first ``n_sessions`` sessions (those on disk).

        Returns
        -------
        DataFrame, one row per trial, columns
            ``trial`` (0-based), ``session`` (1-based), ``column`` (0-based in the session's
            beta file), ``image_id`` (0-based 73k id), ``subject_index`` (0-based into the
            subject's image list) and ``shared`` (bool).
        """
        import pandas as pd

        if not 1 <= subject <= self.subjectim.shape[0]:
            raise ValueError(f"subject {subject} not in the design (1..{self.subjectim.shape[0]})")
        if trials_per_session < 1:
            raise ValueError(f"trials_per_session must be >= 1, got {trials_per_session}")
        n = self.n_trials
        if n_sessions is not None:
            n_max = -(-n // trials_per_session)
            if n_sessions > n_max:
                raise ValueError(
                    f"{n_sessions} sessions of {trials_per_session} trials exceed the design's "
                    f"{n} trials ({n_max} sessions)"
                )
            n = min(n, n_sessions * trials_per_session)
        trial = np.arange(n, dtype=np.int64)
        subject_index = self.masterordering[:n] - 1
        return pd.DataFrame(
            {
                "trial": trial,
                "session": trial // trials_per_session + 1,
                "column": trial % trials_per_session,
                "image_id": self.subjectim[subject - 1, subject_index] - 1,
                "subject_index": subject_index,
                "shared": subject_index < self.n_shared,
            }
        )


def repetition_index(
    trial_image_ids: ArrayLike, image_ids: Sequence[int] | np.ndarray, n_reps: int | None = None
) -> np.ndarray:
    """Group chronological trials into repetitions of each image.

    Parameters
    ----------
    trial_image_ids : array_like of int, shape (n_trials,)
        Image id shown on each trial, in chronological order.
    image_ids : array_like of int, shape (n_images,)
        Images to group (output rows, in this order).
    n_reps : int, optional
        Number of repetition columns; default the largest count among ``image_ids``.
        Later repetitions beyond ``n_reps`` are dropped.

    Returns
    -------
    ndarray of int64, shape (n_images, n_reps)
        Entry ``[i, r]`` is the position (into ``trial_image_ids``) of the ``r``-th showing of
        ``image_ids[i]``, or ``-1`` if it was shown fewer than ``r + 1`` times.
    """
    shown = np.asarray(trial_image_ids, dtype=np.int64).ravel()
    wanted = np.asarray(image_ids, dtype=np.int64).ravel()
    order = np.argsort(wanted, kind="stable")
    sorted_ids = wanted[order]
    pos = np.searchsorted(sorted_ids, shown)
    pos = np.minimum(pos, max(sorted_ids.size - 1, 0))
    hit = sorted_ids.size > 0
    is_wanted = (sorted_ids[pos] == shown) if hit else np.zeros(shown.size, dtype=bool)
    trials = np.flatnonzero(is_wanted)
    rows = order[pos[trials]]
    # Occurrence number of each trial among the trials of its image (stable = chronological).
    by_row = np.argsort(rows, kind="stable")
    rows_sorted = rows[by_row]
    first = np.searchsorted(rows_sorted, rows_sorted, side="left")
    occurrence = np.empty_like(rows)
    occurrence[by_row] = np.arange(rows.size) - first
    counts = np.bincount(rows, minlength=wanted.size)
    if n_reps is None:
        n_reps = int(counts.max()) if counts.size else 0
    out = np.full((wanted.size, n_reps), -1, dtype=np.int64)
    keep = occurrence < n_reps
    out[rows[keep], occurrence[keep]] = trials[keep]
    return out
