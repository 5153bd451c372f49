"""The Ladder: a team's displayed score moves only on a significant improvement (issue 15).

Blum & Hardt ("The Ladder", ICML 2015) bound how much an adaptive analyst can overfit a holdout
through the board: the board releases a new score only when it beats the best released one by a
margin, and rounds what it releases. Their Algorithm 1 uses a fixed step η; the parameter-free
Algorithm 2 sets the margin from the standard error of the paired loss difference. Ours keeps the
idea of Algorithm 2 with the paired bootstrap replicates every scored run already stores:

    a run r moves the team's displayed score away from its best run b when
        p = #{k : τ_r[k] − τ_b[k] ≤ 0} / K   <   level      (one-sided paired bootstrap test)
    and its rounded value exceeds the displayed one; r becomes the best run and the display is
        round(τ_r / step) · step                           (nearest multiple, halves to even).
    The first scored run is displayed; a run without a score changes nothing; the display never drops.

Resample k is the same patient sample in both runs only when both were scored on the same basis
(scorer version, test set, bootstrap seed and count); without a paired basis, or without replicates,
the run moves the board only when its exact tau-b beats the best run's by more than ``step``
(Algorithm 1's test with η = step). Resamples where either value is undefined (NaN) are left out of
``K``; with none left the run does not move the board.

How ours differs from Algorithm 2 (as the authors' ``Ladder.jl`` computes it):

* statistic: the bootstrap of the paired tau-b difference, not the sample SD of the paired per-example
  loss differences (tau-b is a pairwise statistic, not a mean of per-image losses, so it has no
  per-image loss to take an SD of);
* margin: a one-sided level set per phase (default 0.05, z ≈ 1.64), not one standard error
  (z = 1, about 0.16);
* release: rounded to the phase's step (``Ladder.jl`` releases the new best unrounded), so a
  significant gain smaller than the rounding does not move the board;
* the unpaired fallback above, and one ladder per team and phase, over all its scored runs in scoring
  order, each step decided once and stored (`server.phases.ladder_steps` applies `next_step`).

The paired test's margin shrinks for near-duplicates of the best run, so small random perturbations of
it still climb, more slowly than on an exact board (BENCHMARKS.md, "The Ladder against an adaptive
attacker"). docs/scoring.md, "The Ladder", states the same rule for users.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

DEFAULT_LEVEL = 0.05
DEFAULT_STEP = 0.01

NOT_SIGNIFICANT = "not a significant improvement"


@dataclass(frozen=True)
class LadderRun:
    """One scored run of a team, in the order the runs finished."""

    submission_id: int
    tau: float | None
    replicates: np.ndarray | None
    basis: object | None  # anything comparable with ==; None when unknown


@dataclass(frozen=True)
class LadderStep:
    """What the board shows after one run: the team's displayed value and whether this run moved it."""

    submission_id: int
    displayed: float | None
    moved: bool
    p_value: float | None
    reason: str | None  # why the board did not move (None when it moved)


def quantize(value: float, step: float) -> float:
    """``value`` rounded to the nearest multiple of ``step`` (and to 12 decimals against float dust)."""
    if step <= 0:
        return value
    return round(round(value / step) * step, 12)


def paired_p_value(new: np.ndarray, best: np.ndarray) -> float | None:
    """One-sided paired bootstrap p-value of ``new > best``: the share of resamples with ``new ≤ best``."""
    if new.shape != best.shape or new.size == 0:
        return None
    diff = new - best
    diff = diff[np.isfinite(diff)]
    if diff.size == 0:
        return None
    return float(np.count_nonzero(diff <= 0.0)) / float(diff.size)


def _paired(run: LadderRun, best: LadderRun) -> bool:
    return (
        run.basis is not None
        and run.basis == best.basis
        and run.replicates is not None
        and best.replicates is not None
        and run.replicates.shape == best.replicates.shape
        and run.replicates.size > 0
    )


def next_step(
    run: LadderRun,
    best: LadderRun | None,
    displayed: float | None,
    *,
    level: float = DEFAULT_LEVEL,
    step: float = DEFAULT_STEP,
) -> LadderStep:
    """The board after `run`, given the team's best run so far and its displayed value (None, None
    before any scored run): the rule of the module docstring for one run."""
    if run.tau is None or not math.isfinite(run.tau):
        return LadderStep(run.submission_id, displayed, False, None, "no score")
    if best is None or displayed is None:
        return LadderStep(run.submission_id, quantize(run.tau, step), True, None, None)
    candidate = quantize(run.tau, step)
    p_value: float | None = None
    if _paired(run, best):
        assert run.replicates is not None and best.replicates is not None
        p_value = paired_p_value(run.replicates, best.replicates)
        significant = p_value is not None and p_value < level
    else:
        assert best.tau is not None
        significant = run.tau > best.tau + step
    if significant and candidate > displayed:
        return LadderStep(run.submission_id, candidate, True, p_value, None)
    return LadderStep(run.submission_id, displayed, False, p_value, NOT_SIGNIFICANT)


def climb(
    runs: Sequence[LadderRun], *, level: float = DEFAULT_LEVEL, step: float = DEFAULT_STEP
) -> list[LadderStep]:
    """The board after each of a team's runs (same order as ``runs``)."""
    out: list[LadderStep] = []
    best: LadderRun | None = None
    displayed: float | None = None
    for run in runs:
        decided = next_step(run, best, displayed, level=level, step=step)
        if decided.moved:
            best = run
        displayed = decided.displayed
        out.append(decided)
    return out
