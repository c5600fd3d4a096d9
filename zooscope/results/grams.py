"""A sidecar array store of per-layer feature-centred Gram matrices, next to a results database.

``results.duckdb`` gets ``results.grams.h5`` (HDF5): group ``/<benchmark_hash>/<model_uid>``
holds one dataset per layer, named by its zero-padded position, with the upper triangle
(diagonal included, ``np.triu_indices(n)`` order, float64) of ``H X X^T H`` and the attributes
``layer_name`` and ``layer_index``. A model's layers are written under a temporary name and
renamed when complete, so a killed run never leaves half a model. Kept apart from DuckDB because
they are large (``n (n + 1) / 2`` float64 per layer: 4 MB for 1000 images) and read layer by
layer.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np

from zooscope.errors import reading
from zooscope.feature_extraction.cka_gram import pack_gram, unpack_gram

logger = logging.getLogger(__name__)

__all__ = ["GramStore", "grams_path", "store_grams"]


def grams_path(db_path: str | Path) -> Path:
    """The Gram store that belongs to a results database (``x.duckdb`` -> ``x.grams.h5``)."""
    db_path = Path(db_path)
    return db_path.with_name(db_path.stem + ".grams.h5")


class GramStore:
    """Per-layer centred Gram matrices of models on a benchmark (see the module docstring).

    Parameters
    ----------
    path : str or Path
        The HDF5 file (created on the first write).
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)

    def write(
        self, benchmark_hash: str, model_uid: str, layers: Iterable[tuple[int, str, np.ndarray]]
    ) -> int:
        """Store a model's layers ``(layer_index, layer_name, gram)``, replacing old ones.

        ``gram`` is [n, n], or already packed by
        :func:`~zooscope.feature_extraction.cka_gram.pack_gram`.

        Returns the number of layers written.
        """
        import h5py

        self.path.parent.mkdir(parents=True, exist_ok=True)
        count = 0
        with h5py.File(self.path, "a") as f:
            bench = f.require_group(benchmark_hash)
            tmp = f"{model_uid}.incomplete"
            if tmp in bench:
                del bench[tmp]
            group = bench.create_group(tmp)
            for position, (index, name, gram) in enumerate(layers):
                data = group.create_dataset(f"{position:05d}", data=pack_gram(gram))
                data.attrs["layer_index"] = int(index)
                data.attrs["layer_name"] = str(name)
                count += 1
            if model_uid in bench:
                del bench[model_uid]
            bench.move(tmp, model_uid)
        return count

    def models(self, benchmark_hash: str | None = None) -> dict[str, list[str]]:
        """``{benchmark_hash: [model_uid, ...]}`` of the complete models."""
        import h5py

        if not self.path.exists():
            return {}
        with h5py.File(self.path, "r") as f:
            return {
                b: sorted(m for m in f[b] if not m.endswith(".incomplete"))
                for b in f
                if benchmark_hash in (None, b)
            }

    def read(
        self,
        model_uid: str,
        benchmark_hash: str | None = None,
        names: Iterable[str] | None = None,
    ) -> list[tuple[int, str, np.ndarray]]:
        """A model's layers in extraction order: ``(layer_index, layer_name, gram [n, n])``.

        ``benchmark_hash`` may be left out when the model is stored for one benchmark only;
        ``names`` reads only these layers (the others are not loaded).
        """
        import h5py

        found = [b for b, models in self.models(benchmark_hash).items() if model_uid in models]
        if not found:
            raise KeyError(
                f"no Gram matrices of {model_uid!r} in {self.path}; extract them with the "
                "CKAGramConsumer (zooscope analyze layer-cka --benchmark ... --manifest ...)"
            )
        if len(found) > 1:
            raise KeyError(f"{model_uid!r} has Gram matrices for benchmarks {found}; choose one")
        with h5py.File(self.path, "r") as f:
            group = f[found[0]][model_uid]
            wanted = None if names is None else set(names)
            return [
                (int(group[k].attrs["layer_index"]), str(group[k].attrs["layer_name"]),
                 unpack_gram(group[k][()]))
                for k in sorted(group)
                if wanted is None or str(group[k].attrs["layer_name"]) in wanted
            ]  # fmt: skip

    def shared_benchmark(self, models: Iterable[str]) -> str | None:
        """The benchmark every one of ``models`` is stored for (None if none; error if several)."""
        models = set(models)
        shared = [b for b, stored in self.models().items() if models <= set(stored)]
        if len(shared) > 1:
            raise KeyError(
                f"models {sorted(models)} have Grams for benchmarks {shared}; choose one"
            )
        return shared[0] if shared else None


def store_grams(db_path: str | Path, benchmark_hash: str, outcome: Any) -> int:
    """Write a scored model's kept Grams (``ModelScores.grams``) to the store next to ``db_path``."""

    uid = outcome.model["model_uid"]
    path = grams_path(db_path)
    with reading(path, "the Gram store of the results database (HDF5)"):
        count = GramStore(path).write(benchmark_hash, uid, outcome.grams)
    logger.debug("%s: %d Gram matrices stored next to %s", uid, count, db_path)
    return count
