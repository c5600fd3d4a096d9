r"""Compiled single passes of :class:`~zooscope.rsa.RidgeGCV` over ``[n, c]`` arrays (numpy backend).

Once every alpha is scored, a fit gathers each target's chosen alpha twice: its LOO values from
the stack ``L`` [n_alphas, n, c] (the one GEMM of all alphas) and its eigenbasis coefficients.
In numpy each gather was several passes over ``n * c`` values (``take_along_axis``, a cast to
float64, an add, a copy into the output; a fancy-indexed ``[r, c]`` temporary, a product, a
copy), about 0.1 s of a 1 s fit at NSD scale. Here each is one pass straight into the output:

* :func:`take_chosen`: ``out[i, j] = sign * L[best[j], i, j] + offset[j]`` (float64);
* :func:`scale_chosen`: ``out[k, j] = inv[k, best[j]] * Z[k, j]``.

(A compiled pass for the per-alpha Pearson sums was measured too: with float64 accumulators it
took 13 ms per chunk against numpy's 5 ms for its three float32 passes, so numpy keeps them.)
Compiled on first use and cached on disk, so importing :mod:`zooscope.rsa` does not import numba.
"""

from __future__ import annotations

import functools
from typing import Any

import numpy as np

__all__ = ["scale_chosen", "take_chosen"]


@functools.cache
def _kernels() -> tuple[Any, Any]:
    # lazy: numba is imported (and the kernels compiled or loaded) on the first fit
    from numba import njit

    @njit(cache=True, nogil=True)
    def take(stack, best, sign, offset, out):  # pragma: no cover - compiled
        _, n, c = stack.shape
        for i in range(n):
            for j in range(c):
                out[i, j] = sign * np.float64(stack[best[j], i, j]) + offset[j]

    @njit(cache=True, nogil=True)
    def scale(inv, best, Z, out):  # pragma: no cover - compiled
        r, c = Z.shape
        for k in range(r):
            for j in range(c):
                out[k, j] = inv[k, best[j]] * Z[k, j]

    return take, scale


def take_chosen(
    stack: np.ndarray, best: np.ndarray, offset: np.ndarray, out: np.ndarray, sign: float = 1.0
) -> None:
    """``out[i, j] = sign * stack[best[j], i, j] + offset[j]``, in one pass.

    Parameters
    ----------
    stack : np.ndarray, shape (n_alphas, n, c)
        float32 or float64.
    best : np.ndarray of int, shape (c,)
        The alpha chosen for each target.
    offset : np.ndarray, shape (c,)
        Added to each column (float64).
    out : np.ndarray, shape (n, c)
        float64; may be a view of a wider array (a chunk of its columns).
    sign : float, default=1.0
    """
    _kernels()[0](stack, np.asarray(best, np.int64), float(sign), offset, out)


def scale_chosen(inv: np.ndarray, best: np.ndarray, Z: np.ndarray, out: np.ndarray) -> None:
    """``out[k, j] = inv[k, best[j]] * Z[k, j]``, in one pass.

    Parameters
    ----------
    inv : np.ndarray, shape (r, n_alphas)
        float64.
    best : np.ndarray of int, shape (c,)
    Z : np.ndarray, shape (r, c)
        float64.
    out : np.ndarray, shape (r, c)
        float64; may be a view of a wider array.
    """
    _kernels()[1](inv, np.asarray(best, np.int64), Z, out)
