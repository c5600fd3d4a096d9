"""zooscope.nsd."""
