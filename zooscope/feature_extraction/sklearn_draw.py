"""scikit-learn's sparse random projection matrix, drawn without its per-element Python loop.

``SparseRandomProjection(n_components=k, density=d, random_state=seed)`` draws its ``k x p``
matrix row by row: ``m_i ~ Binomial(p, d)`` non-zeros, their columns by
``sample_without_replacement(p, m_i)``, then every sign at once. For ``m_i / p < 0.01`` (every
layer wider than 10,000 features at ``d = 1/sqrt(p)``) scikit-learn samples the columns by
*tracking selection*: ``j = rng.randint(p)`` one call at a time, drawing again while ``j`` was
already taken. Its output is the stream of ``randint`` values with repeats removed, the first
``m_i`` distinct ones in order, and it consumes the stream up to the ``m_i``-th of them. NumPy's
legacy ``RandomState.randint(p, size=c)`` yields the same stream as ``c`` scalar calls, so
:func:`draw_components` takes the first distinct values of a vectorised draw, rewinds the
generator and advances it by exactly the number of draws consumed: the same matrix, bit for bit,
at a few nanoseconds per non-zero instead of about a microsecond (3-5 s per layer of 200,000
features at 1,000 images).

Other ratios are delegated to scikit-learn's own ``sample_without_replacement`` with the shared
generator. Because the equality rests on scikit-learn's internals, :func:`matches_sklearn`
checks it against the installed scikit-learn once per process (a few milliseconds), and callers
fall back to scikit-learn itself if it ever fails.
"""

from __future__ import annotations

import functools

import numpy as np
import scipy.sparse as sp
from sklearn.random_projection import SparseRandomProjection
from sklearn.utils.random import sample_without_replacement

__all__ = ["draw_components", "matches_sklearn", "sklearn_components"]

#: scikit-learn's ratio below which ``sample_without_replacement("auto")`` tracks a selection
TRACKING_RATIO = 0.01


def sklearn_components(
    n_features: int, n_components: int, density: float, seed: int
) -> sp.csr_array:
    """The ``[k, p]`` matrix as scikit-learn itself draws it (the reference)."""
    srp = SparseRandomProjection(n_components=n_components, density=density, random_state=seed)
    srp.fit(sp.csr_array((1, n_features), dtype=np.float64))  # only X's width is used
    return sp.csr_array(srp.components_)


def draw_components(n_features: int, n_components: int, density: float, seed: int) -> sp.csr_array:
    """scikit-learn's ``SparseRandomProjection`` matrix ``[k, p]`` (float64 CSR), drawn fast.

    Parameters
    ----------
    n_features, n_components : int
        ``p`` and ``k``.
    density : float
        ``d`` in (0, 1).
    seed : int
        ``random_state`` of the estimator.
    """
    if not 0 < density < 1:
        return sklearn_components(n_features, n_components, density, seed)
    rng = np.random.RandomState(seed)
    indices, indptr = [], [0]
    for _ in range(n_components):
        count = int(rng.binomial(n_features, density))
        if count / n_features < TRACKING_RATIO:
            columns = _tracking_selection(rng, n_features, count)
        else:
            columns = sample_without_replacement(n_features, count, random_state=rng)
        indices.append(columns)
        indptr.append(indptr[-1] + count)
    columns = np.concatenate(indices)
    signs = rng.binomial(1, 0.5, size=columns.size) * 2 - 1
    scale = np.sqrt(1 / density) / np.sqrt(n_components)
    matrix = sp.csr_array((signs, columns, indptr), shape=(n_components, n_features))
    return scale * matrix


def _tracking_selection(rng: np.random.RandomState, population: int, count: int) -> np.ndarray:
    """The first ``count`` distinct values of ``rng.randint(population)`` calls, in order.

    Advances ``rng`` by exactly the draws scikit-learn's loop consumes.
    """
    if count == 0:
        return np.empty(0, dtype=np.int64)
    state = rng.get_state()
    margin = 16 + 4 * count * count // population  # ~4x the expected repeats
    while True:
        draws = rng.randint(population, size=count + margin)
        _, first = np.unique(draws, return_index=True)
        if first.size >= count:
            break
        rng.set_state(state)
        margin *= 4
    first.sort()
    consumed = int(first[count - 1]) + 1
    rng.set_state(state)
    rng.randint(population, size=consumed)  # the draws scikit-learn's loop consumes
    return draws[first[:count]]


@functools.cache
def matches_sklearn() -> bool:
    """Whether :func:`draw_components` equals the installed scikit-learn on small cases."""
    cases = ((20_000, 40, 0.0071, 0), (30_000, 25, 1 / np.sqrt(30_000), 7), (900, 30, 1 / 30, 3))
    for p, k, d, seed in cases:
        ours, theirs = draw_components(p, k, d, seed), sklearn_components(p, k, d, seed)
        same = (
            np.array_equal(ours.indptr, theirs.indptr)
            and np.array_equal(ours.indices, theirs.indices)
            and np.array_equal(ours.data, theirs.data)
        )
        if not same:
            return False
    return True
