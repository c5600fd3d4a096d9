"""Process-wide settings for feature extraction on CPU (see ``docs/performance.md``).

These are choices a library must not make behind its caller's back, so :mod:`zooscope`'s
packages never call them. The ``zooscope`` command applies :func:`command_settings` before numpy
and torch are imported: idle OpenMP and OpenBLAS threads sleep instead of spinning
(:func:`quiet_openmp_waits`, :func:`quiet_blas_waits`), and transparent huge pages for torch's large CPU tensors
where the kernel offers them (:func:`use_huge_pages`). :func:`reuse_freed_memory` is opt-in
allocator tuning: call it first thing in a script, or set the environment variables it sets
before starting Python (``docs/performance.md``). Each leaves a setting the user made alone, and
child processes (Dask workers) inherit it through the environment.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
import os
import re

log = logging.getLogger(__name__)

# glibc's mallopt parameters (malloc.h).
_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3
# mallopt takes a C int, so both stay below 2**31.
MMAP_THRESHOLD = 1 << 30  # bytes: allocations below this come from the heap, not fresh mmaps
TRIM_THRESHOLD = (1 << 31) - 1  # bytes of free heap top kept instead of returned to the system


#: The environment variables of this module: each changes how fast the same work runs.
SPEED_SETTINGS = (
    "OMP_WAIT_POLICY",
    "OPENBLAS_THREAD_TIMEOUT",
    "THP_MEM_ALLOC_ENABLE",
    "MALLOC_MMAP_THRESHOLD_",
    "MALLOC_TRIM_THRESHOLD_",
)


def speed_settings() -> dict[str, str | None]:
    """The :data:`SPEED_SETTINGS` in force (None where unset), e.g. to key measured rates."""
    return {name: os.environ.get(name) for name in SPEED_SETTINGS}


def quiet_openmp_waits() -> None:
    """Let idle OpenMP threads sleep instead of spinning (unless the user chose a policy).

    Why: torch's OpenMP workers spin for milliseconds after every operator. The extraction runs
    its projection kernel in a hook right after each layer, so on a small machine the spinning
    threads take the cores the kernel needs (ResNet-50 on 2 cores: the kernel took 2.1 s per 32
    images instead of 1.4 s). A bare forward pass is as fast either way (ResNet-50 and ViT-B/16,
    three runs each, within this machine's noise). It only takes effect before torch is imported.
    """
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")


def quiet_blas_waits() -> None:
    """Let OpenBLAS's idle worker threads sleep at once instead of spinning (unless the user chose).

    Why: after every threaded BLAS call OpenBLAS's workers spin for about 2**28 cycles (a tenth
    of a second) waiting for the next one, so whatever runs next on one thread (Python, a numpy
    pass, torch's operators) shares its cores with a spinning thread that counts as CPU time.
    Measured on 2 cores: a loop of 400 x 400 products, each followed by 30 ms of single-threaded
    work, took 2.46 CPU s per 1.24 s of wall time by default and 1.28 with
    ``OPENBLAS_THREAD_TIMEOUT=4`` (the minimum, 2**4 cycles), at the same wall time. OpenBLAS
    reads it when it is loaded, so it only takes effect before numpy is imported.
    """
    os.environ.setdefault("OPENBLAS_THREAD_TIMEOUT", "4")


def reuse_freed_memory() -> bool:
    """Serve large tensors from the heap and keep freed memory for reuse (glibc only; opt-in).

    Why: by default glibc maps every allocation above its mmap threshold (128 kB, rising to at
    most 32 MB) afresh and unmaps it on free, so each large activation of every forward pass costs
    page faults and the kernel's zeroing of the pages. A bare ResNet-50 forward over 32 images
    took 3.0 s that way and 1.75 s with the thresholds set here. The exact-RSM memory benchmark
    (every layer of ResNet-50, 256 images, 2 GB budget) ran in 196 s instead of 430 s (388 s
    after later kernel work).
    The price is memory: its peak RSS rose from 3.02 GB to 3.64 GB, because freed memory stays
    with the process (the extraction then holds its whole budget at once, and the baseline of
    torch and the model grows by 0.15 GB). So it is not the default. Environment variables set
    by the user (``MALLOC_MMAP_THRESHOLD_``, ``MALLOC_TRIM_THRESHOLD_``) win; children read the
    ones set here when they start.

    Returns
    -------
    bool
        Whether the thresholds were applied to this process.
    """
    user_set = any(
        name in os.environ for name in ("MALLOC_MMAP_THRESHOLD_", "MALLOC_TRIM_THRESHOLD_")
    )
    os.environ.setdefault("MALLOC_MMAP_THRESHOLD_", str(MMAP_THRESHOLD))
    os.environ.setdefault("MALLOC_TRIM_THRESHOLD_", str(TRIM_THRESHOLD))
    if user_set:
        return False
    path = ctypes.util.find_library("c")
    mallopt = getattr(ctypes.CDLL(path), "mallopt", None) if path else None
    if mallopt is None:  # not glibc (macOS, musl): nothing to tune
        return False
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    applied = (
        mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD) == 1
        and mallopt(_M_TRIM_THRESHOLD, TRIM_THRESHOLD) == 1
    )
    if not applied:
        log.debug("mallopt refused the thresholds; glibc's defaults stay")
    return applied


THP_SETTING = "/sys/kernel/mm/transparent_hugepage/enabled"


def transparent_huge_pages_mode() -> str:
    """The kernel's THP mode from :data:`THP_SETTING`: ``always``, ``madvise``, ``never``, or
    ``unavailable`` (not Linux, or no THP support)."""
    try:
        with open(THP_SETTING) as setting:
            return setting.read().split("[")[1].split("]")[0]
    except (OSError, IndexError):
        return "unavailable"


def use_huge_pages(warn: bool = True) -> bool:
    """Back torch's large CPU tensors with transparent huge pages (Linux).

    Sets ``THP_MEM_ALLOC_ENABLE=1``, torch's own switch: CPU allocations of 2 MB and more are then
    aligned to 2 MB and ``madvise(MADV_HUGEPAGE)``-d, so a fresh 100 MB activation costs ~50
    page faults instead of ~25,000. Measured on a 2-core machine (ResNet-50, 32 images per
    batch): a bare forward 3.0 -> 2.2 s per batch; the exact-RSM memory benchmark (256 images,
    2 GB budget) 388 -> 253 s at the same peak RSS (3.01 / 3.03 GB); ``zooscope demo`` on a quiet
    machine 379 -> 359 CPU s (system time 102 -> 82 s), peak RSS 12.7 / 12.6 GB. The
    ``zooscope`` command sets it (:func:`command_settings`); ``THP_MEM_ALLOC_ENABLE=0`` in the
    environment turns it off, since a value the user set wins. The costs it can have elsewhere:
    a partly used 2 MB page is resident whole (at most 2 MB per tensor of 2 MB or more), and a
    kernel whose THP ``defrag`` setting is ``always`` may stall to compact memory for them.
    It must run before torch makes its first large allocation; children inherit it through the
    environment.

    Parameters
    ----------
    warn : bool, default=True
        Log a warning when the kernel offers no huge pages (the variable is then left unset).

    Returns
    -------
    bool
        Whether the kernel offers transparent huge pages to ``madvise`` (``always`` or
        ``madvise`` in :data:`THP_SETTING`), and so whether the variable was set.
    """
    available = transparent_huge_pages_mode() in ("always", "madvise")
    if available:
        os.environ.setdefault("THP_MEM_ALLOC_ENABLE", "1")
    elif warn:
        log.warning(
            "transparent huge pages are not available here (%s); use_huge_pages changes nothing",
            THP_SETTING,
        )
    return available


def command_settings() -> None:
    """The process settings of the ``zooscope`` command, applied before any command imports torch.

    :func:`quiet_openmp_waits`, :func:`quiet_blas_waits` and :func:`use_huge_pages` (silently
    skipped where the kernel has no transparent huge pages). Benchmarks call it too, so they
    measure what the command runs.
    """
    quiet_openmp_waits()
    quiet_blas_waits()
    use_huge_pages(warn=False)


#: A size as text: a number (digits, a decimal point, an exponent), then an optional unit.
_SIZE = re.compile(r"^\s*(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?\s*[A-Za-z]*\s*$")


def parse_bytes(size: int | float | str) -> int:
    """A memory size in bytes: ``"4GB"``, ``"512MiB"``, ``"2e9"``, ``2e9``.

    Strings are read by :func:`dask.utils.parse_bytes` (decimal ``kB``/``MB``/``GB``, binary
    ``KiB``/``MiB``/``GiB``, case-insensitive); an empty, negative or unreadable one raises a
    ``ValueError`` that says what to write.
    """
    if isinstance(size, int | float):
        return int(size)
    # lazy: dask is not imported when the command line starts (zooscope --help)
    from dask.utils import parse_bytes as dask_parse_bytes

    try:
        # a number first: dask alone reads "." as 1 byte and "GB" as 1 GB, which are typos
        value = dask_parse_bytes(size) if _SIZE.match(str(size)) else -1
    except (ValueError, TypeError, AttributeError):
        value = -1
    if value < 0:
        raise ValueError(f"cannot read a memory size from {size!r}; use e.g. 4GB or 512MiB")
    return int(value)
