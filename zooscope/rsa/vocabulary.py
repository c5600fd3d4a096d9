"""The names of the two halves of a stimulus set, which every score and selection uses.

What is scored (metrics) and what divides it (ceiling methods) is the metric registry's vocabulary
(:mod:`zooscope.metrics`), above this library.
"""

from __future__ import annotations

#: The two halves of the stimulus set: layer selection on ``train``, reporting on ``test``.
SPLITS: tuple[str, ...] = ("train", "test")
