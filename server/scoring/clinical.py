"""Clinical association of the masking score: AUC and octile-paired quartile odds ratios.

Follows the CSAW-M authors' ``get_table_metric_downstream_auc``, ``df_score_to_bin`` and
``calc_oddsratio_downstream`` (facts §1.6-1.7), with two documented additions the paper's code does
not have: rows tied in score stay together in one quartile (:func:`octile_quartiles`; the authors'
unstable sort placed them arbitrarily), and a Woolf 95 % confidence interval (Haldane +0.5
correction only when a cell is zero).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import scipy.stats
from numpy.typing import ArrayLike

from server.scoring.inputs import FloatArray, IntArray, as_binary, as_vector
from server.scoring.metrics import MetricValue

QUARTILES = ("Q2", "Q3", "Q4")


def roc_auc(y_true: ArrayLike, score: ArrayLike) -> MetricValue:
    r"""Area under the ROC curve of `score` for the 0/1 endpoint `y_true`.

    Computed as the Mann-Whitney statistic with average ranks,

    .. math:: \mathrm{AUC} = \frac{R_+ - n_+(n_+ + 1)/2}{n_+ n_-},

    which equals ``sklearn.metrics.roc_auc_score(y_true, score)`` (ties count one half). Undefined
    (NaN) when the endpoint has no positive or no negative row.

    Examples
    --------
    Positive scores 0.8, 0.4 against negatives 0.1, 0.4: pairs won 2 + 0.5 + 1 of 4.

    >>> roc_auc([1, 1, 0, 0], [0.8, 0.4, 0.1, 0.4]).value
    0.875
    """
    labels = as_binary(y_true, "y_true")
    values = as_vector(score, "score")
    if labels.shape != values.shape:
        raise ValueError(f"y_true and score must have the same length; got {labels.size} and {values.size}")
    n_pos = int(labels.sum())
    n_neg = labels.size - n_pos
    if n_pos == 0:
        return MetricValue.undefined("the endpoint has no positive rows")
    if n_neg == 0:
        return MetricValue.undefined("the endpoint has no negative rows")
    ranks = scipy.stats.rankdata(values, method="average")
    u = float(ranks[labels == 1].sum()) - n_pos * (n_pos + 1) / 2
    return MetricValue(u / (n_pos * n_neg))


def quartile_cuts(n: int) -> tuple[int, int, int]:
    """Positions (rows below the cut) of the three quartile cuts for `n` rows: 2k * floor(n/8).

    Octiles hold ``floor(n/8)`` rows each and the eighth takes the remainder (pandas ``.loc`` slicing
    in the authors' ``df_score_to_bin``), so Q1-Q3 hold 2 * floor(n/8) rows and Q4 the rest.

    >>> quartile_cuts(972), quartile_cuts(475)
    ((242, 484, 726), (118, 236, 354))
    """
    per_bin = n // 8
    return (2 * per_bin, 4 * per_bin, 6 * per_bin)


@dataclass(frozen=True)
class TieBlocks:
    """Rows grouped by equal score, in increasing score order.

    Attributes
    ----------
    values : ndarray, shape (k,)
        The distinct scores, increasing.
    inverse : ndarray of int64, shape (n,)
        Block index of each row.
    start, stop : ndarray of int64, shape (k,)
        Sorted positions ``[start, stop)`` the block occupies.
    """

    values: FloatArray
    inverse: IntArray
    start: IntArray
    stop: IntArray

    @classmethod
    def of(cls, score: ArrayLike) -> TieBlocks:
        values, inverse, sizes = np.unique(as_vector(score, "score"), return_inverse=True, return_counts=True)
        stop = np.cumsum(sizes)
        return cls(values, inverse.reshape(-1).astype(np.int64), stop - sizes, stop)


def block_quartiles(start: ArrayLike, stop: ArrayLike, cuts: ArrayLike) -> IntArray:
    r"""Quartile 1..4 of each tie block: a block lies below a cut when its midpoint does.

    A block occupying sorted positions ``[s, e)`` is below the cut at position c when
    :math:`(s + e)/2 < c`, i.e. when ``s + e < 2c``. A block that does not straddle the cut
    (``e <= c`` or ``s >= c``) is placed exactly as a position cut would place its rows; a straddling
    block goes whole to the side that holds more of it, which moves the cut to the nearest block edge
    (to the lower edge when both are equally near, so the block goes up). The rule reads only scores
    and positions, never row order or file names.

    Parameters
    ----------
    start, stop : array_like of int, same shape
        Block edges (any leading shape; trailing axes broadcast against `cuts`).
    cuts : array_like of int, shape (3,) + trailing shape
        The cut positions below Q2, Q3 and Q4 (:func:`quartile_cuts`).

    Examples
    --------
    Eight rows, cuts at 2, 4, 6; a block of three tied rows at positions 1..3 straddles the cut at 2
    with two of its rows above it, so it goes to Q2 whole; the cut at 4 is not straddled.

    >>> block_quartiles([0, 1, 4, 5, 6, 7], [1, 4, 5, 6, 7, 8], [2, 4, 6]).tolist()
    [1, 2, 3, 3, 4, 4]
    """
    edges = np.asarray(start, dtype=np.int64) + np.asarray(stop, dtype=np.int64)
    twice = 2 * np.asarray(cuts, dtype=np.int64)
    quartile = np.ones(np.broadcast_shapes(edges.shape, twice.shape[1:]), dtype=np.int64)
    for cut in twice:
        quartile += edges >= cut
    return quartile


def straddling_rows(score: ArrayLike) -> int:
    """How many rows sit in tie blocks that straddle a quartile cut (kept whole by the v2 rule).

    >>> straddling_rows([0.0, 0.1, 0.1, 0.1, 0.2, 0.3, 0.4, 0.5])
    3
    """
    blocks = TieBlocks.of(score)
    sizes = blocks.stop - blocks.start
    crossing = np.zeros(sizes.size, dtype=bool)
    for cut in quartile_cuts(int(sizes.sum())):
        crossing |= (blocks.start < cut) & (blocks.stop > cut)
    return int(sizes[crossing].sum())


def octile_quartiles(score: ArrayLike) -> IntArray:
    """Assign each row its score quartile 1..4 built from paired octiles (scorer version 2).

    As the authors: rows sorted by score are cut into 8 bins of ``floor(N/8)`` rows, bin 8 taking
    the remainder, and quartile q is bins {2q-1, 2q}, so N=972 gives 242/242/242/246 and N=475 gives
    118/118/118/121; with N < 8 every row falls in Q4. Rows tied in score are never split by a cut:
    each tie block is kept whole and placed by :func:`block_quartiles` (its midpoint decides), so
    membership depends on the scores alone, not on row order or file names. Without ties that
    straddle a cut the groups are exactly the authors'; with them the groups are no longer of
    equal size (the report warns, :func:`straddling_rows`). Scorer version 1 broke ties by
    Filename, which in the pooled view put every tied ``private_*`` row (a cancer-enriched set)
    below every tied ``test_*`` row (issue 14).

    Examples
    --------
    >>> np.bincount(octile_quartiles(np.arange(475.0)))[1:].tolist()
    [118, 118, 118, 121]

    A constant score is one block straddling every cut. Its midpoint (8 of 16) is at the middle cut,
    so all rows go to Q3 and Q1 is empty: every odds ratio is undefined, whatever the file names.

    >>> np.bincount(octile_quartiles(np.zeros(16)), minlength=5)[1:].tolist()
    [0, 0, 16, 0]
    """
    blocks = TieBlocks.of(score)
    return block_quartiles(blocks.start, blocks.stop, quartile_cuts(blocks.inverse.size))[blocks.inverse]


@dataclass(frozen=True)
class OddsRatio:
    """A 2x2 odds ratio of one score quartile against Q1.

    Attributes
    ----------
    table : ((a, b), (c, d))
        a/b = positives/negatives in the quartile, c/d = positives/negatives in Q1.
    value : float
        The sample odds ratio ``(a*d)/(b*c)`` (what ``scipy.stats.fisher_exact`` returns, not the
        conditional MLE); ``inf`` when only ``b*c`` is 0, NaN when undefined.
    p_one_sided : float
        One-sided Fisher exact p-value, alternative "greater" (OR > 1); NaN when a group is empty.
    ci_low, ci_high : float
        Woolf confidence interval; NaN when the odds ratio is undefined.
    haldane : bool
        Whether +0.5 was added to every cell for the interval because a cell is zero.
    reason : str or None
        Why `value` is undefined or infinite; None when it is a finite number.
    """

    table: tuple[tuple[int, int], tuple[int, int]]
    value: float
    p_one_sided: float
    ci_low: float
    ci_high: float
    haldane: bool
    reason: str | None


def odds_ratio(table: ArrayLike, *, level: float = 0.95) -> OddsRatio:
    r"""Sample odds ratio, one-sided Fisher exact p and Woolf interval of a 2x2 table.

    .. math:: \mathrm{OR} = \frac{ad}{bc}, \qquad
              \exp\!\Big(\ln \mathrm{OR} \pm z_{1-\alpha/2}
              \sqrt{\tfrac1a + \tfrac1b + \tfrac1c + \tfrac1d}\Big)

    (Woolf 1955). When any cell is zero, 0.5 is added to every cell for the interval only (Haldane
    1956) and ``haldane`` is set; the point value stays the paper's uncorrected sample OR.

    Parameters
    ----------
    table : array_like, shape (2, 2)
        ``[[a, b], [c, d]]``: rows = compared group, reference group; columns = positives, negatives.
    level : float
        Confidence level of the interval.

    Examples
    --------
    ``[[10, 20], [5, 40]]``: OR = 400/100 = 4, SE = sqrt(1/10 + 1/20 + 1/5 + 1/40) = sqrt(0.375).

    >>> result = odds_ratio([[10, 20], [5, 40]])
    >>> result.value, round(result.ci_low, 4), round(result.ci_high, 4)
    (4.0, 1.2045, 13.2835)
    """
    counts = np.asarray(table)
    if counts.shape != (2, 2) or not np.all(counts == np.round(counts)) or (counts < 0).any():
        raise ValueError(f"table must be a 2x2 table of non-negative counts; got {counts.tolist()}")
    (a, b), (c, d) = ((int(counts[0, 0]), int(counts[0, 1])), (int(counts[1, 0]), int(counts[1, 1])))
    cells = ((a, b), (c, d))
    nan = math.nan
    if a + b == 0 or c + d == 0:
        which = "the compared group" if a + b == 0 else "the reference group"
        return OddsRatio(cells, nan, nan, nan, nan, False, f"{which} has no rows")
    p_value = float(scipy.stats.fisher_exact(cells, alternative="greater").pvalue)
    if a + c == 0 or b + d == 0:
        which = "positive" if a + c == 0 else "negative"
        return OddsRatio(cells, nan, p_value, nan, nan, False, f"neither group has a {which} row")
    haldane = min(a, b, c, d) == 0
    if b * c == 0:
        value, reason = math.inf, "infinite: a zero cell in the denominator (b*c = 0)"
    else:
        value, reason = a * d / (b * c), None
    shift = 0.5 if haldane else 0.0
    ca, cb, cc, cd = (x + shift for x in (a, b, c, d))
    log_or = math.log(ca * cd / (cb * cc))
    z = float(scipy.stats.norm.ppf(0.5 + level / 2))
    half_width = z * math.sqrt(1 / ca + 1 / cb + 1 / cc + 1 / cd)
    return OddsRatio(
        cells, value, p_value, math.exp(log_or - half_width), math.exp(log_or + half_width), haldane, reason
    )


def odds_ratios_of(endpoint: ArrayLike, quartiles: IntArray, *, level: float = 0.95) -> dict[str, OddsRatio]:
    """Odds ratios of Q2, Q3 and Q4 against Q1 for given quartile memberships (1..4 per row), e.g.
    the score's :func:`octile_quartiles`. Every row that is not positive for the endpoint counts as
    negative (facts §1.7)."""
    labels = as_binary(endpoint, "endpoint")
    if labels.shape != quartiles.shape:
        raise ValueError(
            f"endpoint and quartiles must have the same length; got {labels.size} and {quartiles.size}"
        )

    def counts(quartile: int) -> tuple[int, int]:
        rows = quartiles == quartile
        positives = int(labels[rows].sum())
        return positives, int(rows.sum()) - positives

    reference = counts(1)
    return {
        name: odds_ratio([counts(quartile), reference], level=level)
        for quartile, name in enumerate(QUARTILES, start=2)
    }
