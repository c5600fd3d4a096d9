"""The extraction consumer that keeps every layer's feature-centred Gram matrix (for CKA).

Off unless asked: pass ``extract(..., consumers=[CKAGramConsumer()])`` (a survey does with
``RunOptions(keep_grams=True)`` / ``--keep-grams``); each yielded
:class:`~zooscope.feature_extraction.LayerFeatures` then carries ``outputs["cka_gram"]``
(``H X X^T H``, [n, n] float64; :class:`~zooscope.feature_extraction.cka_gram.CentredGramAccumulator`).
The planner counts its ``n x n`` float64 per layer against the memory budget like the exact RSMs.
"""

from __future__ import annotations

from typing import Any

from zooscope.feature_extraction.consumers import GramConsumer
from zooscope.feature_extraction.extract import extract

__all__ = ["CKAGramConsumer"]


class CKAGramConsumer(GramConsumer):
    """Each layer's feature-centred Gram matrix, output as ``"cka_gram"`` [n, n] float64.

    A :class:`~zooscope.feature_extraction.consumers.GramConsumer` of that one output: an
    extraction that also computes exact RSMs merges the two
    (:func:`~zooscope.feature_extraction.consumers.merge_gram_consumers`), so the columns are
    multiplied once for both.
    """

    def __init__(self) -> None:
        super().__init__(("cka_gram",))

    def params(self) -> dict[str, Any]:
        # part of the layer cache key: "shared" since the RSM comes from the same product
        return {"cka_gram": "feature-centred, float32 blocks, shared"}


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
