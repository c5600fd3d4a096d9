"""OTC / EVC rules on a hand-built ROI grid, ROI expressions, and the published OTC table."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from reference_data import CONWELL, needs_conwell2024

from zooscope.nsd import NSDLayout, ROIVolumes, evc_mask, otc_mask, roi_mask
from zooscope.nsd.rois import OTC_FLOC, OTC_STREAMS_EXCLUDED, parse_roi_spec, read_ctab
from zooscope.nsd.synthetic import CTABS, write_roi_files

# One voxel per case: (streams, nsdgeneral, fLoc file, fLoc label, {domain: t}, ncsnr, prf,
# expected OTC, what the case exercises).
S = {v: k for k, v in CTABS["streams"].items()}
CASES = [
    (S["ventral"], 1, None, None, {}, 0.5, 0, True, "streams branch"),
    (S["ventral"], 0, None, None, {}, 0.5, 0, False, "needs nsdgeneral"),
    (S["early"], 1, None, None, {}, 0.5, 0, False, "early excluded"),
    (S["midparietal"], 1, None, None, {}, 0.5, 0, False, "midparietal excluded"),
    (S["parietal"], 1, None, None, {}, 0.5, 0, False, "parietal excluded"),
    (S["lateral"], 1, None, None, {}, 0.1, 0, False, "ncsnr below threshold"),
    (0, 1, None, None, {}, 0.5, 0, False, "unlabelled stream"),
    (S["early"], 1, "floc-faces", "FFA-1", {"faces": 1.0}, 0.5, 1, True, "fLoc t >= 1 inclusive"),
    (S["early"], 1, "floc-faces", "FFA-1", {"faces": 0.99}, 0.5, 0, False, "fLoc t < 1"),
    (0, 0, "floc-faces", "OFA", {"faces": 3.0, "bodies": -5.0}, 0.5, 0, True, "own-domain t"),
    (0, 0, "floc-faces", "mTL-faces", {"faces": 3.0}, 0.5, 0, False, "fLoc ROI not in OTC list"),
    (0, 0, "floc-bodies", "EBA", {"bodies": 2.0}, 0.19, 0, False, "ncsnr on fLoc branch"),
    (0, 0, "floc-places", "PPA", {"places": 1.5}, 0.5, 0, True, "places"),
    (0, 0, "floc-words", "VWFA-1", {"words": 2.0}, 0.5, 0, True, "words (floc_wordtval)"),
    (0, 0, "floc-places", "RSC", {"places": 5.0}, 0.5, 0, False, "RSC not in OTC"),
    (0, 0, "floc-words", "OWFA", {"words": 0.5, "faces": 5.0}, 0.5, 0, False, "other-domain t"),
    (S["midventral"], 1, None, None, {}, 0.2, 0, True, "ncsnr threshold inclusive"),
    (S["ventral"], 1, None, None, {}, np.nan, 0, False, "NaN ncsnr"),
    (0, 0, "floc-bodies", "FBA-2", {"bodies": 1.0}, 0.3, 7, True, "FBA-2"),
    (S["midlateral"], -1, None, None, {}, 0.9, 3, False, "non-cortical nsdgeneral"),
]


def _build(root: Path, cases=CASES, ctabs=None) -> ROIVolumes:
    n = len(cases)
    shape = (n, 1, 1)
    labels = {name: np.zeros(shape, dtype=np.int16) for name in CTABS}
    tvals = {d: np.full(shape, -10.0) for d in ("faces", "bodies", "places", "words")}
    ncsnr = np.zeros(shape)
    names = {f: {v: k for k, v in CTABS[f].items()} for f in CTABS}
    for i, (streams, general, floc, label, ts, snr, prf, *_rest) in enumerate(cases):
        labels["streams"][i] = streams
        labels["nsdgeneral"][i] = general
        labels["prf-visualrois"][i] = prf
        if floc is not None:
            labels[floc][i] = names[floc][label]
        for domain, t in ts.items():
            tvals[domain][i] = t
        ncsnr[i] = snr
    layout = NSDLayout(root)
    write_roi_files(layout, 1, labels, tvals, ncsnr, ctabs=ctabs)
    return ROIVolumes(layout, 1)


def test_otc_rule_each_clause(tmp_path):
    rois = _build(tmp_path)
    got = otc_mask(rois, ncsnr_threshold=0.2)[:, 0, 0]
    for i, case in enumerate(CASES):
        assert got[i] == case[7], f"case {i} ({case[8]})"


def test_otc_threshold_argument(tmp_path):
    rois = _build(tmp_path)
    got = otc_mask(rois, ncsnr_threshold=0.0)[:, 0, 0]
    assert got[5]  # lateral at ncsnr 0.1 enters with a zero threshold
    assert got[11]  # EBA at ncsnr 0.19 too
    assert not got[17]  # NaN stays out


def test_evc_rule(tmp_path):
    rois = _build(tmp_path)
    expected = np.array([case[6] > 0 for case in CASES])
    np.testing.assert_array_equal(evc_mask(rois)[:, 0, 0], expected)
    assert expected.sum() == 3


def test_label_names_come_from_ctab(tmp_path):
    # Swap the meaning of codes 1 and 5: code 5 now means "early" and must be excluded.
    ctabs = {k: dict(v) for k, v in CTABS.items()}
    ctabs["streams"][1], ctabs["streams"][5] = "ventral", "early"
    rois = _build(tmp_path, ctabs=ctabs)
    got = otc_mask(rois)[:, 0, 0]
    assert not got[0]  # code 5 (named "early" in this ctab)
    assert got[2]  # code 1 (named "ventral" in this ctab)


def test_expressions(tmp_path):
    rois = _build(tmp_path)
    streams = rois.labels("streams")[0][:, 0, 0]
    snr = rois.ncsnr()[:, 0, 0]
    with np.errstate(invalid="ignore"):
        expect = (streams == S["ventral"]) & (snr >= 0.3)
    np.testing.assert_array_equal(roi_mask(rois, "streams:ventral & ncsnr>=0.3")[:, 0, 0], expect)
    np.testing.assert_array_equal(
        roi_mask(rois, "streams:5")[:, 0, 0], streams == 5
    )  # integer labels
    general = rois.labels("nsdgeneral")[0][:, 0, 0]
    np.testing.assert_array_equal(roi_mask(rois, "~nsdgeneral")[:, 0, 0], general <= 0)
    otc = otc_mask(rois)[:, 0, 0]
    evc = evc_mask(rois)[:, 0, 0]
    np.testing.assert_array_equal(roi_mask(rois, "OTC & ~EVC")[:, 0, 0], otc & ~evc)
    faces = rois.labels("floc-faces")[0][:, 0, 0]
    t = rois.tval("faces")[:, 0, 0]
    np.testing.assert_array_equal(
        roi_mask(rois, "(floc-faces:FFA-1,OFA | floc-places) & t_faces > 1")[:, 0, 0],
        (np.isin(faces, [1, 2]) | (rois.labels("floc-places")[0][:, 0, 0] > 0)) & (t > 1),
    )
    # | binds looser than &
    a = roi_mask(rois, "nsdgeneral | streams:early & ncsnr<0.3")[:, 0, 0]
    with np.errstate(invalid="ignore"):
        np.testing.assert_array_equal(a, (general > 0) | ((streams == 1) & (snr < 0.3)))


@pytest.mark.parametrize(
    "bad", ["streams:ventral &", "ncsnr >= ventral", "streams >= 1", "(nsdgeneral", "a $ b"]
)
def test_expression_errors(tmp_path, bad):
    rois = _build(tmp_path)
    with pytest.raises(ValueError):
        roi_mask(rois, bad)


def test_unknown_label_and_missing_file(tmp_path):
    rois = _build(tmp_path)
    with pytest.raises(KeyError, match="FFA-9"):
        roi_mask(rois, "floc-faces:FFA-9")
    with pytest.raises(FileNotFoundError, match=r"roi/HCP_MMP1\.nii\.gz"):
        roi_mask(rois, "HCP_MMP1")


def test_roi_spec_names():
    assert parse_roi_spec("OTC") == ("OTC", "OTC")
    assert parse_roi_spec("v=streams:ventral & ncsnr>=0.3") == ("v", "streams:ventral & ncsnr>=0.3")
    assert parse_roi_spec("ncsnr>=0.3") == ("ncsnr>=0.3", "ncsnr>=0.3")
    with pytest.raises(ValueError, match="may not contain"):
        parse_roi_spec("nsdgeneral | EVC")


def test_read_ctab(tmp_path):
    path = tmp_path / "x.mgz.ctab"
    path.write_text("#comment\n0 Unknown 0 0 0 0\n1\tOFA 1 2 3 0\n 2  FFA-1\nbad line\n")
    assert read_ctab(path) == {0: "Unknown", 1: "OFA", 2: "FFA-1"}


@needs_conwell2024
def test_published_otc_table_obeys_rule():
    # The published table has no nsdgeneral or t columns, so check what it can show: voxels
    # outside every OTC fLoc ROI are in a kept stream; excluded streams occur only with a fLoc
    # ROI; every voxel passes the 0.2 ncsnr threshold; the counts are the published ones.
    table = pd.read_csv(CONWELL / "voxel_metadata_OTC.csv")
    floc = [label for labels in OTC_FLOC.values() for label in labels]
    in_floc = table[floc].astype(bool).any(axis=1)
    kept_streams = [s for s in CTABS["streams"].values() if s not in OTC_STREAMS_EXCLUDED]
    in_kept_stream = table[kept_streams].astype(bool).any(axis=1)
    assert (in_floc | in_kept_stream).all()
    in_excluded = table[list(OTC_STREAMS_EXCLUDED)].astype(bool).any(axis=1)
    assert in_floc[in_excluded & ~in_kept_stream].all()
    assert (table["ncsnr"] >= 0.2).all()
    assert table.groupby("subj_id").size().to_dict() == {1: 8088, 2: 7528, 5: 8015, 7: 5849}
