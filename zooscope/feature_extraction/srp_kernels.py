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

Inner loops: the batch dimension of the transposed buffer and the accumulators is padded to a
multiple of :data:`LANES` and the buffers start on 64-byte boundaries, so each image row is whole
cache lines; each non-zero's update is one explicit 32-float vector load/FMA/store at the default
batch of 32 (16- and 32-float operations for other widths); the row-tile transpose works in 8x8
register blocks. Both are numba intrinsics (written in LLVM IR), because the plain loops compiled
to alias-checked 8-wide loops and to one store per float. Measured when plain numba loops were
tried instead (docs/performance.md): the kernel ran 1.5-2.5x slower and a ResNet-50 SRP
extraction's CPU time per image rose by more than 15% end to end, so the intrinsics stay.

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
from llvmlite import ir
from numba import njit, types
from numba.extending import intrinsic

TILE_COLS = 128  # output components per tile; (TILE_COLS - 1) * 2 + 1 must fit the uint8 code
LANES = 16  # floats per vector update; batch buffers are padded to a multiple of it
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
    return (
        state,
        np.float64(bits >> np.uint64(11)) * (1.0 / 9007199254740992.0),
        bits & np.uint64(1),
    )


@njit(cache=True, nogil=True)
def _draw_row_tiles(
    seed: np.uint64,
    n_features: int,
    n_components: int,
    tile_rows: int,
    density: float,
    first: int,
    stop: int,
    capacity: int,
    seg_rows: np.ndarray,
    seg_codes: np.ndarray,
    counts: np.ndarray,
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
    seg_rows: np.ndarray,
    seg_codes: np.ndarray,
    tile_ptr: np.ndarray,
    n_col_tiles: int,
    capacity: int,
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
    seed: np.uint64,
    n_features: int,
    n_components: int,
    tile_rows: int,
    density: float,
    n_threads: int = 1,
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
            seed,
            n_features,
            n_components,
            tile_rows,
            density,
            first,
            stop,
            capacity,
            seg_rows,
            seg_codes,
            counts,
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


def padded_batch(batch: int) -> int:
    """Batch width of the kernel's buffers: ``batch`` rounded up to a multiple of :data:`LANES`."""
    return -(-batch // LANES) * LANES


def _vector_pointer(context, builder, array_type, array, offset, vector: ir.VectorType) -> ir.Value:
    """Pointer to ``array``'s element ``offset`` (flat), typed as a pointer to ``vector``."""
    data = context.make_array(array_type)(context, builder, array).data
    return builder.bitcast(builder.gep(data, [offset]), vector.as_pointer())


def _shuffle(builder: ir.IRBuilder, a: ir.Value, b: ir.Value, mask: list[int]) -> ir.Value:
    return builder.shuffle_vector(a, b, ir.Constant(ir.VectorType(ir.IntType(32), len(mask)), mask))


def _scaled_adder(lanes: int):
    """An intrinsic ``f(out, out_at, x, x_at, sign)``: ``out[out_at:][:lanes] += sign * x[x_at:][:lanes]``.

    One explicit ``<lanes x float>`` load/FMA/store (LLVM splits it into the machine's vectors:
    two AVX-512 or four AVX2 operations for 32 lanes). Why an intrinsic: written as a loop over
    the batch, LLVM cannot prove that ``out`` and ``x`` do not overlap, so every non-zero paid a
    runtime alias check and an 8-wide loop with a remainder; and even a loop of explicit 16-lane
    operations costs a quarter more per non-zero than one 32-lane operation, at batch 32.
    """

    @intrinsic
    def add_scaled(typingctx, out, out_at, x, x_at, sign):
        signature = types.void(out, types.intp, x, types.intp, types.float32)

        def codegen(context, builder, sig, args):
            out_array, out_at, x_array, x_at, scalar = args
            vector = ir.VectorType(ir.FloatType(), lanes)
            out_ptr = _vector_pointer(context, builder, sig.args[0], out_array, out_at, vector)
            x_ptr = _vector_pointer(context, builder, sig.args[2], x_array, x_at, vector)
            single = builder.insert_element(
                ir.Constant(vector, ir.Undefined), scalar, ir.Constant(ir.IntType(32), 0)
            )
            splat = _shuffle(builder, single, ir.Constant(vector, ir.Undefined), [0] * lanes)
            product = builder.fmul(splat, builder.load(x_ptr, align=4), flags=("fast",))
            builder.store(
                builder.fadd(builder.load(out_ptr, align=4), product, flags=("fast",)),
                out_ptr,
                align=4,
            )
            return context.get_dummy_value()

        return signature, codegen

    return add_scaled


_add_scaled_lanes = _scaled_adder(LANES)
_add_scaled_pair = _scaled_adder(2 * LANES)


@intrinsic
def _transpose_8x8(typingctx, src, src_at, src_stride, dst, dst_at, dst_stride):
    """``dst[dst_at + r * dst_stride + c] = src[src_at + c * src_stride + r]`` for ``r, c < 8``.

    Eight 8-wide loads, the classic unpack / shuffle / lane-permute network in registers (LLVM
    lowers these shuffles to ``vunpcklps``, ``vshufps`` and ``vperm2f128``), eight 8-wide stores.
    Element by element, the row-tile transpose wrote one float per store to a different cache
    line; this is 3-6x faster and makes the transpose memory-bound.
    """
    signature = types.void(src, types.intp, types.intp, dst, types.intp, types.intp)

    def codegen(context, builder, sig, args):
        src_array, src_at, src_stride, dst_array, dst_at, dst_stride = args
        vector = ir.VectorType(ir.FloatType(), 8)

        def row_pointer(which, array, at, stride, row):
            offset = builder.add(at, builder.mul(stride, ir.Constant(stride.type, row)))
            return _vector_pointer(context, builder, sig.args[which], array, offset, vector)

        r = [
            builder.load(row_pointer(0, src_array, src_at, src_stride, i), align=4)
            for i in range(8)
        ]
        # Interleave pairs of rows, then pairs of pairs, then swap 128-bit halves.
        unpack_lo, unpack_hi = [0, 8, 1, 9, 4, 12, 5, 13], [2, 10, 3, 11, 6, 14, 7, 15]
        t = []
        for i in range(0, 8, 2):
            t += [
                _shuffle(builder, r[i], r[i + 1], unpack_lo),
                _shuffle(builder, r[i], r[i + 1], unpack_hi),
            ]
        pair_lo, pair_hi = [0, 1, 8, 9, 4, 5, 12, 13], [2, 3, 10, 11, 6, 7, 14, 15]
        u = []
        for a, b in ((0, 2), (1, 3), (4, 6), (5, 7)):
            u += [_shuffle(builder, t[a], t[b], pair_lo), _shuffle(builder, t[a], t[b], pair_hi)]
        half_lo, half_hi = [0, 1, 2, 3, 8, 9, 10, 11], [4, 5, 6, 7, 12, 13, 14, 15]
        columns = [_shuffle(builder, u[i], u[i + 4], half_lo) for i in range(4)]
        columns += [_shuffle(builder, u[i], u[i + 4], half_hi) for i in range(4)]
        for i, column in enumerate(columns):
            builder.store(column, row_pointer(3, dst_array, dst_at, dst_stride, i), align=4)
        return context.get_dummy_value()

    return signature, codegen


@njit(fastmath=True, boundscheck=False, cache=True, nogil=True)
def _transpose_row_tile(X: np.ndarray, f0: int, f1: int, xt: np.ndarray, width: int) -> None:
    """``xt[(f - f0) * width + i] = X[i, f]`` for ``f0 <= f < f1``: 8x8 blocks, then the edges."""
    b, p = X.shape
    b8 = b - b % 8
    f8 = f0 + (f1 - f0) // 8 * 8
    for i0 in range(0, b8, 8):
        for f in range(f0, f8, 8):
            _transpose_8x8(X, i0 * p + f, p, xt, (f - f0) * width + i0, width)
    for i in range(b):
        for f in range(f8 if i < b8 else f0, f1):
            xt[(f - f0) * width + i] = X[i, f]


@njit(fastmath=True, boundscheck=False, cache=True, nogil=True)
def _scatter_row_tiles(
    X: np.ndarray,
    tile_ptr: np.ndarray,
    rows: np.ndarray,
    codes: np.ndarray,
    n_col_tiles: int,
    tile_rows: int,
    first: int,
    stop: int,
    acc: np.ndarray,
    xt: np.ndarray,
) -> None:
    """``acc[j, :] = sum_f S[f, j] * X[:, f]`` over the non-zeros of row tiles ``first:stop``.

    ``acc`` ``[n_col_tiles * TILE_COLS * width]`` and ``xt`` ``[tile_rows * width]`` are flat,
    row-major with ``width = padded_batch(b)``, and both are overwritten (zeroed here, by the
    thread that then uses them, so their pages and cache lines start out local to it).
    """
    p = X.shape[1]
    width = xt.size // tile_rows
    acc[:] = 0.0
    xt[:] = 0.0  # the padding columns stay zero
    for row_tile in range(first, stop):
        f0 = row_tile * tile_rows
        f1 = min(p, f0 + tile_rows)
        _transpose_row_tile(X, f0, f1, xt, width)  # each non-zero then reads b floats in a row
        for col_tile in range(n_col_tiles):
            j0 = col_tile * TILE_COLS
            tile = row_tile * n_col_tiles + col_tile
            for q in range(tile_ptr[tile], tile_ptr[tile + 1]):
                code = np.int64(codes[q])
                out_at = (j0 + (code >> 1)) * width
                x_at = np.int64(rows[q]) * width
                sign = np.float32(1 - 2 * (code & 1))
                if width == 2 * LANES:  # the default batch of 32: one operation, no loop
                    _add_scaled_pair(acc, out_at, xt, x_at, sign)
                else:
                    for c in range(0, width - LANES, 2 * LANES):
                        _add_scaled_pair(acc, out_at + c, xt, x_at + c, sign)
                    if width % (2 * LANES):
                        _add_scaled_lanes(
                            acc, out_at + width - LANES, xt, x_at + width - LANES, sign
                        )


@njit(fastmath=True, boundscheck=False, cache=True, nogil=True)
def _sum_transposed(
    accumulators: np.ndarray, width: int, scale: np.float32, Y: np.ndarray, j0: int, j1: int
) -> None:
    """``Y[:, j] = scale * sum_t accumulators[t, j, :b]`` for ``j0 <= j < j1``.

    ``accumulators`` is ``[n_threads, n_col_tiles * TILE_COLS * width]`` (row ``j`` of thread
    ``t`` at ``j * width``), ``Y`` ``[b, k]``.
    """
    b = Y.shape[0]
    for j in range(j0, j1):
        for i in range(b):
            total = np.float32(0.0)
            for t in range(accumulators.shape[0]):
                total += accumulators[t, j * width + i]
            Y[i, j] = scale * total


def aligned_empty(
    shape: tuple[int, ...], dtype: Any = np.float32, alignment: int = 64
) -> np.ndarray:
    """An uninitialised C-contiguous array whose data starts on an ``alignment``-byte boundary.

    The kernels' vectors are whole 64-byte rows of these buffers; numpy's large arrays start
    16 bytes past a page boundary, so every vector load and store would straddle two cache lines
    (25% slower in the scatter).
    """
    dtype = np.dtype(dtype)
    count = int(np.prod(shape))
    raw = np.empty(count * dtype.itemsize + alignment, np.uint8)
    start = -raw.ctypes.data % alignment
    return raw[start : start + count * dtype.itemsize].view(dtype).reshape(shape)


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
    width = padded_batch(b)
    n_row_tiles = (tile_ptr.size - 1) // n_col_tiles
    n_threads = max(1, min(n_threads, n_row_tiles))
    accumulators = aligned_empty((n_threads, n_col_tiles * TILE_COLS * width))
    buffers = aligned_empty((n_threads, tile_rows * width))
    _in_threads(
        lambda first, stop, t: _scatter_row_tiles(
            X,
            tile_ptr,
            rows,
            codes,
            n_col_tiles,
            tile_rows,
            first,
            stop,
            accumulators[t],
            buffers[t],
        ),
        n_row_tiles,
        n_threads,
    )
    Y = np.empty((b, n_components), np.float32)
    _in_threads(
        lambda j0, j1, _t: _sum_transposed(accumulators, width, scale, Y, j0, j1),
        n_components,
        n_threads,
    )
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
