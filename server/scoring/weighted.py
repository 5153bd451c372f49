"""The report's statistics for many bootstrap resamples at once.

A patient-level bootstrap resample of n rows is described by its multiplicities: a vector of counts
``w`` (non-negative integers summing to n), ``w_i`` = how often row i was drawn. Every statistic is
rewritten as a function of ``w`` so that an (n, B) matrix of counts (column b = resample b, the
layout :func:`server.scoring.bootstrap.resample_counts` returns) gives all B replicates through a
few matrix products and row-wise sums instead of B Python-level calls. The results equal the plain
statistic computed on the resampled rows (the naive loop in ``benchmarks/bench_scoring.py`` and the
tests check this), because copies of one row are simply rows tied in every variable.

Each function returns a length-B float64 array, NaN where the resample is degenerate (e.g. all drawn
predictions equal).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

from server.scoring.inputs import FloatArray, IntArray

#: Rows of the concordance matrix processed at once; bounds memory to about
#: (B + k) * _BLOCK float64 values for k distinct rows.
_BLOCK = 512


def _group_sums(counts: NDArray[np.float64], keys: NDArray[np.float64] | IntArray) -> FloatArray:
    """Sum the rows of `counts` that share a key: (n, B) -> (number of distinct keys, B).

    Groups come out in increasing key order.
    """
    _, inverse = np.unique(keys, return_inverse=True)
    order = np.argsort(inverse, kind="stable")
    sorted_keys = inverse[order]
    if sorted_keys.size and sorted_keys[-1] == sorted_keys.size - 1:
        return counts[order]  # every key distinct: a reordering suffices
    starts = np.flatnonzero(np.r_[True, np.diff(sorted_keys) != 0])
    return np.add.reduceat(counts[order], starts, axis=0)


def kendall_tau_b(x: FloatArray, y: FloatArray, counts: FloatArray) -> FloatArray:
    r"""Kendall's tau-b of (x, y) on each resample.

    With multiplicities w, m = sum(w), S_ij = sign(x_i - x_j) sign(y_i - y_j) and W_g the drawn count
    of each group of rows tied in x (likewise in y):

    .. math:: \tau_b(w) = \frac{w^\top S w}{\sqrt{(m^2 - \sum_g W_{x,g}^2)(m^2 - \sum_g W_{y,g}^2)}}

    since ``w^T S w = 2(C - D)`` and ``m^2 - sum_g W_g^2 = 2(n_0 - n_1)``: copies of a row form pairs
    tied in both variables, exactly as scipy counts them on the resampled vectors. Rows with equal
    (x, y) are merged first, which makes the level view (at most 64 distinct pairs) nearly free.
    """
    pairs, inverse = np.unique(np.column_stack([x, y]), axis=0, return_inverse=True)
    merged = _group_sums(counts, inverse.reshape(-1))
    ux, uy = pairs[:, 0], pairs[:, 1]
    total = counts.sum(axis=0)
    # Every partial sum of w^T S w is an integer of magnitude <= m^2, so float32 is exact while
    # m^2 < 2^24 (m < 4096 rows), and twice as fast as float64 in the matrix product.
    merged_c: NDArray[Any] = merged.astype(np.float32) if total.max(initial=0) ** 2 < 2**24 else merged
    numerator = np.zeros(counts.shape[1])
    for start in range(0, ux.size, _BLOCK):
        block = slice(start, start + _BLOCK)
        sign = (np.sign(ux[block, None] - ux[None, :]) * np.sign(uy[block, None] - uy[None, :])).astype(
            merged_c.dtype
        )
        numerator += np.einsum("jb,jb->b", sign @ merged_c, merged_c[block])
    total_sq = total**2
    untied_x = total_sq - (_group_sums(merged, ux) ** 2).sum(axis=0)
    untied_y = total_sq - (_group_sums(merged, uy) ** 2).sum(axis=0)
    return _ratio(numerator, np.sqrt(untied_x * untied_y))


def amae(y_true: FloatArray, y_pred: FloatArray, counts: FloatArray) -> FloatArray:
    r"""AMAE on each resample: the mean over classes drawn at least once of the class's mean error.

    .. math:: \mathrm{AMAE}(w) = \frac{1}{|\{c: N_c > 0\}|} \sum_{c: N_c > 0}
              \frac{\sum_{i: y_i = c} w_i |\hat y_i - c|}{N_c}, \qquad N_c = \sum_{i: y_i=c} w_i
    """
    errors = np.abs(y_pred - y_true)
    numerator = _group_sums(counts * errors[:, None], y_true)
    drawn = _group_sums(counts, y_true)
    present = drawn > 0
    per_class = np.divide(numerator, drawn, out=np.zeros_like(numerator), where=present)
    n_present = present.sum(axis=0)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(n_present > 0, per_class.sum(axis=0) / np.maximum(n_present, 1), np.nan)


#: Resamples processed at once by :func:`association`: a (128, n) float64 block of a 1,000-row
#: population is 1 MB, so the chain of element-wise steps stays in cache; on the 2-core machine this
#: was 3-5x faster than whole (n, 2000) matrices (``benchmarks/bench_scoring.py``).
_COLUMNS = 128


@dataclass(frozen=True)
class Association:
    """Per-resample AUC and quartile odds ratio of one score for one endpoint (NaN = degenerate)."""

    auc: FloatArray
    odds_ratio: FloatArray


def association(
    score: FloatArray, counts: FloatArray, endpoints: Mapping[str, IntArray], *, quartile: int = 4
) -> dict[str, Association]:
    r"""AUC and the odds ratio of one quartile against Q1 of `score`, for every endpoint and resample.

    The resampled rows are sorted by score; a row's drawn copies and the rows tied with it in score
    form a tie block occupying sorted positions ``[s, e)``.

    * **AUC**, the weighted Mann-Whitney statistic:
      :math:`\mathrm{AUC}(w) = (R_+(w) - P(P+1)/2)/(P N)`, with :math:`R_+` the sum of the mid-ranks
      :math:`(s + e + 1)/2` of the drawn positive copies (ties count one half) and P, N the drawn
      positives and negatives.
    * **Odds ratio** ``a*d/(b*c)`` of the quartile against Q1, binned exactly as
      :func:`server.scoring.clinical.octile_quartiles` bins the resampled rows: cuts at 2q, 4q, 6q
      with q = floor(m/8), every tie block whole on the side of a cut where its midpoint lies
      (``s + e < 2c`` is below c). NaN where ``b*c = 0`` (infinite or undefined).

    Parameters
    ----------
    score : ndarray, shape (n,)
    counts : ndarray, shape (n, B)
        Resample multiplicities.
    endpoints : mapping of str -> ndarray of 0/1, shape (n,)
    quartile : {2, 3, 4}
    """
    if quartile not in (2, 3, 4):
        raise ValueError(f"quartile must be 2, 3 or 4; got {quartile}")
    order = np.argsort(score, kind="stable")
    sorted_score = score[order]
    new_group = np.r_[True, sorted_score[1:] != sorted_score[:-1]]
    starts = np.flatnonzero(new_group)
    group = np.cumsum(new_group) - 1
    tied = not new_group.all()
    # (n, k + 1): the endpoints' 0/1 columns in score order, then a column of ones, so one matrix
    # product gives each resample's drawn positives per endpoint and its drawn total.
    k = len(endpoints)
    weights = np.ones((order.size, k + 1))
    for i, endpoint in enumerate(endpoints.values()):
        weights[:, i] = np.asarray(endpoint)[order]
    positive = weights[:, :k]
    n_resamples = counts.shape[1]
    auc = np.empty((n_resamples, k))
    ratio = np.empty((n_resamples, k))
    low_cut, high_cut = 4 * (quartile - 1), (4 * quartile if quartile < 4 else None)
    for first in range(0, n_resamples, _COLUMNS):
        columns = slice(first, first + _COLUMNS)
        # One row per resample, sorted rows along the last axis: numpy's cumsum is several times
        # faster along the contiguous axis than down the columns of an (n, B) block.
        drawn = np.ascontiguousarray(counts[order, columns].T)
        upper = np.cumsum(drawn, axis=1)
        total = upper[:, -1:]
        if tied:
            lower = upper - drawn
            edges = lower[:, starts][:, group] + np.maximum.reduceat(upper, starts, axis=1)[:, group]
        else:
            edges = 2 * upper - drawn  # s + e with s = upper - drawn, e = upper
        n_pos = drawn @ positive
        u = ((drawn * edges) @ positive + n_pos) / 2 - n_pos * (n_pos + 1) / 2
        auc[columns] = _ratio(u, n_pos * (total - n_pos))
        # Twice each cut position: 2 * (2k * floor(m/8)) for the cut below quartile k + 1.
        per_bin = np.floor(total / 8)
        above = edges >= low_cut * per_bin
        in_quartile = above if high_cut is None else above & (edges < high_cut * per_bin)
        compared = np.where(in_quartile, drawn, 0.0) @ weights  # positives..., all drawn
        reference = np.where(edges < 4 * per_bin, drawn, 0.0) @ weights
        a, c = compared[:, :k], reference[:, :k]
        b, d = compared[:, k:] - a, reference[:, k:] - c
        ratio[columns] = _ratio(a * d, b * c)
    return {key: Association(auc[:, i].copy(), ratio[:, i].copy()) for i, key in enumerate(endpoints)}


def _ratio(numerator: FloatArray, denominator: FloatArray) -> FloatArray:
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(denominator > 0, numerator / np.where(denominator > 0, denominator, 1.0), np.nan)


def roc_auc(y_true: IntArray, score: FloatArray, counts: FloatArray) -> FloatArray:
    """ROC AUC of `score` for the 0/1 endpoint on each resample (see :func:`association`)."""
    return association(score, counts, {"endpoint": y_true})["endpoint"].auc
