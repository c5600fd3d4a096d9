"""zooscope.analyses."""
