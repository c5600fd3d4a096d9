"""Sparse random projection (SRP), applied batch by batch as activations arrive.

The projection matrix ``R`` (``p x k``) has i.i.d. entries

.. math::

    R_{fj} = \\begin{cases} +\\sqrt{1/d}/\\sqrt{k} & \\text{with probability } d/2 \\\\
                            0 & \\text{with probability } 1 - d \\\\
                            -\\sqrt{1/d}/\\sqrt{k} & \\text{with probability } d/2 \\end{cases}

with density :math:`d = 1/\\sqrt{p}` (Li, Hastie & Church 2006; scikit-learn's
``SparseRandomProjection``), so pairwise distances are preserved within ``eps`` when
``k >= johnson_lindenstrauss_min_dim(n, eps)``. Because ``X R = \\sum_b X_b R`` over any split of
the rows of ``X``, projecting each batch of images as it arrives gives exactly the projection of
the full matrix, and only ``R`` (``k sqrt(p)`` non-zeros) and the ``n x k`` result are ever held.
"""

from __future__ import annotations

import zlib
from typing import Any, Literal

import numpy as np
import scipy.sparse as sp
from sklearn.random_projection import SparseRandomProjection, johnson_lindenstrauss_min_dim


def jl_components(n_samples: int, eps: float = 0.1) -> int:
    """Johnson-Lindenstrauss dimension for ``n_samples`` points (eps=0.1, n=1000 -> 5920)."""
    return int(johnson_lindenstrauss_min_dim(n_samples, eps=eps))


def layer_seed(seed: int, layer: str) -> list[int]:
    """Seed sequence of one layer's matrix: reruns are identical, layers are independent."""
    return [int(seed), zlib.crc32(layer.encode())]


def sparse_random_matrix(
    n_features: int, n_components: int, density: float, rng: np.random.Generator
) -> sp.csr_array:
    """Draw ``R`` [n_features, n_components] as feature-major CSR, float32.

    The non-zero positions of the flattened ``p x k`` grid form a Bernoulli(``density``) process;
    they are drawn directly as cumulative sums of geometric gaps, which costs O(nnz) rather than
    O(p k) and yields the positions already sorted in CSR order.
    """
    total = n_features * n_components
    expected = total * density
    chunks: list[np.ndarray] = []
    last = -1
    while last < total:
        gaps = rng.geometric(density, size=int(expected * 1.05) + 1024)
        positions = last + np.cumsum(gaps)
        chunks.append(positions)
        last = int(positions[-1])
    positions = np.concatenate(chunks)
    positions = positions[: np.searchsorted(positions, total)]  # sorted: cut, do not mask
    rows, cols = np.divmod(positions, n_components)
    scale = np.float32(np.sqrt(1.0 / density) / np.sqrt(n_components))
    signs = rng.integers(0, 2, size=positions.size, dtype=np.int8)
    values = np.where(signs == 1, scale, -scale)  # float32 directly, no float64 temporary
    # int32 indices whenever they fit: 8 instead of 12 bytes per non-zero, and scipy keeps
    # int32 indices only when indptr is int32 too.
    index_dtype = np.int32 if positions.size < np.iinfo(np.int32).max else np.int64
    indptr = np.zeros(n_features + 1, dtype=index_dtype)
    np.cumsum(np.bincount(rows, minlength=n_features), out=indptr[1:])
    return sp.csr_array((values, cols.astype(index_dtype), indptr), shape=(n_features, n_components))


class SparseRandomProjector:
    """Project ``[n, p]`` activations to ``[n, k]``, one batch at a time.

    Parameters
    ----------
    n_features : int
        ``p``, the flattened size of the layer.
    n_components : int
        ``k`` (see :func:`jl_components`).
    seed : int
        Base seed; the matrix depends on ``(seed, layer)``.
    layer : str
        Layer name, mixed into the seed so that layers get independent matrices.
    density : float or "auto"
        Fraction of non-zeros; ``"auto"`` is ``1/sqrt(p)``.
    upsample : bool
        When ``p <= k``, project anyway (to ``k`` dimensions) instead of passing the features
        through unchanged (Conwell et al. keep them unchanged).
    mode : {"fast", "sklearn"}
        ``"sklearn"`` reproduces ``SparseRandomProjection(n_components=k, random_state=seed)``
        exactly (the layer name is then not mixed into the seed); ``"fast"`` draws the same
        distribution in O(nnz).

    Attributes
    ----------
    matrix : scipy.sparse.csr_array or None
        ``R`` [p, k], float32; None when features pass through unchanged.
    n_output : int
        Width of the projected features.
    """

    def __init__(
        self,
        n_features: int,
        n_components: int,
        seed: int = 0,
        layer: str = "",
        density: float | Literal["auto"] = "auto",
        upsample: bool = False,
        mode: Literal["fast", "sklearn"] = "fast",
    ) -> None:
        if n_features < 1 or n_components < 1:
            raise ValueError(f"need n_features >= 1 and n_components >= 1, got {n_features}, {n_components}")
        self.n_features = n_features
        self.n_components = n_components
        self.seed = seed
        self.layer = layer
        self.density = 1.0 / np.sqrt(n_features) if density == "auto" else float(density)
        if not 0 < self.density <= 1:
            raise ValueError(f"density must be in (0, 1], got {self.density}")
        self.upsample = upsample
        self.mode = mode
        self.passthrough = n_features <= n_components and not upsample
        self.n_output = n_features if self.passthrough else n_components
        self.matrix: sp.csr_array | None = None if self.passthrough else self._draw()
        self._torch_matrix: dict[str, Any] = {}

    def _draw(self) -> sp.csr_array:
        if self.mode == "sklearn":
            # The public estimator only needs X's width to draw its matrix.
            srp = SparseRandomProjection(n_components=self.n_components, density=self.density, random_state=self.seed)
            srp.fit(sp.csr_array((1, self.n_features), dtype=np.float64))
            return sp.csr_array(srp.components_.T.astype(np.float32))
        if self.mode != "fast":
            raise ValueError(f"mode must be 'fast' or 'sklearn', got {self.mode!r}")
        rng = np.random.default_rng(layer_seed(self.seed, self.layer))
        return sparse_random_matrix(self.n_features, self.n_components, self.density, rng)

    @property
    def nbytes(self) -> int:
        """Memory held by the projection matrix."""
        if self.matrix is None:
            return 0
        m = self.matrix
        return m.data.nbytes + m.indices.nbytes + m.indptr.nbytes

    def project_ones(self) -> np.ndarray:
        """``1^T R`` [n_output], float64: the image of the all-ones feature vector.

        Projecting a row-centred ``x - m 1`` equals ``transform(x) - m * project_ones()``.
        """
        if self.matrix is None:
            return np.ones(self.n_output)
        return np.asarray(self.matrix.sum(axis=0, dtype=np.float64)).ravel()

    def params(self) -> dict[str, Any]:
        """The parameters that determine the output (for cache keys and provenance)."""
        return {
            "n_components": self.n_components,
            "seed": self.seed,
            "density": self.density,
            "upsample": self.upsample,
            "mode": self.mode,
        }

    def transform(self, X: Any) -> Any:
        """Project a batch.

        Parameters
        ----------
        X : numpy.ndarray or torch.Tensor, shape [b, p]
            Flattened activations (float32). CUDA tensors are projected on the GPU.

        Returns
        -------
        Same type as ``X``, shape [b, n_output], float32.
        """
        if X.shape[-1] != self.n_features:
            raise ValueError(f"expected {self.n_features} features, got {X.shape[-1]}")
        if self.passthrough:
            return X
        if isinstance(X, np.ndarray):
            return np.asarray(X @ self.matrix, dtype=np.float32)
        import torch

        if X.device.type == "cpu":
            # scipy's dense @ CSR beats torch's CPU sparse kernels by >10x here (measured).
            return torch.from_numpy(np.asarray(X.numpy() @ self.matrix, dtype=np.float32))
        Rt = self._torch_transpose(X.device)
        return (Rt @ X.T).T

    def _torch_transpose(self, device: Any) -> Any:
        """``R^T`` as a torch CSR tensor on ``device`` (cuSPARSE prefers CSR @ dense)."""
        import torch

        key = str(device)
        if key not in self._torch_matrix:
            Rt = sp.csr_array(self.matrix.T)
            self._torch_matrix[key] = torch.sparse_csr_tensor(
                torch.from_numpy(Rt.indptr.astype(np.int64)),
                torch.from_numpy(Rt.indices.astype(np.int64)),
                torch.from_numpy(Rt.data),
                size=Rt.shape,
            ).to(device)
        return self._torch_matrix[key]
