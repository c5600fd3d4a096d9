"""A small array backend layer shared by the numerical code (ridge, GSN, RSMs, CKA).

Numerical routines are written once against the array API (``xp = backend.xp``) and run on
NumPy or PyTorch (CPU, CUDA, MPS), in the spirit of himalaya's backends. The layer is kept
deliberately thin: choose a backend, move arrays to it and back, and run exact float math.

Examples
--------
>>> be = get_backend("numpy")
>>> X = be.asarray([[1.0, 2.0], [3.0, 4.0]], dtype="float64")
>>> be.to_numpy(be.xp.matmul(X, X.T)).shape
(2, 2)
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator
from dataclasses import dataclass
from types import ModuleType
from typing import Any, Literal

import numpy as np

logger = logging.getLogger(__name__)

BackendName = Literal["numpy", "torch", "torch_cuda", "torch_mps", "auto"]
_DTYPES = ("float32", "float64")


@dataclass(frozen=True)
class Backend:
    """An array library plus the device arrays live on.

    Attributes
    ----------
    name : {"numpy", "torch"}
        The array library.
    device : str
        ``"cpu"``, ``"cuda"`` or ``"mps"``.
    xp : module
        An array-API namespace (``array_api_compat.numpy`` or ``array_api_compat.torch``).
    """

    name: str
    device: str
    xp: ModuleType

    def dtype(self, dtype: str) -> Any:
        """Map ``"float32"``/``"float64"`` to this backend's dtype object."""
        if dtype not in _DTYPES:
            raise ValueError(f"dtype must be one of {_DTYPES}, got {dtype!r}")
        return getattr(self.xp, dtype)

    def asarray(self, x: Any, dtype: str | None = None) -> Any:
        """Convert ``x`` (NumPy array, tensor, list) to this backend and device."""
        if self.name == "numpy":
            if _is_torch(x):
                x = x.detach().cpu().numpy()
            return np.asarray(x, dtype=None if dtype is None else dtype)
        import torch

        if isinstance(x, torch.Tensor):
            t = x
        else:
            t = torch.as_tensor(np.asarray(x))
        if dtype is not None:
            t = t.to(getattr(torch, dtype))
        return t.to(self.device)

    def to_numpy(self, x: Any) -> np.ndarray:
        """Return ``x`` as a NumPy array on the host."""
        if _is_torch(x):
            return x.detach().cpu().numpy()
        return np.asarray(x)

    def free_memory_bytes(self) -> int:
        """Memory available to new arrays on this backend's device, in bytes."""
        if self.device == "cuda":
            import torch

            free, _total = torch.cuda.mem_get_info()
            return int(free)
        import psutil

        return int(psutil.virtual_memory().available)

    @contextlib.contextmanager
    def exact(self) -> Iterator[None]:
        """Disable TF32 matmuls for the duration (CUDA rounds to 10-bit mantissas otherwise)."""
        if self.name != "torch":
            yield
            return
        import torch

        old = (torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32)
        torch.backends.cuda.matmul.allow_tf32 = False
        torch.backends.cudnn.allow_tf32 = False
        try:
            yield
        finally:
            torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = old


def _is_torch(x: Any) -> bool:
    return type(x).__module__.startswith("torch")


def resolve_device(device: str = "auto") -> str:
    """Resolve ``"auto"`` to ``"cuda"``, ``"mps"`` or ``"cpu"``; validate anything else."""
    if device != "auto":
        if device.split(":")[0] not in ("cpu", "cuda", "mps"):
            raise ValueError(f"device must be 'auto', 'cpu', 'cuda[:N]' or 'mps', got {device!r}")
        return device
    try:
        import torch
    except ImportError:  # pragma: no cover - torch is a hard dependency
        return "cpu"
    if torch.cuda.is_available():
        return "cuda"
    if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
        return "mps"
    return "cpu"


def get_backend(name: BackendName | Backend = "numpy") -> Backend:
    """Return a :class:`Backend`.

    Parameters
    ----------
    name : {"numpy", "torch", "torch_cuda", "torch_mps", "auto"} or Backend
        ``"torch"`` is PyTorch on the CPU; ``"auto"`` picks ``torch_cuda`` when a GPU is
        present and ``numpy`` otherwise.
    """
    if isinstance(name, Backend):
        return name
    if name == "auto":
        name = "torch_cuda" if resolve_device("auto") == "cuda" else "numpy"
    if name == "numpy":
        import array_api_compat.numpy as xp_np

        return Backend("numpy", "cpu", xp_np)
    if name in ("torch", "torch_cuda", "torch_mps"):
        import array_api_compat.torch as xp_torch

        device = {"torch": "cpu", "torch_cuda": "cuda", "torch_mps": "mps"}[name]
        if device != "cpu" and resolve_device("auto") != device:
            raise RuntimeError(f"backend {name!r} requested but no {device} device is available")
        return Backend("torch", device, xp_torch)
    raise ValueError(
        f"unknown backend {name!r}; expected numpy, torch, torch_cuda, torch_mps or auto"
    )
