"""``load_model``: one entry point from a manifest row to a ready-to-run vision network."""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Iterator
from dataclasses import dataclass, field

import numpy as np
import torch

from zooscope._backend import resolve_device
from zooscope.zoo.errors import ModelUnavailable, WeightsUnavailable
from zooscope.zoo.hub import can_download, hub_offline, is_missing_weights_error
from zooscope.zoo.manifest import ModelEntry
from zooscope.zoo.preprocess import Preprocess
from zooscope.zoo.sources.base import Source, get_source

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class ModelInfo:
    """Facts about a loaded model, recorded with its results.

    Attributes
    ----------
    n_params : int
        Parameter count of the vision network.
    input_size : tuple of int
        ``(3, H, W)`` produced by the preprocessing.
    weights_id : str
        Identity of the weights (source, name, tag or seed): part of feature-cache keys.
    preprocess : str
        Description of the test-time transform.
    versions : dict
        Versions of the libraries involved.
    load_seconds : float
    """

    n_params: int
    input_size: tuple[int, ...]
    weights_id: str
    preprocess: str
    versions: dict[str, str] = field(default_factory=dict)
    load_seconds: float = 0.0


@dataclass
class LoadedModel:
    """A vision network ready for feature extraction.

    Attributes
    ----------
    module : torch.nn.Module
        The network in eval mode, on ``device``.
    preprocess : Preprocess
        PIL image or ``[H, W, 3]`` uint8 array -> float tensor ``[3, H, W]``.
    entry : ModelEntry
    info : ModelInfo
    device : str
    """

    module: torch.nn.Module
    preprocess: Preprocess
    entry: ModelEntry
    info: ModelInfo
    device: str


def fetch_command(entry: ModelEntry) -> str:
    """The CLI command that downloads ``entry``'s weights on a connected machine."""
    return f"zooscope models fetch {entry.model_uid} --manifest {entry.manifest}"


@contextlib.contextmanager
def seeded(seed: int) -> Iterator[None]:
    """Seed torch's CPU RNG for a random initialisation without disturbing the caller's RNG."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        yield


def _build(source: Source, entry: ModelEntry, pretrained: bool):
    """Build the network, failing fast with WeightsUnavailable when weights cannot be had."""
    init = contextlib.nullcontext() if pretrained else seeded(entry.seed)
    if not (pretrained or source.random_needs_files(entry)):
        with init:
            return source.load(entry, pretrained=False)
    hosts = source.download_hosts(entry)
    if not hosts or can_download(hosts):  # local files need no network, offline or not
        with init:
            return source.load(entry, pretrained=pretrained)
    # Offline: refuse at once when we know the file is missing; otherwise let the hub look in its
    # cache with its network retries switched off, and translate "not found" into our error.
    missing = WeightsUnavailable(
        entry.model_uid, source.cache_location(entry), fetch_command(entry), "offline"
    )
    if pretrained and source.is_cached(entry) is False:
        raise missing
    try:
        with hub_offline(), init:
            return source.load(entry, pretrained=pretrained)
    except Exception as error:
        if is_missing_weights_error(error):
            raise missing from error
        raise


def load_model(
    entry: ModelEntry,
    device: str = "cpu",
    weights: str | None = None,
    preprocessing: str = "library",
) -> LoadedModel:
    """Load the vision network of a manifest row with its own test-time preprocessing.

    Parameters
    ----------
    entry : ModelEntry
        A manifest row (see :func:`zooscope.zoo.load_manifest`).
    device : str
        ``"cpu"``, ``"cuda"``, ``"mps"`` or ``"auto"``.
    weights : {"random"} or None
        ``"random"`` overrides the row's weights with its seeded random init (the row's
        preprocessing is kept); None uses the row as written.
    preprocessing : {"library", "conwell2024", "brainscore"}
        The library's own test-time transform, the rule Conwell et al. (2024) used for the
        row's source (:meth:`~zooscope.zoo.sources.base.Source.conwell2024_transform`), or
        Brain-Score's (:func:`~zooscope.neural.screen.brainscore_transform`).

    Returns
    -------
    LoadedModel

    Raises
    ------
    ModelUnavailable
        The row is marked ``available=false``.
    WeightsUnavailable
        Pretrained weights are not cached and cannot be downloaded (no network, or
        ``ZOOSCOPE_OFFLINE=1``); raised within seconds.
    """
    if not entry.available:
        raise ModelUnavailable(
            f"model {entry.model_uid!r} is marked unavailable: {entry.unavailable_reason}"
        )
    started = time.perf_counter()
    source = get_source(entry.source)
    pretrained = not (entry.is_random or weights == "random")
    module, transform = _build(source, entry, pretrained)
    transform = source.policy_transform(preprocessing, entry, transform, pretrained)
    device = resolve_device(device)
    module = module.eval().to(device)
    for parameter in module.parameters():
        parameter.requires_grad_(False)
    preprocess = Preprocess(transform)
    probe = preprocess(np.zeros((32, 32, 3), np.uint8))
    weights_id = (
        f"{entry.source}:{entry.arch or entry.name}:random:seed={entry.seed}"
        if not pretrained
        else f"{entry.source}:{entry.name}:{entry.weights}"
    )
    info = ModelInfo(
        n_params=sum(p.numel() for p in module.parameters()),
        input_size=tuple(probe.shape),
        weights_id=weights_id,
        preprocess=preprocess.describe(),
        versions=source.library_versions(),
        load_seconds=time.perf_counter() - started,
    )
    logger.debug(
        "loaded %s (%s, %.1fM params) in %.1fs",
        entry.model_uid,
        weights_id,
        info.n_params / 1e6,
        info.load_seconds,
    )
    return LoadedModel(module=module, preprocess=preprocess, entry=entry, info=info, device=device)


def fetch_weights(entry: ModelEntry) -> str:
    """Download (or confirm cached) the pretrained weights of ``entry``; return where they are."""
    if entry.is_random:
        return "random init: nothing to download"
    source = get_source(entry.source)
    if not can_download(source.download_hosts(entry)) and source.is_cached(entry) is not True:
        raise WeightsUnavailable(
            entry.model_uid, source.cache_location(entry), fetch_command(entry), "no network"
        )
    source.load(entry, pretrained=True)
    return source.cache_location(entry)
