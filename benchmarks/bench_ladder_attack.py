"""Benchmark: an adaptive attacker against a live exact-score board and against a Ladder board (issue 15).

The hidden set is the private split of the synthetic benchmark (``server.benchmark.synth``, the labels
``csawm synth`` writes: 475 women, one image each, five experts' raw sort positions). A fixed seed splits
the women into a *board* half (238, the only rows the board scores) and a *held-out* half (237, never
shown to the attacker). Scores are the production scorer's: the private ground truth (floor of the
median expert re-rank, :mod:`server.scoring.ranks`), Kendall tau-b (:func:`server.scoring.metrics.
kendall_tau_b`) and its 2,000 paired bootstrap replicates with seed 0 (:func:`server.scoring.weighted.
kendall_tau_b` on :func:`server.scoring.bootstrap.resample_counts`), i.e. the functions ``score_report``
calls and the settings the worker uses (``bootstrap_resamples=2000``, ``bootstrap_seed=0``); the script
checks once that they give what ``score_report`` gives on the board half. Only the headline tau-b is
computed per submission, for speed.

Attacks (every submission is a ``Final_score`` for all 475 hidden images; chance level tau-b = 0):

* **boost** (Blum & Hardt §4, "wacky boosting"): k random vectors u_i ~ N(0, I), submitted one by one;
  then one final submission combining the ones the feedback singled out, as the *mean of the kept
  score vectors* (the analogue of their majority vote of ±1 vectors; tau-b reads only the ranks).

  - exact board: the feedback is each run's tau-b on the board half as shown (3 decimals); the
    attacker keeps the runs shown above the median of the k shown values.
  - Ladder board: the feedback is what :func:`server.leaderboard.ladder.climb` shows for the team after
    each run (default level 0.05, step 0.01). A run that did not move the board shows the old value
    and tells nothing about itself, so the attacker keeps the runs that moved it (each beat the team's
    best significantly), and the first run with the sign of its shown value (its shown value is its
    own rounded score: a positive one is kept as is, a negative one flipped, a zero one dropped).

* **hill** (the strongest adaptive attacker against the Ladder we found; reference facts §3.4/§4: the
  paired test's threshold shrinks for near-duplicates of the leader): start from one random vector;
  each later submission is leader + α·sd(leader)·u, u ~ N(0, I); it becomes the leader when the board
  showed a rise (exact: the 3-decimal tau-b rose; Ladder: the run moved the board). The last leader is
  the final submission.

Measured per attack, board and k (mean ± sd over repetitions, each with fresh attacker randomness on
the same hidden set and split): *apparent* = what the board shows for the team after the final
submission, minus the chance level 0 (exact board: the final submission's 3-decimal score; Ladder: the
team's displayed value); *true* = the held-out-half tau-b of the submission the board credits (exact:
the final one; Ladder: the one whose score is displayed); *overfit* = apparent − true.

Usage::

    .venv/bin/python benchmarks/bench_ladder_attack.py [--quick] [--ks 100 300 600] [--repeats 10]
        [--alphas 0.2 0.3] [--resamples 2000] [--level 0.05] [--step 0.01]

Target (issue 15): the exact board shows apparent ≫ true; the Ladder cuts the boost attack's overfit by
at least half. Prints a table and one JSON line with the figures.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from threadpoolctl import threadpool_limits

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from server.benchmark.synth import Split, label_csv, simulate_labels
from server.leaderboard.ladder import DEFAULT_LEVEL, DEFAULT_STEP, LadderRun, climb
from server.scoring import metrics, ranks, weighted
from server.scoring.bootstrap import DEFAULT_RESAMPLES, resample_counts
from server.scoring.labels import LabelLayout, LabelTable, parse_labels
from server.scoring.predictions import Predictions
from server.scoring.report import SCORER_VERSION, score_report

N_PRIVATE = 475
SYNTH_SEED = 0
SPLIT_SEED = 0
BOOTSTRAP_SEED = 0  # the worker's default (settings.bootstrap_seed)
EXACT_DECIMALS = 3  # how the live exact board shows a tau-b


@dataclass(frozen=True)
class Half:
    """One half of the hidden set, scored as the worker scores a private-layout table."""

    rows: np.ndarray  # indices into the hidden set
    truth: np.ndarray  # the half's private ground truth (median expert re-rank)
    counts: np.ndarray | None  # (len(rows), resamples) bootstrap multiplicities, None = no replicates
    basis: tuple[str, str, int, int]

    @classmethod
    def of(cls, table: LabelTable, rows: np.ndarray, *, name: str, resamples: int) -> Half:
        assert table.experts is not None
        truth = ranks.median_rank_ground_truth(ranks.rerank_experts(table.experts[rows])).astype(np.float64)
        counts = resample_counts(rows.size, resamples, BOOTSTRAP_SEED) if resamples else None
        return cls(rows, truth, counts, (SCORER_VERSION, name, BOOTSTRAP_SEED, resamples))

    def tau(self, score: np.ndarray) -> float:
        return float(metrics.kendall_tau_b(self.truth, ranks.average_ranks(score[self.rows])).value)

    def replicates(self, score: np.ndarray) -> np.ndarray:
        assert self.counts is not None
        return weighted.kendall_tau_b(ranks.average_ranks(score[self.rows]), self.truth, self.counts)

    def ladder_run(self, sid: int, score: np.ndarray) -> LadderRun:
        return LadderRun(sid, self.tau(score), self.replicates(score), self.basis)


@dataclass(frozen=True)
class World:
    """The synthetic hidden set split into the board half and the held-out half."""

    table: LabelTable
    board: Half
    held_out: Half

    @classmethod
    def make(cls, *, n_private: int = N_PRIVATE, resamples: int = DEFAULT_RESAMPLES) -> World:
        labels = simulate_labels(seed=SYNTH_SEED, n_train=0, n_public=8, n_private=n_private)
        table = parse_labels(label_csv(labels.splits[Split.PRIVATE]).encode(), layout=LabelLayout.PRIVATE)
        # One image per woman in CSAW-M, so a split of the rows is a split by patient.
        order = np.random.default_rng(SPLIT_SEED).permutation(n_private)
        half = (n_private + 1) // 2
        board_rows, held_rows = np.sort(order[:half]), np.sort(order[half:])
        return cls(
            table,
            Half.of(table, board_rows, name="board-half", resamples=resamples),
            Half.of(table, held_rows, name="held-out-half", resamples=0),
        )


@dataclass(frozen=True)
class Outcome:
    apparent: float
    true: float
    moves: int  # how often the board showed a rise (exact: kept runs for boost)

    @property
    def overfit(self) -> float:
        return self.apparent - self.true


def shown_exact(tau: float) -> float:
    return round(tau, EXACT_DECIMALS)


def boost_exact(world: World, vectors: np.ndarray, taus: Sequence[float]) -> Outcome:
    """Keep the runs shown above the median of the shown scores; submit the mean of their vectors."""
    shown = np.array([shown_exact(t) for t in taus])
    keep = shown > np.median(shown)
    final = vectors[keep].mean(axis=0)
    return Outcome(shown_exact(world.board.tau(final)), world.held_out.tau(final), int(keep.sum()))


def boost_ladder(
    world: World, vectors: np.ndarray, runs: Sequence[LadderRun], *, level: float, step: float
) -> Outcome:
    """Keep the runs that moved the Ladder (the first with the sign it showed); submit their mean."""
    steps = climb(runs, level=level, step=step)
    signs = np.zeros(len(runs))
    for i, s in enumerate(steps):
        if s.moved:
            assert s.displayed is not None
            signs[i] = 1.0 if i > 0 else float(np.sign(s.displayed))
    if not signs.any():
        signs[0] = 1.0  # nothing usable was shown: resubmit the first vector
    final = (signs[:, None] * vectors).sum(axis=0) / np.count_nonzero(signs)
    steps = climb([*runs, world.board.ladder_run(len(runs), final)], level=level, step=step)
    credited = max(i for i, s in enumerate(steps) if s.moved)
    shown = steps[-1].displayed
    assert shown is not None
    score = final if credited == len(runs) else vectors[credited]
    return Outcome(shown, world.held_out.tau(score), sum(s.moved for s in steps[1:]))


def hill(
    world: World,
    ks: Sequence[int],
    alpha: float,
    rng: np.random.Generator,
    *,
    ladder: bool,
    level: float,
    step: float,
) -> list[Outcome]:
    """Propose leader + α·sd(leader)·u; keep it as the leader when the board showed a rise.

    Returns the outcome after the first k submissions for each k of ``ks`` (one climb, read at each k).
    """
    n, board = len(world.table), world.board
    leader = rng.standard_normal(n)
    if ladder:
        best = board.ladder_run(0, leader)
        shown = climb([best], level=level, step=step)[0].displayed
    else:
        shown = shown_exact(board.tau(leader))
    moves, out = 0, []
    for i in range(1, max(ks) + 1):
        if i in ks:
            assert shown is not None
            out.append(Outcome(shown, world.held_out.tau(leader), moves))
        if i == max(ks):
            break
        candidate = leader + alpha * float(leader.std()) * rng.standard_normal(n)
        if ladder:
            run = board.ladder_run(i, candidate)
            # climb's whole state is (best run, displayed = its rounded score), so a two-run history
            # gives exactly the step the full history would.
            after = climb([best, run], level=level, step=step)[1]
            rose = after.moved
            if rose:
                best, shown = run, after.displayed
        else:
            value = shown_exact(board.tau(candidate))
            rose = shown is not None and value > shown
            if rose:
                shown = value
        if rose:
            leader, moves = candidate, moves + 1
    return out


@dataclass(frozen=True)
class Cell:
    attack: str
    board: str
    k: int
    outcomes: tuple[Outcome, ...]

    def summary(self) -> dict[str, float | int | str]:
        def stats(values: list[float]) -> tuple[float, float]:
            sd = statistics.stdev(values) if len(values) > 1 else 0.0
            return statistics.fmean(values), sd

        a, a_sd = stats([o.apparent for o in self.outcomes])
        t, t_sd = stats([o.true for o in self.outcomes])
        f, f_sd = stats([o.overfit for o in self.outcomes])
        m, _ = stats([float(o.moves) for o in self.outcomes])
        return {
            "attack": self.attack, "board": self.board, "k": self.k, "repeats": len(self.outcomes),
            "apparent": a, "apparent_sd": a_sd, "true": t, "true_sd": t_sd,
            "overfit": f, "overfit_sd": f_sd, "moves": m,
        }  # fmt: skip


def run_attacks(
    world: World,
    *,
    ks: Sequence[int],
    repeats: int,
    alphas: Sequence[float] = (),
    level: float = DEFAULT_LEVEL,
    step: float = DEFAULT_STEP,
    seed: int = 0,
) -> list[Cell]:
    """Every attack on both boards; repetition r uses attacker seed ``seed + r``.

    The boost runs for each k are the first k of one sequence of max(ks) random vectors per
    repetition, so the cells of one repetition share their runs (as one attacker would).
    """
    ks = sorted(set(ks))
    results: dict[tuple[str, str, int], list[Outcome]] = {}

    def add(attack: str, board: str, k: int, outcome: Outcome) -> None:
        results.setdefault((attack, board, k), []).append(outcome)

    n, top = len(world.table), max(ks)
    for r in range(repeats):
        rng = np.random.default_rng([seed + r, 1])
        vectors = rng.standard_normal((top, n))
        runs = [world.board.ladder_run(i, v) for i, v in enumerate(vectors)]
        taus = [float(run.tau) for run in runs if run.tau is not None]
        assert len(taus) == top  # a random vector is never constant
        for k in ks:
            add("boost", "exact", k, boost_exact(world, vectors[:k], taus[:k]))
            add("boost", "ladder", k, boost_ladder(world, vectors[:k], runs[:k], level=level, step=step))
        for alpha in alphas:
            for board in ("exact", "ladder"):
                hill_rng = np.random.default_rng([seed + r, 2, round(alpha * 1000)])
                outcomes = hill(world, ks, alpha, hill_rng, ladder=board == "ladder", level=level, step=step)
                for k, outcome in zip(ks, outcomes, strict=True):
                    add(f"hill α={alpha:g}", board, k, outcome)
    return [Cell(attack, board, k, tuple(o)) for (attack, board, k), o in results.items()]


def check_scorer(world: World) -> float:
    """Largest gap between our per-run scoring and ``score_report`` on the board half (one random run)."""
    table = world.table.subset(world.board.rows)
    score = np.random.default_rng(99).standard_normal(len(world.table))
    assert world.board.counts is not None
    resamples = world.board.counts.shape[1]
    report = score_report(
        Predictions(table.filenames, score[world.board.rows], None, None), table, resamples=resamples,
        seed=BOOTSTRAP_SEED,
    )  # fmt: skip
    tau = report.data["masking"]["kendall_tau_b"]["value"]
    reps = report.replicates["kendall_tau_b"]
    return max(
        abs(tau - world.board.tau(score)), float(np.nanmax(np.abs(reps - world.board.replicates(score))))
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="k in {50, 100}, 3 repeats, alpha 0.3")
    parser.add_argument("--ks", type=int, nargs="+", default=[100, 300, 600])
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument("--alphas", type=float, nargs="*", default=[0.2, 0.3])
    parser.add_argument("--resamples", type=int, default=DEFAULT_RESAMPLES)
    parser.add_argument("--level", type=float, default=DEFAULT_LEVEL)
    parser.add_argument("--step", type=float, default=DEFAULT_STEP)
    args = parser.parse_args()
    if args.quick:
        args.ks, args.repeats, args.alphas = [50, 100], 3, [0.3]

    start = time.perf_counter()
    with threadpool_limits(1):
        world = World.make(resamples=args.resamples)
        gap = check_scorer(world)
        cells = run_attacks(
            world, ks=args.ks, repeats=args.repeats, alphas=args.alphas, level=args.level, step=args.step
        )
    seconds = time.perf_counter() - start

    board, held = world.board.rows.size, world.held_out.rows.size
    print(
        f"hidden set: synthetic private split, {len(world.table)} women (synth seed {SYNTH_SEED}); "
        f"board half {board}, held-out half {held} (split seed {SPLIT_SEED}); {args.resamples} bootstrap "
        f"resamples, seed {BOOTSTRAP_SEED}; Ladder level {args.level}, step {args.step}"
    )
    print(f"scorer check against score_report on the board half: max |difference| = {gap:.2e}")
    print(
        f"{'attack':<12}{'board':<8}{'k':>5}  {'apparent':>15}  {'true':>15}  {'overfit':>15}  {'moves':>6}"
    )
    rows = [cell.summary() for cell in cells]
    for row in rows:
        print(
            f"{row['attack']:<12}{row['board']:<8}{row['k']:>5}  "
            f"{row['apparent']:+.3f} ± {row['apparent_sd']:.3f}  {row['true']:+.3f} ± {row['true_sd']:.3f}  "
            f"{row['overfit']:+.3f} ± {row['overfit_sd']:.3f}  {row['moves']:>6.1f}"
        )
    print(f"{seconds:.1f} s wall on {platform.node()} ({os.cpu_count()} CPUs), one BLAS thread")
    print(
        json.dumps(
            {"benchmark": "ladder_attack", "seconds": round(seconds, 1), "scorer_gap": gap, "cells": rows}
        )
    )


if __name__ == "__main__":
    main()
