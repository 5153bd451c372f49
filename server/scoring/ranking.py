"""Rank uncertainty, the significance map and tiers of rows scored on the same resamples (issue 21).

Every function takes the paired bootstrap replicates of K rows as one array ``replicates`` of shape
(K, R): row k's Kendall tau-b in resample r, all rows drawn from the same resamples (same test set,
seed and resample count, :func:`server.scoring.bootstrap.resample_counts`). Higher tau-b is better.
A resample in which any row's replicate is undefined (NaN) is left out of every statistic here, so
each statistic compares all K rows on the same draws; :func:`usable_resamples` says how many remain.

The rules (docs/scoring.md, "Rankings"):

* per resample the rows are ranked by tau-b, 1 = best, rows equal in a resample sharing the better
  rank (``scipy.stats.rankdata(-tau, method="min")``);
* rank interval = 2.5th and 97.5th percentiles of a row's ranks (``numpy.percentile``'s default
  method), the lower rounded down and the upper up; median rank = the median of its ranks;
* ``p_first`` = share of resamples in which the row is best, a tie for best sharing the resample
  equally (so ``p_first`` sums to 1 over the rows);
* ``p[i][j]`` = share of resamples with ``tau_i - tau_j <= 0``: the one-sided bootstrap p of H0 "i is
  not better than j"; NaN on the diagonal;
* ``p_holm[i][j]`` = ``p[i][j]`` Holm-adjusted within column j (the K-1 tests "i is better than j");
* tier of row j = 1 + the number of rows i with ``p_holm[i][j] < alpha``.

Pure numpy/scipy: no database, web or server import, so the board and ``csawm rank`` share it.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import scipy.stats

from server.scoring.inputs import FloatArray, IntArray

DEFAULT_ALPHA = 0.05


@dataclass(frozen=True)
class RankSummary:
    """Per row (in input order): rank interval, median rank and ``p_first``."""

    rank_low: IntArray
    rank_high: IntArray
    median_rank: FloatArray
    p_first: FloatArray


def _matrix(replicates: FloatArray) -> FloatArray:
    """The (K, R) replicates with every resample that is undefined for some row dropped."""
    values = np.asarray(replicates, dtype=np.float64)
    if values.ndim != 2 or values.shape[0] < 1:
        raise ValueError(
            f"replicates must be a (rows, resamples) array with rows >= 1; got shape {values.shape}"
        )
    kept = values[:, np.isfinite(values).all(axis=0)]
    if kept.shape[1] == 0:
        raise ValueError("no resample is defined for every row; rankings need paired replicates")
    return kept


def usable_resamples(replicates: FloatArray) -> int:
    """How many resamples are defined for every row (the R the statistics use)."""
    values = np.asarray(replicates, dtype=np.float64)
    return int(np.isfinite(values).all(axis=0).sum())


def competition_ranks(values: Sequence[float] | FloatArray) -> IntArray:
    """Competition ranking, 1 = highest value; equal values share the better rank ("1, 2, 2, 4")."""
    array = np.asarray(values, dtype=np.float64)
    ranks: IntArray = scipy.stats.rankdata(-array, method="min").astype(np.int64)
    return ranks


def rank_summary(replicates: FloatArray) -> RankSummary:
    """Rank interval (floor of the 2.5th, ceiling of the 97.5th percentile), median rank, p_first."""
    values = _matrix(replicates)
    ranks = scipy.stats.rankdata(-values, method="min", axis=0)
    low, high = np.percentile(ranks, [2.5, 97.5], axis=1)
    best = values == values.max(axis=0)
    p_first = (best / best.sum(axis=0)).mean(axis=1)
    return RankSummary(
        rank_low=np.floor(low).astype(np.int64),
        rank_high=np.ceil(high).astype(np.int64),
        median_rank=np.median(ranks, axis=1),
        p_first=p_first,
    )


def significance(replicates: FloatArray) -> FloatArray:
    """``p[i][j]`` = share of resamples with ``tau_i - tau_j <= 0``; NaN on the diagonal.

    The comparisons run on each resample's dense ranks (order-preserving, so ``tau_i <= tau_j``
    exactly when ``dense_i <= dense_j``) stored as small integers, one row i at a time: memory is
    K x R per step, and the K x K x R comparisons are about 4x faster than on the float values
    (``benchmarks/bench_ranking.py``).
    """
    values = _matrix(replicates)
    k, r = values.shape
    dense = scipy.stats.rankdata(values, method="dense", axis=0)
    ordinal = dense.astype(np.int16 if k < np.iinfo(np.int16).max else np.int32)
    p = np.empty((k, k))
    for i in range(k):
        p[i] = np.count_nonzero(ordinal >= ordinal[i], axis=1) / r
    np.fill_diagonal(p, np.nan)
    return p


def holm(pvalues: Sequence[float] | FloatArray) -> FloatArray:
    """Holm's step-down adjustment of one family of p-values (input order kept, capped at 1).

    Sorted ascending, the i-th smallest (0-based) of m becomes ``max_{l <= i} min(1, (m - l) p_(l))``.
    """
    p = np.asarray(pvalues, dtype=np.float64)
    if p.ndim != 1:
        raise ValueError(f"pvalues must be one-dimensional; got shape {p.shape}")
    m = p.size
    order = np.argsort(p, kind="stable")
    scaled = np.minimum(1.0, (m - np.arange(m)) * p[order])
    adjusted = np.empty(m)
    adjusted[order] = np.maximum.accumulate(scaled)
    return adjusted


def holm_by_column(p: FloatArray) -> FloatArray:
    """``p_holm``: each column j's off-diagonal entries Holm-adjusted as one family; NaN diagonal."""
    matrix = np.asarray(p, dtype=np.float64)
    k = matrix.shape[0]
    adjusted = np.full((k, k), np.nan)
    for j in range(k):
        others = np.arange(k) != j
        adjusted[others, j] = holm(matrix[others, j])
    return adjusted


def tiers(p_holm: FloatArray, alpha: float = DEFAULT_ALPHA) -> IntArray:
    """Tier of row j = 1 + how many rows are significantly better than j (``p_holm[i][j] < alpha``)."""
    if not 0 < alpha < 1:
        raise ValueError(f"alpha must lie strictly between 0 and 1; got {alpha}")
    matrix = np.asarray(p_holm, dtype=np.float64)
    better = np.where(np.isnan(matrix), False, matrix < alpha)
    result: IntArray = (1 + better.sum(axis=0)).astype(np.int64)
    return result


def stability(
    consensus: Sequence[float | None], orders: Mapping[str, Sequence[float | None]]
) -> dict[str, float | None]:
    """Kendall tau-b between the rows ordered by `consensus` and by each of `orders` (higher = better).

    A row missing (None) from either order is left out of that pair; None when fewer than two rows
    remain or either order is constant. Orders where lower is better (AMAE) are negated by the caller.
    """
    result: dict[str, float | None] = {}
    for name, values in orders.items():
        pairs = [(a, b) for a, b in zip(consensus, values, strict=True) if a is not None and b is not None]
        if len(pairs) < 2:
            result[name] = None
            continue
        tau = scipy.stats.kendalltau([a for a, _ in pairs], [b for _, b in pairs]).statistic
        result[name] = None if math.isnan(tau) else float(tau)
    return result
