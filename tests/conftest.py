"""Fixtures shared by the test modules (keep them small and generic)."""

from __future__ import annotations

import os
import socket
from collections.abc import Callable, Iterator
from pathlib import Path

from cpu_share import cpu_share

if os.environ.get("PYTEST_XDIST_WORKER"):
    # Before numpy/torch load (they read these once), and inherited by the subprocesses, Dask
    # workers and CLI runs the tests start: each xdist worker keeps to its share of the cores.
    for _name in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        os.environ[_name] = str(cpu_share())

import numpy as np
import pytest


@pytest.fixture
def rgb_image() -> np.ndarray:
    """A natural, non-square RGB photograph, uint8 ``[300, 451, 3]`` (scikit-image's cat)."""
    from skimage import data

    return data.chelsea()


@pytest.fixture
def write_csv(tmp_path: Path) -> Callable[..., Path]:
    """Factory writing CSV text (e.g. a manifest) to ``tmp_path / name``; returns the path."""

    def write(text: str, name: str = "manifest.csv") -> Path:
        path = tmp_path / name
        path.write_text(text.lstrip("\n"), encoding="utf-8")
        return path

    return write


@pytest.fixture
def offline(monkeypatch: pytest.MonkeyPatch) -> None:
    """Force zooscope's offline mode (``ZOOSCOPE_OFFLINE=1``)."""
    monkeypatch.setenv("ZOOSCOPE_OFFLINE", "1")


@pytest.fixture
def empty_weight_caches(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Point torch.hub and the Hugging Face hub at empty caches; return their parent folder.

    Makes "weights are not cached" true whatever this machine has downloaded before.
    """
    from huggingface_hub import constants

    root = tmp_path / "caches"
    monkeypatch.setenv("TORCH_HOME", str(root / "torch"))
    # The hub reads this module constant at call time (the env var only at import).
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(root / "hf" / "hub"))
    return root


@pytest.fixture
def no_network(monkeypatch: pytest.MonkeyPatch) -> list[object]:
    """Record (and refuse) every outgoing socket connection; the list must stay empty.

    A deterministic stand-in for "fails fast": the slow path is always a network attempt.
    """
    attempts: list[object] = []

    def refuse(self: socket.socket, address: object) -> None:
        attempts.append(address)
        raise OSError(f"network disabled in tests (connect to {address})")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket.socket, "connect_ex", refuse)
    return attempts


@pytest.fixture
def single_torch_thread() -> Iterator[None]:
    """One torch thread: on a shared 2-core runner, two spinning OpenMP threads run ~50x slower."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture
def hooked_activations() -> Callable[..., dict[str, np.ndarray]]:
    """``(loaded, images, names) -> {name: [n, p] float64}``: a loaded model's named submodule
    outputs on uint8 images ``[n, H, W, 3]``, by plain forward hooks (no zooscope extraction), as
    the independent reference for what the extraction computes."""

    def activations(loaded, images: np.ndarray, names: list[str]) -> dict[str, np.ndarray]:
        import torch

        from zooscope.feature_extraction.images import ImageSet, PreprocessedImages

        acts: dict[str, np.ndarray] = {}

        def keep(name: str) -> Callable[..., None]:
            return lambda _m, _i, out: acts.__setitem__(name, out.flatten(1).double().numpy())

        hooks = [loaded.module.get_submodule(n).register_forward_hook(keep(n)) for n in names]
        batch = torch.stack(list(PreprocessedImages(ImageSet(images), loaded.preprocess)))
        try:
            with torch.no_grad():
                loaded.module(batch)
        finally:
            for hook in hooks:
                hook.remove()
        return acts

    return activations
