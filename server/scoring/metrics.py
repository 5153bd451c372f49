"""Masking-agreement metrics: Kendall's tau-b, AMAE, per-group AMAE and the confusion matrix.

Definitions follow the CSAW-M authors' ``src/trainer/evaluation.py``
(see docs/scoring.md, "Masking agreement"). A metric that is undefined for its
input (constant predictions, no rows in a class group) returns NaN together with the reason, never a
fake 0, so the report can print ``null`` plus a warning.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import scipy.stats
from numpy.typing import ArrayLike

from server.scoring.inputs import IntArray, as_levels, as_pair

#: Level groups of the authors' heatmap "AMAE vs GT-median within masking-level groups".
LEVEL_GROUPS: Mapping[str, tuple[int, ...]] = {
    "1-2": (1, 2),
    "3-4": (3, 4),
    "5-6": (5, 6),
    "7-8": (7, 8),
}
N_LEVELS = 8


@dataclass(frozen=True)
class MetricValue:
    """A point value, or NaN with the reason why the metric is undefined for this input.

    Attributes
    ----------
    value : float
        The metric; NaN exactly when `reason` is set.
    reason : str or None
        Why the metric is undefined (for the report's warnings); None when it is defined.
    """

    value: float
    reason: str | None = None

    @classmethod
    def undefined(cls, reason: str) -> MetricValue:
        return cls(math.nan, reason)

    @property
    def is_defined(self) -> bool:
        return self.reason is None

    def __float__(self) -> float:
        return self.value


def kendall_tau_b(y_true: ArrayLike, y_pred: ArrayLike) -> MetricValue:
    r"""Kendall's rank correlation, variant b (ties corrected in both vectors).

    .. math:: \tau_b = \frac{C - D}{\sqrt{(n_0 - n_1)(n_0 - n_2)}}

    with C/D the concordant/discordant pairs, :math:`n_0 = n(n-1)/2`, and :math:`n_1, n_2` the pairs
    tied in `y_true` and in `y_pred` (Kendall 1945). The value is ``scipy.stats.kendalltau(y_pred,
    y_true)`` with default arguments, which is what the CSAW-M authors report.

    Undefined (NaN) when fewer than two rows or when either vector is constant.

    Examples
    --------
    Pairs (1,2),(1,3),(2,3): concordant, concordant, discordant; no ties, so tau = (2 - 1) / 3.

    >>> round(kendall_tau_b([1, 2, 3], [1, 3, 2]).value, 6)
    0.333333
    """
    truth, pred = as_pair(y_true, y_pred)
    if truth.size < 2:
        return MetricValue.undefined(f"needs at least 2 rows; got {truth.size}")
    if np.all(pred == pred[0]):
        return MetricValue.undefined("the predictions are constant")
    if np.all(truth == truth[0]):
        return MetricValue.undefined("the ground truth is constant")
    result = scipy.stats.kendalltau(pred, truth)
    return MetricValue(float(result.statistic))


def amae(y_true: ArrayLike, y_pred: ArrayLike) -> MetricValue:
    r"""Average mean absolute error over the ground-truth classes present (Baccianella et al. 2009).

    .. math:: \mathrm{AMAE} = \frac{1}{|C|} \sum_{c \in C} \frac{1}{n_c}
              \sum_{i:\, y_i = c} |\hat y_i - c|

    C is the set of values that actually occur in `y_true`: a class with no ground-truth rows is
    skipped (it adds nothing to the denominator), and predicted values never create classes. Each
    present class weighs the same whatever its size. On the private set the classes are the distinct
    floor-median ranks and the unit is ranks; on the public set they are levels 1..8.

    Undefined (NaN) for empty input.

    Examples
    --------
    Class 1 has errors 0 and 2 (mean 1), class 3 has error 1, class 2 is absent: (1 + 1) / 2.

    >>> amae([1, 1, 3], [1, 3, 2]).value
    1.0
    """
    truth, pred = as_pair(y_true, y_pred)
    if truth.size == 0:
        return MetricValue.undefined("no rows")
    _, inverse = np.unique(truth, return_inverse=True)
    errors = np.abs(pred - truth)
    per_class = np.bincount(inverse, weights=errors) / np.bincount(inverse)
    return MetricValue(float(per_class.mean()))


def group_amae(
    y_true: ArrayLike, y_pred: ArrayLike, groups: Mapping[str, tuple[int, ...]] = LEVEL_GROUPS
) -> dict[str, MetricValue]:
    """AMAE restricted to the rows whose ground-truth level lies in each group.

    Within a group the present-classes rule of :func:`amae` applies. A group with no ground-truth
    rows is undefined (NaN with a reason).

    Examples
    --------
    >>> {k: v.value for k, v in group_amae([1, 2, 8], [2, 2, 6], {"1-2": (1, 2), "7-8": (7, 8)}).items()}
    {'1-2': 0.5, '7-8': 2.0}
    """
    truth, pred = as_pair(y_true, y_pred)
    result: dict[str, MetricValue] = {}
    for name, levels in groups.items():
        rows = np.isin(truth, levels)
        if not rows.any():
            listed = ", ".join(str(level) for level in levels)
            result[name] = MetricValue.undefined(f"no rows with ground-truth level in {{{listed}}}")
        else:
            result[name] = amae(truth[rows], pred[rows])
    return result


def confusion_matrix(y_true: ArrayLike, y_pred: ArrayLike, *, n_levels: int = N_LEVELS) -> IntArray:
    """Counts of (ground-truth level, predicted level) pairs.

    Returns an ``(n_levels, n_levels)`` int64 matrix whose entry ``[i, j]`` counts the rows with
    ground truth ``i + 1`` predicted as ``j + 1`` (rows = truth, columns = prediction).

    Examples
    --------
    >>> confusion_matrix([1, 2, 2], [1, 1, 2], n_levels=2).tolist()
    [[1, 0], [1, 1]]
    """
    truth = as_levels(y_true, "y_true", n_levels=n_levels)
    pred = as_levels(y_pred, "y_pred", n_levels=n_levels)
    if truth.shape != pred.shape:
        raise ValueError(f"y_true and y_pred must have the same length; got {truth.size} and {pred.size}")
    flat = (truth - 1) * n_levels + (pred - 1)
    return np.bincount(flat, minlength=n_levels * n_levels).reshape(n_levels, n_levels)


#: The authors' secondary bins (facts §1.4): "low" = levels {1, 2}, "high" = levels {7, 8}.
LOW_BIN: tuple[int, ...] = (1, 2)
HIGH_BIN: tuple[int, ...] = (7, 8)


@dataclass(frozen=True)
class BinScores:
    """Precision, recall and F1 of one bin of levels treated as the positive class.

    Each value is NaN exactly when its reason is set (see :func:`bin_scores`).
    """

    precision: MetricValue
    recall: MetricValue
    f1: MetricValue

    def items(self) -> tuple[tuple[str, MetricValue], ...]:
        return (("precision", self.precision), ("recall", self.recall), ("f1", self.f1))


def bin_scores(y_true: ArrayLike, y_pred: ArrayLike, positive: tuple[int, ...]) -> BinScores:
    r"""Binary precision, recall and F1 with "positive" = the level lies in `positive`.

    With TP, FP, FN counted on ``y_true in positive`` against ``y_pred in positive``:

    .. math:: P = \frac{TP}{TP + FP}, \qquad R = \frac{TP}{TP + FN}, \qquad
              F_1 = \frac{2\,TP}{2\,TP + FP + FN}

    which is ``sklearn.metrics.precision_score`` / ``recall_score`` / ``f1_score`` with
    ``average='binary'`` on the two boolean vectors, as the authors' ``calc_precision_and_recall_network``
    computes the low-bin {1, 2} and high-bin {7, 8} scores. Where sklearn divides 0 by 0 and returns
    0.0 with a warning (no predicted positives for P, no true positives for R, neither for F1) this
    returns NaN with the reason, never a fake 0.

    Examples
    --------
    Truth levels 1, 2, 5, 1 and predictions 1, 4, 2, 6 with bin {1, 2}: TP = 1 (row 1), FP = 1
    (row 3), FN = 2 (rows 2 and 4), so P = 1/2, R = 1/3, F1 = 2/(2 + 1 + 2) = 0.4.

    >>> s = bin_scores([1, 2, 5, 1], [1, 4, 2, 6], (1, 2))
    >>> s.precision.value, round(s.recall.value, 6), s.f1.value
    (0.5, 0.333333, 0.4)
    """
    truth, pred = as_pair(y_true, y_pred)
    actual = np.isin(truth, positive)
    called = np.isin(pred, positive)
    tp = int((actual & called).sum())
    fp = int((~actual & called).sum())
    fn = int((actual & ~called).sum())
    listed = "{" + ", ".join(str(level) for level in positive) + "}"

    def ratio(numerator: int, denominator: int, reason: str) -> MetricValue:
        return MetricValue(numerator / denominator) if denominator else MetricValue.undefined(reason)

    return BinScores(
        precision=ratio(tp, tp + fp, f"no prediction in {listed}"),
        recall=ratio(tp, tp + fn, f"no ground truth in {listed}"),
        f1=ratio(2 * tp, 2 * tp + fp + fn, f"neither ground truth nor prediction in {listed}"),
    )
