"""Rank intervals, p_first, the significance map, Holm and tiers (server/scoring/ranking.py).

Each statistic is checked against a plain loop over resamples written from the definition in
docs/scoring.md, and on small boards whose answer is known.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest
import scipy.stats

from server.scoring import ranking


def _loop_statistics(reps: np.ndarray) -> dict[str, list[Any]]:
    """The definitions, one resample and one pair at a time (no vectorised ranking)."""
    k, r = reps.shape
    ranks = [[1 + sum(reps[o, b] > reps[i, b] for o in range(k)) for b in range(r)] for i in range(k)]
    p_first = [0.0] * k
    for b in range(r):
        best = [i for i in range(k) if reps[i, b] == max(reps[:, b])]
        for i in best:
            p_first[i] += 1 / len(best) / r
    p = [
        [math.nan if i == j else sum(reps[i, b] - reps[j, b] <= 0 for b in range(r)) / r for j in range(k)]
        for i in range(k)
    ]
    return {
        "low": [math.floor(np.percentile(ranks[i], 2.5)) for i in range(k)],
        "high": [math.ceil(np.percentile(ranks[i], 97.5)) for i in range(k)],
        "median": [float(np.median(ranks[i])) for i in range(k)],
        "p_first": p_first,
        "p": p,
    }


def test_statistics_equal_the_loop_definitions_with_ties() -> None:
    rng = np.random.default_rng(3)
    # Rounded to 2 decimals so that rows tie in many resamples.
    reps = np.round(rng.normal([[0.60], [0.58], [0.58], [0.40]], 0.03, size=(4, 300)), 2)
    expected = _loop_statistics(reps)
    summary = ranking.rank_summary(reps)
    assert summary.rank_low.tolist() == expected["low"]
    assert summary.rank_high.tolist() == expected["high"]
    assert summary.median_rank.tolist() == expected["median"]
    np.testing.assert_allclose(summary.p_first, expected["p_first"])
    assert summary.p_first.sum() == pytest.approx(1.0)
    np.testing.assert_allclose(ranking.significance(reps), expected["p"], equal_nan=True)


def test_a_dominant_model_has_rank_interval_1_1_p_first_1_and_tier_1() -> None:
    rng = np.random.default_rng(0)
    reps = np.vstack([rng.normal(0.8, 0.01, 500), rng.normal(0.5, 0.05, 500), rng.normal(0.45, 0.05, 500)])
    summary = ranking.rank_summary(reps)
    assert (summary.rank_low[0], summary.rank_high[0]) == (1, 1)
    assert summary.p_first[0] == 1.0 and summary.median_rank[0] == 1.0
    assert ranking.tiers(ranking.holm_by_column(ranking.significance(reps)))[0] == 1


def test_two_files_with_the_same_ranking_share_one_tier_with_holm_p_1() -> None:
    reps = np.random.default_rng(1).normal(0.6, 0.03, size=(1, 400)).repeat(2, axis=0)
    p = ranking.significance(reps)
    p_holm = ranking.holm_by_column(p)
    assert p[0, 1] == p[1, 0] == 1.0  # tau_i - tau_j <= 0 in every resample
    assert p_holm[0, 1] == p_holm[1, 0] == 1.0
    assert ranking.tiers(p_holm).tolist() == [1, 1]
    summary = ranking.rank_summary(reps)
    assert summary.p_first.tolist() == [0.5, 0.5]  # every resample a tie for best, shared
    assert summary.rank_low.tolist() == summary.rank_high.tolist() == [1, 1]


def test_a_random_model_is_in_the_last_tier_with_p_first_0() -> None:
    rng = np.random.default_rng(2)
    reps = np.vstack([rng.normal(0.7, 0.03, 500), rng.normal(0.5, 0.03, 500), rng.normal(0.0, 0.05, 500)])
    tiers = ranking.tiers(ranking.holm_by_column(ranking.significance(reps)))
    assert tiers.tolist() == [1, 2, 3]
    summary = ranking.rank_summary(reps)
    assert summary.p_first[2] == 0.0 and (summary.rank_low[2], summary.rank_high[2]) == (3, 3)


def test_holm_against_a_hand_computed_family() -> None:
    # Sorted: 0.005*4 = 0.02; 0.01*3 = 0.03; 0.03*2 = 0.06; 0.04*1 = 0.04 -> max(0.06, 0.04) = 0.06.
    adjusted = ranking.holm([0.01, 0.04, 0.03, 0.005])
    np.testing.assert_allclose(adjusted, [0.03, 0.06, 0.06, 0.02])
    np.testing.assert_allclose(ranking.holm([0.5, 0.9]), [1.0, 1.0])  # capped at 1
    assert ranking.holm([]).size == 0


def test_holm_by_column_adjusts_each_column_as_one_family_and_tiers_count_significant_rows() -> None:
    p = np.array([[np.nan, 0.02, 0.001], [0.9, np.nan, 0.02], [1.0, 0.99, np.nan]])
    p_holm = ranking.holm_by_column(p)
    # Column 2: family {0.001, 0.02} -> {0.002, 0.02}; column 1: {0.02, 0.99} -> {0.04, 0.99}.
    np.testing.assert_allclose(p_holm, [[np.nan, 0.04, 0.002], [1.0, np.nan, 0.02], [1.0, 0.99, np.nan]])
    assert ranking.tiers(p_holm, 0.05).tolist() == [1, 2, 3]
    assert ranking.tiers(p_holm, 0.01).tolist() == [1, 1, 2]
    with pytest.raises(ValueError, match="alpha"):
        ranking.tiers(p_holm, 1.0)


def test_resamples_undefined_for_any_row_are_left_out() -> None:
    reps = np.array([[0.5, np.nan, 0.7, 0.6], [0.4, 0.9, 0.8, 0.5]])
    assert ranking.usable_resamples(reps) == 3
    np.testing.assert_allclose(ranking.significance(reps)[1, 0], 2 / 3)
    with pytest.raises(ValueError, match="no resample is defined"):
        ranking.rank_summary(np.array([[np.nan, 0.5], [0.5, np.nan]]))


def test_competition_ranks() -> None:
    assert ranking.competition_ranks([0.5, 0.7, 0.7, 0.1]).tolist() == [3, 1, 1, 4]


def test_stability_is_scipy_kendall_tau_b_on_the_rows_both_orders_have() -> None:
    consensus = [0.8, 0.7, 0.6, 0.5, 0.4]
    orders: dict[str, list[float | None]] = {
        "same": [9, 8, 7, 6, 5],
        "partial": [0.6, None, 0.7, 0.5, 0.1],
        "one": [1, None, None, None, None],
    }
    result = ranking.stability(consensus, orders)
    assert result["same"] == pytest.approx(1.0)
    expected = scipy.stats.kendalltau([0.8, 0.6, 0.5, 0.4], [0.6, 0.7, 0.5, 0.1]).statistic
    assert result["partial"] == pytest.approx(expected)
    assert result["one"] is None
