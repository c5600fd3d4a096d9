r"""Exact Gram matrices of full activations from one product: linear CKA's and the RSM's.

Linear CKA compares representations through :math:`\tilde K = H X X^\top H`
(:math:`H = I - 11^\top / n`), the Gram matrix of the activations ``X`` [n, p] with every
*feature* centred over the images; the exact Pearson RSM is the normalised Gram matrix of ``X``
with every *image* centred over the features, :math:`G = (X - m1^\top)(X - m1^\top)^\top`
(``m`` [n]: the row means). Both come from one product per column.

The extraction hands a layer over in column chunks :math:`X_c` [n, p_c] that hold every image.
Each is split two ways (an exact identity),

.. math:: X_c = 1\mu_c^\top + r_c 1^\top + W_c,

with :math:`\mu_c` [p_c] its column means, :math:`\bar\mu_c` their mean,
:math:`r_c = m_c - \bar\mu_c 1` [n] its row effects and :math:`W_c` doubly centred
(:math:`W_c 1 = 0`, :math:`1^\top W_c = 0`). Only :math:`W_c W_c^\top` is a product over
columns; the rest are vectors:

.. math::

    H X X^\top H = \sum_c W_c W_c^\top + p_c r_c r_c^\top

    G = \sum_c W_c W_c^\top + p_c s_c s_c^\top + p_c d_c (1 s_c^\top + s_c 1^\top)
        + 1 q^\top + q 1^\top + \Big(\sum_c \lVert\mu_c - \bar\mu_c 1\rVert^2 + p_c d_c^2\Big)
        11^\top

where, with :math:`\bar\mu = \sum_c p_c\bar\mu_c / p` and :math:`\bar r = \sum_c p_c r_c / p`,
:math:`d_c = \bar\mu_c - \bar\mu`, :math:`s_c = r_c - \bar r` and
:math:`q = \sum_c W_c(\mu_c - \bar\mu_c 1)`. Neither the features' mean pattern nor the
images' means enter the product, so nothing large cancels: a float32 product keeps the
precision of its (small) doubly centred entries, and the chunks may come in any order.
Memory: ``n x n`` float64 per layer (8 MB for 1000 images), plus ``n`` floats per chunk.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch

from zooscope.feature_extraction.gram import correlation_from_gram

__all__ = ["CentredGramAccumulator", "pack_gram", "unpack_gram"]

#: Columns multiplied at a time: bounds a float64 copy to n * BLOCK * 8 bytes, and the length of
#: a float32 product's sums (its rounding grows with the number of terms).
BLOCK = 2048


class CentredGramAccumulator:
    """Accumulate :math:`HXX^\\top H` and the row-centred Gram of ``X`` [n, p] from column chunks.

    Parameters
    ----------
    n_samples : int
        ``n``, the number of images.
    n_features : int
        ``p``, the total number of features the chunks add up to.
    product : {"float32", "float64"}
        The precision of the products :math:`W_c W_c^\\top`, taken over blocks of at most
        ``BLOCK`` columns and summed in float64. ``"float64"`` converts each block (entries exact
        to ~1e-15 relative). ``"float32"`` (what an extraction uses) centres the float32 columns
        in place and multiplies them as they are: about five times less work, with entries
        within ~1e-6 of the float64 ones relative to the diagonal, the exact RSMs' precision.
    """

    def __init__(self, n_samples: int, n_features: int, product: str = "float64") -> None:
        if product not in ("float32", "float64"):
            raise ValueError(f"product must be 'float32' or 'float64', got {product!r}")
        self.n_samples = n_samples
        self.n_features = n_features
        self.product = product
        self._products: Any = None  # sum_c W_c W_c^T [n, n], float64
        self._q: Any = 0.0  # sum_c W_c (mu_c - mean(mu_c)) [n], float64
        # per chunk: p_c, the mean of mu_c, ||mu_c - mean(mu_c)||^2, r_c [n]
        self._chunks: list[tuple[int, float, float, np.ndarray]] = []

    @property
    def features_seen(self) -> int:
        """Features accumulated so far."""
        return sum(chunk[0] for chunk in self._chunks)

    @property
    def complete(self) -> bool:
        """True once every feature has been added."""
        return self.features_seen == self.n_features

    def add(self, chunk: Any, overwrite: bool = False) -> None:
        """Add the columns ``chunk`` [n, p_c] (every image; numpy array or torch tensor).

        With ``overwrite=True`` a float32 chunk is centred in place instead of block by block in
        copies (the caller must not reuse it).
        """
        if chunk.shape[0] != self.n_samples:
            raise ValueError(f"chunk has {chunk.shape[0]} rows, expected {self.n_samples}")
        if self.features_seen + chunk.shape[1] > self.n_features:
            raise ValueError("more features added than the layer has")
        columns = _sum_float64(chunk, 0) / chunk.shape[0]  # mu_c [p_c]
        grand = float(columns.mean())
        effects = _sum_float64(chunk, 1) / chunk.shape[1] - grand  # r_c [n]
        spread = columns - grand
        self._chunks.append((int(chunk.shape[1]), grand, float(spread @ spread), _numpy(effects)))
        in_place = overwrite and self.product == "float32"
        if in_place:
            chunk -= _like(columns, chunk)
            chunk -= _like(effects, chunk)[:, None]
        for start in range(0, chunk.shape[1], BLOCK):
            part = slice(start, start + BLOCK)
            if in_place:
                block = chunk[:, part]
            else:
                block = _as_float64(chunk[:, part]) if self.product == "float64" else chunk[:, part]
                block = block - _like(columns[part], block)
                block -= _like(effects, block)[:, None]
            product = _as_float64(block @ block.T)  # on the block's device; BLAS's SYRK
            self._products = product if self._products is None else self._products + product
            self._q = self._q + _as_float64(block @ _like(spread[part], block))

    def gram(self) -> np.ndarray:
        """The feature-centred Gram matrix :math:`HXX^\\top H` [n, n], float64."""
        products, sizes, _, _, effects = self._parts()
        gram = products + (effects * sizes) @ effects.T
        # H (.) H: removes what float32 rounding left of the column means (else a no-op)
        column_means = gram.mean(0)
        return gram - column_means[None, :] - column_means[:, None] + column_means.mean()

    def row_centred_gram(self) -> np.ndarray:
        """``(X - m 1^T)(X - m 1^T)^T`` [n, n], float64 (``m``: the row means), from the same sums.

        The numerator of the Pearson RSM of the rows, as
        :meth:`zooscope.feature_extraction.gram.GramAccumulator.row_centred_gram` gives it.
        """
        products, sizes, grands, spreads, effects = self._parts()
        p = sizes.sum()
        deviations = grands - sizes @ grands / p  # d_c [chunks]
        shifts = effects - (effects @ sizes / p)[:, None]  # s_c [n, chunks]
        cross = shifts @ (sizes * deviations) + _numpy(self._q)  # [n]
        gram = products + (shifts * sizes) @ shifts.T
        gram += cross[:, None]
        gram += cross[None, :]
        gram += spreads.sum() + sizes @ deviations**2
        return gram

    def rsm(self, dtype: str = "float32") -> np.ndarray:
        """The Pearson RSM [n, n] of the rows (constant rows give NaN, like ``np.corrcoef``)."""
        return correlation_from_gram(self.row_centred_gram(), dtype)

    def _parts(self) -> tuple[np.ndarray, ...]:
        """Once complete: the products [n, n], p_c, mean mu_c, spread [chunks], r_c [n, chunks]."""
        if not self.complete:
            raise RuntimeError(
                f"only {self.features_seen} of {self.n_features} features were added"
            )
        n = self.n_samples
        if not self._chunks:  # a layer without features
            return np.zeros((n, n)), np.zeros(0), np.zeros(0), np.zeros(0), np.zeros((n, 0))
        sizes, grands, spreads, effects = zip(*self._chunks, strict=True)
        return (
            _numpy(self._products),
            np.asarray(sizes, dtype=np.float64),
            np.asarray(grands),
            np.asarray(spreads),
            np.stack(effects, axis=1),
        )


def _numpy(x: Any) -> np.ndarray:
    """A float64 host array of an accumulated numpy array or torch tensor."""
    x = x if isinstance(x, np.ndarray) else x.cpu().numpy()
    return np.asarray(x, dtype=np.float64)


def _as_float64(x: Any) -> Any:
    """``x`` in float64 (numpy array or torch tensor, on its device)."""
    return x.astype(np.float64) if isinstance(x, np.ndarray) else x.double()


def _like(values: Any, target: Any) -> Any:
    """float64 ``values`` in ``target``'s dtype (and kind: numpy array or torch tensor)."""
    if isinstance(target, np.ndarray):
        return np.asarray(values, dtype=target.dtype)
    return values.to(target.dtype)


def _sum_float64(x: Any, axis: int) -> Any:
    """Sum of an array or tensor along ``axis``, accumulated in float64."""
    if isinstance(x, np.ndarray):
        return x.sum(axis, dtype=np.float64)
    return x.sum(axis, dtype=torch.float64)


def pack_gram(gram: np.ndarray) -> np.ndarray:
    """A symmetric Gram matrix [n, n] as its upper triangle (``np.triu_indices(n)``), float64.

    Half the memory of the matrix; an already packed triangle [n (n + 1) / 2] is returned as is.
    """
    gram = np.asarray(gram, dtype=np.float64)
    if gram.ndim == 1:
        _triangle_side(gram.size)  # validates
        return gram
    if gram.ndim != 2 or gram.shape[0] != gram.shape[1]:
        raise ValueError(f"a Gram matrix must be square, got shape {gram.shape}")
    return gram[np.triu_indices(gram.shape[0])]


def unpack_gram(packed: np.ndarray) -> np.ndarray:
    """The symmetric [n, n] matrix of a :func:`pack_gram` triangle."""
    n = _triangle_side(packed.size)
    gram = np.zeros((n, n))
    iu = np.triu_indices(n)
    gram[iu] = packed
    gram.T[iu] = packed
    return gram


def _triangle_side(size: int) -> int:
    n = (math.isqrt(8 * size + 1) - 1) // 2
    if n * (n + 1) // 2 != size:
        raise ValueError(f"{size} values are not an n (n + 1) / 2 triangle")
    return n
