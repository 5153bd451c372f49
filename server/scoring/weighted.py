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
    denominator = np.sqrt(untied_x * untied_y)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(denominator > 0, numerator / np.where(denominator > 0, denominator, 1.0), np.nan)


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


class ScoreDraws:
    """One continuous score under many resamples: what AUC and the quartile odds ratios share.

    Sorting the drawn counts by score, the mid-ranks and the quartile memberships do not depend on
    the endpoint, so they are computed once per score; each endpoint then costs a few
    vector-matrix products.

    Parameters
    ----------
    score : ndarray, shape (n,)
    tiebreak : ndarray of int64, shape (n,)
        Filename order codes; break score ties when rows are binned into quartiles.
    counts : ndarray, shape (n, B)
        Resample multiplicities.
    """

    def __init__(self, score: FloatArray, tiebreak: IntArray, counts: FloatArray) -> None:
        self.order = np.lexsort((tiebreak, score))
        self.drawn = counts[self.order]
        self.total = self.drawn.sum(axis=0)
        sorted_score = score[self.order]
        upper = np.cumsum(self.drawn, axis=0)
        lower = upper - self.drawn
        # Mid-rank of every drawn copy of a row: the rows tied in score share one rank range.
        new_group = np.r_[True, sorted_score[1:] != sorted_score[:-1]]
        if new_group.all():
            group_lower, group_upper = lower, upper
        else:
            starts = np.flatnonzero(new_group)
            group = np.cumsum(new_group) - 1
            group_lower = lower[starts][group]
            group_upper = np.maximum.reduceat(upper, starts, axis=0)[group]
        self.rank_weighted = self.drawn * (group_lower + group_upper + 1) / 2
        # Quartile membership by position, as octile_quartiles: q = floor(m/8), Q1 = [0, 2q),
        # Q2 = [2q, 4q), Q3 = [4q, 6q), Q4 = [6q, m); copies may straddle a boundary.
        self._upper, self._lower = upper, lower
        self._quartiles: dict[int, FloatArray] = {}

    def quartile_counts(self, quartile: int) -> FloatArray:
        """Drawn copies of each (score-sorted) row that fall in the quartile, shape (n, B)."""
        if quartile not in self._quartiles:
            per_bin = np.floor(self.total / 8)
            start = 2 * (quartile - 1) * per_bin
            stop = self.total if quartile == 4 else 2 * quartile * per_bin
            overlap = np.minimum(self._upper, stop) - np.maximum(self._lower, start)
            self._quartiles[quartile] = np.clip(overlap, 0.0, None)
        return self._quartiles[quartile]

    def roc_auc(self, endpoint: IntArray) -> FloatArray:
        r"""ROC AUC on each resample as the weighted Mann-Whitney statistic.

        .. math:: \mathrm{AUC}(w) = \frac{R_+(w) - P(P+1)/2}{P\,N}

        with :math:`R_+` the sum of the mid-ranks of the drawn positive copies (ties share their
        average rank, so a tie counts one half) and P, N the drawn positives and negatives.
        """
        positive = endpoint[self.order].astype(np.float64)
        n_pos = positive @ self.drawn
        n_neg = self.total - n_pos
        u = positive @ self.rank_weighted - n_pos * (n_pos + 1) / 2
        denominator = n_pos * n_neg
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(denominator > 0, u / np.where(denominator > 0, denominator, 1.0), np.nan)

    def quartile_odds_ratio(self, endpoint: IntArray, quartile: int = 4) -> FloatArray:
        """Sample odds ratio ``a*d/(b*c)`` of one quartile against Q1; NaN where ``b*c = 0``."""
        if quartile not in (2, 3, 4):
            raise ValueError(f"quartile must be 2, 3 or 4; got {quartile}")
        positive = endpoint[self.order].astype(np.float64)
        compared, reference = self.quartile_counts(quartile), self.quartile_counts(1)
        a = positive @ compared
        b = compared.sum(axis=0) - a
        c = positive @ reference
        d = reference.sum(axis=0) - c
        denominator = b * c
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(denominator > 0, a * d / np.where(denominator > 0, denominator, 1.0), np.nan)


def roc_auc(y_true: IntArray, score: FloatArray, counts: FloatArray) -> FloatArray:
    """ROC AUC of `score` for the 0/1 endpoint on each resample (see :meth:`ScoreDraws.roc_auc`)."""
    return ScoreDraws(score, np.zeros(score.size, dtype=np.int64), counts).roc_auc(y_true)


def quartile_odds_ratio(
    endpoint: IntArray, score: FloatArray, tiebreak: IntArray, counts: FloatArray, *, quartile: int = 4
) -> FloatArray:
    """Sample odds ratio of one quartile against Q1 on each resample.

    The resampled rows are sorted by (score, Filename), so copies of a row sit together, and cut by
    position exactly like :func:`server.scoring.clinical.octile_quartiles`: with q = floor(m/8),
    Q1 = positions [0, 2q), Q2 = [2q, 4q), Q3 = [4q, 6q), Q4 = [6q, m). A row whose copies straddle a
    boundary contributes its copies to both sides. NaN where ``b*c = 0`` (infinite or undefined OR).
    """
    return ScoreDraws(score, tiebreak, counts).quartile_odds_ratio(endpoint, quartile)
