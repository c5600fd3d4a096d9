"""Every path of the Natural Scenes Dataset tree, in one place.

The layout follows the NSD data release (Allen et al., 2022)::

    <root>/nsddata/experiments/nsd/nsd_expdesign.mat
    <root>/nsddata/experiments/nsd/nsd_stim_info_merged.csv
    <root>/nsddata/ppdata/subjXX/<space>/roi/<roi>.nii.gz
    <root>/nsddata/ppdata/subjXX/<space>/floc_<domain>tval.nii.gz   (domain: faces, bodies,
                                                                     places, word)
    <root>/nsddata/ppdata/subjXX/behav/responses.tsv
    <root>/nsddata/freesurfer/subjXX/label/<roi>.mgz.ctab
    <root>/nsddata_betas/ppdata/subjXX/<space>/<beta_version>/betas_sessionNN.{hdf5,nii.gz}
    <root>/nsddata_betas/ppdata/subjXX/<space>/<beta_version>/ncsnr.nii.gz
    <root>/nsddata_stimuli/stimuli/nsd/nsd_stimuli.hdf5
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

__all__ = ["BETA_FORMATS", "FLOC_DOMAINS", "NSDLayout"]

#: fLoc domain -> file stem of its t-map (NSD writes "word", not "words").
FLOC_DOMAINS: dict[str, str] = {
    "faces": "faces",
    "bodies": "bodies",
    "places": "places",
    "words": "word",
}
#: Beta file formats in order of preference (HDF5 allows reading only the needed voxels).
BETA_FORMATS: tuple[str, ...] = ("hdf5", "nii.gz")
_SESSION_RE = re.compile(r"^betas_session(\d{2})\.(hdf5|nii\.gz)$")


def _subject_dir(subject: int) -> str:
    if not 1 <= int(subject) <= 8:
        raise ValueError(f"NSD subjects are 1..8, got {subject!r}")
    return f"subj{int(subject):02d}"


@dataclass(frozen=True)
class NSDLayout:
    """Paths of an NSD tree rooted at ``root``.

    Parameters
    ----------
    root : str or Path
        Folder holding ``nsddata/``, ``nsddata_betas/`` and ``nsddata_stimuli/``.
    beta_version : str, default="betas_fithrf_GLMdenoise_RR"
        Beta folder (``betas_assumehrf``, ``betas_fithrf`` or ``betas_fithrf_GLMdenoise_RR``).
    space : str, default="func1pt8mm"
        Volume space of betas and ROIs.

    Notes
    -----
    Path methods never touch the disk; :meth:`require` checks existence and raises an error that
    names the expected path and what it is needed for.
    """

    root: Path
    beta_version: str = "betas_fithrf_GLMdenoise_RR"
    space: str = "func1pt8mm"

    def __init__(
        self,
        root: str | os.PathLike,
        beta_version: str = "betas_fithrf_GLMdenoise_RR",
        space: str = "func1pt8mm",
    ) -> None:
        object.__setattr__(self, "root", Path(root).expanduser())
        object.__setattr__(self, "beta_version", beta_version)
        object.__setattr__(self, "space", space)

    # -- experiment-wide files ----------------------------------------------------------------
    @property
    def expdesign(self) -> Path:
        """``nsd_expdesign.mat`` (trial order, per-subject image lists, shared images)."""
        return self.root / "nsddata" / "experiments" / "nsd" / "nsd_expdesign.mat"

    @property
    def stim_info(self) -> Path:
        """``nsd_stim_info_merged.csv`` (COCO ids, shared flag, repetition trial numbers)."""
        return self.root / "nsddata" / "experiments" / "nsd" / "nsd_stim_info_merged.csv"

    @property
    def stimuli(self) -> Path:
        """``nsd_stimuli.hdf5`` (dataset ``imgBrick``, uint8 [73000, 425, 425, 3])."""
        return self.root / "nsddata_stimuli" / "stimuli" / "nsd" / "nsd_stimuli.hdf5"

    # -- per-subject files --------------------------------------------------------------------
    def ppdata_dir(self, subject: int) -> Path:
        """``nsddata/ppdata/subjXX/<space>``."""
        return self.root / "nsddata" / "ppdata" / _subject_dir(subject) / self.space

    def betas_dir(self, subject: int) -> Path:
        """``nsddata_betas/ppdata/subjXX/<space>/<beta_version>``."""
        return (
            self.root
            / "nsddata_betas"
            / "ppdata"
            / _subject_dir(subject)
            / self.space
            / self.beta_version
        )

    def betas(self, subject: int, session: int, fmt: str = "hdf5") -> Path:
        """``betas_sessionNN.<fmt>`` of one subject and 1-based session."""
        if fmt not in BETA_FORMATS:
            raise ValueError(f"beta format must be one of {BETA_FORMATS}, got {fmt!r}")
        return self.betas_dir(subject) / f"betas_session{int(session):02d}.{fmt}"

    def ncsnr(self, subject: int) -> Path:
        """``ncsnr.nii.gz`` (noise-ceiling SNR, float [X, Y, Z])."""
        return self.betas_dir(subject) / "ncsnr.nii.gz"

    def roi(self, subject: int, name: str) -> Path:
        """ROI label volume ``roi/<name>.nii.gz`` (-1 non-cortical, 0 unlabeled, >0 label)."""
        return self.ppdata_dir(subject) / "roi" / f"{name}.nii.gz"

    def ctab(self, subject: int, name: str) -> Path:
        """Label names of an ROI volume: ``freesurfer/subjXX/label/<name>.mgz.ctab``."""
        return (
            self.root
            / "nsddata"
            / "freesurfer"
            / _subject_dir(subject)
            / "label"
            / f"{name}.mgz.ctab"
        )

    def floc_tval(self, subject: int, domain: str) -> Path:
        """fLoc t-map ``floc_<domain>tval.nii.gz``; domain in faces, bodies, places, words."""
        if domain not in FLOC_DOMAINS:
            raise ValueError(f"fLoc domain must be one of {list(FLOC_DOMAINS)}, got {domain!r}")
        return self.ppdata_dir(subject) / f"floc_{FLOC_DOMAINS[domain]}tval.nii.gz"

    def behavior(self, subject: int) -> Path:
        """``nsddata/ppdata/subjXX/behav/responses.tsv``."""
        return self.root / "nsddata" / "ppdata" / _subject_dir(subject) / "behav" / "responses.tsv"

    # -- discovery ----------------------------------------------------------------------------
    def subjects(self) -> list[int]:
        """Subjects with a betas folder on disk."""
        base = self.root / "nsddata_betas" / "ppdata"
        found = []
        for s in range(1, 9):
            if (base / _subject_dir(s) / self.space / self.beta_version).is_dir():
                found.append(s)
        return found

    def sessions(self, subject: int) -> dict[str, list[int]]:
        """1-based sessions present on disk per beta format, e.g. ``{"hdf5": [1, 2], ...}``."""
        out: dict[str, list[int]] = {fmt: [] for fmt in BETA_FORMATS}
        folder = self.betas_dir(subject)
        if folder.is_dir():
            for entry in folder.iterdir():
                match = _SESSION_RE.match(entry.name)
                if match:
                    out[match.group(2)].append(int(match.group(1)))
        return {fmt: sorted(v) for fmt, v in out.items()}

    @staticmethod
    def require(path: Path, purpose: str) -> Path:
        """Return ``path`` if it exists, else raise FileNotFoundError naming it and its purpose."""
        if not path.exists():
            raise FileNotFoundError(
                f"missing NSD file: {path}\n  needed for: {purpose}\n  (check --nsd-root and "
                "that this part of NSD was downloaded; see the NSD data manual for the layout)"
            )
        return path
