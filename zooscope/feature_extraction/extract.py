"""``extract``: stream every layer of a model over an image set as SRP features and exact RSMs.

What is computed from each layer is a list of *consumers*
(:mod:`zooscope.feature_extraction.consumers`): by default an :class:`SRPConsumer` (projected
features, ``n x k``) and a :class:`GramConsumer` (exact RSMs from the ``n x p`` full activations of
all images, since a Gram matrix pairs every image with every other). The pass loop here only
plans, hooks and routes batches; it knows no consumer in particular.

Memory is planned, not hoped for. Layers are packed, in execution order, into *passes* whose
consumer buffers fit ``memory_budget``; a layer larger than the budget is split into feature
chunks, one per pass, for the chunked consumers. Each pass runs the images through the network
once and stops the forward pass right after the last layer it needs, so the passes over early
(large) layers are cheap. A layer is yielded as soon as it is complete, so the caller can score
it and drop it.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import torch
from tqdm.auto import tqdm

from zooscope._timing import stage
from zooscope.feature_extraction.cache import FeatureCache
from zooscope.feature_extraction.consumers import (
    ColumnPassSink,
    GramConsumer,
    LayerConsumer,
    LayerSink,
    Placement,
    SRPConsumer,
)
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
from zooscope.feature_extraction.projection import generator_id, jl_components
from zooscope.runtime import parse_bytes
from zooscope.zoo.loader import LoadedModel

logger = logging.getLogger(__name__)


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
    outputs : dict of str to numpy.ndarray
        Outputs of extra consumers (``extract(..., consumers=...)``), by name.
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
    outputs: dict[str, np.ndarray] = field(default_factory=dict)

    @classmethod
    def from_outputs(
        cls, layer: LayerSpec, outputs: dict[str, np.ndarray], **kwargs: Any
    ) -> LayerFeatures:
        """Collect consumer outputs: ``"srp"`` and ``"rsm"`` as attributes, the rest in ``outputs``."""
        extra = {name: array for name, array in outputs.items() if name not in ("srp", "rsm")}
        return cls(
            layer.name,
            layer.index,
            layer.module_type,
            layer.n_features,
            outputs.get("srp"),
            outputs.get("rsm"),
            layer.label,
            outputs=extra,
            **kwargs,
        )


@dataclass
class Piece:
    """One pass's share of a layer: the feature columns ``[start, stop)`` for chunked consumers."""

    layer: LayerSpec
    position: int
    first: bool  # the layer's first pass: its sinks open, whole consumers see its batches
    start: int
    stop: int
    nbytes: int
    last: bool  # the layer is complete after this piece


class _StopForward(Exception):
    """Raised by a hook once the current pass has what it needs from this forward pass."""


def default_consumers(
    n_components: int,
    *,
    seed: int = 0,
    srp: bool = True,
    rsm: bool = True,
    rsm_from: Literal["full", "srp"] = "full",
    upsample: bool = False,
    srp_mode: Literal["fast", "sklearn"] = "fast",
) -> list[LayerConsumer]:
    """The consumers behind ``extract``'s ``srp``/``rsm`` options.

    SRP features come from an :class:`SRPConsumer`; exact RSMs (``rsm_from="full"``) from a
    :class:`GramConsumer`, approximate ones (``"srp"``) from the projection's by-product.
    """
    if rsm_from not in ("full", "srp"):
        raise ValueError(f"rsm_from must be 'full' or 'srp', got {rsm_from!r}")
    consumers: list[LayerConsumer] = []
    approximate = rsm and rsm_from == "srp"
    if srp or approximate:
        consumers.append(
            SRPConsumer(
                n_components, seed, upsample, srp_mode, keep_srp=srp, approximate_rsm=approximate
            )
        )
    if rsm and rsm_from == "full":
        consumers.append(GramConsumer(("rsm",)))
    return consumers


def plan_passes(
    layers: list[LayerSpec], n_images: int, budget: int, consumers: Sequence[LayerConsumer]
) -> list[list[Piece]]:
    """Pack layers (and feature chunks of big layers) into passes that fit ``budget`` bytes.

    Per layer, the fixed cost is what its consumers hold until it completes
    (:meth:`LayerConsumer.fixed_nbytes`: an SRP buffer and matrix, a Gram accumulator); the full
    activations the chunked consumers hold (:meth:`LayerConsumer.column_nbytes` per feature, plus
    one shared float32 buffer for the buffered consumers) can be split by columns, one piece per
    pass.
    """
    per_column = sum(c.column_nbytes(n_images) for c in consumers if c.chunked)
    buffered = [c for c in consumers if c.buffered]
    if buffered:  # one shared float32 buffer; a second consumer that overwrites needs a copy
        per_column += 4 * n_images * max(1, sum(c.overwrites for c in buffered))
    passes: list[list[Piece]] = [[]]
    used = 0
    for position, layer in enumerate(layers):
        fixed = sum(c.fixed_nbytes(layer, n_images) for c in consumers)
        columns = layer.n_features if per_column else 0
        if fixed + per_column > budget:
            raise ValueError(
                f"memory budget {budget / 1e6:.1f} MB is too small for layer {layer.name} "
                f"({fixed / 1e6:.1f} MB of fixed buffers); raise memory_budget"
            )
        if fixed + per_column * columns <= budget:
            spans = [(0, columns)]
        else:
            step = (budget - fixed) // per_column
            spans = [(s, min(s + step, columns)) for s in range(0, columns, step)]
        for i, (start, stop) in enumerate(spans):
            cost = fixed + per_column * (stop - start)
            # A chunked sink holds one piece per pass, so later pieces always start a new pass.
            if (used + cost > budget or i > 0) and passes[-1]:
                passes.append([])
                used = 0
            passes[-1].append(
                Piece(layer, position, i == 0, start, stop, cost, i == len(spans) - 1)
            )
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
    dataset = (
        images
        if isinstance(images, PreprocessedImages)
        else PreprocessedImages(ImageSet(images), model.preprocess)
    )
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
    consumers: Sequence[LayerConsumer] = (),
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
    consumers : sequence of LayerConsumer
        Extra per-layer consumers (:mod:`zooscope.feature_extraction.consumers`), run in the
        same passes; their outputs land in :attr:`LayerFeatures.outputs`.
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
    chosen = default_consumers(
        k, seed=seed, srp=srp, rsm=rsm, rsm_from=rsm_from, upsample=upsample, srp_mode=srp_mode
    )
    chosen += list(consumers)
    # The model is used as it is, in-place activations included: every hook reads its output
    # (projects it, copies its columns) before the forward pass runs the next operation, so an
    # in-place ReLU or a residual `out += identity` cannot change what an earlier layer yields.
    # Making them non-inplace would cost an extra tensor per activation (ResNet-50, 32 images:
    # 20% more page faults and ~0.3 s more per batch on 2 cores) and change the caller's model.
    module = model.module
    place = Placement.of(model.device)
    dataset = PreprocessedImages(image_set, model.preprocess)
    specs = list_layers(model, dataset, layers, policy, amp)
    logger.debug("%s: %d layers, %d images, k=%d", model.entry.model_uid, len(specs), n, k)

    params = {
        "srp": srp,
        "rsm": rsm,
        "rsm_from": rsm_from,
        "k": k,
        "seed": seed,
        "upsample": upsample,
        "srp_mode": srp_mode,
        "amp": amp,
        "generator": generator_id(srp_mode),
        "layer_policy": policy.to_dict(),
        **({"profile": profile} if profile else {}),
    }
    if consumers:  # the default consumers keep the keys they always had
        params["consumers"] = [[type(c).__name__, c.params()] for c in consumers]
    keys: dict[str, str] = {}
    if cache is not None:
        image_id = image_set_id or image_set.content_hash()
        keys = {s.name: _cache_key(model, image_id, s, params) for s in specs}
        for spec in specs:
            stored = cache.get(keys[spec.name])  # None when absent or unreadable (then recomputed)
            if stored is not None:
                arrays = {
                    name: value for name, value in stored.items() if isinstance(value, np.ndarray)
                }
                yield LayerFeatures.from_outputs(
                    spec, arrays, from_cache=True, cache_key=keys[spec.name]
                )
        specs = [s for s in specs if keys[s.name] not in cache]
    if not specs:
        return

    budget = (
        parse_bytes(memory_budget)
        if memory_budget is not None
        else place.backend.free_memory_bytes() // 2
    )
    first_batch = min(batch_size, n)
    reserve = forward_reserve(specs, first_batch)
    if reserve >= budget:
        raise ValueError(
            f"memory budget {budget / 1e6:.1f} MB is too small: a forward pass of {first_batch} images "
            f"needs about {reserve / 1e6:.1f} MB; lower batch_size or raise memory_budget"
        )
    passes = plan_passes(specs, n, budget - reserve, chosen)
    logger.debug(
        "%s: %d pass(es) within a %.2f GB budget (%.2f GB of it kept for the forward pass)",
        model.entry.model_uid,
        len(passes),
        budget / 1e9,
        reserve / 1e9,
    )
    loader = torch.utils.data.DataLoader(
        dataset, batch_size=batch_size, num_workers=num_workers, shuffle=False
    )
    bar = tqdm(
        total=len(passes) * len(loader),
        desc=f"{model.entry.model_uid}",
        unit="batch",
        disable=not progress,
        leave=False,
    )
    run = _PassRunner(module, loader, n, chosen, place, amp, bar)
    try:
        for number, pieces in enumerate(passes, 1):
            bar.set_postfix_str(f"pass {number}/{len(passes)}, {len(pieces)} layer piece(s)")
            for layer, outputs in run(pieces):
                features = LayerFeatures.from_outputs(
                    layer, outputs, cache_key=keys.get(layer.name)
                )
                if cache is not None:
                    cache.save(
                        keys[layer.name], outputs, {"name": layer.name, "index": layer.index}
                    )
                yield features
    finally:
        bar.close()


@dataclass
class _PassRunner:
    """Runs passes over the images for one extraction: hooks the pieces' layers, feeds the sinks.

    Sinks live from a layer's first piece to its last, across passes. The buffered consumers of a
    piece share one buffer of its columns, filled batch by batch and folded into each of their
    sinks when the pass ends (those that overwrite it last).
    """

    module: torch.nn.Module
    loader: Any
    n_images: int
    consumers: list[LayerConsumer]
    place: Placement
    amp: bool
    bar: Any
    sinks: dict[str, list[LayerSink]] = field(default_factory=dict)

    def __call__(self, pieces: list[Piece]) -> Iterator[tuple[LayerSpec, dict[str, np.ndarray]]]:
        """Run every image through the network once; yield ``(layer, outputs)`` of completed layers."""
        by_key: dict[tuple[Any, ...], list[Piece]] = {}
        buffers: dict[int, Any] = {}  # id(piece) -> its columns [n_images, stop - start]
        for piece in pieces:
            by_key.setdefault(piece.layer.key, []).append(piece)
            if piece.first:
                self.sinks[piece.layer.name] = [
                    c.open(piece.layer, self.n_images, self.place) for c in self.consumers
                ]
            routes = self._routes(piece)
            for consumer, sink in routes:
                if consumer.chunked and not consumer.buffered:
                    sink.begin_pass(piece.start, piece.stop)
            if any(consumer.buffered for consumer, _ in routes):
                shape = (self.n_images, piece.stop - piece.start)
                buffers[id(piece)] = self.place.empty(shape)
        last_key = max(pieces, key=lambda piece: piece.position).layer.key
        rows = slice(0, 0)

        def on_output(path: str, call: int, part: tuple[Any, ...], tensor: torch.Tensor) -> None:
            mine = by_key.get((path, call, part))
            if not mine:
                return
            axis = mine[0].layer.batch_axis
            flat = tensor.detach().movedim(axis, 0).reshape(tensor.shape[axis], -1).float()
            batch = self.place.batch(flat)
            for piece in mine:
                if id(piece) in buffers:
                    with stage("gram"):
                        buffers[id(piece)][rows] = batch[:, piece.start : piece.stop]
                for consumer, sink in self._routes(piece):
                    if not consumer.buffered:
                        sink.update(
                            rows, batch[:, piece.start : piece.stop] if consumer.chunked else batch
                        )
            if (path, call, part) == last_key:
                raise _StopForward

        paths = {piece.layer.module_path for piece in pieces}
        modules = [
            (p, m) for p, m in hookable_modules(self.module, include_root=True) if p in paths
        ]
        with (
            HookSet(modules, on_output) as hooks,
            torch.no_grad(),
            torch.autocast(self.place.device.type, enabled=self.amp),
        ):
            start = 0
            for images in self.loader:
                rows = slice(start, start + images.shape[0])
                hooks.new_forward()
                try:
                    self.module(images.to(self.place.device, non_blocking=True))
                except _StopForward:
                    pass
                start = rows.stop
                self.bar.update(1)
        for piece in sorted(pieces, key=lambda piece: piece.position):
            routes = self._routes(piece)
            for consumer, sink in routes:
                if not consumer.buffered:
                    sink.end_pass()
            buffered = [(c, s) for c, s in routes if c.buffered]
            folding = [s for c, s in sorted(buffered, key=lambda pair: pair[0].overwrites)]
            self._fold(buffers.pop(id(piece), None), folding)
            if piece.last:
                outputs: dict[str, np.ndarray] = {}
                for sink in self.sinks.pop(piece.layer.name):
                    outputs.update(sink.outputs())
                yield piece.layer, outputs

    @staticmethod
    def _fold(columns: Any, sinks: list[ColumnPassSink]) -> None:
        """Fold a piece's shared columns into its buffered sinks; only the last may overwrite."""
        for i, sink in enumerate(sinks):
            with stage(sink.stage_name):
                sink.fold(columns, writable=i == len(sinks) - 1)

    def _routes(self, piece: Piece) -> list[tuple[LayerConsumer, LayerSink]]:
        """The (consumer, sink) pairs that take part in this piece: chunked ones always, whole ones first."""
        sinks = self.sinks[piece.layer.name]
        return [
            (c, s) for c, s in zip(self.consumers, sinks, strict=True) if c.chunked or piece.first
        ]
