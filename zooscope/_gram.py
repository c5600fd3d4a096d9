r"""Gram products :math:`X X^\top` of short, wide host matrices, split by columns over threads.

The Gram matrices of a survey are short and wide: ``n`` images (100 to a few thousand) by ``p``
features (up to a million). BLAS threads a SYRK by splitting the ``n x n`` output, and its
threads then synchronise on every panel of the long dimension: with few rows they spend more
time waiting for each other (spinning, so it counts as CPU time) than multiplying. Splitting
the *columns* instead needs no synchronisation at all,

.. math:: X X^\top = \sum_{t=1}^{T} X_{:,S_t} X_{:,S_t}^\top ,

one single-threaded product per thread, summed in float64. Measured on 2 cores, float32
(``numpy`` with OpenBLAS; wall / CPU ms):

=================  ==================  ==================  =========================
n x p              SYRK, 2 threads     SYRK, 1 thread      split, 2 x 1 thread
=================  ==================  ==================  =========================
100 x 400,000      82 / 166            73 / 73             38 / 75
500 x 100,000      176 / 352           274 / 274           150 / 295
1000 x 60,000      346 / 687           624 / 624           314 / 625
=================  ==================  ==================  =========================

:func:`single_threaded_blas` is the one place that limits BLAS to one thread (a lock keeps
concurrent callers from restoring each other's limits out of order).
"""

from __future__ import annotations

import contextlib
import functools
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np

__all__ = ["gram_product", "single_threaded_blas"]

#: Below this many columns per thread, one product on the calling thread is as fast.
MIN_COLUMNS_PER_THREAD = 2048

_LOCK = threading.RLock()


@functools.cache
def _controller() -> Any:
    # lazy: threadpoolctl scans the loaded libraries once, on the first call
    from threadpoolctl import ThreadpoolController

    return ThreadpoolController()


@contextlib.contextmanager
def single_threaded_blas() -> Iterator[None]:
    """BLAS limited to one thread inside the block (process-wide; callers are serialised)."""
    with _LOCK, _controller().limit(limits=1, user_api="blas"):
        yield


@functools.cache
def _pool(threads: int) -> ThreadPoolExecutor:
    return ThreadPoolExecutor(threads, thread_name_prefix="zooscope-gram")


def _threads() -> int:
    # The extraction's one thread setting (docs/performance.md, "Threads and OpenMP").
    import torch

    return max(1, torch.get_num_threads())


def gram_product(
    x: Any,
    column_shift: Any = None,
    dtype: str | None = None,
    block: int | None = None,
    threads: int | None = None,
) -> Any:
    r"""``sum_b (x_b - 1 c_b^T)(x_b - 1 c_b^T)^T`` over column blocks ``b``, summed in float64.

    Parameters
    ----------
    x : np.ndarray or torch.Tensor, shape (n, p)
        A numpy array is split by columns over threads (see the module docstring); a torch
        tensor is multiplied on its own device, block by block.
    column_shift : array or tensor like ``x``, shape (p,), optional
        Subtracted from every row (``c``, e.g. the column means), block by block in copies;
        ``x`` itself is never modified.
    dtype : {"float32", "float64"}, optional
        Precision of the products (default ``x``'s); each block is converted first.
    block : int, optional
        Columns per product (bounds a copy, and the length of a product's sums); default: one
        product per thread.
    threads : int, optional
        Default ``torch.get_num_threads()``. Each thread multiplies a contiguous range of
        columns with single-threaded BLAS.

    Returns
    -------
    np.ndarray or torch.Tensor, shape (n, n), float64
        Of ``x``'s kind (and device).
    """
    p = x.shape[1]
    if not isinstance(x, np.ndarray):
        return _product(x, column_shift, dtype, block, 0, p)
    threads = max(1, min(threads or _threads(), p // MIN_COLUMNS_PER_THREAD))
    if threads == 1:
        return _product(x, column_shift, dtype, block, 0, p)
    bounds = np.linspace(0, p, threads + 1).astype(int)
    with single_threaded_blas():
        parts = list(
            _pool(threads).map(
                lambda start, stop: _product(x, column_shift, dtype, block, start, stop),
                bounds[:-1],
                bounds[1:],
            )
        )
    total = parts[0]
    for other in parts[1:]:
        total += other
    return total


def _product(x: Any, shift: Any, dtype: str | None, block: int | None, start: int, stop: int):
    """The float64 sum of the block products of columns ``start:stop`` (numpy or torch)."""
    numpy = isinstance(x, np.ndarray)

    def cast(a: Any) -> Any:
        if dtype is None:
            return a
        if numpy:
            return a.astype(dtype, copy=False)
        import torch

        return a.to(getattr(torch, dtype))

    total = None
    step = block or max(stop - start, 1)
    for s in range(start, stop, step):
        b = cast(x[:, s : min(s + step, stop)])
        if shift is not None:
            b = b - cast(shift[s : s + b.shape[1]])
        product = b @ b.T  # BLAS's SYRK for numpy
        product = product.astype(np.float64) if numpy else product.double()
        if total is None:
            total = product
        else:
            total += product
    if total is None:  # no columns
        return np.zeros((x.shape[0],) * 2) if numpy else x.new_zeros((x.shape[0],) * 2).double()
    return total
