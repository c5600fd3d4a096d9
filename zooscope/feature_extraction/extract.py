"""``extract``: stream every layer of a model over an image set as SRP features and exact RSMs.

Memory is planned, not hoped for. Each layer needs an ``n x k`` buffer for its projected features
and, for its exact RSM, the ``n x p`` full activations (all images, since a Gram matrix pairs every
image with every other). Layers are packed, in execution order, into *passes* whose buffers fit
``memory_budget``; a layer larger than the budget is split into feature chunks whose Gram
contributions are accumulated across passes (:class:`GramAccumulator`). Each pass runs the images
through the network once and stops the forward pass right after the last layer it needs, so the
passes over early (large) layers are cheap. A layer is yielded as soon as it is complete, so the
caller can score it and drop it.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import torch
from tqdm.auto import tqdm

from zooscope._backend import get_backend
from zooscope.feature_extraction.cache import FeatureCache
from zooscope.feature_extraction.gram import GramAccumulator
from zooscope.feature_extraction.images import ImageSet, PreprocessedImages
from zooscope.feature_extraction.layers import (
    HookSet,
    LayerPolicy,
    LayerSelection,
    LayerSpec,
    discover_layers,
    hookable_modules,
)
from zooscope.feature_extraction.layers import (
    layer_policy as resolve_layer_policy,
)
from zooscope.feature_extraction.projection import (
    SparseRandomProjector,
    expected_nbytes,
    generator_id,
    jl_components,
)
from zooscope.zoo.loader import LoadedModel

logger = logging.getLogger(__name__)

_UNITS = {"b": 1, "kb": 1e3, "mb": 1e6, "gb": 1e9, "tb": 1e12, "kib": 2**10, "mib": 2**20, "gib": 2**30, "tib": 2**40}


def parse_bytes(size: int | float | str) -> int:
    """``"4GB"``, ``"512MiB"``, ``2e9`` -> bytes."""
    if isinstance(size, int | float):
        return int(size)
    match = re.fullmatch(r"\s*([\d.]+)\s*([a-zA-Z]*)\s*", size)
    if not match or match.group(2).lower() not in {**_UNITS, "": 1}:
        raise ValueError(f"cannot read a memory size from {size!r}; use e.g. 4GB or 512MiB")
    return int(float(match.group(1)) * _UNITS.get(match.group(2).lower(), 1))


@dataclass
class LayerFeatures:
    """The features of one layer over the whole image set.

    Attributes
    ----------
    name : str
        Layer name (module path, see :class:`LayerSpec`).
    index : int
        1-based execution-order index.
    module_type : str
    n_features : int
        Flattened size of the layer's full activations.
    srp : numpy.ndarray or None, shape [n_images, k]
        Sparse random projection of the activations (the activations themselves when
        ``p <= k`` and ``upsample`` is off), float32.
    rsm : numpy.ndarray or None, shape [n_images, n_images]
        Pearson RSM of the images, float32.
    label : str
        ``"Conv2d-19"``-style readable name.
    from_cache : bool
        True when the layer was read from the :class:`FeatureCache` instead of computed.
    cache_key : str or None
        The layer's key in the cache (None when extracting without a cache).
    """

    name: str
    index: int
    module_type: str
    n_features: int
    srp: np.ndarray | None
    rsm: np.ndarray | None
    label: str = ""
    from_cache: bool = False
    cache_key: str | None = None


@dataclass
class _Work:
    """One pass's share of a layer: SRP and/or the feature columns ``[start, stop)``."""

    layer: LayerSpec
    position: int
    do_srp: bool
    start: int
    stop: int
    nbytes: int
    last: bool  # the layer is complete after this piece


@dataclass
class _LayerState:
    projector: SparseRandomProjector | None = None
    srp: np.ndarray | None = None
    means: np.ndarray | None = None  # per-image feature means, for approximate RSMs
    gram: GramAccumulator | None = None
    full: Any = None  # this pass's [n, stop-start] columns
    work: _Work | None = None
    extra: list[_Work] = field(default_factory=list)


class _StopForward(Exception):
    """Raised by a hook once the current pass has what it needs from this forward pass."""


def plan_passes(
    layers: list[LayerSpec], n_images: int, n_components: int, budget: int, srp: bool, exact: bool, upsample: bool
) -> list[list[_Work]]:
    """Pack layers (and feature chunks of big layers) into passes that fit ``budget`` bytes.

    Per layer, the fixed cost is its projected buffer (``n x k`` float32), its projection matrix
    (3 bytes per non-zero, :func:`expected_nbytes`) and its Gram accumulator (``n x n`` float64);
    the full activations (``n x p`` float32) can be chunked by columns.
    """
    passes: list[list[_Work]] = [[]]
    used = 0
    for position, layer in enumerate(layers):
        p = layer.n_features
        width = p if (p <= n_components and not upsample) else n_components
        fixed = 0
        if srp:
            fixed += 4 * n_images * width
            fixed += 0 if width == p else expected_nbytes(p, n_components)
        if exact:
            fixed += 8 * n_images * n_images
        per_column = 4 * n_images if exact else 0
        columns = p if exact else 0
        if fixed + per_column > budget:
            raise ValueError(
                f"memory budget {budget / 1e6:.1f} MB is too small for layer {layer.name} "
                f"({fixed / 1e6:.1f} MB of fixed buffers); raise memory_budget"
            )
        if fixed + per_column * columns <= budget:
            pieces = [(0, columns)]
        else:
            step = (budget - fixed) // per_column
            pieces = [(s, min(s + step, columns)) for s in range(0, columns, step)]
        for i, (start, stop) in enumerate(pieces):
            cost = fixed + per_column * (stop - start)
            if used + cost > budget and passes[-1]:
                passes.append([])
                used = 0
            passes[-1].append(_Work(layer, position, srp and i == 0, start, stop, cost, i == len(pieces) - 1))
            used += cost
    return [p for p in passes if p]


def forward_reserve(layers: list[LayerSpec], batch_size: int) -> int:
    """Bytes of the budget kept for the forward pass itself, not for buffers.

    While a batch runs through the network, a few activations of the largest layer are alive at
    once: a module's input and output, a residual branch, and the flattened float32 copy handed
    to the hooks (for half-precision or non-contiguous outputs). Four of them at the batch size
    bound this working set for the usual convolutional and transformer stacks, so
    ``memory_budget`` bounds everything the extraction adds on top of the loaded model.
    """
    largest = max((layer.n_features for layer in layers), default=0)
    return 4 * 4 * batch_size * largest


def _cache_key(model: LoadedModel, image_id: str, layer: LayerSpec, params: dict[str, Any]) -> str:
    return FeatureCache.key(
        model=model.entry.model_uid,
        weights=model.info.weights_id,
        preprocess=model.info.preprocess,
        images=image_id,
        layer=layer.name,
        shape=list(layer.shape),
        **params,
    )


def list_layers(
    model: LoadedModel,
    images: Any,
    layers: LayerSelection | Callable[[LayerSpec], bool] | None = None,
    layer_policy: LayerPolicy | str | None = None,
    amp: bool = False,
) -> list[LayerSpec]:
    """The layers :func:`extract` would extract: discovered on the first 3 images as a probe.

    Parameters
    ----------
    model : LoadedModel
    images : image set (see :func:`extract`), or a dataset of preprocessed images
    layers, layer_policy, amp
        As for :func:`extract`.

    Returns
    -------
    list of LayerSpec
    """
    dataset = images if isinstance(images, PreprocessedImages) else PreprocessedImages(ImageSet(images), model.preprocess)
    device = torch.device(model.device)
    probe = torch.stack([dataset[i] for i in range(min(3, len(dataset)))]).to(device)
    with torch.autocast(device.type, enabled=amp):
        return discover_layers(model.module, probe, layers, policy=layer_policy)


def extract(
    model: LoadedModel,
    images: Any,
    *,
    layers: LayerSelection | Callable[[LayerSpec], bool] | None = None,
    eps: float = 0.1,
    n_components: int | None = None,
    seed: int = 0,
    srp: bool = True,
    rsm: bool = True,
    rsm_from: Literal["full", "srp"] = "full",
    memory_budget: int | float | str | None = None,
    batch_size: int = 32,
    num_workers: int = 0,
    amp: bool = False,
    upsample: bool = False,
    srp_mode: Literal["fast", "sklearn"] = "fast",
    layer_policy: LayerPolicy | str | None = None,
    profile: str | None = None,
    cache: FeatureCache | None = None,
    image_set_id: str | None = None,
    progress: bool = True,
) -> Iterator[LayerFeatures]:
    """Yield every layer's SRP features and RSM over ``images``, one layer at a time.

    Parameters
    ----------
    model : LoadedModel
        From :func:`zooscope.zoo.load_model`; its device is used.
    images : array [n, H, W, 3] uint8, h5py.Dataset, folder, or sequence of PIL images
    layers : LayerSelection or callable, optional
        Which layers to extract (default: all distinct layers).
    eps : float
        JL distortion; ``k = johnson_lindenstrauss_min_dim(n, eps)`` unless ``n_components``.
    n_components : int, optional
        ``k`` of the projection.
    seed : int
        Projection seed (each layer's matrix depends on ``(seed, layer name)``).
    srp, rsm : bool
        What to compute.
    rsm_from : {"full", "srp"}
        Exact RSMs from the full activations (default), or one-pass approximate RSMs from the
        projected features.
    memory_budget : bytes or str, optional
        Bound on the memory the extraction adds to the loaded model: the forward pass of a batch
        (:func:`forward_reserve`) plus the buffers held at once (default: half the free memory
        of the model's device).
    batch_size, num_workers : int
        DataLoader settings.
    amp : bool
        Run the forward pass under autocast (off by default: exact float32 features).
    upsample : bool
        Project layers with ``p <= k`` too (see :class:`SparseRandomProjector`).
    srp_mode : {"fast", "sklearn"}
        ``"sklearn"`` reproduces scikit-learn's ``SparseRandomProjection`` exactly.
    layer_policy : LayerPolicy or str, optional
        Which tensors are layers and which are extracted (default ``"all"``; see
        :data:`~zooscope.feature_extraction.layers.LAYER_POLICIES`). Part of the cache key.
    profile : str, optional
        Name of the scoring profile the caller extracts for; part of the cache key when given
        (its settings are already there through the transform, layer policy and projection).
    cache : FeatureCache, optional
        Completed layers are stored there and reused on a rerun.
    image_set_id : str, optional
        Identity of the image set for cache keys (default: a hash of the pixels).
    progress : bool
        Show progress bars.

    Yields
    ------
    LayerFeatures
        Cached layers first, then in the order layers complete (execution order).
    """
    policy = resolve_layer_policy(layer_policy)
    image_set = ImageSet(images)
    n = len(image_set)
    k = n_components or jl_components(n, eps)
    exact = rsm and rsm_from == "full"
    project = srp or (rsm and rsm_from == "srp")
    if rsm_from not in ("full", "srp"):
        raise ValueError(f"rsm_from must be 'full' or 'srp', got {rsm_from!r}")
    # The model is used as it is, in-place activations included: every hook reads its output
    # (projects it, copies its columns) before the forward pass runs the next operation, so an
    # in-place ReLU or a residual `out += identity` cannot change what an earlier layer yields.
    # Making them non-inplace would cost an extra tensor per activation (ResNet-50, 32 images:
    # 20% more page faults and ~0.3 s more per batch on 2 cores) and change the caller's model.
    module = model.module
    device = torch.device(model.device)
    dataset = PreprocessedImages(image_set, model.preprocess)
    specs = list_layers(model, dataset, layers, policy, amp)
    logger.debug("%s: %d layers, %d images, k=%d", model.entry.model_uid, len(specs), n, k)

    params = {"srp": srp, "rsm": rsm, "rsm_from": rsm_from, "k": k, "seed": seed, "upsample": upsample, "srp_mode": srp_mode, "amp": amp, "generator": generator_id(srp_mode), "layer_policy": policy.to_dict(), **({"profile": profile} if profile else {})}
    keys: dict[str, str] = {}
    if cache is not None:
        image_id = image_set_id or image_set.content_hash()
        keys = {s.name: _cache_key(model, image_id, s, params) for s in specs}
        for spec in specs:
            stored = cache.get(keys[spec.name])  # None when absent or unreadable (then recomputed)
            if stored is not None:
                yield LayerFeatures(spec.name, spec.index, spec.module_type, spec.n_features, stored.get("srp"), stored.get("rsm"), spec.label, True, keys[spec.name])
        specs = [s for s in specs if keys[s.name] not in cache]
    if not specs:
        return

    backend = get_backend("torch_cuda" if device.type == "cuda" else "numpy")
    budget = parse_bytes(memory_budget) if memory_budget is not None else backend.free_memory_bytes() // 2
    first_batch = min(batch_size, n)
    reserve = forward_reserve(specs, first_batch)
    if reserve >= budget:
        raise ValueError(
            f"memory budget {budget / 1e6:.1f} MB is too small: a forward pass of {first_batch} images "
            f"needs about {reserve / 1e6:.1f} MB; lower batch_size or raise memory_budget"
        )
    passes = plan_passes(specs, n, k, budget - reserve, project, exact, upsample)
    logger.debug(
        "%s: %d pass(es) within a %.2f GB budget (%.2f GB of it kept for the forward pass)",
        model.entry.model_uid, len(passes), budget / 1e9, reserve / 1e9,
    )
    loader = torch.utils.data.DataLoader(dataset, batch_size=batch_size, num_workers=num_workers, shuffle=False)
    states: dict[str, _LayerState] = {}
    bar = tqdm(total=len(passes) * len(loader), desc=f"{model.entry.model_uid}", unit="batch", disable=not progress, leave=False)
    try:
        for number, work in enumerate(passes, 1):
            yield from _run_pass(module, loader, work, states, n, k, seed, upsample, srp_mode, exact, device, amp, bar, number, len(passes), cache, keys, rsm, srp)
    finally:
        bar.close()


def _run_pass(
    module: torch.nn.Module, loader: Any, work: list[_Work], states: dict[str, _LayerState], n: int, k: int, seed: int,
    upsample: bool, srp_mode: str, exact: bool, device: torch.device, amp: bool, bar: Any, number: int, total: int,
    cache: FeatureCache | None, keys: dict[str, str], want_rsm: bool, want_srp: bool,
) -> Iterator[LayerFeatures]:
    """Run all images through the network once, filling this pass's buffers; yield finished layers."""
    by_key: dict[tuple[Any, ...], list[_Work]] = {}
    for item in work:
        by_key.setdefault(item.layer.key, []).append(item)
        state = states.setdefault(item.layer.name, _LayerState())
        if item.do_srp:
            state.projector = SparseRandomProjector(item.layer.n_features, k, seed, item.layer.name, upsample=upsample, mode=srp_mode)
            state.srp = np.empty((n, state.projector.n_output), dtype=np.float32)
            if want_rsm and not exact:
                state.means = np.empty(n, dtype=np.float64)
        if exact:
            if state.gram is None:
                state.gram = GramAccumulator(n, item.layer.n_features)
            shape = (n, item.stop - item.start)
            state.full = torch.empty(shape, dtype=torch.float32, device=device) if device.type != "cpu" else np.empty(shape, np.float32)
    last_key = max(work, key=lambda w: w.position).layer.key
    rows = slice(0, 0)

    def on_output(path: str, call: int, part: tuple[Any, ...], tensor: torch.Tensor) -> None:
        items = by_key.get((path, call, part))
        if not items:
            return
        layer = items[0].layer
        flat = tensor.detach().movedim(layer.batch_axis, 0).reshape(tensor.shape[layer.batch_axis], -1).float()
        host = flat.numpy() if device.type == "cpu" else None  # CPU: scipy SRP and numpy buffers
        for item in items:
            state = states[layer.name]
            if item.do_srp:
                projected = state.projector.transform(flat if device.type != "cpu" else host)
                state.srp[rows] = projected.cpu().numpy() if isinstance(projected, torch.Tensor) else projected
                if state.means is not None:
                    state.means[rows] = (flat.sum(1, dtype=torch.float64) / flat.shape[1]).cpu().numpy()
            if exact:
                state.full[rows] = (flat if device.type != "cpu" else host)[:, item.start : item.stop]
        if (path, call, part) == last_key:
            raise _StopForward

    paths = {w.layer.module_path for w in work}
    modules = [(p, m) for p, m in hookable_modules(module, include_root=True) if p in paths]
    bar.set_postfix_str(f"pass {number}/{total}, {len(work)} layer piece(s)")
    with HookSet(modules, on_output) as hooks, torch.no_grad(), torch.autocast(device.type, enabled=amp):
        start = 0
        for batch in loader:
            rows = slice(start, start + batch.shape[0])
            hooks.new_forward()
            try:
                module(batch.to(device, non_blocking=True))
            except _StopForward:
                pass
            start = rows.stop
            bar.update(1)
    for item in sorted(work, key=lambda w: w.position):
        state = states[item.layer.name]
        if exact:
            state.gram.add(state.full, overwrite=True)  # centring in a copy would double the peak
            state.full = None
        if not item.last:
            continue
        layer = item.layer
        rsm = None
        if want_rsm:
            rsm = state.gram.rsm() if exact else _approximate_rsm(state.srp, state.means, state.projector)
        srp_out = state.srp if want_srp else None
        features = LayerFeatures(layer.name, layer.index, layer.module_type, layer.n_features, srp_out, rsm, layer.label, cache_key=keys.get(layer.name))
        if cache is not None:
            cache.save(keys[layer.name], {"srp": features.srp, "rsm": features.rsm}, {"name": layer.name, "index": layer.index})
        del states[layer.name]
        yield features


def _approximate_rsm(
    projected: np.ndarray, means: np.ndarray, projector: SparseRandomProjector
) -> np.ndarray:
    """One-pass approximation of the Pearson RSM from projected features.

    Pearson correlation is the cosine of the row-centred activations ``c_i = x_i - m_i 1``. The
    projection is linear, so ``R^T c_i = R^T x_i - m_i R^T 1`` is available from the projected
    features, the per-image means ``m`` and the projected ones vector; JL preserves the inner
    products of the ``c_i``. (The Pearson RSM of ``R^T x_i`` itself would not remove the
    per-image offsets ``m_i``, which ``R^T 1`` spreads over every component: a large bias for
    post-ReLU layers.)

    Parameters
    ----------
    projected : numpy.ndarray, shape [n, k]
    means : numpy.ndarray, shape [n]
    projector : SparseRandomProjector

    Returns
    -------
    numpy.ndarray, shape [n, n], float32
    """
    centred = projected.astype(np.float64) - means[:, None] * projector.project_ones()[None, :]
    gram = centred @ centred.T
    norms = np.sqrt(np.diag(gram))
    with np.errstate(invalid="ignore", divide="ignore"):
        rsm = gram / np.outer(norms, norms)
    np.fill_diagonal(rsm, np.where(norms > 0, 1.0, np.nan))
    return rsm.astype(np.float32)
