"""Every headline metric with the direction that is better, so no consumer has to guess.

The leaderboard orders by :data:`LEADERBOARD_ORDER` and these directions (:func:`ranking_key`); the
invariance tests iterate over :data:`METRICS` (every metric must survive a row shuffle, score an
oracle best, and return NaN with a reason rather than a fake value on degenerate input).
"""

from __future__ import annotations

import enum
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from server.scoring import clinical, metrics
from server.scoring.inputs import FloatArray
from server.scoring.metrics import MetricValue


class Direction(enum.StrEnum):
    """Which way a metric improves."""

    HIGHER = "higher"
    LOWER = "lower"


class Reference(enum.StrEnum):
    """What a metric compares the prediction with."""

    ORDINAL = "ordinal"  # masking ground truth (levels or ranks); the prediction is a level or score
    BINARY = "binary"  # a 0/1 clinical endpoint; the prediction is the continuous score


#: ``compute(reference, prediction, keys)``; keys (file names) break ties where a metric bins rows.
Compute = Callable[[FloatArray, FloatArray, Sequence[str]], MetricValue]


@dataclass(frozen=True)
class MetricSpec:
    """One reported metric.

    Attributes
    ----------
    name : str
        The key used in the report JSON and on the leaderboard.
    direction : Direction
    reference : Reference
    description : str
    compute : callable
        ``compute(reference, prediction, keys) -> MetricValue``.
    """

    name: str
    direction: Direction
    reference: Reference
    description: str
    compute: Compute

    def sort_key(self, value: float) -> float:
        """Ascending sort key: best first, undefined (NaN) last."""
        if math.isnan(value):
            return math.inf
        return -value if self.direction is Direction.HIGHER else value


def _odds_ratio_q4(reference: FloatArray, prediction: FloatArray, keys: Sequence[str]) -> MetricValue:
    result = clinical.quartile_odds_ratios(reference, prediction)["Q4"]
    if result.reason is not None:
        return MetricValue.undefined(result.reason)
    return MetricValue(result.value)


METRICS: Mapping[str, MetricSpec] = {
    spec.name: spec
    for spec in (
        MetricSpec(
            "kendall_tau_b",
            Direction.HIGHER,
            Reference.ORDINAL,
            "Kendall's tau-b between prediction and masking ground truth",
            lambda reference, prediction, keys: metrics.kendall_tau_b(reference, prediction),
        ),
        MetricSpec(
            "amae",
            Direction.LOWER,
            Reference.ORDINAL,
            "average over present ground-truth classes of the mean absolute error",
            lambda reference, prediction, keys: metrics.amae(reference, prediction),
        ),
        MetricSpec(
            "auc",
            Direction.HIGHER,
            Reference.BINARY,
            "ROC AUC of the masking score for a clinical endpoint",
            lambda reference, prediction, keys: clinical.roc_auc(reference, prediction),
        ),
        MetricSpec(
            "odds_ratio_q4",
            Direction.HIGHER,
            Reference.BINARY,
            "odds ratio of the endpoint in the top score quartile against the bottom one",
            _odds_ratio_q4,
        ),
        MetricSpec(
            "low_bin_f1",
            Direction.HIGHER,
            Reference.ORDINAL,
            "F1 of levels {1, 2} as the positive class (the level view)",
            lambda reference, prediction, keys: metrics.bin_scores(reference, prediction, metrics.LOW_BIN).f1,
        ),
        MetricSpec(
            "high_bin_f1",
            Direction.HIGHER,
            Reference.ORDINAL,
            "F1 of levels {7, 8} as the positive class (the level view)",
            lambda reference, prediction, keys: (
                metrics.bin_scores(reference, prediction, metrics.HIGH_BIN).f1
            ),
        ),
    )
}


@dataclass(frozen=True)
class Endpoint:
    """A clinical endpoint of the report: its key (``clinical.<key>``, board columns ``<key>_or_q4``),
    the label-table column it is read from, and the title the pages show."""

    key: str
    column: str
    title: str


#: The clinical endpoints, in the order every report section, board column and page shows them.
ENDPOINTS: tuple[Endpoint, ...] = (
    Endpoint("interval_cancer", "if_interval_cancer", "Interval cancer"),
    Endpoint("large_invasive_cancer", "if_large_invasive_cancer", "Large invasive cancer"),
    Endpoint("composite", "if_composite", "Composite"),
)
ENDPOINT_KEYS: tuple[str, ...] = tuple(e.key for e in ENDPOINTS)

#: The leaderboard's order: the first metric decides, the next breaks exact ties; each is read from
#: the report's ``masking`` section and ordered by its registered direction.
LEADERBOARD_ORDER: tuple[str, ...] = ("kendall_tau_b", "amae")


def ranking_key(values: Mapping[str, float | None]) -> tuple[float, ...]:
    """Ascending sort key of a leaderboard row from its metric values: best first, missing last.

    Examples
    --------
    >>> rows = [{"kendall_tau_b": 0.7, "amae": 40.0}, {"kendall_tau_b": 0.7, "amae": 38.0},
    ...         {"kendall_tau_b": None, "amae": 1.0}, {"kendall_tau_b": 0.75, "amae": 50.0}]
    >>> [rows.index(r) for r in sorted(rows, key=ranking_key)]
    [3, 1, 0, 2]
    """
    key: list[float] = []
    for name in LEADERBOARD_ORDER:
        value = values.get(name)
        number = float(value) if isinstance(value, int | float) and not isinstance(value, bool) else math.nan
        key.append(METRICS[name].sort_key(number))
    return tuple(key)
