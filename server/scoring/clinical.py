"""Clinical association of the masking score: AUC and octile-paired quartile odds ratios.

Follows the CSAW-M authors' ``get_table_metric_downstream_auc``, ``df_score_to_bin`` and
``calc_oddsratio_downstream`` (facts §1.6-1.7), with two documented additions the paper's code does
not have: ties in the score are broken by Filename so the bins are deterministic, and a Woolf 95 %
confidence interval (Haldane +0.5 correction only when a cell is zero).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import scipy.stats
from numpy.typing import ArrayLike

from server.scoring.inputs import IntArray, as_binary, as_vector
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


def octile_quartiles(score: ArrayLike, tiebreak: IntArray) -> IntArray:
    """Assign each row its score quartile 1..4 built from paired octiles, as the authors did.

    Rows are sorted by score (ties broken by `tiebreak`, the Filename order) and cut into 8 bins of
    ``floor(N/8)`` rows, bin 8 taking the remainder (pandas ``.loc`` slicing in ``df_score_to_bin``);
    quartile q is bins {2q-1, 2q}. So N=972 gives 242/242/242/246 and N=475 gives 118/118/118/121.
    With N < 8 every row falls in bin 8, i.e. Q4.

    Examples
    --------
    >>> np.bincount(octile_quartiles(np.arange(475.0), np.arange(475)))[1:].tolist()
    [118, 118, 118, 121]
    """
    values = as_vector(score, "score")
    codes = np.asarray(tiebreak, dtype=np.int64)
    if codes.shape != values.shape:
        raise ValueError(f"tiebreak must have one entry per row ({values.size}); got {codes.size}")
    order = np.lexsort((codes, values))
    per_bin = values.size // 8
    position_quartile = np.full(values.size, 4, dtype=np.int64)
    for quartile in (1, 2, 3):
        position_quartile[2 * per_bin * (quartile - 1) : 2 * per_bin * quartile] = quartile
    quartiles = np.empty(values.size, dtype=np.int64)
    quartiles[order] = position_quartile
    return quartiles


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

    def confidence_interval(self) -> tuple[float, float]:
        return (self.ci_low, self.ci_high)


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


def quartile_odds_ratios(
    endpoint: ArrayLike, score: ArrayLike, tiebreak: IntArray, *, level: float = 0.95
) -> dict[str, OddsRatio]:
    """Odds ratios of Q2, Q3 and Q4 against Q1 (the lowest quartile of the score).

    Every row that is not positive for the endpoint counts as negative (facts §1.7). Quartiles come
    from :func:`octile_quartiles`.
    """
    labels = as_binary(endpoint, "endpoint")
    quartiles = octile_quartiles(score, tiebreak)
    if labels.shape != quartiles.shape:
        raise ValueError(
            f"endpoint and score must have the same length; got {labels.size} and {quartiles.size}"
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
