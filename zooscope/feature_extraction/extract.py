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

import contextlib
import logging
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field, replace
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
from zooscope.feature_extraction.replay import Cut, ReplayStore, plan_replay
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

    A pass costs a forward pass up to its last layer, so the plan minimises the depth the passes
    reach, not only their number: layers are packed from the *last* one backwards, every pass
    filled to the budget (a layer that does not fit the space left is split there, its earlier
    columns going to the pass before). The pass that must run the whole network then holds as
    many of the late layers as fit, each earlier pass ends as early as the budget allows, and
    only the first (cheapest) pass is partly empty. On EfficientNet-Lite0 at 1000 images and
    6 GB this is 16 passes worth ~8 full forward passes, against 19 worth ~11 when packing
    from the first layer and starting a new pass for every piece.

    Returns
    -------
    list of list of Piece
        The passes in the order they run (increasing depth); pieces in layer order.
    """
    per_column = sum(c.column_nbytes(n_images) for c in consumers if c.chunked)
    buffered = [c for c in consumers if c.buffered]
    if buffered:  # one shared float32 buffer; a second consumer that overwrites needs a copy
        per_column += 4 * n_images * max(1, sum(c.overwrites for c in buffered))
    backwards: list[list[Piece]] = [[]]  # passes from the deepest, each from its last piece
    used = 0
    for position in range(len(layers) - 1, -1, -1):
        layer = layers[position]
        fixed = sum(c.fixed_nbytes(layer, n_images) for c in consumers)
        if fixed + per_column > budget:
            raise ValueError(
                f"memory budget {budget / 1e6:.1f} MB is too small for layer {layer.name} "
                f"({fixed / 1e6:.1f} MB of fixed buffers); raise memory_budget"
            )
        columns = layer.n_features if per_column else 0
        stop = columns
        while True:
            if used + fixed + per_column * min(stop, 1) > budget:  # not even one column fits
                backwards.append([])
                used = 0
            width = stop if not per_column else min(stop, (budget - used - fixed) // per_column)
            start = stop - width
            cost = fixed + per_column * width
            backwards[-1].append(
                Piece(layer, position, start == 0, start, stop, cost, stop == columns)
            )
            used += cost
            if start == 0:
                break
            stop = start  # the earlier columns go to the pass before
            backwards.append([])
            used = 0
    return [p[::-1] for p in reversed(backwards) if p]


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
    probe = _probe(dataset, torch.device(model.device))
    with torch.autocast(probe.device.type, enabled=amp):
        return discover_layers(model.module, probe, layers, policy=layer_policy)


def _probe(dataset: PreprocessedImages, device: torch.device) -> torch.Tensor:
    """The first 3 preprocessed images ``[3, 3, H, W]``: the probe batch of layer discovery."""
    return torch.stack([dataset[i] for i in range(min(3, len(dataset)))]).to(device)


@dataclass(frozen=True)
class ExtractionSettings:
    """What :func:`extract` computes from every layer, and within what memory and batches.

    Parameters
    ----------
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
    amp : bool
        Run the forward pass under autocast (off by default: exact float32 features).
    memory_budget : bytes or str, optional
        Bound on the memory the extraction adds to the loaded model: the forward pass of a batch
        (:func:`forward_reserve`) plus the buffers held at once (default: half the free memory
        of the model's device when the extraction starts).
    batch_size, num_workers : int
        DataLoader settings.
    replay : bool
        Start each pass after the first from a recorded block output where that reproduces
        every later tensor bit for bit (:mod:`~zooscope.feature_extraction.replay`), instead of
        from the images. Never changes a number; off only to measure what it saves.
    """

    layers: LayerSelection | Callable[[LayerSpec], bool] | None = None
    eps: float = 0.1
    n_components: int | None = None
    seed: int = 0
    srp: bool = True
    rsm: bool = True
    rsm_from: Literal["full", "srp"] = "full"
    upsample: bool = False
    srp_mode: Literal["fast", "sklearn"] = "fast"
    layer_policy: LayerPolicy | str | None = None
    profile: str | None = None
    amp: bool = False
    memory_budget: int | float | str | None = None
    batch_size: int = 32
    num_workers: int = 0
    replay: bool = True

    def components(self, n_images: int) -> int:
        """``k``, the number of SRP components for ``n_images`` images."""
        return self.n_components or jl_components(n_images, self.eps)

    def consumers(self, n_images: int, extra: Sequence[LayerConsumer] = ()) -> list[LayerConsumer]:
        """The default consumers for these settings, then ``extra``."""
        chosen = default_consumers(
            self.components(n_images),
            seed=self.seed,
            srp=self.srp,
            rsm=self.rsm,
            rsm_from=self.rsm_from,
            upsample=self.upsample,
            srp_mode=self.srp_mode,
        )
        return chosen + list(extra)

    def budget(self, place: Placement) -> tuple[int, str]:
        """The memory budget in bytes, and where it comes from (for the log and the terminal)."""
        if self.memory_budget is not None:
            return parse_bytes(self.memory_budget), "set"
        return place.backend.free_memory_bytes() // 2, "half the free memory now"

    def cache_params(self, n_images: int, extra: Sequence[LayerConsumer] = ()) -> dict[str, Any]:
        """What the cache key of every layer depends on, besides the model and the images."""
        params = {
            "srp": self.srp,
            "rsm": self.rsm,
            "rsm_from": self.rsm_from,
            "k": self.components(n_images),
            "seed": self.seed,
            "upsample": self.upsample,
            "srp_mode": self.srp_mode,
            "amp": self.amp,
            "generator": generator_id(self.srp_mode),
            "layer_policy": resolve_layer_policy(self.layer_policy).to_dict(),
            **({"profile": self.profile} if self.profile else {}),
        }
        if extra:  # the default consumers keep the keys they always had
            params["consumers"] = [[type(c).__name__, c.params()] for c in extra]
        return params


@dataclass
class ExtractionPlan:
    """How an extraction will run: its layers, passes and the cut each pass replays.

    Attributes
    ----------
    layers : list of LayerSpec
        The layers to compute, in execution order.
    passes : list of list of Piece
        From :func:`plan_passes`.
    cuts : list of Cut or None
        Per pass, the cut it starts from (:func:`~zooscope.feature_extraction.replay.plan_replay`).
    consumers : list of LayerConsumer
    budget, reserve : int
        The memory budget in bytes and the share of it kept for the forward pass of a batch.
    budget_source : str
        ``"set"``, or how the default was found.
    """

    layers: list[LayerSpec]
    passes: list[list[Piece]]
    cuts: list[Cut | None]
    consumers: list[LayerConsumer]
    budget: int
    reserve: int
    budget_source: str

    @property
    def peak_nbytes(self) -> int:
        """The most the planned buffers hold at once, plus the forward pass's reserve."""
        return self.reserve + max((sum(p.nbytes for p in ps) for ps in self.passes), default=0)


def plan_extraction(
    model: LoadedModel,
    probe: torch.Tensor,
    layers: list[LayerSpec],
    n_images: int,
    settings: ExtractionSettings,
    consumers: Sequence[LayerConsumer],
) -> ExtractionPlan:
    """Plan the passes of an extraction of ``layers`` within the budget, and their replays.

    Parameters
    ----------
    model : LoadedModel
    probe : torch.Tensor, shape [3, 3, H, W]
        The probe batch the layers were discovered on (replays are checked on it).
    layers : list of LayerSpec
    n_images : int
    settings : ExtractionSettings
    consumers : sequence of LayerConsumer
        All of them (:meth:`ExtractionSettings.consumers`).
    """
    place = Placement.of(model.device)
    budget, source = settings.budget(place)
    first_batch = min(settings.batch_size, n_images)
    reserve = forward_reserve(layers, first_batch)
    if reserve >= budget:
        raise ValueError(
            f"memory budget {budget / 1e6:.1f} MB is too small: a forward pass of {first_batch} images "
            f"needs about {reserve / 1e6:.1f} MB; lower batch_size or raise memory_budget"
        )
    passes = plan_passes(layers, n_images, budget - reserve, consumers)
    cuts: list[Cut | None] = [None] * len(passes)
    if settings.replay and len(passes) > 1:
        keys = [[piece.layer.key for piece in pieces] for pieces in passes]
        cuts = plan_replay(model.module, probe, keys, settings.amp)
    logger.debug(
        "%s: %d pass(es), %d of them replayed, within a %.2f GB budget (%s; %.2f GB of it kept "
        "for the forward pass)",
        model.entry.model_uid,
        len(passes),
        sum(cut is not None for cut in cuts),
        budget / 1e9,
        source,
        reserve / 1e9,
    )
    return ExtractionPlan(list(layers), passes, cuts, list(consumers), budget, reserve, source)


def _discover(
    model: LoadedModel, dataset: PreprocessedImages, place: Placement, settings: ExtractionSettings
) -> tuple[torch.Tensor, list[LayerSpec]]:
    """The probe batch and the layers ``settings`` choose, found by one forward pass of the probe."""
    probe = _probe(dataset, place.device)
    with torch.autocast(place.device.type, enabled=settings.amp):
        specs = discover_layers(model.module, probe, settings.layers, policy=settings.layer_policy)
    n = len(dataset)
    logger.debug(
        "%s: %d layers, %d images, k=%d",
        model.entry.model_uid,
        len(specs),
        n,
        settings.components(n),
    )
    return probe, specs


def extract(
    model: LoadedModel,
    images: Any,
    settings: ExtractionSettings | None = None,
    *,
    consumers: Sequence[LayerConsumer] = (),
    cache: FeatureCache | None = None,
    image_set_id: str | None = None,
    progress: bool = True,
    on_pass: Callable[[int, ExtractionPlan, int], None] | None = None,
    **changes: Any,
) -> Iterator[LayerFeatures]:
    """Yield every layer's SRP features and RSM over ``images``, one layer at a time.

    Parameters
    ----------
    model : LoadedModel
        From :func:`zooscope.zoo.load_model`; its device is used.
    images : array [n, H, W, 3] uint8, h5py.Dataset, folder, or sequence of PIL images
    settings : ExtractionSettings, optional
        What to compute and within what budget (default: ``ExtractionSettings()``).
    consumers : sequence of LayerConsumer
        Extra per-layer consumers (:mod:`zooscope.feature_extraction.consumers`), run in the
        same passes; their outputs land in :attr:`LayerFeatures.outputs`.
    cache : FeatureCache, optional
        Completed layers are stored there and reused on a rerun.
    image_set_id : str, optional
        Identity of the image set for cache keys (default: a hash of the pixels).
    progress : bool
        Show progress bars.
    on_pass : callable, optional
        Called as ``on_pass(number, plan, cached)`` when pass ``number`` (1-based) of ``plan``
        starts; ``cached`` counts the layers already yielded from the cache.
    **changes
        Fields of :class:`ExtractionSettings` to change (``extract(model, images,
        memory_budget="4GB")``).

    Yields
    ------
    LayerFeatures
        Cached layers first, then in the order layers complete (execution order).
    """
    settings = replace(settings or ExtractionSettings(), **changes)
    image_set = ImageSet(images)
    n = len(image_set)
    chosen = settings.consumers(n, consumers)
    # The model is used as it is, in-place activations included: every hook reads its output
    # (projects it, copies its columns) before the forward pass runs the next operation, so an
    # in-place ReLU or a residual `out += identity` cannot change what an earlier layer yields.
    # Making them non-inplace would cost an extra tensor per activation (ResNet-50, 32 images:
    # 20% more page faults and ~0.3 s more per batch on 2 cores) and change the caller's model.
    module = model.module
    place = Placement.of(model.device)
    dataset = PreprocessedImages(image_set, model.preprocess)
    probe, specs = _discover(model, dataset, place, settings)
    keys: dict[str, str] = {}
    cached = 0
    if cache is not None:
        image_id = image_set_id or image_set.content_hash()
        params = settings.cache_params(n, consumers)
        keys = {s.name: _cache_key(model, image_id, s, params) for s in specs}
        for spec in specs:
            stored = cache.get(keys[spec.name])  # None when absent or unreadable (then recomputed)
            if stored is not None:
                arrays = {
                    name: value for name, value in stored.items() if isinstance(value, np.ndarray)
                }
                cached += 1
                yield LayerFeatures.from_outputs(
                    spec, arrays, from_cache=True, cache_key=keys[spec.name]
                )
        specs = [s for s in specs if keys[s.name] not in cache]
    if not specs:
        return

    with stage("forward"):  # replays are checked on the probe: forward passes of 3 images
        plan = plan_extraction(model, probe, specs, n, settings, chosen)
    passes, cuts = plan.passes, plan.cuts
    loader = torch.utils.data.DataLoader(
        dataset, batch_size=settings.batch_size, num_workers=settings.num_workers, shuffle=False
    )
    bar = tqdm(total=len(passes) * len(loader), desc=model.entry.model_uid, unit="batch",
               disable=not progress, leave=False)  # fmt: skip
    store = ReplayStore(module, n) if any(cuts) else None
    run = _PassRunner(module, loader, n, chosen, place, settings.amp, bar, store)
    try:
        for number, pieces in enumerate(passes, 1):
            bar.set_postfix_str(f"pass {number}/{len(passes)}, {len(pieces)} layer piece(s)")
            if on_pass is not None:
                on_pass(number, plan, cached)
            following = cuts[number] if number < len(passes) else None
            record = following if following is not None and following != cuts[number - 1] else None
            for layer, outputs in run(pieces, cuts[number - 1], record):
                features = LayerFeatures.from_outputs(
                    layer, outputs, cache_key=keys.get(layer.name)
                )
                if cache is not None:
                    cache.save(
                        keys[layer.name], outputs, {"name": layer.name, "index": layer.index}
                    )
                yield features
            if store is not None:
                store.release({following.path} if following is not None else set())
    finally:
        bar.close()
        if store is not None:
            store.close()


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
    store: ReplayStore | None = None
    sinks: dict[str, list[LayerSink]] = field(default_factory=dict)

    def __call__(
        self, pieces: list[Piece], replay: Cut | None = None, record: Cut | None = None
    ) -> Iterator[tuple[LayerSpec, dict[str, np.ndarray]]]:
        """Run every image through the network once; yield ``(layer, outputs)`` of completed layers.

        With ``replay`` the pass starts from that cut's recorded output (no image is read);
        with ``record`` it writes that cut's output for a later pass to replay.
        """
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
        with contextlib.ExitStack() as stack:
            store = self.store
            if record is not None and store is not None:  # its hooks go first: see recording()
                stack.enter_context(store.recording(record))
            if replay is not None and store is not None:
                stack.enter_context(store.replaying(replay, self.place.device))
            hooks = stack.enter_context(HookSet(modules, on_output))
            stack.enter_context(torch.no_grad())
            stack.enter_context(torch.autocast(self.place.device.type, enabled=self.amp))
            for index, (rows, images) in enumerate(self._batches(replay is not None)):
                if store is not None:
                    store.batch = (index, rows)
                    store.record_input(images)
                hooks.new_forward()
                try:
                    self.module(images)
                except _StopForward:
                    pass
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

    def _batches(self, replaying: bool) -> Iterator[tuple[slice, torch.Tensor]]:
        """``(rows, input batch)`` on the device: the images, or zeros when replaying a cut."""
        start = 0
        if replaying and self.store is not None:
            for index, (shape, _dtype) in enumerate(self.store.inputs):
                yield (
                    slice(start, start + shape[0]),
                    self.store.zero_input(index, self.place.device),
                )
                start += shape[0]
            return
        for images in self.loader:
            yield (
                slice(start, start + images.shape[0]),
                images.to(self.place.device, non_blocking=True),
            )
            start += images.shape[0]

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
