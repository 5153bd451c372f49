"""Re-ranking, the floor-median rank ground truth and the 8-level view (server/scoring/ranks.py)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from server.scoring.ranks import average_ranks, equal_count_levels, median_rank_ground_truth, rerank_experts


def test_average_ranks_equal_pandas_rank_with_nan() -> None:
    # Provenance: pandas Series.rank() with defaults is what make_ranks_from_private uses (facts §1.1).
    values = np.array([494.0, 3.0, np.nan, 17.0, 17.0, 250.0])
    expected = pd.Series(values).rank().to_numpy()
    np.testing.assert_array_equal(average_ranks(values), expected)


def test_rerank_experts_ranks_each_column_within_the_rows() -> None:
    positions = np.array([[10.0, 500.0], [3.0, np.nan], [480.0, 2.0]])
    np.testing.assert_array_equal(rerank_experts(positions), [[2.0, 2.0], [1.0, np.nan], [3.0, 1.0]])


def test_floor_median_truncates_half_ranks() -> None:
    # Four experts (one cell empty): ranks 1, 2, 3, 4 -> median 2.5 -> int() truncates to 2.
    # Five experts with a tie: 1, 2.5, 2.5, 4, 5 -> median 2.5 -> 2.
    reranks = np.array([[1.0, 2.0, np.nan, 3.0, 4.0], [1.0, 2.5, 2.5, 4.0, 5.0], [3.0, 3.0, 3.0, 3.0, 3.0]])
    np.testing.assert_array_equal(median_rank_ground_truth(reranks), [2, 2, 3])


def test_floor_median_rounds_float_noise_before_truncating() -> None:
    # int(round(2.9999999999, 8)) == 3 in the authors' code; a bare floor would give 2.
    assert median_rank_ground_truth([[3.0 - 1e-10] * 5]).tolist() == [3]


def test_a_row_without_experts_is_an_error() -> None:
    with pytest.raises(ValueError, match="row 2 has no expert rank"):
        median_rank_ground_truth([[1.0, 2.0], [np.nan, np.nan]])


def test_equal_count_levels_follow_numpy_array_split() -> None:
    # 10 rows into 8 bins: array_split gives sizes 2, 2, 1, 1, 1, 1, 1, 1 (first bins larger).
    levels = equal_count_levels(np.arange(10.0), np.arange(10))
    assert np.bincount(levels)[1:].tolist() == [2, 2, 1, 1, 1, 1, 1, 1]
    assert levels.tolist() == [1, 1, 2, 2, 3, 4, 5, 6, 7, 8]
    # 475 rows: 475 = 8 * 59 + 3, so three bins of 60 then five of 59.
    sizes = np.bincount(equal_count_levels(np.arange(475.0), np.arange(475)))[1:]
    assert sizes.tolist() == [60, 60, 60, 59, 59, 59, 59, 59]


def test_equal_count_levels_break_ties_by_the_tiebreak_codes() -> None:
    values = np.zeros(8)
    assert equal_count_levels(values, np.array([7, 6, 5, 4, 3, 2, 1, 0])).tolist() == [8, 7, 6, 5, 4, 3, 2, 1]
