"""The Natural Scenes Dataset: on-disk layout, design, betas, ROIs, benchmark preparation, and a
synthetic NSD in the same layout for tests and demos."""

from zooscope.nsd.design import NSDDesign, repetition_index
from zooscope.nsd.layout import NSDLayout
from zooscope.nsd.prepare import prepare
from zooscope.nsd.rois import ROIVolumes, evc_mask, otc_mask, roi_mask
from zooscope.nsd.synthetic import load_truth, write_synthetic

__all__ = [
    "NSDDesign",
    "NSDLayout",
    "ROIVolumes",
    "evc_mask",
    "load_truth",
    "otc_mask",
    "prepare",
    "repetition_index",
    "roi_mask",
    "write_synthetic",
]
