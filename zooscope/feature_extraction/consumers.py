"""Per-layer consumers: what :func:`~zooscope.feature_extraction.extract` computes from a layer.

The extraction streams every layer's activations past a list of consumers, one batch at a time,
inside the forward hooks. A consumer says what it holds (so passes can be planned within the
memory budget), and opens a :class:`LayerSink` per layer that receives the batches and returns
the layer's outputs once every image (and every feature chunk) has been seen. The pass loop knows
nothing about any particular consumer, so a new one (such as
:class:`~zooscope.feature_extraction.cka_consumer.CKAGramConsumer`, the feature-centred Gram
matrices of linear CKA) is a new class, passed to ``extract(..., consumers=[...])``.

Two kinds of consumer:

- *whole* (``chunked = False``): sees all the features of every batch, during the layer's first
  pass only; what it keeps must be small (the SRP features, ``n x k``);
- *chunked* (``chunked = True``): sees the feature columns ``[start, stop)`` of every image, a
  piece of the layer; a layer too large for the budget is split into such pieces, one per pass.
  A chunked consumer that needs a piece's columns all at once (``buffered = True``: the exact
  Gram / RSM accumulations) gets them at the end of the pass from one buffer the pass loop fills
  and shares among all buffered consumers, so keeping RSMs and CKA Grams holds the activations
  once, not twice.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Any, ClassVar, Literal

import numpy as np
import torch

from zooscope._backend import Backend, get_backend
from zooscope._timing import stage
from zooscope.feature_extraction.gram import GramAccumulator, correlation_from_gram
from zooscope.feature_extraction.layers import LayerSpec
from zooscope.feature_extraction.projection import SparseRandomProjector, expected_nbytes


@dataclass(frozen=True)
class Placement:
    """Where an extraction keeps its batches and buffers, chosen once from the model's device.

    On the CPU, batches reach the consumers as NumPy views of torch's output (the SRP kernel and
    the Gram GEMMs run on NumPy arrays); on an accelerator they stay torch tensors on the device.

    Attributes
    ----------
    device : torch.device
    backend : Backend
        For host copies and the free-memory estimate of the device.
    """

    device: torch.device
    backend: Backend

    @classmethod
    def of(cls, device: str | torch.device) -> Placement:
        device = torch.device(device)
        name = {"cuda": "torch_cuda", "mps": "torch_mps"}.get(device.type, "numpy")
        return cls(device, get_backend(name))

    @property
    def on_host(self) -> bool:
        return self.device.type == "cpu"

    def batch(self, flat: torch.Tensor) -> Any:
        """A hook's flattened float32 output ``[b, p]`` as the consumers receive it."""
        return flat.numpy() if self.on_host else flat

    def empty(self, shape: tuple[int, ...]) -> Any:
        """An uninitialised float32 buffer on the device."""
        if self.on_host:
            return np.empty(shape, np.float32)
        return torch.empty(shape, dtype=torch.float32, device=self.device)

    def to_numpy(self, x: Any) -> np.ndarray:
        return self.backend.to_numpy(x)


class LayerSink(ABC):
    """One consumer's state for one layer, from its first batch to its outputs."""

    def begin_pass(self, start: int, stop: int) -> None:  # noqa: B027 - optional hook
        """A pass over the images begins; a chunked sink will see columns ``[start, stop)``."""

    @abstractmethod
    def update(self, rows: slice, batch: Any) -> None:
        """Take the activations of images ``rows``: ``[b, p]``, or ``[b, stop - start]`` when chunked."""

    def end_pass(self) -> None:  # noqa: B027 - optional hook
        """Every image of the pass has been seen."""

    @abstractmethod
    def outputs(self) -> dict[str, np.ndarray]:
        """The layer's outputs, once every image and every chunk has been seen."""


class LayerConsumer(ABC):
    """A kind of per-layer result, computed from the activations as batches stream past.

    Subclasses set :attr:`chunked`, report the bytes they hold (for the pass planner) and open a
    :class:`LayerSink` per layer. Output names must be unique across the consumers of one
    extraction; ``"srp"`` and ``"rsm"`` become :class:`LayerFeatures` attributes, others land in
    ``LayerFeatures.outputs``.
    """

    chunked: ClassVar[bool] = False
    #: A chunked consumer whose sinks (:class:`ColumnPassSink`) fold a pass's columns at once,
    #: from the buffer the pass loop shares among them (counted once by the planner).
    buffered: ClassVar[bool] = False
    #: A buffered consumer that may overwrite the shared buffer when it folds last (it saves a
    #: copy); the pass loop folds such sinks last.
    overwrites: ClassVar[bool] = False

    @abstractmethod
    def fixed_nbytes(self, layer: LayerSpec, n_images: int) -> int:
        """Bytes held from the layer's first pass until its outputs are returned."""

    def column_nbytes(self, n_images: int) -> int:
        """Bytes held during a pass per feature column of the layer's piece (chunked consumers).

        Not counting the shared buffer of buffered consumers, which the planner adds once.
        """
        return 0

    @abstractmethod
    def params(self) -> dict[str, Any]:
        """What determines the outputs, for cache keys (JSON-serialisable)."""

    @abstractmethod
    def open(self, layer: LayerSpec, n_images: int, place: Placement) -> LayerSink:
        """A fresh sink for ``layer``."""


class SRPConsumer(LayerConsumer):
    """Sparse random projection of each layer (see :class:`SparseRandomProjector`).

    Parameters
    ----------
    n_components, seed, upsample, mode
        As for :class:`SparseRandomProjector` (the matrix depends on ``(seed, layer name)``).
    keep_srp : bool
        Output the projected features as ``"srp"`` [n, k] float32.
    approximate_rsm : bool
        Also output ``"rsm"``, the one-pass approximate Pearson RSM from the projected features
        and the per-image means (:func:`approximate_rsm`).
    """

    def __init__(
        self,
        n_components: int,
        seed: int = 0,
        upsample: bool = False,
        mode: Literal["fast", "sklearn"] = "fast",
        keep_srp: bool = True,
        approximate_rsm: bool = False,
    ) -> None:
        self.n_components = n_components
        self.seed = seed
        self.upsample = upsample
        self.mode = mode
        self.keep_srp = keep_srp
        self.approximate_rsm = approximate_rsm

    def fixed_nbytes(self, layer: LayerSpec, n_images: int) -> int:
        p = layer.n_features
        if p <= self.n_components and not self.upsample:  # passed through, no matrix
            return 4 * n_images * p
        return 4 * n_images * self.n_components + expected_nbytes(p, self.n_components)

    def params(self) -> dict[str, Any]:
        return {
            "k": self.n_components,
            "seed": self.seed,
            "upsample": self.upsample,
            "srp_mode": self.mode,
        }

    def open(self, layer: LayerSpec, n_images: int, place: Placement) -> LayerSink:
        with stage("srp"):  # drawing the matrix
            projector = SparseRandomProjector(
                layer.n_features,
                self.n_components,
                self.seed,
                layer.name,
                upsample=self.upsample,
                mode=self.mode,
            )
        return _SRPSink(self, projector, n_images, place)


class _SRPSink(LayerSink):
    def __init__(
        self, consumer: SRPConsumer, projector: SparseRandomProjector, n: int, place: Placement
    ) -> None:
        self.consumer = consumer
        self.projector = projector
        self.place = place
        self.srp = np.empty((n, projector.n_output), dtype=np.float32)
        self.means = np.empty(n, dtype=np.float64) if consumer.approximate_rsm else None

    def update(self, rows: slice, batch: Any) -> None:
        with stage("srp"):
            self.srp[rows] = self.place.to_numpy(self.projector.transform(batch))
        if self.means is not None:
            self.means[rows] = self.place.to_numpy(
                batch.sum(1, dtype=_float64(batch)) / batch.shape[1]
            )

    def outputs(self) -> dict[str, np.ndarray]:
        out = {"srp": self.srp} if self.consumer.keep_srp else {}
        if self.means is not None:
            with stage("gram"):
                out["rsm"] = approximate_rsm(self.srp, self.means, self.projector)
        return out


def _float64(batch: Any) -> Any:
    return np.float64 if isinstance(batch, np.ndarray) else torch.float64


class GramConsumer(LayerConsumer):
    """Exact statistics of the images' full activations through their row-centred Gram matrix.

    The layer's columns are held per pass and folded into a :class:`GramAccumulator` (``n x n``
    float64) at the end of each pass, so a layer larger than the budget is handled in chunks.

    Parameters
    ----------
    outputs : sequence of {"rsm", "centred_gram"}
        ``"rsm"``: the Pearson RSM [n, n] float32; ``"centred_gram"``: the row-centred Gram matrix
        ``(X - m 1^T)(X - m 1^T)^T`` [n, n] float64 (each image's features centred: the RSM's
        numerator). Linear CKA centres each feature over images instead: see
        :class:`~zooscope.feature_extraction.cka_consumer.CKAGramConsumer`.
    """

    chunked = True
    buffered = True
    overwrites = True  # centres the columns in place: a copy would double the peak
    OUTPUTS = ("rsm", "centred_gram")

    def __init__(self, outputs: tuple[str, ...] = ("rsm",)) -> None:
        unknown = set(outputs) - set(self.OUTPUTS)
        if unknown or not outputs:
            raise ValueError(f"GramConsumer outputs must be among {self.OUTPUTS}, got {outputs!r}")
        self.outputs = tuple(outputs)

    def fixed_nbytes(self, layer: LayerSpec, n_images: int) -> int:
        return 8 * n_images * n_images

    def params(self) -> dict[str, Any]:
        return {"gram_outputs": list(self.outputs)}

    def open(self, layer: LayerSpec, n_images: int, place: Placement) -> LayerSink:
        return _GramSink(self.outputs, GramAccumulator(n_images, layer.n_features))


class ColumnPassSink(LayerSink):
    """The sink of a buffered consumer: folds a pass's columns into an accumulator at once.

    The pass loop writes the columns ``[n_images, stop - start]`` of the layer's piece batch by
    batch into one buffer shared by every buffered sink of the piece, and hands it to
    :meth:`fold` when the pass ends, with ``writable=True`` for the last sink only.
    """

    stage_name = "gram"  # the timing stage (zooscope._timing) its work is counted in

    def __init__(self, accumulator: Any) -> None:
        self.accumulator = accumulator

    def update(self, rows: slice, batch: Any) -> None:
        raise TypeError("a ColumnPassSink gets its columns from the pass loop's shared buffer")

    def fold(self, columns: Any, writable: bool) -> None:
        """Add a pass's columns [n_images, stop - start]; modify them only when ``writable``."""
        self.accumulator.add(columns)


class _GramSink(ColumnPassSink):
    def __init__(self, outputs: tuple[str, ...], accumulator: GramAccumulator) -> None:
        super().__init__(accumulator)
        self.wanted = outputs

    def fold(self, columns: Any, writable: bool) -> None:
        self.accumulator.add(columns, overwrite=writable)

    @stage("gram")
    def outputs(self) -> dict[str, np.ndarray]:
        out = {}
        if "rsm" in self.wanted:
            out["rsm"] = self.accumulator.rsm()
        if "centred_gram" in self.wanted:
            out["centred_gram"] = self.accumulator.row_centred_gram()
        return out


def approximate_rsm(
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
    return correlation_from_gram(centred @ centred.T)
