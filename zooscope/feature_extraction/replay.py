"""Replay: start a pass over the images from a module's recorded output, not from the pixels.

Exact RSMs need every image's full activations of a layer at once, so within a memory budget the
layers are spread over several passes (:func:`~zooscope.feature_extraction.extract.plan_passes`),
and each pass used to run the network from the images up to its deepest layer: the pass over
the late layers recomputed the whole network before them, and EfficientNet-Lite0's 16 passes at
1000 images and 6 GB cost about ten full forward passes.

A *cut* is a module whose output carries everything the rest of the network reads from what ran
before it: in a network built as a chain of stages and blocks, the output of a block (ResNet's
``layer2.1``, timm's ``blocks.3``, a ViT's ``blocks.7``). A pass that starts after a cut
*replays* it: the cut module returns the output it produced for this batch in an earlier pass
(kept in a temporary file, not in memory), every module that finished before the cut started
returns a zero placeholder of the shape it had, and the input is zeros. Neither the images nor
the layers before the cut are computed again; only the layers after it run, on exactly the
tensors they saw before.

That a module is a cut is checked, not assumed from the architecture. On the probe batch the
network runs once as it is and once replaying the candidate (zero input, placeholders, the
recorded output); every tensor produced after the cut must be bit-identical in both runs, with
the same module calls. A skip connection around the cut, a module called again after it, or
code that reads the input image late would change some tensor, and the candidate is then not
used (the pass runs from the images as before). So replay never changes a number; it only skips
work. Candidates are the modules whose parent is the root or a container (``Sequential``,
``ModuleList``, ``ModuleDict``), called once per forward pass, with one contiguous batch-first
tensor as output.
"""

from __future__ import annotations

import contextlib
import hashlib
import itertools
import logging
import shutil
import tempfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from zooscope.feature_extraction.layers import CONTAINERS, iter_tensors

logger = logging.getLogger(__name__)

__all__ = ["Cut", "ForwardTrace", "ReplayStore", "plan_replay", "trace_forward"]

Key = tuple[str, int, tuple[Any, ...]]  # (module path, call, part): as LayerSpec.key


@dataclass(frozen=True)
class Cut:
    """A module a pass can start from.

    Attributes
    ----------
    path : str
        The module whose output is replayed.
    start, end : int
        Events (calls and returns of modules, counted in one forward pass) at which the module
        was called and returned.
    prefix : tuple of str
        Modules that returned before the cut was called, outermost only; they return zero
        placeholders of their recorded shape while the cut is replayed.
    """

    path: str
    start: int
    end: int
    prefix: tuple[str, ...]


@dataclass
class ForwardTrace:
    """What one forward pass of the probe batch did, module by module.

    Attributes
    ----------
    spans : dict
        Module path -> ``[(start event, end event)]``, one per call.
    digests : dict
        ``(path, call, part)`` -> ``(end event, sha1 of the tensor)`` for every floating tensor
        output.
    outputs : dict
        Module path -> its output on the probe, for modules called once that return a tensor.
    """

    spans: dict[str, list[tuple[int, int]]] = field(default_factory=dict)
    digests: dict[Key, tuple[int, str]] = field(default_factory=dict)
    outputs: dict[str, torch.Tensor] = field(default_factory=dict)

    def event(self, key: Key) -> int:
        """The event at which the tensor ``key`` (a :attr:`LayerSpec.key`) was produced."""
        return self.digests[key][0]


def _digest(tensor: torch.Tensor) -> str:
    data = tensor.detach().contiguous().cpu()
    return hashlib.sha1(
        str((tuple(data.shape), data.dtype)).encode() + data.numpy().tobytes()
    ).hexdigest()


@contextlib.contextmanager
def _recording(module: nn.Module, keep: bool) -> Iterator[ForwardTrace]:
    """Hooks on every module (root and containers too) that fill a :class:`ForwardTrace`."""
    trace = ForwardTrace()
    clock = [0]
    calls: dict[str, int] = {}
    handles = []

    def pre(path: str):
        def hook(_module: nn.Module, _inputs: Any) -> None:
            trace.spans.setdefault(path, []).append((clock[0], -1))
            clock[0] += 1

        return hook

    def post(path: str):
        def hook(_module: nn.Module, _inputs: Any, output: Any) -> None:
            spans = trace.spans[path]
            open_call = max(i for i, (_, end) in enumerate(spans) if end < 0)
            spans[open_call] = (spans[open_call][0], clock[0])
            call = calls.get(path, 0)
            calls[path] = call + 1
            for part, tensor in iter_tensors(output):
                # hashed here: an in-place operation later in the pass may overwrite the tensor
                trace.digests[(path, call, part)] = (clock[0], _digest(tensor))
            if keep and isinstance(output, torch.Tensor):
                trace.outputs[path] = output.detach().clone()
            clock[0] += 1

        return hook

    for path, sub in module.named_modules():
        handles.append(sub.register_forward_pre_hook(pre(path)))
        handles.append(sub.register_forward_hook(post(path)))
    try:
        yield trace
    finally:
        for handle in handles:
            handle.remove()


def trace_forward(module: nn.Module, probe: torch.Tensor, amp: bool = False) -> ForwardTrace:
    """Run ``probe`` [b, 3, H, W] through ``module`` once and record every module call."""
    with (
        _recording(module, keep=True) as trace,
        torch.no_grad(),
        torch.autocast(probe.device.type, enabled=amp),
    ):
        module(probe)
    return trace


def _parent(path: str) -> str:
    return path.rpartition(".")[0]


def cut_candidates(module: nn.Module, trace: ForwardTrace, batch_size: int) -> list[Cut]:
    """Modules that may be cuts (see the module docstring), in the order they return."""
    modules = dict(module.named_modules())
    single = {p: s[0] for p, s in trace.spans.items() if len(s) == 1}
    cuts = []
    for path, (start, end) in single.items():
        parent = modules.get(_parent(path)) if path else None
        output = trace.outputs.get(path)
        if (
            not path
            or not (_parent(path) == "" or isinstance(parent, CONTAINERS))
            or output is None
            or output.dim() == 0
            or output.shape[0] != batch_size
            or not output.is_contiguous()
        ):
            continue
        finished = {p for p, spans in trace.spans.items() if p and max(e for _, e in spans) < start}
        prefix = tuple(
            p
            for p in finished
            if _parent(p) not in finished
            and p in single
            and p in trace.outputs  # a module returning a tensor: it gets a placeholder
        )
        cuts.append(Cut(path, start, end, tuple(sorted(prefix, key=lambda p: single[p][0]))))
    return sorted(cuts, key=lambda cut: cut.end)


def _stubs(
    modules: dict[str, nn.Module], replacements: dict[str, Any]
) -> contextlib.AbstractContextManager[None]:
    """Replace the ``forward`` of some modules by functions for the duration of a block."""

    @contextlib.contextmanager
    def replaced() -> Iterator[None]:
        done = []
        try:
            for path, function in replacements.items():
                modules[path].forward = function  # an instance attribute shadows the method
                done.append(path)
            yield
        finally:
            for path in done:
                del modules[path].forward

    return replaced()


def _zeros(shape: Sequence[int], dtype: torch.dtype, device: Any) -> torch.Tensor:
    """Zeros that take no memory (one element, expanded): placeholders nobody reads."""
    return torch.zeros((), dtype=dtype, device=device).expand(*shape)


def _returning(make: Any) -> Any:
    def forward(*_args: Any, **_kwargs: Any) -> Any:
        return make()

    return forward


def verify_cut(
    module: nn.Module, probe: torch.Tensor, trace: ForwardTrace, cut: Cut, amp: bool = False
) -> bool:
    """True when replaying ``cut`` on the probe reproduces every later tensor bit for bit."""
    modules = dict(module.named_modules())
    recorded = trace.outputs[cut.path]
    replacements = {
        path: _returning(lambda out=trace.outputs[path]: _zeros(out.shape, out.dtype, out.device))
        for path in cut.prefix
    }
    replacements[cut.path] = _returning(lambda: recorded.clone())
    expected = {key: digest for key, (event, digest) in trace.digests.items() if event > cut.end}
    try:
        with (
            _stubs(modules, replacements),
            _recording(module, keep=False) as replayed,
            torch.no_grad(),
            torch.autocast(probe.device.type, enabled=amp),
        ):
            module(_zeros(probe.shape, probe.dtype, probe.device))
    except Exception as error:  # any failure means "not a cut", never a failed extraction
        logger.debug("replay from %s fails on the probe: %s", cut.path, error)
        return False
    replay_end = replayed.spans[cut.path][0][1]
    seen = {key: digest for key, (event, digest) in replayed.digests.items() if event > replay_end}
    if seen != expected:
        logger.debug("replay from %s changes later tensors; not used", cut.path)
        return False
    return True


def plan_replay(
    module: nn.Module,
    probe: torch.Tensor,
    passes: Sequence[Sequence[Key]],
    amp: bool = False,
) -> list[Cut | None]:
    """The cut each pass replays (None: from the images), given the layer keys of each pass.

    A pass replays the deepest verified cut that returned before its first layer and by the
    last layer of the pass before it, which records the cut's output (or replays it already).
    """
    if len(passes) < 2:
        return [None] * len(passes)
    trace = trace_forward(module, probe, amp)
    candidates = cut_candidates(module, trace, probe.shape[0])
    checked: dict[str, bool] = {}
    plan: list[Cut | None] = [None]
    for before, keys in itertools.pairwise(passes):
        recorded_by = max(trace.event(key) for key in before)
        chosen = plan[-1]
        for cut in reversed(candidates):
            if cut.end > recorded_by or cut.end >= min(trace.event(key) for key in keys):
                continue
            if chosen is not None and cut.end <= chosen.end:
                break  # the previous pass's cut is at least as deep
            if checked.setdefault(cut.path, verify_cut(module, probe, trace, cut, amp)):
                chosen = cut
                break
        plan.append(chosen)
    used = {cut.path for cut in plan if cut is not None}
    logger.debug(
        "replay: %d of %d passes start from a cut (%s); %d candidate(s) checked, %d refused",
        sum(cut is not None for cut in plan),
        len(plan),
        ", ".join(sorted(used)) or "none",
        len(checked),
        sum(not ok for ok in checked.values()),
    )
    return plan


class ReplayStore:
    """Recorded outputs of cut modules, per image, in temporary files.

    Also records, per batch, the shape of the input and of every placeholder a replay needs, so
    a replaying pass runs on exactly the shapes it would have seen.

    Parameters
    ----------
    module : torch.nn.Module
    n_images : int
    directory : path, optional
        Where the temporary files go (default: the system's temporary folder, ``TMPDIR``).
    """

    def __init__(self, module: nn.Module, n_images: int, directory: Any = None) -> None:
        self.modules = dict(module.named_modules())
        self.n_images = n_images
        self.root = Path(tempfile.mkdtemp(prefix="zooscope-replay-", dir=directory))
        self.inputs: list[tuple[torch.Size, torch.dtype]] = []
        self.shapes: dict[str, list[tuple[torch.Size, torch.dtype]]] = {}
        self.files: dict[str, np.memmap] = {}
        self.batch = (0, slice(0, 0))  # (index, rows) of the batch being run

    def record_input(self, images: torch.Tensor) -> None:
        """Note the shape of the next batch's input (during a pass from the images)."""
        if len(self.inputs) <= self.batch[0]:
            self.inputs.append((images.shape, images.dtype))

    def zero_input(self, index: int, device: torch.device) -> torch.Tensor:
        """The input of batch ``index`` in a replaying pass: zeros of the recorded shape."""
        shape, dtype = self.inputs[index]
        return _zeros(shape, dtype, device)

    @contextlib.contextmanager
    def recording(self, cut: Cut) -> Iterator[None]:
        """While a pass runs: write ``cut``'s output and its placeholders' shapes to the store."""
        handles = []

        def save(_module: nn.Module, _inputs: Any, output: torch.Tensor) -> None:
            rows = self.batch[1]
            raw = output.detach().contiguous().view(torch.uint8).reshape(output.shape[0], -1)
            if cut.path not in self.files:
                self.files[cut.path] = np.memmap(
                    self.root / f"{cut.start}.bin",  # unique per cut, even after a release
                    dtype=np.uint8,
                    mode="w+",
                    shape=(self.n_images, raw.shape[1]),
                )
            self.files[cut.path][rows] = raw.cpu().numpy()
            note(cut.path, output)

        def note(path: str, output: torch.Tensor) -> None:
            shapes = self.shapes.setdefault(path, [])
            if len(shapes) <= self.batch[0]:
                shapes.append((output.shape, output.dtype))

        for path in cut.prefix:
            hook = lambda _m, _i, output, path=path: note(path, output)  # noqa: E731
            handles.append(self.modules[path].register_forward_hook(hook, prepend=True))
        # prepended: it must run before a pass's own hook stops the forward pass at this module
        handles.append(self.modules[cut.path].register_forward_hook(save, prepend=True))
        try:
            yield
        finally:
            for handle in handles:
                handle.remove()

    @contextlib.contextmanager
    def replaying(self, cut: Cut, device: torch.device) -> Iterator[None]:
        """While a pass runs: ``cut`` returns its recorded output, its prefix placeholders."""

        def recorded() -> torch.Tensor:
            index, rows = self.batch
            shape, dtype = self.shapes[cut.path][index]
            raw = torch.from_numpy(np.array(self.files[cut.path][rows]))
            return raw.view(dtype).reshape(shape).to(device)

        def placeholder(path: str) -> torch.Tensor:
            shape, dtype = self.shapes[path][self.batch[0]]
            return _zeros(shape, dtype, device)

        replacements = {path: _returning(lambda p=path: placeholder(p)) for path in cut.prefix}
        replacements[cut.path] = _returning(recorded)
        with _stubs(self.modules, replacements):
            yield

    def release(self, keep: set[str]) -> None:
        """Delete the recordings of cuts no longer needed."""
        for path in [p for p in self.files if p not in keep]:
            mm = self.files.pop(path)
            name = mm.filename
            del mm
            Path(name).unlink(missing_ok=True)

    def close(self) -> None:
        self.files.clear()
        shutil.rmtree(self.root, ignore_errors=True)
