"""Exact Pearson RSMs of full activations, accumulated over feature chunks.

For activations ``X`` [n, p] split by columns into chunks ``X_c`` [n, p_c] with per-row chunk
means ``mu_c`` [n], write ``Y_c = X_c - mu_c 1^T`` (centred within the chunk). With the full row
mean ``m = sum_c p_c mu_c / p``,

.. math::

    (X - m 1^T)(X - m 1^T)^T = \\sum_c Y_c Y_c^T + \\sum_c p_c (\\mu_c - m)(\\mu_c - m)^T,

because ``Y_c 1 = 0`` kills the cross terms. Accumulating the centred products (in float64)
avoids the cancellation of the naive ``X X^T - p m m^T`` when activations have large means, and
the chunks can arrive in any order, in different passes over the images. The Pearson RSM is the
centred Gram matrix ``G`` normalised as ``G_ij / sqrt(G_ii G_jj)``.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from zooscope._gram import gram_product


class GramAccumulator:
    """Accumulate the row-centred Gram matrix of ``[n, p]`` activations, chunk by chunk.

    Parameters
    ----------
    n_samples : int
        ``n``, the number of images (rows).
    n_features : int
        ``p``, the total number of features the chunks will add up to.
    """

    def __init__(self, n_samples: int, n_features: int) -> None:
        self.n_samples = n_samples
        self.n_features = n_features
        self.gram = np.zeros((n_samples, n_samples), dtype=np.float64)
        self.chunk_means: list[np.ndarray] = []
        self.chunk_sizes: list[int] = []

    @property
    def features_seen(self) -> int:
        """Features accumulated so far."""
        return sum(self.chunk_sizes)

    @property
    def complete(self) -> bool:
        """True once every feature has been added."""
        return self.features_seen == self.n_features

    def add(self, chunk: Any, overwrite: bool = False) -> None:
        """Add the columns ``chunk`` [n, p_c] (numpy array or torch tensor, any device).

        With ``overwrite=True`` the chunk is centred in place instead of in a copy, so adding a
        chunk needs no memory beyond the chunk itself (the caller must not reuse it).
        """
        if chunk.shape[0] != self.n_samples:
            raise ValueError(f"chunk has {chunk.shape[0]} rows, expected {self.n_samples}")
        if self.features_seen + chunk.shape[1] > self.n_features:
            raise ValueError("more features added than the layer has")
        mean = chunk.mean(1)[:, None]  # works for numpy arrays and torch tensors alike
        if overwrite:
            chunk -= mean  # in place for numpy arrays and torch tensors alike
            centred = chunk
        else:
            centred = chunk - mean
        product = gram_product(centred)  # numpy: split by columns over threads (zooscope._gram)
        if not isinstance(product, np.ndarray):  # computed on the chunk's device
            product, mean = product.cpu().numpy(), mean.double().cpu().numpy()
        self.gram += product
        self.chunk_means.append(np.asarray(mean, dtype=np.float64)[:, 0])
        self.chunk_sizes.append(int(chunk.shape[1]))

    def row_centred_gram(self) -> np.ndarray:
        """``(X - m 1^T)(X - m 1^T)^T`` [n, n], float64, once every feature was added."""
        if not self.complete:
            raise RuntimeError(
                f"only {self.features_seen} of {self.n_features} features were added"
            )
        sizes = np.asarray(self.chunk_sizes, dtype=np.float64)
        means = np.stack(self.chunk_means, axis=1)  # [n, chunks]
        full_mean = means @ sizes / sizes.sum()
        offsets = means - full_mean[:, None]
        return self.gram + (offsets * sizes) @ offsets.T

    def rsm(self, dtype: str = "float32") -> np.ndarray:
        """The Pearson RSM [n, n] of the rows (constant rows give NaN, like ``np.corrcoef``)."""
        return correlation_from_gram(self.row_centred_gram(), dtype)


def correlation_from_gram(gram: np.ndarray, dtype: str = "float32") -> np.ndarray:
    """``G_ij / sqrt(G_ii G_jj)`` of a centred Gram matrix [n, n]: the Pearson RSM of its rows.

    A row with ``G_ii = 0`` (constant activations) gives NaN in its row and column, diagonal
    included, like ``np.corrcoef``.
    """
    norms = np.sqrt(np.diag(gram))
    with np.errstate(invalid="ignore", divide="ignore"):
        rsm = gram / np.outer(norms, norms)
    np.fill_diagonal(rsm, np.where(norms > 0, 1.0, np.nan))
    return rsm.astype(dtype)
