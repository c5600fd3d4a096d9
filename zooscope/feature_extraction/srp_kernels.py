"""Compiled kernels of the sparse random projection: draw ``R`` tile by tile, apply it to a batch.

Why tiles. The projection ``Y = X R`` (``X`` ``[b, p]``, ``R`` ``[p, k]`` with ``k sqrt(p)``
non-zeros) is a scatter: every non-zero ``R[f, j]`` adds ``+-X[:, f]`` to output column ``j``.
Row by row (CSR order, what ``scipy`` does), consecutive non-zeros hit random columns of the whole
``k x b`` output, which lives in L2 at best, and ``X`` must first be transposed as a whole. Here
``R`` is stored in *tiles* of ``tile_rows`` features by ``TILE_COLS`` (128) components. A thread
copies one row tile of ``X`` (``tile_rows x b``, a few hundred kB) into a transposed buffer, then
walks the tiles of that row: each tile's non-zeros update only 128 rows of the output, which stay
in L1. ``tile_rows ~ 2 sqrt(p)`` keeps about 256 non-zeros per tile whatever the layer size. Row
tiles are split between Python threads running the ``nogil`` kernel, each with its own
accumulator; the same threads then sum the accumulators, each over a range of components.

Inner loops are plain numba loops: each non-zero adds one contiguous row of ``b`` floats of the
transposed buffer to one row of the accumulator, which LLVM vectorises. (An earlier version
hand-wrote these updates and an 8x8 register transpose as LLVM IR intrinsics on 64-byte aligned,
lane-padded buffers; on ``benchmarks/extract.py`` they bought less than the 15% of end-to-end
extraction time that would justify carrying them, see ``docs/performance.md``.)

Storage: ``R = scale * S`` with ``S`` in ``{-1, 0, +1}``; each non-zero takes 3 bytes (its row
within the tile, ``uint16``, and ``code = 2 * column_within_tile + negative``, ``uint8``) instead
of the 8 to 12 of a float CSR matrix, plus one ``int64`` pointer per tile.

Drawing: the non-zero cells of the (tile-padded) ``p x k`` grid, visited in tile order, form a
Bernoulli(``density``) process, drawn as geometric gaps from seeded SplitMix64 streams, one per
row tile (one uniform per non-zero; cells of the padding are dropped). No global random state is
touched, and the matrix does not depend on the number of threads.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np
from numba import njit

TILE_COLS = 128  # output components per tile; (TILE_COLS - 1) * 2 + 1 must fit the uint8 code
TRANSPOSE_BLOCK = 8  # features per block of the row-tile transpose (8 floats: a 32-byte read)
_MAX_TILE_ROWS = 4096


def tile_rows_for(n_features: int) -> int:
    """Features per row tile: ~2 sqrt(p), a multiple of 8, so a tile holds ~256 non-zeros."""
    rows = 8 * int(np.ceil(2 * np.sqrt(n_features) / 8))
    return int(min(_MAX_TILE_ROWS, max(64, rows)))


def col_tiles(n_components: int) -> int:
    """Column tiles of a ``p x k`` matrix."""
    return -(-n_components // TILE_COLS)


def n_tiles(n_features: int, n_components: int) -> tuple[int, int]:
    """``(row tiles, column tiles)`` of a ``p x k`` matrix."""
    return -(-n_features // tile_rows_for(n_features)), col_tiles(n_components)


@njit(cache=True, nogil=True)
def _splitmix64(state: np.uint64) -> tuple[np.uint64, np.uint64]:
    """One step of SplitMix64 (Steele, Lea & Flood 2014): ``(new state, 64 random bits)``."""
    state = state + np.uint64(0x9E3779B97F4A7C15)
    z = state
    z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return state, z ^ (z >> np.uint64(31))


@njit(cache=True, nogil=True)
def _uniform(state: np.uint64) -> tuple[np.uint64, float, np.uint64]:
    """``(new state, U ~ U[0, 1) from the top 53 bits, the lowest bit)``."""
    state, bits = _splitmix64(state)
    return state, np.float64(bits >> np.uint64(11)) * (1.0 / 9007199254740992.0), bits & np.uint64(1)


@njit(cache=True, nogil=True)
def _draw_row_tiles(
    seed: np.uint64, n_features: int, n_components: int, tile_rows: int, density: float,
    first: int, stop: int, capacity: int, seg_rows: np.ndarray, seg_codes: np.ndarray, counts: np.ndarray,
) -> bool:
    """Draw row tiles ``first:stop`` into their segments; False if a segment overflowed."""
    n_col_tiles = (n_components + TILE_COLS - 1) // TILE_COLS
    cells = tile_rows * TILE_COLS
    log_q = np.log1p(-density) if density < 1.0 else -np.inf
    for row_tile in range(first, stop):
        state = seed ^ (np.uint64(row_tile + 1) * np.uint64(0xD1B54A32D192ED03))
        state, _ = _splitmix64(state)
        valid_rows = min(tile_rows, n_features - row_tile * tile_rows)
        base = row_tile * capacity
        nnz = 0
        col_tile = 0
        within = np.int64(-1)
        while True:
            state, u, negative = _uniform(state)
            # 1 - u is exact (u is a multiple of 2**-53), and log costs 7 ns here to log1p's 16.
            within += np.int64(np.floor(np.log(1.0 - u) / log_q)) + 1
            while within >= cells and col_tile < n_col_tiles:
                within -= cells
                col_tile += 1
            if col_tile >= n_col_tiles:
                break
            row, col = divmod(within, TILE_COLS)
            if row >= valid_rows or col_tile * TILE_COLS + col >= n_components:
                continue  # a padding cell
            if nnz == capacity:
                return False
            seg_rows[base + nnz] = row
            seg_codes[base + nnz] = 2 * col + np.int64(negative)
            counts[row_tile * n_col_tiles + col_tile] += 1
            nnz += 1
    return True


@njit(cache=True, nogil=True)
def _compact(
    seg_rows: np.ndarray, seg_codes: np.ndarray, tile_ptr: np.ndarray, n_col_tiles: int, capacity: int
) -> tuple[np.ndarray, np.ndarray]:
    """Concatenate the row tiles' segments (their first ``size`` entries) in order."""
    rows = np.empty(tile_ptr[-1], np.uint16)
    codes = np.empty(tile_ptr[-1], np.uint8)
    for row_tile in range((tile_ptr.size - 1) // n_col_tiles):
        start = tile_ptr[row_tile * n_col_tiles]
        size = tile_ptr[(row_tile + 1) * n_col_tiles] - start
        base = row_tile * capacity
        rows[start : start + size] = seg_rows[base : base + size]
        codes[start : start + size] = seg_codes[base : base + size]
    return rows, codes


def draw_tiles(
    seed: np.uint64, n_features: int, n_components: int, tile_rows: int, density: float, n_threads: int = 1
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Draw ``S`` (the signs of ``R``) in tile storage.

    Each cell of the grid is non-zero with probability ``density``, independently. Every row
    tile has its own SplitMix64 stream (``seed`` mixed with the row-tile index), so row tiles are
    drawn in parallel and the result does not depend on ``n_threads``. Within a row tile the
    cells are visited tile by tile, row-major within a tile; the gap to the next non-zero cell is
    geometric, ``G = floor(log(1 - U) / log(1 - d)) + 1``, and the lowest bit of the same draw is
    the sign.

    Parameters
    ----------
    seed : numpy.uint64
    n_features, n_components : int
        ``p`` and ``k``.
    tile_rows : int
        From :func:`tile_rows_for`.
    density : float
        In ``(0, 1]``.
    n_threads : int
        Threads drawing row tiles.

    Returns
    -------
    tile_ptr : numpy.ndarray, shape [n_row_tiles * n_col_tiles + 1], int64
        Non-zeros of tile ``t`` (row-tile major) are ``tile_ptr[t]:tile_ptr[t + 1]``.
    rows : numpy.ndarray, shape [nnz], uint16
        Feature index within the row tile, ascending within each tile.
    codes : numpy.ndarray, shape [nnz], uint8
        ``2 * (component index within the column tile) + (1 if negative)``.
    """
    n_row_tiles = -(-n_features // tile_rows)
    n_col_tiles = col_tiles(n_components)
    # Each row tile writes into its own segment, sized 12 standard deviations above its mean count.
    expected = n_col_tiles * tile_rows * TILE_COLS * density
    capacity = int(expected + 12.0 * np.sqrt(expected) + 64)
    seg_rows = np.empty(n_row_tiles * capacity, np.uint16)
    seg_codes = np.empty(n_row_tiles * capacity, np.uint8)
    counts = np.zeros(n_row_tiles * n_col_tiles, np.int64)
    fits = _in_threads(
        lambda first, stop, _thread: _draw_row_tiles(
            seed, n_features, n_components, tile_rows, density, first, stop, capacity, seg_rows, seg_codes, counts
        ),
        n_row_tiles,
        n_threads,
    )
    if not all(fits):
        raise RuntimeError("sparse random projection: a row tile exceeded its 12-sigma capacity")
    tile_ptr = np.zeros(counts.size + 1, np.int64)
    np.cumsum(counts, out=tile_ptr[1:])
    rows, codes = _compact(seg_rows, seg_codes, tile_ptr, n_col_tiles, capacity)
    return tile_ptr, rows, codes


@njit(fastmath=True, boundscheck=False, cache=True, nogil=True)
def _transpose_row_tile(X: np.ndarray, f0: int, f1: int, xt: np.ndarray, width: int) -> None:
    """``xt[(f - f0) * width + i] = X[i, f]`` for ``f0 <= f < f1`` and ``i < b``.

    In blocks of :data:`TRANSPOSE_BLOCK` features: each image's block is one contiguous read of
    ``X``, and the block's rows of ``xt`` (``TRANSPOSE_BLOCK x b`` floats) stay in L1 while they fill.
    """
    b = X.shape[0]
    for g in range(f0, f1, TRANSPOSE_BLOCK):
        g1 = min(f1, g + TRANSPOSE_BLOCK)
        for i in range(b):
            for f in range(g, g1):
                xt[(f - f0) * width + i] = X[i, f]


@njit(fastmath=True, boundscheck=False, cache=True, nogil=True)
def _scatter_row_tiles(
    X: np.ndarray, tile_ptr: np.ndarray, rows: np.ndarray, codes: np.ndarray, n_col_tiles: int,
    tile_rows: int, first: int, stop: int, acc: np.ndarray, xt: np.ndarray,
) -> None:
    """``acc[j, :] = sum_f S[f, j] * X[:, f]`` over the non-zeros of row tiles ``first:stop``.

    ``acc`` ``[n_col_tiles * TILE_COLS * b]`` and ``xt`` ``[tile_rows * b]`` are flat and
    row-major, and both are overwritten (zeroed here, by the thread that then uses them, so their
    pages start out local to it).
    """
    b, p = X.shape
    acc[:] = 0.0
    for row_tile in range(first, stop):
        f0 = row_tile * tile_rows
        f1 = min(p, f0 + tile_rows)
        _transpose_row_tile(X, f0, f1, xt, b)  # each non-zero then reads b floats in a row
        for col_tile in range(n_col_tiles):
            j0 = col_tile * TILE_COLS
            tile = row_tile * n_col_tiles + col_tile
            for q in range(tile_ptr[tile], tile_ptr[tile + 1]):
                code = np.int64(codes[q])
                out_at = (j0 + (code >> 1)) * b
                x_at = np.int64(rows[q]) * b
                sign = np.float32(1 - 2 * (code & 1))
                for i in range(b):
                    acc[out_at + i] += sign * xt[x_at + i]


@njit(fastmath=True, boundscheck=False, cache=True, nogil=True)
def _sum_transposed(accumulators: np.ndarray, scale: np.float32, Y: np.ndarray, j0: int, j1: int) -> None:
    """``Y[:, j] = scale * sum_t accumulators[t, j, :]`` for ``j0 <= j < j1``.

    ``accumulators`` is ``[n_threads, n_col_tiles * TILE_COLS * b]`` (row ``j`` of thread ``t``
    at ``j * b``), ``Y`` ``[b, k]``.
    """
    b = Y.shape[0]
    for j in range(j0, j1):
        for i in range(b):
            total = np.float32(0.0)
            for t in range(accumulators.shape[0]):
                total += accumulators[t, j * b + i]
            Y[i, j] = scale * total


def project_tiles(
    X: np.ndarray,
    tile_ptr: np.ndarray,
    rows: np.ndarray,
    codes: np.ndarray,
    n_col_tiles: int,
    tile_rows: int,
    scale: np.float32,
    n_components: int,
    n_threads: int = 1,
) -> np.ndarray:
    """``Y = X R`` with ``R = scale * S`` in tile storage.

    Parameters
    ----------
    X : numpy.ndarray, shape [b, p], float32, C-contiguous
    tile_ptr, rows, codes : numpy.ndarray
        See :func:`draw_tiles`.
    n_col_tiles, tile_rows : int
    scale : numpy.float32
    n_components : int
        ``k``.
    n_threads : int
        Row tiles are split into this many contiguous ranges, each accumulated by one thread
        into its own buffer; the same threads then sum the buffers, each over a range of
        components (the result depends on ``n_threads`` only through float rounding).

    Returns
    -------
    numpy.ndarray, shape [b, k], float32
    """
    b = X.shape[0]
    n_row_tiles = (tile_ptr.size - 1) // n_col_tiles
    n_threads = max(1, min(n_threads, n_row_tiles))
    accumulators = np.empty((n_threads, n_col_tiles * TILE_COLS * b), np.float32)
    buffers = np.empty((n_threads, tile_rows * b), np.float32)
    _in_threads(
        lambda first, stop, t: _scatter_row_tiles(
            X, tile_ptr, rows, codes, n_col_tiles, tile_rows, first, stop, accumulators[t], buffers[t]
        ),
        n_row_tiles,
        n_threads,
    )
    Y = np.empty((b, n_components), np.float32)
    _in_threads(lambda j0, j1, _t: _sum_transposed(accumulators, scale, Y, j0, j1), n_components, n_threads)
    return Y


@functools.cache
def _executor(n_threads: int) -> ThreadPoolExecutor:
    """One pool per thread count, reused by every call (the kernels release the GIL)."""
    return ThreadPoolExecutor(max_workers=n_threads, thread_name_prefix="zooscope-srp")


def _in_threads(work: Callable[[int, int, int], Any], n_items: int, n_threads: int) -> list[Any]:
    """Run ``work(first, stop, thread)`` over ``n_threads`` contiguous ranges of ``n_items``.

    Plain Python threads over ``nogil`` kernels rather than numba's parallel backend: no OpenMP
    pool of numba's competes with torch's, and concurrent callers (threads of a Dask worker) are
    safe.
    """
    n_threads = max(1, min(int(n_threads), n_items))
    args = [(n_items * t // n_threads, n_items * (t + 1) // n_threads, t) for t in range(n_threads)]
    if n_threads == 1:
        return [work(*args[0])]
    return list(_executor(n_threads).map(lambda a: work(*a), args))
