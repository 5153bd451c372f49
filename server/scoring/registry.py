"""Every headline metric with the direction that is better, so no consumer has to guess.

The leaderboard orders by :data:`LEADERBOARD_ORDER` and these directions (:func:`ranking_key`); the
invariance tests (``tests/scoring/test_registry.py``) check every metric of :data:`DIRECTIONS`
(each must survive a row shuffle, score an oracle best, and return NaN with a reason rather than a
fake value on degenerate input).
"""

from __future__ import annotations

import enum
import math
from collections.abc import Mapping
from dataclasses import dataclass


class Direction(enum.StrEnum):
    """Which way a metric improves."""

    HIGHER = "higher"
    LOWER = "lower"


#: Every reported metric (its key in the report JSON and on the leaderboard) with the direction
#: that is better.
DIRECTIONS: Mapping[str, Direction] = {
    "kendall_tau_b": Direction.HIGHER,
    "amae": Direction.LOWER,
    "auc": Direction.HIGHER,
    "odds_ratio_q4": Direction.HIGHER,
    "low_bin_f1": Direction.HIGHER,
    "high_bin_f1": Direction.HIGHER,
}


def sort_key(name: str, value: float) -> float:
    """Ascending sort key of a value of metric `name`: best first, undefined (NaN) last."""
    if math.isnan(value):
        return math.inf
    return -value if DIRECTIONS[name] is Direction.HIGHER else value


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
        key.append(sort_key(name, number))
    return tuple(key)
