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
        return torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise
    except pickle.UnpicklingError as error:
        text = str(error)
        found = re.search(
            r"(?:Unsupported global|Unsupported operand|WeightsUnpickler error)[^\n]*", text
        )
        detail = f" ({found.group(0).strip().rstrip('.')})" if found else ""
        if "Weights only load failed" in text and _kind(path) in ("zip", "pickle"):
            raise InputFileError(
                path, _WHAT, f"it holds Python objects besides tensors{detail}", _SAVE_HINT
            ) from None
        reason = f"not a checkpoint zooscope can read{detail}"
        raise InputFileError(path, _WHAT, reason, _SAVE_HINT) from None
    except Exception as error:  # KeyError, IndexError, EOFError, RuntimeError (zip reader), ...
        kind = _kind(path)
        if kind == "empty":
            reason, hint = "the file is empty", "fetch or copy it again"
        elif kind == "other":
            reason = "not a PyTorch checkpoint (neither a torch.save zip nor a pickle)"
            hint = "point the manifest at the weights file itself (.pt, .pth, .bin, .torch)"
        else:
            first = (str(error).strip().splitlines() or [type(error).__name__])[0]
            reason = f"damaged or truncated ({type(error).__name__}: {first[:200]})"
            hint = "the file looks truncated (an interrupted download or copy?): fetch it again"
        raise InputFileError(path, _WHAT, reason, hint) from None
