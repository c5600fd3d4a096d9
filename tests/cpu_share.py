"""The CPU cores one test process may use, alone or as one of pytest-xdist's ``-n`` workers."""

from __future__ import annotations

import os


def cpu_share() -> int:
    """Cores for this process: all of them, or its share when xdist runs several workers.

    Two xdist workers on two cores that each spin two OpenMP/BLAS threads run far slower than
    one thread each (see ``single_torch_thread`` in conftest.py).
    """
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    workers = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
    return max(1, (cores or 1) // workers)
