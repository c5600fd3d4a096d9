"""Discover every layer of a network by running a probe batch through forward hooks.

A *layer* is one tensor produced during the forward pass: the output of a non-container module
(one per call when a module is called several times, e.g. torchvision's shared ``relu`` in a
``BasicBlock``), with tuple/list/dict outputs split into parts (``name.0``, ``name.key``). Layers
appear in execution order. A layer whose probe output is bit-identical to an earlier layer's
(``Identity``, eval-mode ``Dropout``, a block whose last op is its output) is dropped.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

CONTAINERS = (nn.Sequential, nn.ModuleList, nn.ModuleDict)


@dataclass(frozen=True)
class LayerSpec:
    """One tensor of the forward pass.

    Attributes
    ----------
    name : str
        Module path (``layer3.2.conv1``), ``#k`` appended for the k-th extra call of a module
        and ``.part`` for a part of a tuple/dict output.
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
        Nesting depth of the module (``layer3.2.conv1`` -> 3).
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
    def key(self) -> tuple[str, int, tuple[Any, ...]]:
        """(module path, call, part): where the hook finds this layer's tensor."""
        return (self.module_path, self.call, self.part)


@dataclass
class LayerSelection:
    """Which layers to keep.

    Parameters
    ----------
    include : str, optional
        Regex; keep layers whose name matches (``re.search``).
    exclude : str, optional
        Regex; drop layers whose name matches.
    module_types : sequence of str, optional
        Keep only these module class names (e.g. ``("Conv2d", "ReLU")``).
    max_depth : int, optional
        Keep only modules at most this deep (``layer1`` is depth 1, ``layer1.0.conv1`` depth 3).
    names : sequence of str, optional
        Keep exactly these layer names.
    """

    include: str | None = None
    exclude: str | None = None
    module_types: Sequence[str] | None = None
    max_depth: int | None = None
    names: Sequence[str] | None = field(default=None)

    def __call__(self, layer: LayerSpec) -> bool:
        if self.names is not None and layer.name not in self.names:
            return False
        if self.include and not re.search(self.include, layer.name):
            return False
        if self.exclude and re.search(self.exclude, layer.name):
            return False
        if self.module_types is not None and layer.module_type not in self.module_types:
            return False
        return self.max_depth is None or layer.depth <= self.max_depth


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


def iter_tensors(output: Any, part: tuple[Any, ...] = ()) -> Iterator[tuple[tuple[Any, ...], torch.Tensor]]:
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


def hookable_modules(module: nn.Module) -> list[tuple[str, nn.Module]]:
    """Every named submodule except containers and the root itself."""
    return [(n, m) for n, m in module.named_modules() if n and not isinstance(m, CONTAINERS)]


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


def discover_layers(
    module: nn.Module,
    probe: torch.Tensor,
    selection: LayerSelection | Callable[[LayerSpec], bool] | None = None,
    drop_duplicates: bool = True,
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
        Filter applied after duplicates are removed.
    drop_duplicates : bool
        Drop a layer whose probe output equals an earlier layer's bit for bit.

    Returns
    -------
    list of LayerSpec
        In execution order.
    """
    batch_size = probe.shape[0]
    modules = hookable_modules(module)
    types = {path: type(m).__name__ for path, m in modules}
    found: list[tuple[tuple[str, int, tuple[Any, ...]], int, tuple[int, ...], str]] = []

    def record(path: str, call: int, part: tuple[Any, ...], tensor: torch.Tensor) -> None:
        axis = _batch_axis(tuple(tensor.shape), batch_size)
        if axis is None:
            return
        per_image = tensor.detach().movedim(axis, 0).contiguous().float().cpu()
        digest = hashlib.sha1(str(tuple(per_image.shape)).encode())
        digest.update(per_image.numpy().tobytes())
        found.append(((path, call, part), axis, tuple(per_image.shape[1:]), digest.hexdigest()))

    with HookSet(modules, record) as hooks, torch.no_grad():
        hooks.new_forward()
        module(probe)

    layers: list[LayerSpec] = []
    seen: set[str] = set()
    for (path, call, part), axis, shape, digest in found:
        if drop_duplicates and digest in seen:
            continue
        seen.add(digest)
        name = path + (f"#{call + 1}" if call else "") + "".join(f".{p}" for p in part)
        # The index counts every distinct layer, selected or not, so it does not depend on the
        # selection and stays comparable across runs that pick different subsets.
        spec = LayerSpec(
            name=name,
            index=len(seen),
            module_type=types[path],
            module_path=path,
            call=call,
            part=part,
            batch_axis=axis,
            shape=shape,
            depth=path.count(".") + 1,
        )
        if selection is None or selection(spec):
            layers.append(spec)
    return layers
