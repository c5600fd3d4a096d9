"""Discover every layer of a network by running a probe batch through forward hooks.

A *layer* is one tensor produced during the forward pass: the output of a non-container module
(one per call when a module is called several times, e.g. torchvision's shared ``relu`` in a
``BasicBlock``), with tuple/list/dict outputs split into parts (``name.0``, ``name.key``). Layers
appear in execution order. A layer whose probe output is bit-identical to an earlier layer's
(``Identity``, eval-mode ``Dropout``, a block whose last op is its output) is dropped, and its
name becomes an *alias* of the layer it repeats: ResNet's block output ``layer3.1`` is the
second call of its ``relu`` (``layer3.1.relu#2``), and the stage ``layer3`` (a ``Sequential``,
hooked only to find such names) is that same tensor, so all three names select one layer.

A :class:`LayerPolicy` says which tensors count: by default every non-container module but the
root, duplicates judged by shape and bytes, all layers kept; :data:`LAYER_POLICIES` names the
published alternative (``"conwell2024"``: the root too, duplicates judged by flattened values
whatever the shape, and only the second half of the list).
"""

from __future__ import annotations

import difflib
import hashlib
import re
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import torch
from torch import nn

CONTAINERS = (nn.Sequential, nn.ModuleList, nn.ModuleDict)
#: Name of the root module's output (the network's own output) when a policy scores it.
ROOT_LAYER = "output"


@dataclass(frozen=True)
class LayerPolicy:
    """Which tensors of the forward pass are layers, and which of them are scored.

    Parameters
    ----------
    include_root : bool
        Hook the root module as well (its output is the network's output; named
        :data:`ROOT_LAYER`). For a CLIP image encoder that output is the projected embedding,
        which no submodule produces.
    dedup : {"exact", "values"}
        When a probe output repeats an earlier layer's: ``"exact"`` compares shape and bytes;
        ``"values"`` compares the flattened values whatever the shape (so ``Flatten`` after a
        ``[c, 1, 1]`` pooling is a duplicate), as Conwell et al. (2024) did.
    keep : {"all", "second_half"}
        Score every distinct layer, or only ``layers[int(len(layers) / 2):]`` (Conwell et al.).
    """

    include_root: bool = False
    dedup: Literal["exact", "values"] = "exact"
    keep: Literal["all", "second_half"] = "all"

    def __post_init__(self) -> None:
        if self.dedup not in ("exact", "values"):
            raise ValueError(f"dedup must be 'exact' or 'values', got {self.dedup!r}")
        if self.keep not in ("all", "second_half"):
            raise ValueError(f"keep must be 'all' or 'second_half', got {self.keep!r}")

    def to_dict(self) -> dict[str, Any]:
        return {"include_root": self.include_root, "dedup": self.dedup, "keep": self.keep}


#: Named layer policies (a :class:`~zooscope.profiles.Profile` refers to one by name).
LAYER_POLICIES: dict[str, LayerPolicy] = {
    "all": LayerPolicy(),
    "conwell2024": LayerPolicy(include_root=True, dedup="values", keep="second_half"),
}


def layer_policy(policy: LayerPolicy | str | None) -> LayerPolicy:
    """A :class:`LayerPolicy` from itself, its name in :data:`LAYER_POLICIES`, or None (default)."""
    if policy is None:
        return LAYER_POLICIES["all"]
    if isinstance(policy, LayerPolicy):
        return policy
    try:
        return LAYER_POLICIES[policy]
    except KeyError:
        raise ValueError(
            f"unknown layer policy {policy!r}; choose from {', '.join(LAYER_POLICIES)}"
        ) from None


@dataclass(frozen=True)
class LayerSpec:
    """One tensor of the forward pass.

    Attributes
    ----------
    name : str
        Module path (``layer3.2.conv1``; :data:`ROOT_LAYER` for the root module), ``#k``
        appended for the k-th call of a module when k >= 2 (the first call has no suffix, the
        second is ``#2``) and ``.part`` for a part of a tuple/dict output.
    index : int
        1-based position among all distinct layers, in execution order (independent of any
        selection).
    module_type : str
        Class name of the module (``Conv2d``, ``ReLU``, ``Block``...).
    module_path : str
        The module's path in ``named_modules()``.
    call : int
        0 for the first call of the module in a forward pass, 1 for the second...
    part : tuple
        Path of keys/positions into a structured output (empty for a plain tensor).
    batch_axis : int
        Axis holding images in the raw output (1 for token-first layouts such as ``[L, N, D]``).
    shape : tuple of int
        Per-image output shape (batch axis removed).
    depth : int
        Nesting depth of the module (``layer3.2.conv1`` -> 3; the root is 0).
    aliases : tuple of str
        Names of the later outputs (module calls, containers such as ``layer3``) whose probe
        values equal this layer's and were dropped as duplicates of it.
    """

    name: str
    index: int
    module_type: str
    module_path: str
    call: int
    part: tuple[Any, ...]
    batch_axis: int
    shape: tuple[int, ...]
    depth: int
    aliases: tuple[str, ...] = ()

    @property
    def n_features(self) -> int:
        """Number of features per image once flattened."""
        n = 1
        for s in self.shape:
            n *= s
        return n

    @property
    def label(self) -> str:
        """Readable label in the style of Conwell et al. (``Conv2d-19``)."""
        return f"{self.module_type}-{self.index}"

    @property
    def names(self) -> tuple[str, ...]:
        """The layer's name followed by its aliases."""
        return (self.name, *self.aliases)

    @property
    def key(self) -> tuple[str, int, tuple[Any, ...]]:
        """(module path, call, part): where the hook finds this layer's tensor."""
        return (self.module_path, self.call, self.part)


@dataclass
class LayerSelection:
    """Which layers to keep.

    Parameters
    ----------
    include : str, optional
        Regex; keep layers whose name matches (``re.search``; the primary name only, so a
        pattern for block outputs does not also pull in the module calls they equal).
    exclude : str, optional
        Regex; drop layers whose name matches.
    module_types : sequence of str, optional
        Keep only these module class names (e.g. ``("Conv2d", "ReLU")``).
    max_depth : int, optional
        Keep only modules at most this deep (``layer1`` is depth 1, ``layer1.0.conv1`` depth 3).
    names : sequence of str, optional
        Keep exactly these layers, each given by its name or any of its aliases
        (:attr:`LayerSpec.aliases`); :func:`discover_layers` raises a ``KeyError`` for a name
        that is no layer's.
    """

    include: str | None = None
    exclude: str | None = None
    module_types: Sequence[str] | None = None
    max_depth: int | None = None
    names: Sequence[str] | None = field(default=None)

    def __call__(self, layer: LayerSpec) -> bool:
        if self.names is not None and not set(layer.names) & set(self.names):
            return False
        if self.include and not re.search(self.include, layer.name):
            return False
        if self.exclude and re.search(self.exclude, layer.name):
            return False
        if self.module_types is not None and layer.module_type not in self.module_types:
            return False
        return self.max_depth is None or layer.depth <= self.max_depth

    def check_names(self, layers: Sequence[LayerSpec]) -> None:
        """Raise ``KeyError`` for a requested name that is neither a name nor an alias in ``layers``."""
        if self.names is None:
            return
        known = {n for layer in layers for n in layer.names}
        unknown = [n for n in self.names if n not in known]
        if unknown:
            hints = {n: difflib.get_close_matches(n, sorted(known), n=3) for n in unknown}
            detail = "; ".join(f"{n!r} (close: {', '.join(h) or 'none'})" for n, h in hints.items())
            raise KeyError(f"no layer named {detail}; names and aliases come from discover_layers")


def make_non_inplace(module: nn.Module) -> int:
    """Turn off ``inplace`` on every submodule that has it (ReLU, Hardswish, Dropout...).

    In-place activations overwrite their input tensor, so code that keeps a reference to a
    pre-activation output and reads it after the forward pass would see the post-activation
    values. :func:`extract` and :func:`discover_layers` do not need this (each reads an output
    inside its hook, before the next operation runs); it is for callers who keep outputs.
    Returns the number of modules changed.
    """
    changed = 0
    for sub in module.modules():
        if isinstance(getattr(sub, "inplace", None), bool) and sub.inplace:
            sub.inplace = False
            changed += 1
    return changed


def iter_tensors(
    output: Any, part: tuple[Any, ...] = ()
) -> Iterator[tuple[tuple[Any, ...], torch.Tensor]]:
    """Yield ``(part, tensor)`` for every floating tensor inside a module output."""
    if isinstance(output, torch.Tensor):
        if output.is_floating_point() and output.dim() >= 1:
            yield part, output
    elif isinstance(output, Mapping):
        for key, value in output.items():
            yield from iter_tensors(value, (*part, key))
    elif isinstance(output, list | tuple):
        for position, value in enumerate(output):
            yield from iter_tensors(value, (*part, position))


def hookable_modules(module: nn.Module, include_root: bool = False) -> list[tuple[str, nn.Module]]:
    """Every named submodule except containers, and the root itself only if ``include_root``."""
    return [
        (n, m)
        for n, m in module.named_modules()
        if (n or include_root) and not (n and isinstance(m, CONTAINERS))
    ]


class HookSet:
    """Forward hooks on many modules that pass each output tensor to one callback.

    The callback receives ``(module_path, call, part, tensor)``; ``call`` counts the calls of a
    module within one forward pass (reset by :meth:`new_forward`).
    """

    def __init__(
        self,
        modules: Sequence[tuple[str, nn.Module]],
        callback: Callable[[str, int, tuple[Any, ...], torch.Tensor], None],
    ) -> None:
        self.callback = callback
        self.calls: dict[str, int] = {}
        self.handles = [m.register_forward_hook(self._hook(path)) for path, m in modules]

    def _hook(self, path: str) -> Callable[..., None]:
        def hook(_module: nn.Module, _inputs: Any, output: Any) -> None:
            call = self.calls.get(path, 0)
            self.calls[path] = call + 1
            for part, tensor in iter_tensors(output):
                self.callback(path, call, part, tensor)

        return hook

    def new_forward(self) -> None:
        """Start counting module calls afresh for the next forward pass."""
        self.calls.clear()

    def remove(self) -> None:
        """Remove every hook."""
        for handle in self.handles:
            handle.remove()
        self.handles = []

    def __enter__(self) -> HookSet:
        return self

    def __exit__(self, *exc: object) -> None:
        self.remove()


def _batch_axis(shape: tuple[int, ...], batch_size: int) -> int | None:
    """Axis of the batch in an output: 0 normally, 1 for token-first ``[L, N, D]`` layouts."""
    if shape and shape[0] == batch_size:
        return 0
    if len(shape) >= 2 and shape[1] == batch_size:
        return 1
    return None  # not per-image (e.g. a positional-embedding parameter returned by a module)


def layer_name(path: str, call: int, part: tuple[Any, ...]) -> str:
    """Name of a module output: path (or :data:`ROOT_LAYER`), ``#k`` for call k >= 2, ``.part``."""
    return (path or ROOT_LAYER) + (f"#{call + 1}" if call else "") + "".join(f".{p}" for p in part)


def discover_layers(
    module: nn.Module,
    probe: torch.Tensor,
    selection: LayerSelection | Callable[[LayerSpec], bool] | None = None,
    drop_duplicates: bool = True,
    policy: LayerPolicy | str | None = None,
) -> list[LayerSpec]:
    """Find every layer of ``module`` by running ``probe`` through it with hooks on all modules.

    Parameters
    ----------
    module : torch.nn.Module
        The network, in eval mode. In-place activations may stay in place: each output is
        hashed inside its hook, before a later operation can overwrite it.
    probe : torch.Tensor
        A small preprocessed batch ``[b, 3, H, W]``; ``b`` should differ from every token count
        (3 works for the usual ViT/CLIP layouts), since it tells the batch axis apart.
    selection : LayerSelection or callable, optional
        Filter applied after duplicates are removed and ``policy`` has kept its layers. A
        :class:`LayerSelection` with ``names`` raises ``KeyError`` for a name that is neither a
        name nor an alias of those layers.
    drop_duplicates : bool
        Drop a layer whose probe output equals an earlier layer's (how: ``policy.dedup``);
        its name becomes an alias of the earlier layer.
    policy : LayerPolicy or str, optional
        Which modules are hooked, how duplicates are judged and which layers are kept
        (default ``"all"``, see :data:`LAYER_POLICIES`).

    Returns
    -------
    list of LayerSpec
        In execution order.
    """
    policy = layer_policy(policy)
    batch_size = probe.shape[0]
    modules = hookable_modules(module, include_root=policy.include_root)
    # Containers are hooked only to learn their names: a Sequential's output is its last
    # child's tensor, so it can only ever be an alias (a user's "layer3" finds layer3.1).
    containers = {n: m for n, m in module.named_modules() if n and isinstance(m, CONTAINERS)}
    types = {path: type(m).__name__ for path, m in (*modules, *containers.items())}
    found: list[tuple[tuple[str, int, tuple[Any, ...]], int, tuple[int, ...], str]] = []

    def record(path: str, call: int, part: tuple[Any, ...], tensor: torch.Tensor) -> None:
        axis = _batch_axis(tuple(tensor.shape), batch_size)
        if axis is None:
            return
        per_image = tensor.detach().movedim(axis, 0).contiguous().float().cpu()
        if policy.dedup == "values":
            per_image = per_image + 0.0  # -0.0 -> 0.0: equal values, whatever their sign bit
        digest = hashlib.sha1(
            b"" if policy.dedup == "values" else str(tuple(per_image.shape)).encode()
        )
        digest.update(per_image.numpy().tobytes())
        found.append(((path, call, part), axis, tuple(per_image.shape[1:]), digest.hexdigest()))

    with HookSet([*modules, *containers.items()], record) as hooks, torch.no_grad():
        hooks.new_forward()
        module(probe)

    kept: list[tuple[tuple[str, int, tuple[Any, ...]], int, tuple[int, ...], list[str]]] = []
    first: dict[str, int] = {}  # digest -> position in `kept` of the first layer with it
    for (path, call, part), axis, shape, digest in found:
        name = layer_name(path, call, part)
        if digest in first and (drop_duplicates or path in containers):
            kept[first[digest]][3].append(name)
            continue
        if path in containers:
            continue  # a container output that repeats nothing is not a layer of its own
        first.setdefault(digest, len(kept))
        kept.append(((path, call, part), axis, shape, []))

    layers: list[LayerSpec] = []
    for index, ((path, call, part), axis, shape, alias_names) in enumerate(kept, start=1):
        # The index counts every distinct layer, selected or not, so it does not depend on the
        # selection and stays comparable across runs that pick different subsets.
        layers.append(
            LayerSpec(
                name=layer_name(path, call, part),
                index=index,
                module_type=types[path],
                module_path=path,
                call=call,
                part=part,
                batch_axis=axis,
                shape=shape,
                depth=path.count(".") + 1 if path else 0,
                aliases=tuple(alias_names),
            )
        )
    if policy.keep == "second_half":
        layers = layers[int(len(layers) / 2) :]
    if isinstance(selection, LayerSelection):
        selection.check_names(layers)
    return [layer for layer in layers if selection is None or selection(layer)]
