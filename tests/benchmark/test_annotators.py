"""Building blocks of the simulated annotation: binning, sort positions, placement, intercepts."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.special import expit

from server.benchmark.annotators import (
    level_of_position,
    levels_from_positions,
    place_in_bins,
    private_positions,
    sort_positions,
)
from server.benchmark.cohort import solve_intercept


@pytest.mark.parametrize("n", [8, 9, 15, 64, 475, 497])
def test_levels_cut_a_sorted_list_like_numpy_array_split(n: int) -> None:
    expected = np.concatenate([np.full(len(c), k + 1) for k, c in enumerate(np.array_split(np.arange(n), 8))])
    assert level_of_position(n).tolist() == expected.tolist()


def test_497_images_give_one_bin_of_63_and_seven_of_62() -> None:
    assert np.bincount(level_of_position(497))[1:].tolist() == [63] + [62] * 7


def test_sort_positions_and_levels() -> None:
    perceived = np.array([0.9, 0.1, 0.5, 0.3, 0.7, 0.2, 0.8, 0.4, 0.6, 0.0])
    positions = sort_positions(perceived)
    assert positions.tolist() == [10, 2, 6, 4, 8, 3, 9, 5, 7, 1]
    # level_of_position(10) == [1, 1, 2, 2, 3, 4, 5, 6, 7, 8]
    assert levels_from_positions(positions).tolist() == [8, 1, 4, 2, 6, 2, 7, 3, 5, 1]


def test_private_positions_have_gaps_from_the_dropped_images() -> None:
    perceived = np.array([0.1, 0.5, 0.9])
    extra = np.array([0.3, 0.95])
    assert private_positions(perceived, extra).tolist() == [1, 3, 4]


def test_placement_takes_the_level_of_the_nearest_representative() -> None:
    public = np.arange(16, dtype=float)  # levels 1,1,2,2,...,8,8 in perception order
    levels = levels_from_positions(sort_positions(public))
    train = np.array([-5.0, 0.2, 7.4, 30.0])
    placed = place_in_bins(train, public, levels, np.random.default_rng(0))
    assert placed[0] == 1 and placed[-1] == 8
    assert np.all(np.diff(placed) >= 0)
    fine = np.linspace(-1, 16, 200)
    placed = place_in_bins(fine, public, levels, np.random.default_rng(1))
    assert set(placed.tolist()) <= set(range(1, 9))
    # the same random representatives for every image would give a monotone step function; with
    # fresh draws per image it is monotone on average
    assert np.corrcoef(fine, placed)[0, 1] > 0.95


def test_placement_needs_every_bin() -> None:
    public = np.arange(4, dtype=float)
    with pytest.raises(ValueError, match="bin 5 of the public sort is empty"):
        place_in_bins(np.zeros(2), public, np.array([1, 2, 3, 4]), np.random.default_rng(0))


@pytest.mark.parametrize(("slope", "share"), [(0.0, 0.3), (2.2, 0.304), (-1.0, 0.9), (5.0, 0.01)])
def test_solve_intercept_hits_the_share(slope: float, share: float) -> None:
    x = np.random.default_rng(3).beta(1.5, 1.5, size=500) - 0.5
    a = solve_intercept(x, slope, share)
    assert float(np.mean(expit(a + slope * x))) == pytest.approx(share, abs=1e-9)
    with pytest.raises(ValueError):
        solve_intercept(x, slope, 1.0)
