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

``R`` is stored as signs in cache-sized tiles and applied by a compiled kernel
(:mod:`zooscope.feature_extraction.srp_kernels`); on CUDA it is a cuSPARSE CSR matrix.
"""

from __future__ import annotations

import zlib
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import scipy.sparse as sp
from sklearn.random_projection import johnson_lindenstrauss_min_dim

from zooscope.feature_extraction import sklearn_draw, srp_kernels

# Identifies how "fast" mode draws R; part of every cache key, so a new generator never reuses
# features projected with another one. v2: gaps from log(1 - U) instead of log1p(-U), the same
# number mathematically, but the two libm functions may round differently.
GENERATOR = "splitmix64-tiles-v2"


def generator_id(mode: str) -> str:
    """What draws ``R`` in ``mode``: this module's generator, or scikit-learn's."""
    return GENERATOR if mode == "fast" else mode


def jl_components(n_samples: int, eps: float = 0.1) -> int:
    """Johnson-Lindenstrauss dimension for ``n_samples`` points (eps=0.1, n=1000 -> 5920)."""
    return int(johnson_lindenstrauss_min_dim(n_samples, eps=eps))


def layer_seed(seed: int, layer: str) -> list[int]:
    """Seed sequence of one layer's matrix: reruns are identical, layers are independent."""
    return [int(seed), zlib.crc32(layer.encode())]


#: Bytes of sklearn-mode matrices kept for reuse in this process (see :func:`_sklearn_signs`).
SKLEARN_CACHE_BYTES = 256 * 2**20
_sklearn_cache: OrderedDict[tuple[int, int, float, int], TiledSigns] = OrderedDict()


def _sklearn_signs(n_features: int, n_components: int, density: float, seed: int) -> TiledSigns:
    """``SparseRandomProjection(n_components, density=density, random_state=seed)``'s matrix for
    ``n_features`` inputs, in tile storage.

    scikit-learn draws it row by row in Python (seconds for a layer of a million features;
    :mod:`~zooscope.feature_extraction.sklearn_draw` draws the same matrix about five times
    faster) and it depends only on these four numbers (the published procedure does not mix in the layer), so
    the layers of one width, in one model and across the models of a survey, share one draw: the
    last draws are kept, least recently used first out, up to :data:`SKLEARN_CACHE_BYTES`.
    """
    key = (n_features, n_components, float(density), int(seed))
    signs = _sklearn_cache.get(key)
    if signs is None:
        # the same matrix as scikit-learn's, drawn without its per-element Python loop, unless
        # the installed scikit-learn draws differently (checked once per process)
        draw = sklearn_draw.draw_components if sklearn_draw.matches_sklearn() else None
        components = (draw or sklearn_draw.sklearn_components)(
            n_features, n_components, density, seed
        )
        signs = TiledSigns.from_csr(sp.csr_array(components.T))
        _sklearn_cache[key] = signs
        while len(_sklearn_cache) > 1 and (
            sum(s.nbytes for s in _sklearn_cache.values()) > SKLEARN_CACHE_BYTES
        ):
            _sklearn_cache.popitem(last=False)
    _sklearn_cache.move_to_end(key)
    return signs


@dataclass(frozen=True)
class TiledSigns:
    """``R = scale * S`` [p, k] in tile storage (see :mod:`~zooscope.feature_extraction.srp_kernels`).

    Attributes
    ----------
    n_features, n_components : int
    tile_rows : int
    scale : numpy.float32
        Magnitude of every non-zero, ``sqrt(1/density) / sqrt(k)``.
    tile_ptr : numpy.ndarray, shape [n_row_tiles * n_col_tiles + 1], int64
    rows : numpy.ndarray, shape [nnz], uint16
    codes : numpy.ndarray, shape [nnz], uint8
    """

    n_features: int
    n_components: int
    tile_rows: int
    scale: np.float32
    tile_ptr: np.ndarray
    rows: np.ndarray
    codes: np.ndarray

    @property
    def n_col_tiles(self) -> int:
        return srp_kernels.col_tiles(self.n_components)

    @property
    def nnz(self) -> int:
        return int(self.rows.size)

    @property
    def nbytes(self) -> int:
        return self.tile_ptr.nbytes + self.rows.nbytes + self.codes.nbytes

    def coordinates(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``(feature, component, sign)`` of every non-zero, in tile order."""
        tiles = np.repeat(np.arange(self.tile_ptr.size - 1), np.diff(self.tile_ptr))
        row_tile, col_tile = np.divmod(tiles, self.n_col_tiles)
        features = row_tile * self.tile_rows + self.rows
        components = col_tile * srp_kernels.TILE_COLS + (self.codes >> 1)
        signs = 1 - 2 * (self.codes & 1).astype(np.int8)
        return features, components, signs

    def to_csr(self) -> sp.csr_array:
        """``R`` [p, k] as a float32 scipy CSR matrix with sorted indices."""
        features, components, signs = self.coordinates()
        order = np.lexsort((components, features))
        index_dtype = (
            np.int32 if max(self.nnz, self.n_components) < np.iinfo(np.int32).max else np.int64
        )
        indptr = np.zeros(self.n_features + 1, dtype=index_dtype)
        np.cumsum(np.bincount(features, minlength=self.n_features), out=indptr[1:])
        values = (signs[order] * self.scale).astype(np.float32)
        return sp.csr_array(
            (values, components[order].astype(index_dtype), indptr),
            shape=(self.n_features, self.n_components),
        )

    @classmethod
    def from_csr(cls, matrix: sp.csr_array | sp.csr_matrix) -> TiledSigns:
        """Tile a ``[p, k]`` matrix whose non-zeros all have the same magnitude."""
        coo = sp.coo_array(matrix)
        p, k = coo.shape
        magnitudes = np.abs(coo.data)
        scale = np.float32(magnitudes[0]) if magnitudes.size else np.float32(1)
        if magnitudes.size and not np.allclose(magnitudes, magnitudes[0], rtol=1e-6):
            raise ValueError(
                "every non-zero of a sparse random projection must have the same magnitude"
            )
        tile_rows = srp_kernels.tile_rows_for(p)
        n_row_tiles, n_col_tiles = srp_kernels.n_tiles(p, k)
        tiles = (coo.row // tile_rows) * n_col_tiles + coo.col // srp_kernels.TILE_COLS
        order = np.lexsort((coo.col, coo.row, tiles))  # by tile, then row-major within a tile
        rows, cols, negative = coo.row[order], coo.col[order], coo.data[order] < 0
        tile_ptr = np.zeros(n_row_tiles * n_col_tiles + 1, np.int64)
        np.cumsum(np.bincount(tiles, minlength=n_row_tiles * n_col_tiles), out=tile_ptr[1:])
        return cls(
            n_features=p,
            n_components=k,
            tile_rows=tile_rows,
            scale=scale,
            tile_ptr=tile_ptr,
            rows=(rows % tile_rows).astype(np.uint16),
            codes=(2 * (cols % srp_kernels.TILE_COLS) + negative).astype(np.uint8),
        )


def expected_nbytes(n_features: int, n_components: int, density: float | None = None) -> int:
    """Expected memory of a drawn :class:`TiledSigns` (3 bytes per non-zero, 8 per tile)."""
    density = 1.0 / np.sqrt(n_features) if density is None else density
    row_tiles, col_tiles = srp_kernels.n_tiles(n_features, n_components)
    return int(3 * n_features * n_components * density + 8 * (row_tiles * col_tiles + 1))


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
        distribution in O(nnz) with its own seeded generator.
    n_threads : int, optional
        CPU threads of the projection kernel (default: torch's intra-op thread count, so
        ``torch.set_num_threads`` governs the whole extraction).

    Attributes
    ----------
    signs : TiledSigns or None
        ``R`` [p, k] in the kernel's storage; None when features pass through unchanged.
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
        n_threads: int | None = None,
    ) -> None:
        if n_features < 1 or n_components < 1:
            raise ValueError(
                f"need n_features >= 1 and n_components >= 1, got {n_features}, {n_components}"
            )
        self.n_features = n_features
        self.n_components = n_components
        self.seed = seed
        self.layer = layer
        self.density = 1.0 / np.sqrt(n_features) if density == "auto" else float(density)
        if not 0 < self.density <= 1:
            raise ValueError(f"density must be in (0, 1], got {self.density}")
        self.upsample = upsample
        self.mode = mode
        self.n_threads = n_threads
        self.passthrough = n_features <= n_components and not upsample
        self.n_output = n_features if self.passthrough else n_components
        self.signs: TiledSigns | None = None if self.passthrough else self._draw()
        self._torch_matrix: dict[str, Any] = {}

    def _draw(self) -> TiledSigns:
        if self.mode == "sklearn":
            return _sklearn_signs(self.n_features, self.n_components, self.density, self.seed)
        if self.mode != "fast":
            raise ValueError(f"mode must be 'fast' or 'sklearn', got {self.mode!r}")
        seed = np.random.SeedSequence(layer_seed(self.seed, self.layer)).generate_state(
            1, np.uint64
        )[0]
        tile_rows = srp_kernels.tile_rows_for(self.n_features)
        tile_ptr, rows, codes = srp_kernels.draw_tiles(
            seed, self.n_features, self.n_components, tile_rows, self.density, self._threads()
        )
        scale = np.float32(np.sqrt(1.0 / self.density) / np.sqrt(self.n_components))
        return TiledSigns(
            self.n_features, self.n_components, tile_rows, scale, tile_ptr, rows, codes
        )

    @property
    def matrix(self) -> sp.csr_array | None:
        """``R`` [p, k] as a float32 scipy CSR matrix (built on each access), or None."""
        return None if self.signs is None else self.signs.to_csr()

    @property
    def nbytes(self) -> int:
        """Memory held by the projection matrix."""
        return 0 if self.signs is None else self.signs.nbytes

    def project_ones(self) -> np.ndarray:
        """``1^T R`` [n_output], float64: the image of the all-ones feature vector.

        Projecting a row-centred ``x - m 1`` equals ``transform(x) - m * project_ones()``.
        """
        if self.signs is None:
            return np.ones(self.n_output)
        _, components, signs = self.signs.coordinates()
        column_sums = np.bincount(components, weights=signs, minlength=self.n_components)
        return column_sums * np.float64(self.signs.scale)

    def params(self) -> dict[str, Any]:
        """The parameters that determine the output (for cache keys and provenance)."""
        return {
            "n_components": self.n_components,
            "seed": self.seed,
            "density": self.density,
            "upsample": self.upsample,
            "mode": self.mode,
            "generator": generator_id(self.mode),
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
            return self._project_cpu(X)
        import torch

        if X.device.type == "cpu":
            return torch.from_numpy(self._project_cpu(X.detach().numpy()))
        Rt = self._torch_transpose(X.device)
        return (Rt @ X.T).T

    def _threads(self) -> int:
        import torch

        return self.n_threads or torch.get_num_threads()

    def _project_cpu(self, X: np.ndarray) -> np.ndarray:
        signs = self.signs
        X = np.ascontiguousarray(X, dtype=np.float32)
        threads = self._threads()
        return srp_kernels.project_tiles(
            X,
            signs.tile_ptr,
            signs.rows,
            signs.codes,
            signs.n_col_tiles,
            signs.tile_rows,
            signs.scale,
            self.n_components,
            threads,
        )

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
