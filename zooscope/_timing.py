"""Where a survey's time goes: a process-wide collector of exclusive wall and CPU time per stage.

The pipeline wraps its stages (loading a model, the forward passes, the projection, the Gram
matrices, ridge, RSA, the database write) in :func:`stage`; ``benchmarks/survey.py`` reads the
totals with :func:`totals`. Stages nest, and a stage's time excludes that of the stages inside
it (the forward passes exclude the projection run in their hooks), so the totals add up to the
time covered. CPU time is the process's (every thread's), which on a shared machine says more
than wall time. It costs two clock reads per stage and logs nothing.

Examples
--------
>>> reset()
>>> with stage("outer"):
...     with stage("inner"):
...         pass
>>> sorted(totals())
['inner', 'outer']
>>> sorted(totals("cpu"))
['inner', 'outer']
"""

from __future__ import annotations

import threading
import time
from collections import defaultdict
from collections.abc import Iterator
from contextlib import contextmanager

_CLOCKS = {"wall": time.perf_counter, "cpu": time.process_time}
_lock = threading.Lock()
_totals: dict[str, dict[str, float]] = {kind: defaultdict(float) for kind in _CLOCKS}
_local = threading.local()  # each thread's stack of {clock: seconds spent in inner stages}


@contextmanager
def stage(name: str) -> Iterator[None]:
    """Add the time spent inside the block, less its inner stages, to ``name``'s totals."""
    stack = getattr(_local, "stack", None)
    if stack is None:
        stack = _local.stack = []
    inner = dict.fromkeys(_CLOCKS, 0.0)
    stack.append(inner)
    start = {kind: clock() for kind, clock in _CLOCKS.items()}
    try:
        yield
    finally:
        elapsed = {kind: clock() - start[kind] for kind, clock in _CLOCKS.items()}
        stack.pop()
        for kind, seconds in elapsed.items():
            if stack:
                stack[-1][kind] += seconds
            with _lock:
                _totals[kind][name] += seconds - inner[kind]


def totals(clock: str = "wall") -> dict[str, float]:
    """Exclusive seconds per stage since the last :func:`reset`, by ``"wall"`` or ``"cpu"`` clock."""
    with _lock:
        return dict(_totals[clock])


def reset() -> None:
    """Forget the totals."""
    with _lock:
        for kind in _totals.values():
            kind.clear()
