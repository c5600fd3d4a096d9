"""GSN RSA noise ceiling (Kay et al.; port of cvnlab/GSN v1.2 ``rsa_noise_ceiling``, mode 0).

Procedure (GSN defaults):

1. :func:`~zooscope.rsa.gsn_fit.perform_gsn` gives the signal distribution
   :math:`\\mathcal N(\\mu_S, C_S^b)` and the noise covariance :math:`C_N^b`.
2. Empirical split-half reliability ``splitr``: the median, over disjoint pairs of
   :math:`k = \\lfloor T/2 \\rfloor`-trial subsets (all pairs when there are few, else random
   pairs), of ``compare(rdm(mean of subset 1), rdm(mean of subset 2))``.
3. Model split-half reliability for every signal scale ``sc`` in 0, 0.1, ..., 2.0: draw
   ``n_conditions`` (50) signals :math:`s_c \\sim \\mathcal N(\\mu_S, sc\\,C_S^b)` and two
   independent noise averages :math:`n_c \\sim \\mathcal N(0, C_N^b / k)`; compare the RDMs
   of :math:`s + n^{(1)}` and :math:`s + n^{(2)}`. Simulations come in chunks of 50 until the
   medians are robust (mean of ``|median| / (IQR / 2 / sqrt(n))`` over scales > 10) or 1000.
   ``sc`` is the scale whose median model reliability is closest to ``splitr`` (GSN's maximal
   coefficient of determination, for one split size).
4. Ceiling: ``n_sims`` draws of signal :math:`\\mathcal N(\\mu_S, sc\\,C_S^b)` and measurement
   = signal + :math:`\\mathcal N(0, C_N^b / T)`; ``compare(rdm(signal), rdm(measurement))``,
   NaN -> 0; the ceiling is the median.

Speed (the reference calls ``np.random.multivariate_normal``, i.e. an SVD of a V x V matrix, for
every draw): :math:`C_S^b` and :math:`C_N^b` are Cholesky-factored once; all draws of a batch of
simulations are one matrix product; every scale reuses the same standard-normal draws (common
random numbers: :math:`\\sqrt{sc}\\,L_S z` is a draw from :math:`\\mathcal N(0, sc\\,C_S^b)`), which
also makes the reliability-vs-scale curve smooth; and for the built-in RDMs the RDMs of all
scales come from one Gram matrix of the (unit-centred) mean, signal and noise patterns per
simulation, :math:`G(sc) = E_{sc} K E_{sc}^\\top`.

Deviations from the reference: common random numbers across scales (above); the random-pair
branch of step 2 (more than 8 trials) draws fresh random pairs from ``seed`` (the reference's
fixed-seed permutation repeats one split); GSN's chunk loops leave the first slot of each
chunk at 0, which is not reproduced.
"""

from __future__ import annotations

import itertools
import logging
import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike
from scipy.stats import rankdata

from zooscope._backend import Backend, BackendName, get_backend
from zooscope.rsa.gsn_fit import DEFAULT_SHRINKLEVELS, GSNResult, perform_gsn, validate_responses
from zooscope.rsa.gsn_linalg import nearest_psd_covariance

logger = logging.getLogger(__name__)

__all__ = ["RSANoiseCeiling", "rsa_noise_ceiling"]

RDMFunc = Callable[[np.ndarray], np.ndarray]
CompareFunc = Callable[[np.ndarray, np.ndarray], float]
_RDMS = ("correlation", "euclidean")
_COMPARES = ("pearson", "spearman")


@dataclass(frozen=True)
class RSANoiseCeiling:
    """Result of :func:`rsa_noise_ceiling`.

    Attributes
    ----------
    nc : float
        The RSA noise ceiling: median of ``ncdist``.
    ncdist : ndarray, shape (n_sims,)
        Model-to-measurement RDM similarity of each Monte Carlo simulation.
    sc : float
        Signal-covariance scale matched to the empirical split-half reliability.
    splitr : float
        Empirical split-half reliability (median over split pairs).
    scales : ndarray, shape (n_scales,)
        Scales evaluated.
    model_splitr : ndarray, shape (n_scales,)
        Median simulated split-half reliability per scale.
    data_splitr : ndarray, shape (n_pairs,)
        Split-half reliability of each empirical split pair.
    n_model_sims : int
        Simulations per scale used to match ``sc``.
    gsn : GSNResult
        The signal/noise estimate behind the simulations.
    note : str or None
        Set when the scale grid had to be widened (the empirical split-half r lay above every
        simulated one): says to where and why. None otherwise.
    """

    nc: float
    ncdist: np.ndarray
    sc: float
    splitr: float
    scales: np.ndarray
    model_splitr: np.ndarray
    data_splitr: np.ndarray
    n_model_sims: int
    gsn: GSNResult
    note: str | None = None


def rsa_noise_ceiling(
    data: ArrayLike,
    n_sims: int = 50,
    seed: int = 0,
    rdm: str | RDMFunc = "correlation",
    compare: str | CompareFunc = "pearson",
    backend: BackendName | Backend = "numpy",
    *,
    n_conditions: int = 50,
    n_trials: int | None = None,
    scales: ArrayLike | None = None,
    sim_chunk: int = 50,
    sim_thresh: float = 10.0,
    max_split_sims: int = 1000,
    shrinklevels: ArrayLike = DEFAULT_SHRINKLEVELS,
    dtype: str = "float64",
    batch_size: int | None = None,
    gsn: GSNResult | None = None,
    widen_scales: int = 5,
) -> RSANoiseCeiling:
    """GSN estimate of the RSA noise ceiling (Kay et al.; cvnlab/GSN v1.2 ``rsa_noise_ceiling``).

    Parameters
    ----------
    data : array_like, shape (n_units, n_conditions_data, n_trials_data)
        Single-trial responses, complete (no NaN), at least 2 trials.
    n_sims : int, default=50
        Monte Carlo simulations of the ceiling (GSN's ``ncsims``).
    seed : int, default=0
        Seed of all simulations and random splits.
    rdm : {"correlation", "euclidean"} or callable, default="correlation"
        ``"correlation"``: 1 - Pearson r across units between conditions (GSN's
        ``pdist(x.T, 'correlation')``). A callable takes patterns (n_units, n_conditions) and
        returns an RDM in any fixed shape (slow path: patterns are formed explicitly).
    compare : {"pearson", "spearman"} or callable, default="pearson"
        Similarity of two RDMs (flattened). A callable takes two RDMs and returns a float.
    backend : {"numpy", "torch", "torch_cuda", "auto"} or Backend, default="numpy"
    n_conditions : int, default=50
        Conditions per simulation (GSN's ``ncconds``).
    n_trials : int, optional
        Trials averaged in the ceiling (GSN's ``nctrials``); default: ``data.shape[2]``.
    scales : array_like, optional
        Signal scales; default ``0, 0.1, ..., 2.0``.
    sim_chunk, sim_thresh, max_split_sims : int, float, int
        GSN's ``simchunk`` (50), ``simthresh`` (10) and ``maxsimnum`` (1000).
    shrinklevels : array_like, default=linspace(0, 1, 51)
        Passed to :func:`perform_gsn`.
    dtype : {"float64", "float32"}, default="float64"
        Precision of the simulations (the GSN fit is always float64).
    batch_size : int, optional
        Simulations drawn per matrix product; default keeps each batch near 256 MB.
    gsn : GSNResult, optional
        A previous :func:`perform_gsn` result for ``data`` (skips the fit).
    widen_scales : int, default=5
        While the empirical split-half r lies above every simulated one, extend the scale grid
        by 20 steps up to twice its top (2 -> 4 -> 8 ...), at most this many times, and say so in
        ``note``. The reference only warns; its matched scale would then sit at the grid's top,
        underestimating the ceiling.

    Returns
    -------
    RSANoiseCeiling

    Notes
    -----
    Draw cost: one Cholesky of each covariance, then
    :math:`O(n_{draws} V^2)` flops in large matrix products, against one SVD per draw
    (:math:`O(V^3)`) in the reference. See the module docstring for the procedure.
    """
    arr = validate_responses(data, allow_nan=False)
    be = get_backend(backend)
    n_trial = arr.shape[2]
    n_trials, scales = _check_ceiling_settings(
        n_sims, n_conditions, sim_chunk, max_split_sims, n_trial, n_trials, scales
    )
    rdm_fn, cmp_fn = _check_metric(rdm, _RDMS, "rdm"), _check_metric(compare, _COMPARES, "compare")

    res = gsn if gsn is not None else perform_gsn(arr, shrinklevels=shrinklevels, backend=be)
    rng = np.random.default_rng(seed)
    k = n_trial // 2
    data_r = _data_split_reliability(
        arr, k, rdm_fn, cmp_fn, rng, sim_chunk, sim_thresh, max_split_sims, be
    )
    splitr = float(np.median(data_r))

    def simulate(grid: np.ndarray) -> tuple[_Simulator, np.ndarray]:
        # A fresh simulator per grid: the same seed gives every grid the same draws.
        sim = _Simulator(res, be, dtype, rdm_fn, cmp_fn, n_conditions, seed, batch_size)
        chunks = []
        while True:
            chunks.append(sim.split_reliability(sim_chunk, grid, k))  # (chunk, n_scales)
            model_r = np.concatenate(chunks, axis=0)
            robust = _robustness(model_r)
            if robust > sim_thresh or model_r.shape[0] + sim_chunk > max_split_sims:
                return sim, model_r

    sim, model_r, scales, note = _simulate_to_match(simulate, scales, splitr, widen_scales)
    medians = np.median(model_r, axis=0)
    sc = float(scales[int(np.argmin(np.abs(medians - splitr)))])
    ncdist = sim.ceiling(n_sims, sc, n_trials)
    logger.debug("GSN RSA ceiling: splitr=%.4f sc=%.2f nc=%.4f", splitr, sc, np.median(ncdist))
    return RSANoiseCeiling(
        nc=float(np.median(ncdist)),
        ncdist=ncdist,
        sc=sc,
        splitr=splitr,
        scales=scales,
        model_splitr=medians,
        data_splitr=data_r,
        n_model_sims=int(model_r.shape[0]),
        gsn=res,
        note=note,
    )


def _check_ceiling_settings(
    n_sims: int,
    n_conditions: int,
    sim_chunk: int,
    max_split_sims: int,
    n_trial: int,
    n_trials: int | None,
    scales: ArrayLike | None,
) -> tuple[int, np.ndarray]:
    """The trials averaged in the ceiling and the signal-scale grid, the settings checked."""
    if n_sims < 1 or n_conditions < 3:
        raise ValueError("n_sims must be >= 1 and n_conditions >= 3")
    if sim_chunk < 2 or max_split_sims < sim_chunk:
        raise ValueError("sim_chunk must be >= 2 and max_split_sims >= sim_chunk")
    n_trials = n_trial if n_trials is None else int(n_trials)
    if n_trials < 1:
        raise ValueError(f"n_trials must be >= 1, got {n_trials}")
    grid = (
        np.round(np.arange(21) / 10, 12) if scales is None else np.unique(np.asarray(scales, float))
    )
    if grid.size == 0 or np.any(grid < 0):
        raise ValueError("scales must be a non-empty list of non-negative numbers")
    return n_trials, grid


def _simulate_to_match(
    simulate: Callable[[np.ndarray], tuple[_Simulator, np.ndarray]],
    scales: np.ndarray,
    splitr: float,
    widen_scales: int,
) -> tuple[_Simulator, np.ndarray, np.ndarray, str | None]:
    """Simulated split-half r over the scale grid, widened while the data's lies above them all.

    Returns the simulator, its split-half r ``(n_sims, n_scales)``, the (possibly widened) grid
    and a note saying how it was widened (None when it was not).
    """
    sim, model_r = simulate(scales)
    medians = np.median(model_r, axis=0)
    first_max, first_top, widened = float(medians.max()), float(scales.max()), 0
    while splitr > medians.max() and widened < widen_scales:
        top = float(scales.max()) or 1.0
        scales = np.concatenate([scales, np.round(top * (1 + np.arange(1, 21) / 20), 12)])
        sim, model_r = simulate(scales)
        medians = np.median(model_r, axis=0)
        widened += 1
    note = None
    if widened:
        note = (
            f"scale grid widened from 0..{first_top:g} to 0..{scales.max():g}: empirical "
            f"split-half r {splitr:.3f} exceeded every simulated one (max {first_max:.3f})"
        )
        logger.debug("GSN RSA ceiling: %s", note)
    if splitr > medians.max():
        logger.warning(
            "empirical split-half r %.3f exceeds every simulated one (max %.3f) even at signal "
            "scale %g after widening the grid %d times; the ceiling may be underestimated: "
            "pass a larger widen_scales or scales",
            splitr,
            medians.max(),
            scales.max(),
            widened,
        )
    return sim, model_r, scales, note


# --------------------------------------------------------------------------- metrics
def _check_metric(metric, names, what):
    if callable(metric):
        return metric
    if metric not in names:
        raise ValueError(f"{what} must be one of {names} or a callable, got {metric!r}")
    return metric


def rdm_from_gram(gram: np.ndarray, rdm: str) -> np.ndarray:
    """Upper-triangular RDM entries from condition Gram matrices.

    Parameters
    ----------
    gram : ndarray, shape (..., m, m)
        Inner products of condition patterns (unit-centred ones for ``"correlation"``).
    rdm : {"correlation", "euclidean"}

    Returns
    -------
    ndarray, shape (..., m * (m - 1) / 2)
        In ``pdist`` order (row-major upper triangle).
    """
    m = gram.shape[-1]
    iu = np.triu_indices(m, 1)
    d = np.diagonal(gram, axis1=-2, axis2=-1)
    if rdm == "correlation":
        with np.errstate(divide="ignore", invalid="ignore"):
            r = gram / np.sqrt(d[..., :, None] * d[..., None, :])
        return 1.0 - r[..., iu[0], iu[1]]
    sq = d[..., :, None] + d[..., None, :] - 2 * gram
    return np.sqrt(np.maximum(sq[..., iu[0], iu[1]], 0.0))


def compare_rdms(a: np.ndarray, b: np.ndarray, compare: str) -> np.ndarray:
    """Pearson or Spearman correlation along the last axis, NaN replaced by 0 (as GSN).

    Parameters
    ----------
    a, b : ndarray, shape (..., n_pairs)

    Returns
    -------
    ndarray, shape (...)
    """
    if compare == "spearman":
        a, b = rankdata(a, axis=-1), rankdata(b, axis=-1)
    a = a - a.mean(axis=-1, keepdims=True)
    b = b - b.mean(axis=-1, keepdims=True)
    with np.errstate(divide="ignore", invalid="ignore"):
        r = np.sum(a * b, axis=-1) / np.sqrt(np.sum(a * a, axis=-1) * np.sum(b * b, axis=-1))
    return np.nan_to_num(r, nan=0.0)


def _similarity(x1: np.ndarray, x2: np.ndarray, rdm, compare) -> float:
    """compare(rdm(x1), rdm(x2)) for patterns (n_units, n_conditions); NaN -> 0."""
    if callable(rdm):
        r1, r2 = np.asarray(rdm(x1)).ravel(), np.asarray(rdm(x2)).ravel()
    else:
        r1, r2 = (rdm_from_gram(_gram_np(x, rdm), rdm) for x in (x1, x2))
    if callable(compare):
        val = float(compare(r1, r2))
        return 0.0 if math.isnan(val) else val
    return float(compare_rdms(r1, r2, compare))


def _gram_np(x: np.ndarray, rdm: str) -> np.ndarray:
    """Condition Gram matrix of patterns x (n_units, n_conditions)."""
    if rdm == "correlation":
        x = x - x.mean(axis=0, keepdims=True)
    return x.T @ x


def _robustness(r: np.ndarray) -> float:
    """GSN's stopping statistic: mean over columns of |median| / (IQR / 2 / sqrt(n))."""
    q75, q25 = np.percentile(r, [75, 25], axis=0)
    with np.errstate(divide="ignore", invalid="ignore"):
        val = np.abs(np.median(r, axis=0)) / ((q75 - q25) / 2 / np.sqrt(r.shape[0]))
    return float(np.mean(val))


# --------------------------------------------------------------------------- empirical splits
def _data_split_reliability(arr, k, rdm, compare, rng, chunk, thresh, max_sims, be) -> np.ndarray:
    """Split-half RDM reliabilities of the data; exhaustive when GSN would enumerate them."""
    n_trial = arr.shape[2]
    combos = list(itertools.combinations(range(n_trial), k))
    pairs = None
    if math.comb(n_trial, k) <= 2 * chunk:
        pairs = [(a, b) for a, b in itertools.combinations(combos, 2) if not set(a) & set(b)]
        if len(pairs) > chunk:
            pairs = None
    cache: dict[tuple[int, ...], np.ndarray] = {}

    def rdm_of(trials: tuple[int, ...]) -> np.ndarray:
        key = tuple(sorted(trials))
        if key not in cache:
            x = arr[:, :, list(key)].mean(axis=2)
            if callable(rdm):
                cache[key] = np.asarray(rdm(x)).ravel()
            else:
                cache[key] = rdm_from_gram(_gram_on(x, rdm, be), rdm)
        return cache[key]

    def sim(a, b):
        r1, r2 = rdm_of(a), rdm_of(b)
        if callable(compare):
            val = float(compare(r1, r2))
            return 0.0 if math.isnan(val) else val
        return float(compare_rdms(r1, r2, compare))

    if pairs is not None:
        return np.array([sim(a, b) for a, b in pairs])
    out: list[float] = []
    while True:
        for _ in range(chunk):
            perm = rng.permutation(n_trial)
            out.append(sim(tuple(perm[:k]), tuple(perm[k : 2 * k])))
            cache.clear()  # random splits rarely repeat; keep memory flat
        vals = np.array(out)
        if _robustness(vals[:, None]) > thresh or len(out) + chunk > max_sims:
            return vals


def _gram_on(x: np.ndarray, rdm: str, be: Backend) -> np.ndarray:
    """Condition Gram matrix of x (n_units, n_conditions), computed on the backend."""
    xp = be.xp
    xb = be.asarray(x, dtype="float64")
    if rdm == "correlation":
        xb = xb - xp.mean(xb, axis=0, keepdims=True)
    return be.to_numpy(xp.matmul(xb.T, xb))


# --------------------------------------------------------------------------- simulations
class _Simulator:
    """Draws from the fitted GSN model with factors computed once.

    Patterns of simulation ``i`` are rows ``mu + a * S_c + g * N_c`` of the stacked block
    ``B_i = [mu; S_i; N_i]`` (``S_i = Z L_S^T``, ``N_i = Z' L_N^T``); any such combination is
    ``E B_i``, so its Gram matrix is ``E (B_i B_i^T) E^T`` and the RDMs of every scale follow
    from one small Gram matrix per simulation.
    """

    def __init__(self, res: GSNResult, be: Backend, dtype, rdm, compare, m, seed, batch_size):
        self.be, self.rdm, self.compare, self.m = be, rdm, compare, m
        self.dtype = dtype
        xp = be.xp
        with be.exact():
            _, ls = nearest_psd_covariance(be.asarray(res.cSb, dtype="float64"), be, True)
            _, ln = nearest_psd_covariance(be.asarray(res.cNb, dtype="float64"), be, True)
        self.ls_t = be.asarray(xp.asarray(ls).T, dtype=dtype)  # upper factors: draws = Z @ L^T
        self.ln_t = be.asarray(xp.asarray(ln).T, dtype=dtype)
        self.mu = be.asarray(np.asarray(res.mnS, dtype=np.float64).ravel(), dtype=dtype)
        self.n_units = res.cSb.shape[0]
        if be.name == "torch":
            import torch

            self.gen = torch.Generator(device=be.device)
            self.gen.manual_seed(seed)
        else:
            self.gen = np.random.default_rng(seed + 1)  # independent of the split stream
        if batch_size is None:
            per_sim = (1 + 3 * m) * self.n_units * (8 if dtype == "float64" else 4) * 3
            batch_size = int(max(1, min(64, (256 * 2**20) // max(per_sim, 1))))
        self.batch_size = batch_size

    def _normal(self, shape):
        if self.be.name == "torch":
            import torch

            return torch.randn(
                shape, generator=self.gen, device=self.be.device, dtype=self.be.dtype(self.dtype)
            )
        return self.gen.standard_normal(shape, dtype=np.dtype(self.dtype))

    def _blocks(self, n: int, n_noise: int):
        """Stacked patterns (n, 1 + m + n_noise*m, V): mean, signal draws, noise draws."""
        xp, m, v = self.be.xp, self.m, self.n_units
        with self.be.exact():
            s = xp.matmul(self._normal((n * m, v)), self.ls_t)
            nz = xp.matmul(self._normal((n * n_noise * m, v)), self.ln_t)
        s = xp.reshape(s, (n, m, v))
        nz = xp.reshape(nz, (n, n_noise * m, v))
        mu = xp.broadcast_to(xp.reshape(self.mu, (1, 1, v)), (n, 1, v))
        return xp.concat([mu, s, nz], axis=1)

    def _grams(self, blocks):
        xp = self.be.xp
        b = blocks
        if self.rdm == "correlation":
            b = b - xp.mean(b, axis=2, keepdims=True)
        with self.be.exact():
            k = xp.matmul(b, xp.permute_dims(b, (0, 2, 1)))
        return self.be.to_numpy(k).astype(np.float64)

    def _coef(self, a: float, g: float, noise_block: int | None, n_noise: int) -> np.ndarray:
        """E (m, P): row c selects mu + a*S_c (+ g*N_block,c)."""
        m = self.m
        e = np.zeros((m, 1 + m + n_noise * m))
        e[:, 0] = 1.0
        e[np.arange(m), 1 + np.arange(m)] = a
        if noise_block is not None:
            e[np.arange(m), 1 + m + noise_block * m + np.arange(m)] = g
        return e

    def _batches(self, n_total: int):
        done = 0
        while done < n_total:
            n = min(self.batch_size, n_total - done)
            yield n
            done += n

    def split_reliability(self, n: int, scales: np.ndarray, k: int) -> np.ndarray:
        """(n, n_scales) simulated split-half reliabilities with noise C_N^b / k per half."""
        g = 1.0 / math.sqrt(k)
        out = []
        for nb in self._batches(n):
            blocks = self._blocks(nb, 2)
            if callable(self.rdm) or callable(self.compare):
                out.append(self._explicit(blocks, scales, g, two_noisy=True))
                continue
            kmat = self._grams(blocks)
            coef = _gram_coefficients(np.sqrt(scales), g)
            g1 = np.einsum("sk,nkij->nsij", coef, _gram_terms(kmat, self.m, 0))
            g2 = np.einsum("sk,nkij->nsij", coef, _gram_terms(kmat, self.m, 1))
            out.append(
                compare_rdms(rdm_from_gram(g1, self.rdm), rdm_from_gram(g2, self.rdm), self.compare)
            )
        return np.concatenate(out, axis=0)

    def ceiling(self, n: int, sc: float, n_trials: int) -> np.ndarray:
        """(n,) similarity of signal RDM and measurement (signal + C_N^b / n_trials) RDM."""
        a, g = math.sqrt(sc), 1.0 / math.sqrt(n_trials)
        out = []
        for nb in self._batches(n):
            blocks = self._blocks(nb, 1)
            if callable(self.rdm) or callable(self.compare):
                out.append(self._explicit(blocks, np.array([sc]), g, two_noisy=False)[:, 0])
                continue
            kmat = self._grams(blocks)
            terms = _gram_terms(kmat, self.m, 0)
            gs = np.einsum("k,nkij->nij", _gram_coefficients(np.array([a]), 0.0)[0], terms)
            gm = np.einsum("k,nkij->nij", _gram_coefficients(np.array([a]), g)[0], terms)
            out.append(
                compare_rdms(rdm_from_gram(gs, self.rdm), rdm_from_gram(gm, self.rdm), self.compare)
            )
        return np.concatenate(out)

    def _explicit(self, blocks, scales, g, two_noisy: bool) -> np.ndarray:
        """Slow path for user callables: form patterns and call rdm/compare per simulation."""
        b = self.be.to_numpy(blocks).astype(np.float64)
        n, n_noise = b.shape[0], (b.shape[1] - 1) // self.m - 1
        res = np.empty((n, scales.size))
        for i in range(n):
            for j, sc in enumerate(scales):
                a = math.sqrt(sc)
                if two_noisy:
                    x1 = self._coef(a, g, 0, n_noise) @ b[i]
                    x2 = self._coef(a, g, 1, n_noise) @ b[i]
                else:
                    x1 = self._coef(a, g, None, n_noise) @ b[i]
                    x2 = self._coef(a, g, 0, n_noise) @ b[i]
                res[i, j] = _similarity(x1.T, x2.T, self.rdm, self.compare)
        return res


def _gram_terms(kmat: np.ndarray, m: int, noise_block: int) -> np.ndarray:
    """Pieces of the Gram matrix of patterns ``mu + a S_c + g N_c``.

    Parameters
    ----------
    kmat : ndarray, shape (n, P, P)
        Gram matrices of the stacked rows ``[mu; S (m); N_0 (m); N_1 (m); ...]``.
    m : int
        Conditions per simulation.
    noise_block : int
        Which noise block ``N_b`` is added.

    Returns
    -------
    ndarray, shape (n, 6, m, m)
        Terms multiplying ``1, a, g, a^2, a g, g^2`` (see :func:`_gram_coefficients`).
    """
    s = slice(1, 1 + m)
    nb = slice(1 + m + noise_block * m, 1 + m + (noise_block + 1) * m)
    k_mm = kmat[:, 0, 0][:, None, None] * np.ones((1, m, m))
    k_ms = kmat[:, 0, s]
    k_mn = kmat[:, 0, nb]
    k_sn = kmat[:, s, nb]
    return np.stack(
        [
            k_mm,
            k_ms[:, :, None] + k_ms[:, None, :],
            k_mn[:, :, None] + k_mn[:, None, :],
            kmat[:, s, s],
            k_sn + np.swapaxes(k_sn, 1, 2),
            kmat[:, nb, nb],
        ],
        axis=1,
    )


def _gram_coefficients(a: np.ndarray, g: float) -> np.ndarray:
    """(n_a, 6) weights ``1, a, g, a^2, a g, g^2`` of :func:`_gram_terms`."""
    a = np.asarray(a, dtype=np.float64)
    one = np.ones_like(a)
    return np.stack([one, a, g * one, a * a, a * g, g * g * one], axis=1)
