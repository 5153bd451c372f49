"""Percentile intervals and paired differences (server/scoring/bootstrap.py)."""

from __future__ import annotations

import numpy as np
import pytest

from server.scoring.bootstrap import paired_difference_ci, percentile_ci, resample_indices


def test_percentile_ci_uses_numpy_linear_percentiles_and_skips_nan() -> None:
    values = np.array([np.nan, *np.arange(101.0), np.nan])
    assert percentile_ci(values) == (2.5, 97.5)
    assert percentile_ci(np.arange(11.0), level=0.8) == pytest.approx((1.0, 9.0))


def test_percentile_ci_needs_two_defined_values() -> None:
    low, high = percentile_ci([np.nan, 1.0])
    assert np.isnan(low) and np.isnan(high)


def test_paired_difference_ci_uses_shared_resamples_only() -> None:
    a = np.array([0.7, 0.8, np.nan, 0.9, 0.75])
    b = np.array([0.6, 0.6, 0.5, np.nan, 0.65])
    # Defined pairs: 0.1, 0.2, 0.1 -> percentiles 2.5 / 97.5 of (0.1, 0.1, 0.2).
    low, high = paired_difference_ci(a, b)
    assert low == pytest.approx(0.1) and high == pytest.approx(0.195)


def test_paired_difference_ci_detects_a_clear_difference_and_a_tie() -> None:
    rng = np.random.default_rng(0)
    shared = rng.normal(size=2000)
    low, high = paired_difference_ci(0.8 + 0.01 * shared, 0.7 + 0.01 * shared)
    assert low > 0
    low, high = paired_difference_ci(0.8 + 0.01 * shared, 0.8 + 0.01 * rng.normal(size=2000))
    assert low < 0 < high


def test_paired_difference_ci_rejects_unpaired_shapes() -> None:
    with pytest.raises(ValueError, match="same resamples"):
        paired_difference_ci(np.zeros(3), np.zeros(4))


def test_resample_arguments_are_checked() -> None:
    with pytest.raises(ValueError, match="n_rows must be at least 1"):
        resample_indices(0, 10, 0)
    with pytest.raises(ValueError, match="resamples must be non-negative"):
        resample_indices(5, -1, 0)
