r"""Layer-by-layer linear CKA between models, aligned by relative depth.

Each model's layers get a relative depth :math:`d_i = i / (L - 1)` in extraction order. For every
layer of model A, the layer of model B with the nearest relative depth (ties: the shallower) is
compared with linear CKA (:func:`zooscope.rsa.cka` on the stored feature-centred Gram matrices),
biased and debiased. Two copies of one network give 1 at every layer.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from zooscope.results.grams import GramStore
from zooscope.rsa.cka import cka, cka_matrix

__all__ = ["layer_cka", "layer_cka_from_grams", "model_cka_matrix", "relative_depth"]


def relative_depth(n_layers: int) -> np.ndarray:
    """``i / (n_layers - 1)`` for ``i = 0 .. n_layers - 1`` (a single layer has depth 1)."""
    if n_layers < 1:
        raise ValueError("a model needs at least one layer")
    return np.ones(1) if n_layers == 1 else np.arange(n_layers) / (n_layers - 1)


def layer_cka_from_grams(
    grams_a: Sequence[tuple[int, str, np.ndarray]], grams_b: Sequence[tuple[int, str, np.ndarray]]
) -> pd.DataFrame:
    """CKA of every layer of A with B's layer at the nearest relative depth.

    Parameters
    ----------
    grams_a, grams_b : sequence of (layer_index, layer_name, gram [n, n])
        In extraction order (:meth:`GramStore.read`), over the same ``n`` images.

    Returns
    -------
    DataFrame
        ``layer_a, depth_a, layer_b, depth_b, cka, cka_debiased``, one row per layer of A.
    """
    depth_a, depth_b = relative_depth(len(grams_a)), relative_depth(len(grams_b))
    rows = []
    for (_, name_a, gram_a), d in zip(grams_a, depth_a, strict=True):
        j = int(np.argmin(np.abs(depth_b - d)))  # argmin: the first (shallower) on ties
        gram_b = grams_b[j][2]
        if gram_a.shape != gram_b.shape:
            raise ValueError(
                f"Gram matrices over different images: {gram_a.shape} vs {gram_b.shape}"
            )
        rows.append(
            {
                "layer_a": name_a,
                "depth_a": float(d),
                "layer_b": grams_b[j][1],
                "depth_b": float(depth_b[j]),
                "cka": cka(gram_a, gram_b, gram=True),
                "cka_debiased": cka(gram_a, gram_b, debiased=True, gram=True),
            }
        )
    return pd.DataFrame(rows)


def layer_cka(
    store: GramStore, model_a: str, model_b: str, benchmark_hash: str | None = None
) -> pd.DataFrame:
    """:func:`layer_cka_from_grams` of two models' stored Gram matrices (plus ``pair``)."""
    out = layer_cka_from_grams(
        store.read(model_a, benchmark_hash), store.read(model_b, benchmark_hash)
    )
    out.insert(0, "model_b", model_b)
    out.insert(0, "model_a", model_a)
    return out


def model_cka_matrix(
    store: GramStore,
    models: Sequence[str],
    depth: float = 1.0,
    *,
    layers: dict[str, str] | None = None,
    debiased: bool = False,
    benchmark_hash: str | None = None,
) -> pd.DataFrame:
    """Model x model CKA at one layer per model.

    Parameters
    ----------
    store : GramStore
    models : sequence of str
    depth : float
        Relative depth of the layer used for models not in ``layers`` (nearest layer).
    layers : dict, optional
        ``{model_uid: layer_name}``, e.g. each model's IT-committed layer.
    debiased : bool

    Returns
    -------
    DataFrame, shape (n_models, n_models)
        Indexed and labelled by model uid.
    """
    grams = []
    for uid in models:
        named_only = [layers[uid]] if layers and uid in layers else None
        stored = store.read(uid, benchmark_hash, names=named_only)
        if named_only:
            named = [g for _, name, g in stored if name == layers[uid]]
            if not named:
                raise KeyError(f"{uid!r} has no stored layer {layers[uid]!r}")
            grams.append(named[0])
        else:
            j = int(np.argmin(np.abs(relative_depth(len(stored)) - depth)))
            grams.append(stored[j][2])
    matrix = cka_matrix(grams, debiased=debiased)
    return pd.DataFrame(matrix, index=list(models), columns=list(models))
