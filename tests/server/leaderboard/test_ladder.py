"""The Ladder (issue 15 item 3): the displayed score moves only on a significant, visible improvement.

Replicates are constructed by hand so that every p-value below is countable: with ``best`` all zeros
and ``new`` holding ``j`` non-positive values out of ``K``, the one-sided paired p-value is ``j / K``.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from server.scoring.ladder import (
    DEFAULT_LEVEL,
    DEFAULT_STEP,
    NOT_SIGNIFICANT,
    LadderRun,
    climb,
    paired_p_value,
    quantize,
)

BASIS = ("2", "labels-sha", 0, 100)


def replicates(k: int, non_positive: int, *, low: float = -0.01, high: float = 0.05) -> np.ndarray:
    """``k`` differences of which exactly ``non_positive`` are <= 0 (the rest > 0)."""
    values = np.full(k, high)
    values[:non_positive] = low
    return values


def run(
    sid: int, tau: float | None, reps: np.ndarray | None = None, basis: object | None = BASIS
) -> LadderRun:
    return LadderRun(submission_id=sid, tau=tau, replicates=reps, basis=basis)


def base(tau: float = 0.40, k: int = 100) -> LadderRun:
    return run(1, tau, np.zeros(k))


# -- p-values on constructed replicates ------------------------------------------------------------------


def test_paired_p_value_is_the_share_of_resamples_where_new_is_not_better() -> None:
    assert paired_p_value(replicates(100, 4), np.zeros(100)) == pytest.approx(0.04)
    assert paired_p_value(replicates(100, 0), np.zeros(100)) == 0.0
    assert paired_p_value(np.zeros(100), np.zeros(100)) == 1.0  # equal counts as "not better"
    assert paired_p_value(np.array([0.3, 0.1, 0.2]), np.array([0.1, 0.2, 0.1])) == pytest.approx(1 / 3)


def test_paired_p_value_is_none_without_pairs() -> None:
    assert paired_p_value(np.zeros(3), np.zeros(4)) is None
    assert paired_p_value(np.zeros(0), np.zeros(0)) is None
    assert paired_p_value(np.full(5, np.nan), np.zeros(5)) is None


def test_nan_resamples_are_left_out_of_the_count() -> None:
    new = replicates(100, 4)
    new[50:60] = np.nan  # 10 degenerate resamples among the 96 positive ones
    best = np.zeros(100)
    best[0] = np.nan  # one of the non-positive ones is degenerate for the best run
    assert paired_p_value(new, best) == pytest.approx(3 / 89)


# -- the rule --------------------------------------------------------------------------------------------


def test_the_first_scored_run_is_displayed_rounded() -> None:
    (step,) = climb([run(7, 0.4237, np.zeros(10))])
    assert (step.submission_id, step.displayed, step.moved, step.p_value, step.reason) == (
        7,
        0.42,
        True,
        None,
        None,
    )


def test_a_clearly_better_run_moves_the_board() -> None:
    steps = climb([base(), run(2, 0.47, replicates(100, 4))], level=0.05, step=0.01)
    assert steps[1].moved and steps[1].displayed == 0.47 and steps[1].reason is None
    assert steps[1].p_value == pytest.approx(0.04)


def test_a_run_that_is_not_significantly_better_leaves_the_board_unchanged() -> None:
    # p = 0.05 exactly is not below the level 0.05: the test is strict.
    steps = climb([base(), run(2, 0.47, replicates(100, 5))], level=0.05, step=0.01)
    assert not steps[1].moved
    assert steps[1].displayed == 0.40
    assert steps[1].reason == NOT_SIGNIFICANT
    assert steps[1].p_value == pytest.approx(0.05)


def test_the_level_is_a_parameter() -> None:
    runs = [base(), run(2, 0.47, replicates(100, 10))]
    assert not climb(runs, level=0.05)[1].moved
    assert climb(runs, level=0.2)[1].moved


def test_a_significant_gain_that_does_not_show_after_rounding_does_not_move() -> None:
    steps = climb([base(0.401), run(2, 0.404, replicates(100, 0))], step=0.01)
    assert steps[1].p_value == 0.0 and not steps[1].moved and steps[1].displayed == 0.40
    assert steps[1].reason == NOT_SIGNIFICANT


def test_later_runs_are_compared_with_the_best_run_not_the_last_one() -> None:
    # Run 3 beats run 2 (which did not move the board) but not the best run 1.
    best = run(1, 0.40, np.zeros(100))
    weaker = run(2, 0.30, np.full(100, -0.1))
    against_best = replicates(100, 20)  # p = 0.2 against run 1; against run 2 it would be p = 0
    steps = climb([best, weaker, run(3, 0.45, against_best)])
    assert [s.displayed for s in steps] == [0.40, 0.40, 0.40]
    assert steps[2].p_value == pytest.approx(0.20)


def test_the_new_best_becomes_the_reference() -> None:
    first = run(1, 0.40, np.zeros(100))
    second = run(2, 0.50, np.full(100, 0.1))
    third = run(3, 0.55, np.full(100, 0.1))  # equal to the second on every resample: p = 1
    steps = climb([first, second, third])
    assert [s.moved for s in steps] == [True, True, False]
    assert steps[2].p_value == 1.0 and steps[2].displayed == 0.50


def test_the_displayed_value_never_decreases() -> None:
    steps = climb([base(0.40), run(2, 0.10, np.full(100, -0.3)), run(3, -0.5, np.full(100, -0.9))])
    assert [s.displayed for s in steps] == [0.40, 0.40, 0.40]
    assert [s.moved for s in steps] == [True, False, False]


def test_the_displayed_value_is_rounded_to_the_step() -> None:
    steps = climb([base(0.40), run(2, 0.4737, replicates(100, 0))], step=0.05)
    assert steps[0].displayed == 0.40 and steps[1].displayed == 0.45
    assert quantize(0.4737, 0.01) == 0.47
    assert quantize(0.4737, 0.001) == 0.474
    assert quantize(-0.126, 0.01) == -0.13
    assert quantize(0.3 * 3, 0.1) == 0.9  # no float dust (0.8999999999999999 -> 0.9)
    assert quantize(0.4737, 0.0) == 0.4737  # step 0: shown unrounded


# -- unpaired fallback -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "second",
    [
        run(2, 0.405, replicates(100, 0), basis=("1", "labels-sha", 0, 100)),  # other scorer version
        run(2, 0.405, None),  # replicates missing
        run(2, 0.405, replicates(50, 0)),  # another bootstrap count
        run(2, 0.405, replicates(100, 0), basis=None),  # basis unknown
    ],
    ids=["other-basis", "no-replicates", "other-count", "unknown-basis"],
)
def test_without_a_paired_basis_the_run_must_beat_the_best_by_more_than_one_step(second: LadderRun) -> None:
    # Significant if paired (p = 0), but the gain 0.005 is less than a step of 0.01.
    best = run(1, 0.395, np.zeros(100))
    steps = climb([best, second], step=0.01)
    assert not steps[1].moved and steps[1].p_value is None and steps[1].reason == NOT_SIGNIFICANT

    bigger = LadderRun(2, 0.415, second.replicates, second.basis)  # gain 0.02 > step
    steps = climb([best, bigger], step=0.01)
    assert steps[1].moved and steps[1].displayed == 0.42 and steps[1].p_value is None


def test_a_best_run_without_replicates_also_forces_the_fallback() -> None:
    steps = climb([run(1, 0.40, None), run(2, 0.409, replicates(100, 0))], step=0.01)
    assert not steps[1].moved and steps[1].p_value is None


# -- unscored runs ---------------------------------------------------------------------------------------


def test_unscored_runs_change_nothing() -> None:
    steps = climb([run(1, None), run(2, math.nan, np.zeros(100)), base(0.40), run(4, None)])
    assert [(s.displayed, s.moved, s.reason) for s in steps] == [
        (None, False, "no score"),
        (None, False, "no score"),
        (0.40, True, None),
        (0.40, False, "no score"),
    ]


def test_all_resamples_degenerate_means_no_move() -> None:
    steps = climb([base(), run(2, 0.60, np.full(100, np.nan))])
    assert not steps[1].moved and steps[1].p_value is None and steps[1].displayed == 0.40


def test_defaults() -> None:
    assert (DEFAULT_LEVEL, DEFAULT_STEP) == (0.05, 0.01)
    runs = [base(), run(2, 0.47, replicates(100, 4)), run(3, 0.60, replicates(100, 5))]
    assert [s.moved for s in climb(runs)] == [s.moved for s in climb(runs, level=0.05, step=0.01)]


# -- properties ------------------------------------------------------------------------------------------

K = 20
taus = st.one_of(st.none(), st.floats(-1, 1, allow_nan=False))
rep_values = st.lists(st.floats(-1, 1, allow_nan=False) | st.just(math.nan), min_size=K, max_size=K)
runs_strategy = st.lists(
    st.tuples(taus, st.one_of(st.none(), rep_values), st.sampled_from([BASIS, BASIS, None])), max_size=12
)


def _runs(drawn: list[tuple[float | None, list[float] | None, object | None]]) -> list[LadderRun]:
    return [
        LadderRun(i, tau, None if reps is None else np.asarray(reps), basis)
        for i, (tau, reps, basis) in enumerate(drawn)
    ]


@settings(max_examples=100, deadline=None)
@given(runs_strategy, st.sampled_from([0.01, 0.05, 0.1]), st.sampled_from([0.05, 0.16, 0.5]))
def test_properties_of_the_board(
    drawn: list[tuple[float | None, list[float] | None, object | None]], step: float, level: float
) -> None:
    runs = _runs(drawn)
    steps = climb(runs, level=level, step=step)
    assert [s.submission_id for s in steps] == [r.submission_id for r in runs]
    shown: float | None = None
    scored = [r.tau for r in runs if r.tau is not None]
    for r, s in zip(runs, steps, strict=True):
        if s.displayed is not None:
            # A multiple of the step, the rounded score of a run seen so far, never below the last shown.
            assert s.displayed == quantize(s.displayed, step)
            assert s.displayed in {quantize(t, step) for t in scored}
            assert shown is None or s.displayed >= shown
        if s.moved:
            assert s.reason is None and r.tau is not None and s.displayed == quantize(r.tau, step)
            assert shown is None or s.displayed > shown
            assert s.p_value is None or s.p_value < level
        else:
            assert s.displayed == shown and s.reason in (NOT_SIGNIFICANT, "no score")
        shown = s.displayed
    # The first scored run is always shown.
    first = next((i for i, r in enumerate(runs) if r.tau is not None), None)
    if first is not None:
        assert steps[first].moved


@settings(max_examples=100, deadline=None)
@given(st.lists(st.floats(-1, 1, allow_nan=False), min_size=1, max_size=30))
def test_runs_identical_to_the_best_never_move_it(values: list[float]) -> None:
    reps = np.asarray(values)
    steps = climb([run(1, 0.4, reps), run(2, 0.9, reps.copy()), run(3, 0.9, reps.copy())])
    assert [s.moved for s in steps] == [True, False, False]
    assert steps[1].p_value == 1.0
