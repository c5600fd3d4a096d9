"""Where weights live, whether they can be downloaded now, and offline switches.

Every library keeps its own cache (``TORCH_HOME`` for torchvision and URL checkpoints,
``HF_HOME`` for timm, open_clip and transformers). zooscope never copies weights; it only decides
*before* a load whether a download could succeed, because the libraries' own retry loops take
25-50 s to give up when the hub is unreachable (measured here) and may hang on firewalled networks.
"""

from __future__ import annotations

import contextlib
import functools
import os
import socket
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlparse

HF_HOST = "huggingface.co"
_TRUE = {"1", "true", "yes", "on"}


def offline_forced() -> bool:
    """True when ``ZOOSCOPE_OFFLINE`` (or the hub's own ``HF_HUB_OFFLINE``) asks for offline mode."""
    return any(
        os.environ.get(v, "").lower() in _TRUE for v in ("ZOOSCOPE_OFFLINE", "HF_HUB_OFFLINE")
    )


@functools.lru_cache(maxsize=32)
def host_reachable(host: str, port: int = 443, timeout: float = 3.0) -> bool:
    """Whether a TCP connection to ``host:port`` opens within ``timeout`` seconds (cached per process)."""
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def can_download(hosts: tuple[str, ...]) -> bool:
    """True unless offline mode is forced or one of ``hosts`` cannot be reached."""
    return not offline_forced() and all(host_reachable(h) for h in hosts)


def url_host(url: str) -> str:
    """The host name of a URL (``""`` for local paths)."""
    return urlparse(url).hostname or ""


def torch_checkpoint_dir() -> Path:
    """Folder where torch.hub (torchvision, URL checkpoints) caches downloads."""
    import torch

    return Path(torch.hub.get_dir()) / "checkpoints"


def hf_cache_dir() -> str:
    """The Hugging Face hub cache folder (timm, open_clip and transformers weights)."""
    from huggingface_hub import constants

    return str(constants.HF_HUB_CACHE)


def hf_file_cached(repo_id: str, filenames: tuple[str, ...]) -> bool:
    """Whether any of ``filenames`` of ``repo_id`` is in the local hub cache."""
    from huggingface_hub import try_to_load_from_cache

    return any(isinstance(try_to_load_from_cache(repo_id, f), str) for f in filenames)


@contextlib.contextmanager
def hub_offline() -> Iterator[None]:
    """Make huggingface_hub fail at once instead of retrying when a file is not cached.

    The hub reads its offline flag from a module constant at call time, so flipping it for the
    duration of one load is enough; the previous value is restored afterwards.
    """
    from huggingface_hub import constants

    previous = constants.HF_HUB_OFFLINE
    constants.HF_HUB_OFFLINE = True
    try:
        yield
    finally:
        constants.HF_HUB_OFFLINE = previous


def is_missing_weights_error(error: BaseException) -> bool:
    """Whether an exception raised by a library's loader means "weights not cached / no network"."""
    if isinstance(error, OSError | ConnectionError):
        return True
    text = str(error).lower()
    return any(
        s in text
        for s in (
            "download",
            "local cache",
            "offline",
            "connection",
            "cannot find the requested files",
        )
    )
