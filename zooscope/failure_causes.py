"""Why a model failed: the model itself, or the run's settings and environment.

A survey records each failure with its cause (``failures.cause``). A later survey with the same
benchmark and scoring config skips a model whose last failure was the model's own (its code, its
checkpoint, a layer that cannot be scored) unless ``--retry-failed``; every other cause says
nothing about the model (a bad option, a missing device, memory or disk running out, a worker
lost, weights not downloadable offline, an unreadable input file), so the model is tried again.

:func:`classify` looks at the exception (and the exceptions it was raised from) when there is
one, else at the stored message, so failures recorded before causes existed are classified the
same way when a database is upgraded.
"""

from __future__ import annotations

import errno
import re

from zooscope.errors import InputFileError
from zooscope.validation import OptionError

__all__ = ["CAUSES", "MODEL", "RETRIED", "classify", "describe_causes"]

MODEL = "model"
SETTINGS = "settings"
OUT_OF_MEMORY = "out-of-memory"
DISK_FULL = "disk-full"
DEVICE = "device"
WORKER_LOST = "worker-lost"
WEIGHTS = "weights-unavailable"
INPUT = "input"
#: Every cause, the model's own first.
CAUSES = (MODEL, SETTINGS, OUT_OF_MEMORY, DISK_FULL, DEVICE, WORKER_LOST, WEIGHTS, INPUT)
#: Causes a rerun retries without ``--retry-failed``: everything but the model's own.
RETRIED = frozenset(CAUSES) - {MODEL}

# Messages (case-insensitive) that identify a cause when no exception type does.
_PATTERNS = (
    (OUT_OF_MEMORY, r"out of memory|cannot allocate memory|can't allocate memory|"
     r"defaultcpuallocator|memoryerror|outofmemoryerror|unable to allocate"),
    (DISK_FULL, r"no space left on device|disk quota exceeded|file too large|errno 28\b|errno 122\b"),
    (WORKER_LOST, r"killedworker|worker.*(left|lost|died)|left while running this task"),
    (DEVICE, r"cuda error|no cuda gpus are available|found no nvidia driver|"
     r"torch not compiled with cuda|cudnn_status|cublas_status|mps backend|"
     r"device-side assert|no cuda gpu is available"),
    (SETTINGS, r"batch_size should be a positive integer|raise memory_budget|"
     r"lower batch_size|cannot read a memory size|device must be 'auto'|"
     r"not a valid regular expression|unterminated character set"),
    (WEIGHTS, r"weightsunavailable|are not cached and cannot be downloaded"),
)  # fmt: skip
_COMPILED = tuple((cause, re.compile(pattern, re.IGNORECASE)) for cause, pattern in _PATTERNS)


def _chain(error: BaseException) -> list[BaseException]:
    """``error`` and the exceptions it was raised from (or while handling), outermost first."""
    seen: list[BaseException] = []
    while error is not None and error not in seen:
        seen.append(error)
        error = error.__cause__ or error.__context__  # type: ignore[assignment]
    return seen


def _by_type(error: BaseException, stage: str) -> str | None:
    name = type(error).__name__
    if isinstance(error, MemoryError) or name == "OutOfMemoryError":
        return OUT_OF_MEMORY
    if isinstance(error, OSError) and error.errno in (errno.ENOSPC, errno.EDQUOT, errno.EFBIG):
        return DISK_FULL
    if isinstance(error, OSError) and error.errno == errno.ENOMEM:
        return OUT_OF_MEMORY
    if name == "KilledWorker":
        return WORKER_LOST
    if name == "WeightsUnavailable":
        return WEIGHTS
    if isinstance(error, OptionError):
        return SETTINGS
    if isinstance(error, InputFileError) and stage != "load":  # at load: the model's own file
        return INPUT
    return None


def classify(error: BaseException | None = None, stage: str = "", message: str = "") -> str:
    """The cause of a failure, one of :data:`CAUSES`.

    Parameters
    ----------
    error : BaseException, optional
        The exception, when there is one (its chain is looked at too).
    stage : str
        Where it failed: ``load``, ``extract``, ``score``, ``setup``, ``worker``,
        ``worker-lost``, ...
    message : str
        The stored error text (``"ValueError: ..."``), used when ``error`` is None or its
        types say nothing.

    Returns
    -------
    str
    """
    if stage in ("worker", "worker-lost"):
        return WORKER_LOST
    texts = [message]
    for link in _chain(error) if error is not None else []:
        cause = _by_type(link, stage)
        if cause is not None:
            return cause
        texts.append(f"{type(link).__name__}: {link}")
    text = "\n".join(texts)
    for cause, pattern in _COMPILED:
        if pattern.search(text):
            return cause
    return MODEL


def describe_causes(causes: list[str]) -> str:
    """``"2 out-of-memory, 1 model"``: counts per cause, most frequent first."""
    counts: dict[str, int] = {}
    for cause in causes:
        counts[cause] = counts.get(cause, 0) + 1
    return ", ".join(f"{n} {cause}" for cause, n in sorted(counts.items(), key=lambda kv: -kv[1]))
