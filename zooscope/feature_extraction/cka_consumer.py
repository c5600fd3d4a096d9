"""The extraction consumer that keeps every layer's feature-centred Gram matrix (for CKA).

Off unless asked: pass ``extract(..., consumers=[CKAGramConsumer()])`` (a survey does with
``RunOptions(keep_grams=True)`` / ``--keep-grams``); each yielded
:class:`~zooscope.feature_extraction.LayerFeatures` then carries ``outputs["cka_gram"]``
(``H X X^T H``, [n, n] float64 from float32 block products;
:class:`~zooscope.feature_extraction.cka_gram.CentredGramAccumulator`).
The planner counts its ``n x n`` float64 per layer against the memory budget like the exact RSMs.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from zooscope._timing import stage
from zooscope.feature_extraction.cka_gram import BLOCK, CentredGramAccumulator
from zooscope.feature_extraction.consumers import (
    ColumnPassSink,
    LayerConsumer,
    LayerSink,
    Placement,
)
from zooscope.feature_extraction.extract import extract
from zooscope.feature_extraction.layers import LayerSpec

__all__ = ["CKAGramConsumer"]


class CKAGramConsumer(LayerConsumer):
    """Each layer's feature-centred Gram matrix, output as ``"cka_gram"`` [n, n] float64."""

    chunked = True
    buffered = True  # reads the pass's columns from the buffer the exact RSMs fill too

    def fixed_nbytes(self, layer: LayerSpec, n_images: int) -> int:
        # the accumulated Gram, one centred float32 block and its product while a chunk is folded
        return 8 * n_images * n_images * 2 + 4 * n_images * min(BLOCK, layer.n_features)

    def params(self) -> dict[str, Any]:
        return {"cka_gram": "feature-centred, float32 blocks"}  # part of the layer cache key

    def open(self, layer: LayerSpec, n_images: int, place: Placement) -> LayerSink:
        accumulator = CentredGramAccumulator(n_images, layer.n_features, product="float32")
        return _CKAGramSink(accumulator)


class _CKAGramSink(ColumnPassSink):
    stage_name = "cka_gram"

    def outputs(self) -> dict[str, np.ndarray]:
        with stage(self.stage_name):
            return {"cka_gram": self.accumulator.gram()}


def store_layer_grams(
    loaded: Any,
    images: Any,
    store: Any,
    benchmark_hash: str,
    *,
    layers: Any = None,
    memory_budget: int | str | None = None,
    batch_size: int = 32,
    progress: bool = False,
) -> int:
    """Extract every (selected) layer's centred Gram matrix of one model into a GramStore.

    Parameters
    ----------
    loaded : LoadedModel
    images : array [n, H, W, 3] uint8 or anything :func:`extract` takes
    store : GramStore
    benchmark_hash : str
        Key of the image set (the benchmark's content hash).
    layers : LayerSelection, optional
    memory_budget, batch_size, progress
        As for :func:`extract`; a layer larger than the budget is accumulated in column chunks.

    Returns
    -------
    int
        Layers stored.
    """
    stream = extract(
        loaded, images, layers=layers, srp=False, rsm=False, consumers=[CKAGramConsumer()],
        memory_budget=memory_budget, batch_size=batch_size, progress=progress,
    )  # fmt: skip
    found = sorted(((f.index, f.name, f.outputs["cka_gram"]) for f in stream), key=lambda t: t[0])
    return store.write(benchmark_hash, loaded.entry.model_uid, found)
