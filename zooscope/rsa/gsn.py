"""GSN noise ceilings: the public entry points (Kay et al.; port of cvnlab/GSN v1.2).

- :func:`perform_gsn` (:mod:`zooscope.rsa.gsn_fit`): signal and noise distributions.
- :func:`rsa_noise_ceiling` (:mod:`zooscope.rsa.gsn_rsa`): the GSN RSA noise ceiling.
- :func:`ncsnr`, :func:`noise_ceiling_percent` (:mod:`zooscope.rsa.reliability`): per-unit
  reliability in the GLMsingle/NSD convention.
Shared linear algebra lives in :mod:`zooscope.rsa.gsn_linalg`.
"""

from zooscope.rsa.gsn_fit import GSNResult, perform_gsn
from zooscope.rsa.gsn_rsa import RSANoiseCeiling, rsa_noise_ceiling
from zooscope.rsa.reliability import ncsnr, noise_ceiling_percent

__all__ = [
    "GSNResult",
    "RSANoiseCeiling",
    "ncsnr",
    "noise_ceiling_percent",
    "perform_gsn",
    "rsa_noise_ceiling",
]
