"""NSD regions of interest: label volumes, fLoc t-maps, ncsnr, and named ROI definitions.

Named ROIs
----------
``OTC`` (occipitotemporal cortex, Conwell et al. 2024; the rule of ColinConwell/DeepNSD)::

    (nsdgeneral > 0  &  streams in {midventral, midlateral, ventral, lateral}  &  ncsnr >= thr)
    |  (fLoc ROI in {FFA-1, FFA-2, OFA} & t_faces >= 1  |  {EBA, FBA-1, FBA-2} & t_bodies >= 1
        |  {PPA, OPA} & t_places >= 1  |  {OWFA, VWFA-1, VWFA-2} & t_words >= 1)  &  ncsnr >= thr

i.e. the streams branch keeps labelled stream voxels except ``early``, ``midparietal`` and
``parietal``; each fLoc ROI is thresholded on the t-map of its own domain. Published counts
(thr = 0.2): 8088 / 7528 / 8015 / 5849 voxels for subjects 1 / 2 / 5 / 7.

``EVC`` (early visual cortex): ``prf-visualrois`` in {V1v, V1d, V2v, V2d, V3v, V3d, hV4}, no
ncsnr threshold.

ROI expressions
---------------
Any other ROI is an expression over the subject's volumes, e.g.
``"streams:ventral & ncsnr>=0.3"``. Grammar (``~`` binds tightest, then ``&``, then ``|``)::

    expr   := term ('|' term)*
    term   := factor ('&' factor)*
    factor := '~' factor | '(' expr ')' | atom
    atom   := VOLUME ':' LABEL (',' LABEL)*   label volume holds one of the labels (names
                                              from the .ctab, or integers)
            | VOLUME                          label > 0 (e.g. nsdgeneral)
            | OTC | EVC                       a named ROI
            | QUANTITY OP NUMBER              QUANTITY in ncsnr, t_faces, t_bodies, t_places,
                                              t_words; OP in >=, >, <=, <, ==

A spec ``"name=expr"`` names the resulting unit-table column.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from zooscope.errors import reading
from zooscope.nsd.layout import FLOC_DOMAINS, NSDLayout

__all__ = [
    "EVC_LABELS",
    "NAMED_ROIS",
    "OTC_FLOC",
    "OTC_STREAMS_EXCLUDED",
    "ROIVolumes",
    "evc_mask",
    "otc_mask",
    "parse_roi_spec",
    "read_ctab",
    "roi_mask",
]

logger = logging.getLogger(__name__)

#: fLoc ROIs of the OTC definition, by domain (thresholded on that domain's t-map).
OTC_FLOC: dict[str, tuple[str, ...]] = {
    "faces": ("FFA-1", "FFA-2", "OFA"),
    "bodies": ("EBA", "FBA-1", "FBA-2"),
    "places": ("PPA", "OPA"),
    "words": ("OWFA", "VWFA-1", "VWFA-2"),
}
#: Stream labels left out of the OTC streams branch.
OTC_STREAMS_EXCLUDED: tuple[str, ...] = ("early", "midparietal", "parietal")
#: prf-visualrois labels of EVC.
EVC_LABELS: tuple[str, ...] = ("V1v", "V1d", "V2v", "V2d", "V3v", "V3d", "hV4")
NAMED_ROIS: tuple[str, ...] = ("OTC", "EVC")
_FLOC_FILES = {
    "faces": "floc-faces",
    "bodies": "floc-bodies",
    "places": "floc-places",
    "words": "floc-words",
}


def read_ctab(path: str | Any) -> dict[int, str]:
    """Parse a FreeSurfer colour table (``<roi>.mgz.ctab``): one ``index name ...`` per line.

    Returns
    -------
    dict of int to str
        Label index -> name; lines that do not start with an integer are skipped.
    """
    names: dict[int, str] = {}
    with reading(path, "a FreeSurfer colour table (.ctab)"), open(path, encoding="utf-8") as fh:
        for line in fh:
            parts = line.split()
            if len(parts) < 2 or parts[0].startswith("#"):
                continue
            try:
                index = int(parts[0])
            except ValueError:
                continue
            names[index] = parts[1]
    return names


@dataclass
class ROIVolumes:
    """Lazily loaded ROI volumes of one subject, all on the subject's beta grid.

    Parameters
    ----------
    layout : NSDLayout
    subject : int
        1-based subject.
    """

    layout: NSDLayout
    subject: int
    _cache: dict[str, Any] = field(default_factory=dict, repr=False)
    shape: tuple[int, int, int] | None = None
    affine: np.ndarray | None = None

    def _load(self, path: Any, purpose: str) -> np.ndarray:
        import nibabel as nib

        key = str(path)
        if key not in self._cache:
            self.layout.require(path, purpose)
            with reading(path, f"a NIfTI volume ({purpose})"):
                img = nib.load(path)
                data = np.asarray(img.dataobj)
            if data.ndim == 4 and data.shape[3] == 1:
                data = data[..., 0]
            if data.ndim != 3:
                raise ValueError(f"{path}: expected a 3-D volume, got shape {data.shape}")
            if self.shape is None:
                self.shape = tuple(int(s) for s in data.shape)  # type: ignore[assignment]
                self.affine = np.asarray(img.affine)
            elif data.shape != self.shape:
                raise ValueError(
                    f"{path} has shape {data.shape}, but the subject's other volumes have "
                    f"{self.shape}; ROI, ncsnr and beta files must share one grid"
                )
            self._cache[key] = data
        return self._cache[key]

    def labels(self, name: str) -> tuple[np.ndarray, dict[int, str]]:
        """Integer label volume ``roi/<name>.nii.gz`` [X, Y, Z] and its ``.ctab`` names."""
        volume = self._load(self.layout.roi(self.subject, name), f"ROI {name!r}")
        ctab_path = self.layout.ctab(self.subject, name)
        names = read_ctab(ctab_path) if ctab_path.exists() else {}
        return np.rint(volume).astype(np.int32), names

    def label_mask(self, name: str, labels: tuple[str | int, ...] | None = None) -> np.ndarray:
        """bool [X, Y, Z]: voxels of volume ``name`` with one of ``labels`` (default any > 0)."""
        volume, names = self.labels(name)
        if labels is None:
            return volume > 0
        codes = []
        lookup = {v: k for k, v in names.items()}
        for label in labels:
            if isinstance(label, int) or str(label).lstrip("-").isdigit():
                codes.append(int(label))
            elif label in lookup:
                codes.append(lookup[label])
            else:
                ctab = self.layout.ctab(self.subject, name)
                raise KeyError(
                    f"label {label!r} not in {ctab} (names: {sorted(lookup)}); "
                    "ROI label names are read from the .ctab files"
                )
        return np.isin(volume, codes)

    def tval(self, domain: str) -> np.ndarray:
        """float [X, Y, Z] fLoc t-map of ``domain`` (faces, bodies, places, words)."""
        path = self.layout.floc_tval(self.subject, domain)
        return self._load(path, f"fLoc t threshold ({domain})").astype(np.float64)

    def ncsnr(self) -> np.ndarray:
        """float [X, Y, Z] noise-ceiling SNR of the beta version."""
        path = self.layout.ncsnr(self.subject)
        return self._load(path, "ncsnr threshold / unit table").astype(np.float64)


def otc_mask(
    rois: ROIVolumes, ncsnr_threshold: float = 0.2, t_threshold: float = 1.0
) -> np.ndarray:
    """OTC voxels of Conwell et al. (2024) (see module docstring); bool [X, Y, Z]."""
    streams = rois.label_mask("streams")
    streams &= ~rois.label_mask("streams", OTC_STREAMS_EXCLUDED)
    stream_branch = rois.label_mask("nsdgeneral") & streams
    floc_branch = np.zeros_like(stream_branch)
    for domain, labels in OTC_FLOC.items():
        in_roi = rois.label_mask(_FLOC_FILES[domain], labels)
        floc_branch |= in_roi & (rois.tval(domain) >= t_threshold)
    # NaN ncsnr compares False, so undefined voxels are excluded.
    return (stream_branch | floc_branch) & (rois.ncsnr() >= ncsnr_threshold)


def evc_mask(rois: ROIVolumes) -> np.ndarray:
    """EVC voxels: prf-visualrois V1v..hV4, no ncsnr threshold; bool [X, Y, Z]."""
    return rois.label_mask("prf-visualrois", EVC_LABELS)


# -- expressions ------------------------------------------------------------------------------
_TOKEN = re.compile(
    r"\s*(?:(?P<op>>=|<=|==|>|<)|(?P<num>-?\d+(?:\.\d*)?(?:[eE][-+]?\d+)?)"
    r"|(?P<sym>[&|~():,])|(?P<name>[A-Za-z_][\w\-.]*))"
)
_QUANTITIES = ("ncsnr", *(f"t_{d}" for d in FLOC_DOMAINS))
_OPS = {
    ">=": np.greater_equal,
    ">": np.greater,
    "<=": np.less_equal,
    "<": np.less,
    "==": np.equal,
}


def _tokenize(text: str) -> list[tuple[str, str]]:
    tokens, pos = [], 0
    text = text.rstrip()
    while pos < len(text):
        match = _TOKEN.match(text, pos)
        if match is None or match.end() == pos:
            raise ValueError(
                f"cannot parse ROI expression {text!r} at position {pos}: {text[pos:]!r}"
            )
        kind = match.lastgroup
        assert kind is not None
        tokens.append((kind, match.group(kind)))
        pos = match.end()
    return tokens


class _Parser:
    """Recursive-descent evaluator of ROI expressions (no ``eval``)."""

    def __init__(self, text: str, rois: ROIVolumes, ncsnr_threshold: float) -> None:
        self.text = text
        self.tokens = _tokenize(text)
        self.i = 0
        self.rois = rois
        self.ncsnr_threshold = ncsnr_threshold

    def _peek(self) -> tuple[str, str] | None:
        return self.tokens[self.i] if self.i < len(self.tokens) else None

    def _take(self, value: str | None = None) -> tuple[str, str]:
        tok = self._peek()
        if tok is None or (value is not None and tok[1] != value):
            raise ValueError(
                f"ROI expression {self.text!r}: expected {value or 'more input'}, got "
                f"{tok[1] if tok else 'end of expression'}"
            )
        self.i += 1
        return tok

    def parse(self) -> np.ndarray:
        out = self._expr()
        if self._peek() is not None:
            raise ValueError(f"ROI expression {self.text!r}: unexpected {self._peek()[1]!r}")  # type: ignore[index]
        return out

    def _expr(self) -> np.ndarray:
        out = self._term()
        while self._peek() == ("sym", "|"):
            self._take()
            out = out | self._term()
        return out

    def _term(self) -> np.ndarray:
        out = self._factor()
        while self._peek() == ("sym", "&"):
            self._take()
            out = out & self._factor()
        return out

    def _factor(self) -> np.ndarray:
        tok = self._peek()
        if tok == ("sym", "~"):
            self._take()
            return ~self._factor()
        if tok == ("sym", "("):
            self._take()
            out = self._expr()
            self._take(")")
            return out
        return self._atom()

    def _atom(self) -> np.ndarray:
        kind, name = self._take()
        if kind != "name":
            raise ValueError(f"ROI expression {self.text!r}: expected a name, got {name!r}")
        nxt = self._peek()
        if nxt is not None and nxt[0] == "op":
            if name not in _QUANTITIES:
                raise ValueError(
                    f"ROI expression {self.text!r}: can only compare {list(_QUANTITIES)}, "
                    f"not {name!r}"
                )
            op = self._take()[1]
            kind_num, number = self._take()
            if kind_num != "num":
                raise ValueError(f"ROI expression {self.text!r}: expected a number after {op}")
            values = self.rois.ncsnr() if name == "ncsnr" else self.rois.tval(name[2:])
            return _OPS[op](values, float(number))
        if nxt == ("sym", ":"):
            self._take()
            labels = [self._take()[1]]
            while self._peek() == ("sym", ","):
                self._take()
                labels.append(self._take()[1])
            return self.rois.label_mask(name, tuple(labels))
        if name == "OTC":
            return otc_mask(self.rois, self.ncsnr_threshold)
        if name == "EVC":
            return evc_mask(self.rois)
        return self.rois.label_mask(name)


def parse_roi_spec(spec: str) -> tuple[str, str]:
    """Split ``"name=expr"`` into (name, expr); a bare ``expr`` is its own name."""
    if "=" in spec.replace("==", "").replace(">=", "").replace("<=", ""):
        name, _, expr = spec.partition("=")
        name, expr = name.strip(), expr.strip()
    else:
        name, expr = spec.strip(), spec.strip()
    if not name or not expr:
        raise ValueError(f"empty ROI name or expression in {spec!r}")
    if "|" in name or "/" in name:
        raise ValueError(
            f"ROI name {name!r} may not contain '|' or '/'; name the ROI: 'myroi={expr}'"
        )
    return name, expr


def roi_mask(rois: ROIVolumes, expr: str, ncsnr_threshold: float = 0.2) -> np.ndarray:
    """Evaluate a named ROI or an ROI expression (see module docstring); bool [X, Y, Z].

    ``ncsnr_threshold`` is the threshold of the named ``OTC`` ROI.
    """
    return np.asarray(_Parser(expr, rois, ncsnr_threshold).parse(), dtype=bool)
