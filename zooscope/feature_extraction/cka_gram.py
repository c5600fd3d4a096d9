r"""Exact feature-centred Gram matrices of full activations, for layer-by-layer linear CKA.

Linear CKA compares representations through :math:`\tilde K = H X X^\top H`
(:math:`H = I - 11^\top / n`), the Gram matrix of the activations with every *feature* centred
over the images. (The Pearson-RSM Gram of :mod:`zooscope.feature_extraction.gram` centres every
*image* over the features instead; it is a different matrix.) The extraction hands a layer over
in column chunks that hold every image, so each chunk is centred exactly by its own column means
and

.. math:: H X X^\top H = \sum_c (X_c - 1\mu_c^\top)(X_c - 1\mu_c^\top)^\top,

a sum of products of centred columns: nothing large cancels (the features' mean pattern never
enters a product), so float32 products of blocks of columns, summed in float64, keep CKA to
~1e-7 (what an extraction uses); float64 products are exact to ~1e-15. The chunks may come in any
order. Memory: ``n x n`` float64 per layer (8 MB for 1000 images), like the exact RSMs.

Why not derive the RSM's row-centred Gram from this product (or this one from the RSM's) and
multiply once? Either way round, one matrix is the other minus rank-one terms, and the
subtraction cancels where those terms dominate: an image whose activations are nearly constant
(the squeeze-excitation gates of MobileNetV3 saturate at 0 or 1) has a row-centred vector
:math:`x_i - m_i 1` far smaller than its feature-centred one, and a float32 product then loses
its RSM row (measured: RSM entries off by 0.06, constant rows no longer NaN, and the demo's
MobileNetV3 cRSA moved from 0.146 to 0.130). Each Gram is therefore the product of its own
centred columns.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch

from zooscope._gram import gram_product

__all__ = ["CentredGramAccumulator", "pack_gram", "unpack_gram"]

#: Columns multiplied at a time: bounds a float64 copy to n * BLOCK * 8 bytes, and the length of
#: a float32 product's sums (its rounding grows with the number of terms).
BLOCK = 2048


class CentredGramAccumulator:
    """Accumulate :math:`HXX^\\top H` of activations ``X`` [n, p] from column chunks.

    Parameters
    ----------
    n_samples : int
        ``n``, the number of images.
    n_features : int
        ``p``, the total number of features the chunks add up to.
    product : {"float32", "float64"}
        The precision of the products of centred blocks of at most ``BLOCK`` columns, summed in
        float64. ``"float64"`` converts each block (entries exact to ~1e-15 relative);
        ``"float32"`` (what an extraction uses) multiplies float32 blocks as they come: about a
        third of the work, with entries within ~1e-6 of the float64 ones relative to the
        diagonal and CKA within ~1e-7.
    """

    def __init__(self, n_samples: int, n_features: int, product: str = "float64") -> None:
        if product not in ("float32", "float64"):
            raise ValueError(f"product must be 'float32' or 'float64', got {product!r}")
        self.n_samples = n_samples
        self.n_features = n_features
        self.product = product
        self.features_seen = 0
        self._gram: Any = None  # sum_c Z_c Z_c^T [n, n], float64

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
        means = _sum_float64(chunk, 0) / chunk.shape[0]  # mu_c [p_c], accumulated in float64
        in_place = overwrite and self.product == "float32"
        if in_place:
            chunk -= _like(means, chunk)
        # numpy arrays are split by columns over threads (zooscope._gram)
        product = gram_product(chunk, None if in_place else means, self.product, BLOCK)
        self._gram = product if self._gram is None else self._gram + product
        self.features_seen += int(chunk.shape[1])

    def gram(self) -> np.ndarray:
        """The feature-centred Gram matrix [n, n], float64, once every feature was added."""
        if not self.complete:
            raise RuntimeError(
                f"only {self.features_seen} of {self.n_features} features were added"
            )
        if self._gram is None:
            return np.zeros((self.n_samples, self.n_samples))
        gram = _numpy(self._gram)
        # H (.) H: removes what float32 rounding left of the column means (else a no-op)
        column_means = gram.mean(0)
        return gram - column_means[None, :] - column_means[:, None] + column_means.mean()


def _numpy(x: Any) -> np.ndarray:
    """A float64 host array of an accumulated numpy array or torch tensor."""
    x = x if isinstance(x, np.ndarray) else x.cpu().numpy()
    return np.asarray(x, dtype=np.float64)


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
