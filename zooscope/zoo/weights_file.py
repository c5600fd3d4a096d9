"""Read a checkpoint's tensors, weights only, with a message that names the file when it cannot.

``torch.load(weights_only=True)`` refuses a pickle that holds anything but tensors and plain
containers, which is what keeps a checkpoint from running code; its own message then advises
loading with ``weights_only=False``, and a file that is not a checkpoint at all fails with a
``KeyError``, ``IndexError`` or ``EOFError`` that names nothing. :func:`load_weights` says which
file, what is wrong with it and what to do, and never suggests unsafe loading.
"""

from __future__ import annotations

import os
import pickle
import re
import warnings
import zipfile
from pathlib import Path
from typing import Any

from zooscope.errors import InputFileError

__all__ = ["load_weights"]

_WHAT = "a PyTorch checkpoint"
_SAVE_HINT = (
    "save the weights alone, torch.save(model.state_dict(), path), or as a safetensors file; "
    "zooscope never unpickles other objects (they could run code)"
)


def _kind(path: Path) -> str:
    """``zip`` (torch.save), ``pickle`` (legacy torch.save), ``empty`` or ``other``."""
    with open(path, "rb") as handle:
        head = handle.read(2)
    if not head:
        return "empty"
    if zipfile.is_zipfile(path):
        return "zip"
    return "pickle" if head[:1] == b"\x80" else "other"


def load_weights(path: str | os.PathLike[str]) -> Any:
    """``torch.load(path, map_location="cpu", weights_only=True)``, or an error naming the file.

    Parameters
    ----------
    path : path-like
        A ``torch.save`` file.

    Returns
    -------
    object
        The checkpoint (a state dict, or a container holding one).

    Raises
    ------
    InputFileError
        The file is missing, empty, truncated, not a checkpoint, or holds Python objects other
        than tensors; the second line says what to do.
    """
    import torch

    path = Path(path)
    try:
        with warnings.catch_warnings():  # "Detected pickle protocol 4": the refusal says enough
            warnings.filterwarnings("ignore", "Detected pickle protocol", UserWarning)
            return torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise
    except Exception as error:  # UnpicklingError, KeyError, IndexError, EOFError, RuntimeError, ...
        raise _refusal(path, error) from None


def _refusal(path: Path, error: Exception) -> InputFileError:
    """Why ``torch.load`` failed on ``path``, for the user."""
    kind = _kind(path)
    if kind == "empty":
        return InputFileError(path, _WHAT, "the file is empty", "fetch or copy it again")
    if kind == "other":
        return InputFileError(
            path, _WHAT, "not a PyTorch checkpoint (neither a torch.save zip nor a pickle)",
            "point the manifest at the weights file itself (.pt, .pth, .bin, .torch)",
        )  # fmt: skip
    text = str(error)
    if isinstance(error, pickle.UnpicklingError) and "Weights only load failed" in text:
        found = re.search(r"Unsupported (?:global|operand)[^\n]*", text)
        detail = f" ({found.group(0).strip().rstrip('.')})" if found else ""
        return InputFileError(
            path, _WHAT, f"it holds Python objects besides tensors{detail}", _SAVE_HINT
        )
    first = (text.strip().splitlines() or [type(error).__name__])[0]
    return InputFileError(
        path, _WHAT, f"damaged or truncated ({type(error).__name__}: {first[:200]})",
        "the file looks truncated (an interrupted download or copy?): fetch it again",
    )  # fmt: skip
