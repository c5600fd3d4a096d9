"""Representational similarity analysis: RSMs, cRSA, veRSA (RidgeGCV), CKA, GSN noise ceilings."""
