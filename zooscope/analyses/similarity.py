"""Model-to-model similarity: RSM correlation matrices, hierarchical clustering, classical MDS.

Two models are similar when their best-layer test RSMs are correlated (Conwell et al. 2024,
Fig. 6). For veRSA the RSM is that of the predicted brain responses, so it is per subject; the
model x model matrix is computed per subject and ROI and averaged.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
from scipy import stats
from scipy.cluster import hierarchy
from scipy.spatial.distance import squareform

from zooscope.rsa.cka import cka_matrix
from zooscope.rsa.rsm import tie_codes

if TYPE_CHECKING:
    from zooscope.results.db import ResultsDB

logger = logging.getLogger(__name__)


def correlation_matrix(vectors: np.ndarray, method: str = "pearson") -> np.ndarray:
    """Correlation between every pair of rows.

    Parameters
    ----------
    vectors : array, shape (n_models, n_pairs)
        One RSM upper triangle per row.
    method : {"pearson", "spearman"}

    Returns
    -------
    array, shape (n_models, n_models)
        Symmetric with a unit diagonal.

    Notes
    -----
    Rows are centred and scaled to unit norm (after ranking, for Spearman), so the matrix is one
    product :math:`Z Z^T`, computed in float64.
    """
    v = np.asarray(vectors, dtype=np.float64)
    if v.ndim != 2 or v.shape[1] < 2:
        raise ValueError(f"vectors must be (n_models, n_pairs >= 2), got shape {v.shape}")
    if not np.isfinite(v).all():
        raise ValueError("RSM vectors contain NaN or inf (constant features?); drop those models")
    if method == "spearman":
        # Tie-aware: stored float32 RSMs split exactly equal entries by rounding.
        v = np.stack([stats.rankdata(tie_codes(row)) for row in v])
    elif method != "pearson":
        raise ValueError(f"method must be 'pearson' or 'spearman', got {method!r}")
    z = v - v.mean(axis=1, keepdims=True)
    norms = np.linalg.norm(z, axis=1, keepdims=True)
    if np.any(norms == 0):
        raise ValueError("a constant RSM vector has no correlation with anything")
    z /= norms
    r = np.clip(z @ z.T, -1.0, 1.0)
    np.fill_diagonal(r, 1.0)
    return r


def rsm_similarity(rsms: pd.DataFrame, method: str = "pearson") -> pd.DataFrame:
    """Model x model similarity from stored RSMs, averaged over subjects and ROIs.

    Parameters
    ----------
    rsms : DataFrame
        Columns ``model_uid, subject, roi, rsm`` (one metric; ``rsm`` holds equal-length 1-D
        upper triangles within a subject and ROI), e.g. :meth:`ResultsDB.rsms`.
    method : {"pearson", "spearman"}

    Returns
    -------
    DataFrame, shape (n_models, n_models)
        Index and columns are the model uids (sorted). A pair is averaged over the subjects and
        ROIs in which both models have an RSM; constant or non-finite RSMs are left out (logged).
    """
    for column in ("model_uid", "subject", "roi", "rsm"):
        if column not in rsms.columns:
            raise ValueError(f"rsms needs a {column!r} column; it has {list(rsms.columns)}")
    if "metric" in rsms.columns and rsms["metric"].nunique() > 1:
        raise ValueError("rsm_similarity takes one metric at a time; filter the frame first")
    usable = np.array([np.all(np.isfinite(v)) and np.ptp(v) > 0 for v in rsms["rsm"]], dtype=bool)
    if not usable.all():
        # A constant RSM (e.g. a layer whose predictions do not vary) has no correlation with
        # anything; leave it out rather than poison the whole matrix.
        dropped = (
            rsms.loc[~usable, ["model_uid", "subject", "roi"]].astype(str).agg("/".join, axis=1)
        )
        logger.info(
            "left out %d constant or non-finite RSM(s): %s", len(dropped), ", ".join(dropped)
        )
        rsms = rsms[usable]
    models = sorted(rsms["model_uid"].unique())
    position = {m: i for i, m in enumerate(models)}
    total = np.zeros((len(models), len(models)))
    count = np.zeros_like(total)
    for _, group in rsms.groupby(["subject", "roi"], sort=True):
        if group["model_uid"].duplicated().any():
            raise ValueError("more than one RSM per model, subject and ROI")
        idx = np.array([position[m] for m in group["model_uid"]])
        r = correlation_matrix(np.stack([np.asarray(v) for v in group["rsm"]]), method)
        total[np.ix_(idx, idx)] += r
        count[np.ix_(idx, idx)] += 1
    with np.errstate(invalid="ignore"):
        mean = total / count
    return pd.DataFrame(mean, index=pd.Index(models, name="model_uid"), columns=models)


def pairs_to_matrix(
    pairs: pd.DataFrame, a: str = "model_a", b: str = "model_b", value: str = "similarity"
) -> pd.DataFrame:
    """Symmetric matrix (unit diagonal) from long pairs, e.g. Conwell's ``model_uber_rsa.csv``.

    Raises if a pair is missing or given twice with different values.
    """
    models = sorted(set(pairs[a]) | set(pairs[b]))
    pos = {m: i for i, m in enumerate(models)}
    m = np.full((len(models), len(models)), np.nan)
    i = pairs[a].map(pos).to_numpy()
    j = pairs[b].map(pos).to_numpy()
    v = pairs[value].to_numpy(dtype=float)
    for x, y in ((i, j), (j, i)):
        seen = ~np.isnan(m[x, y])
        if np.any(seen & ~np.isclose(m[x, y], v)):
            raise ValueError("a model pair is given twice with different values")
        m[x, y] = v
    np.fill_diagonal(m, 1.0)
    missing = int(np.isnan(m).sum() // 2)
    if missing:
        raise ValueError(f"{missing} model pairs have no value; every pair is needed")
    return pd.DataFrame(m, index=pd.Index(models, name="model_uid"), columns=models)


def matrix_to_pairs(matrix: pd.DataFrame, value: str = "similarity") -> pd.DataFrame:
    """Tidy export of a symmetric matrix: one row per unordered pair (no diagonal)."""
    i, j = np.triu_indices(len(matrix), k=1)
    names = matrix.index.to_numpy()
    return pd.DataFrame({"model_a": names[i], "model_b": names[j], value: matrix.to_numpy()[i, j]})


def _distances(similarity: pd.DataFrame) -> np.ndarray:
    """Euclidean distance between unit-norm centred vectors: :math:`d = \\sqrt{2 (1 - r)}`."""
    s = similarity.to_numpy(dtype=float)
    if s.shape[0] != s.shape[1] or not np.allclose(s, s.T, atol=1e-10):
        raise ValueError("the similarity matrix must be square and symmetric")
    if not np.isfinite(s).all():
        raise ValueError("the similarity matrix has missing values")
    return np.sqrt(np.clip(2.0 * (1.0 - s), 0.0, None))


def cluster_models(
    similarity: pd.DataFrame, method: str = "average", n_clusters: int | None = None
) -> dict[str, Any]:
    """Hierarchical clustering of models on :math:`\\sqrt{2(1 - r)}` distances (scipy).

    Returns
    -------
    dict
        ``linkage`` (array, shape (n_models - 1, 4)), ``order`` (leaf order, list of uids),
        ``labels`` (Series of cluster ids, when ``n_clusters`` is given).
    """
    d = _distances(similarity)
    np.fill_diagonal(d, 0.0)
    link = hierarchy.linkage(squareform(d, checks=False), method=method)
    names = similarity.index.to_numpy()
    out: dict[str, Any] = {"linkage": link, "order": list(names[hierarchy.leaves_list(link)])}
    if n_clusters is not None:
        labels = hierarchy.fcluster(link, t=n_clusters, criterion="maxclust")
        out["labels"] = pd.Series(labels, index=similarity.index, name="cluster")
    return out


def classical_mds(
    similarity: pd.DataFrame, n_components: int = 2
) -> tuple[pd.DataFrame, np.ndarray]:
    """Classical (Torgerson) MDS of the models on :math:`\\sqrt{2(1 - r)}` distances.

    With :math:`J = I - \\frac{1}{n} 1 1^T`, :math:`B = -\\frac12 J D^{(2)} J`; the coordinates are
    the top eigenvectors of :math:`B` scaled by the square roots of their eigenvalues.

    Returns
    -------
    coords : DataFrame, shape (n_models, n_components)
        Columns ``dim1, dim2, ...``; index model uids. Signs are fixed so that each column's
        largest-magnitude entry is positive.
    eigenvalues : array, shape (n_models,)
        All eigenvalues of B, descending (negative ones flag non-Euclidean distances).
    """
    d2 = _distances(similarity) ** 2
    n = d2.shape[0]
    if not 1 <= n_components < n:
        raise ValueError(f"n_components must be in [1, {n - 1}], got {n_components}")
    j = np.eye(n) - 1.0 / n
    b = -0.5 * j @ d2 @ j
    vals, vecs = np.linalg.eigh((b + b.T) / 2)
    order = np.argsort(vals)[::-1]
    vals, vecs = vals[order], vecs[:, order]
    coords = vecs[:, :n_components] * np.sqrt(np.clip(vals[:n_components], 0, None))
    flip = np.sign(coords[np.abs(coords).argmax(axis=0), np.arange(n_components)])
    coords *= np.where(flip == 0, 1, flip)
    columns = [f"dim{k + 1}" for k in range(n_components)]
    return pd.DataFrame(coords, index=similarity.index, columns=columns), vals


def similarity_from_db(
    db: ResultsDB,
    metric: str,
    *,
    split: str = "test",
    benchmark_hash: str | None = None,
    config_hash: str | None = None,
    method: str = "pearson",
    roi: str | None = None,
) -> pd.DataFrame:
    """Model x model RSM similarity from the best-layer RSMs stored in ``db`` (one metric).

    Averaged over subjects and over ROIs unless ``roi`` names one.
    """
    rsms = db.rsms(
        metric=metric, split=split, benchmark_hash=benchmark_hash, config_hash=config_hash, roi=roi
    )
    if rsms.empty:
        raise ValueError(f"no stored {split} RSMs for metric {metric!r} in {db.path}")
    keys = ["benchmark_hash", "config_hash"]
    if len(rsms[keys].drop_duplicates()) > 1:
        raise ValueError(
            "RSMs from several benchmarks/configs: pass benchmark_hash and config_hash"
        )
    return rsm_similarity(rsms, method=method)


def cka_similarity(grams: dict[str, np.ndarray], debiased: bool = False) -> pd.DataFrame:
    """Model x model linear CKA from Gram matrices (:func:`zooscope.rsa.cka.cka_matrix`).

    Parameters
    ----------
    grams : dict
        ``{model_uid: array (n_images, n_images)}`` Gram matrices of the same images.
    debiased : bool
        Unbiased HSIC estimator.

    Returns
    -------
    DataFrame, shape (n_models, n_models)
    """
    names = sorted(grams)
    matrix = cka_matrix([grams[n] for n in names], debiased=debiased)
    return pd.DataFrame(matrix, index=pd.Index(names, name="model_uid"), columns=names)
