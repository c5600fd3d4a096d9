"""zooscope.feature_extraction."""
