r"""Exact feature-centred Gram matrices of full activations, for layer-by-layer linear CKA.

Linear CKA compares representations through :math:`\tilde K = H X X^\top H`
(:math:`H = I - 11^\top / n`), the Gram matrix of the activations with every *feature* centred
over the images. (The Pearson-RSM Gram of :mod:`zooscope.feature_extraction.gram` centres every
*image* over the features instead; it is a different matrix.) The extraction hands a layer over
in column chunks that hold every image, so each chunk is centred exactly by its own column means
and

.. math:: H X X^\top H = \sum_c (X_c - 1\mu_c^\top)(X_c - 1\mu_c^\top)^\top,

accumulated in float64 (the chunk is converted in blocks of columns, so the float64 copy stays
small). No large-mean cancellation, and the chunks may come in any order. Memory: ``n x n``
float64 per layer (8 MB for 1000 images), like the exact RSMs.

The same product also gives the exact RSM's row-centred Gram matrix, so a survey that keeps
both pays for one product per column, not two. Write :math:`Z = HX` and :math:`\mu` [p] for
the column means (:math:`X = Z + 1\mu^\top`), :math:`\bar\mu = 1^\top\mu / p`,
:math:`\nu = \mu - \bar\mu 1` and :math:`a = Z1` [n]. The row means of :math:`X` are
:math:`a / p + \bar\mu 1`, and since :math:`1^\top\nu = 0`,

.. math::

    (X - m 1^\top)(X - m 1^\top)^\top = ZZ^\top - \frac{a a^\top}{p} + (Z\nu) 1^\top
        + 1 (Z\nu)^\top + \lVert\nu\rVert^2 11^\top,

where :math:`Z\nu = \sum_c Z_c\mu_c - \bar\mu a` and
:math:`\lVert\nu\rVert^2 = \sum_c \lVert\mu_c\rVert^2 - p\bar\mu^2` add up over column
blocks like :math:`ZZ^\top` does. Every term is a sum, not a difference of large products (the
image means that the RSM removes never enter the product), so the derived matrix keeps the
float64 product's precision.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from zooscope.feature_extraction.gram import correlation_from_gram

__all__ = ["CentredGramAccumulator", "pack_gram", "unpack_gram"]

#: Columns converted to float64 at a time (bounds the extra memory to n * BLOCK * 8 bytes).
BLOCK = 2048


class CentredGramAccumulator:
    """Accumulate :math:`HXX^\\top H` of activations ``X`` [n, p] from column chunks.

    Parameters
    ----------
    n_samples : int
        ``n``, the number of images.
    n_features : int
        ``p``, the total number of features the chunks add up to.
    """

    def __init__(self, n_samples: int, n_features: int) -> None:
        self.n_samples = n_samples
        self.n_features = n_features
        self.features_seen = 0
        self._gram: Any = None  # sum_c Z_c Z_c^T [n, n]
        self._row_sums: Any = 0.0  # a = sum_c Z_c 1 [n]
        self._mean_products: Any = 0.0  # sum_c Z_c mu_c [n]
        self._mean_sum = 0.0  # sum of every column mean
        self._mean_squares = 0.0  # sum of every squared column mean

    @property
    def complete(self) -> bool:
        """True once every feature has been added."""
        return self.features_seen == self.n_features

    def add(self, chunk: Any) -> None:
        """Add the columns ``chunk`` [n, p_c] (every image; numpy array or torch tensor)."""
        if chunk.shape[0] != self.n_samples:
            raise ValueError(f"chunk has {chunk.shape[0]} rows, expected {self.n_samples}")
        if self.features_seen + chunk.shape[1] > self.n_features:
            raise ValueError("more features added than the layer has")
        for start in range(0, chunk.shape[1], BLOCK):
            block = chunk[:, start : start + BLOCK]
            block = block.astype(np.float64) if isinstance(block, np.ndarray) else block.double()
            means = block.mean(0)
            block = block - means
            product = block @ block.T  # on the chunk's device; BLAS's SYRK for X X^T
            self._gram = product if self._gram is None else self._gram + product
            self._row_sums = self._row_sums + block.sum(1)
            self._mean_products = self._mean_products + block @ means
            self._mean_sum += float(means.sum())
            self._mean_squares += float(means @ means)
        self.features_seen += int(chunk.shape[1])

    def gram(self) -> np.ndarray:
        """The feature-centred Gram matrix [n, n], float64, once every feature was added."""
        if not self.complete:
            raise RuntimeError(
                f"only {self.features_seen} of {self.n_features} features were added"
            )
        if self._gram is None:
            return np.zeros((self.n_samples, self.n_samples))
        return _numpy(self._gram)

    def row_centred_gram(self) -> np.ndarray:
        """``(X - m 1^T)(X - m 1^T)^T`` [n, n], float64 (``m``: the row means), from the same sums.

        The numerator of the Pearson RSM of the rows, as
        :meth:`zooscope.feature_extraction.gram.GramAccumulator.row_centred_gram` gives it.
        """
        gram = self.gram()
        if self._gram is None:
            return gram
        p = self.n_features
        row_sums = _numpy(self._row_sums)
        grand_mean = self._mean_sum / p
        z_nu = _numpy(self._mean_products) - grand_mean * row_sums
        nu_squared = self._mean_squares - p * grand_mean**2
        out = gram - np.outer(row_sums, row_sums / p)
        out += z_nu[:, None]
        out += z_nu[None, :]
        out += nu_squared
        return out

    def rsm(self, dtype: str = "float32") -> np.ndarray:
        """The Pearson RSM [n, n] of the rows (constant rows give NaN, like ``np.corrcoef``)."""
        return correlation_from_gram(self.row_centred_gram(), dtype)


def _numpy(x: Any) -> np.ndarray:
    """A float64 host array of an accumulated numpy array or torch tensor."""
    return x if isinstance(x, np.ndarray) else x.cpu().numpy()


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
