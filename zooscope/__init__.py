"""zooscope: score vision models against brain data and compare their inductive biases."""

__version__ = "0.1.0"
