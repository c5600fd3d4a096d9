"""Content hashes used to key benchmark files, feature caches and scoring configs."""

from __future__ import annotations

import hashlib
import json
from typing import Any

import numpy as np


def hash_json(obj: Any, length: int = 16) -> str:
    """Stable hash of a JSON-serialisable object (keys sorted), as ``length`` hex characters."""
    text = json.dumps(obj, sort_keys=True, default=str, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:length]


def hash_array(array: np.ndarray, h: hashlib._Hash | None = None) -> hashlib._Hash:
    """Feed an array's dtype, shape and bytes into a sha256 object (created if not given)."""
    h = h or hashlib.sha256()
    a = np.ascontiguousarray(array)
    h.update(str(a.dtype).encode())
    h.update(str(a.shape).encode())
    h.update(memoryview(a).cast("B"))
    return h
