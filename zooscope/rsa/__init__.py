"""Representational similarity analysis: RSMs, cRSA, veRSA (RidgeGCV), CKA, GSN noise ceilings."""

from zooscope.rsa.cka import cka, cka_matrix
from zooscope.rsa.encoding import VersaResult, versa
from zooscope.rsa.gsn import (
    GSNResult,
    RSANoiseCeiling,
    ncsnr,
    noise_ceiling_percent,
    perform_gsn,
    rsa_noise_ceiling,
)
from zooscope.rsa.partial import explained_variance, partial_correlation
from zooscope.rsa.ridge import RidgeGCV
from zooscope.rsa.rsm import RSMComparator, compare_rsms, crsa, rsm, upper_triangle
from zooscope.rsa.selection import select_best_layers, select_layer

__all__ = [
    "GSNResult",
    "RSANoiseCeiling",
    "RSMComparator",
    "RidgeGCV",
    "VersaResult",
    "cka",
    "cka_matrix",
    "compare_rsms",
    "crsa",
    "explained_variance",
    "ncsnr",
    "noise_ceiling_percent",
    "partial_correlation",
    "perform_gsn",
    "rsa_noise_ceiling",
    "rsm",
    "select_best_layers",
    "select_layer",
    "upper_triangle",
    "versa",
]
