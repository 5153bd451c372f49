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
  - Ladder board: the feedback is what :func:`server.scoring.ladder.climb` shows for the team after
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

**honest** (issue 21 item 8: what a strict level costs a team that really improves): a model's
``Final_score`` is the standardised private ground truth plus noise of size σ; its *true* tau-b is
the mean tau-b on all 475 rows over noise draws, f(σ), calibrated once on a grid and inverted. A
team's models share part of their error (e = √s·e_team + √(1−s)·e_model, ``--shared-error`` s,
default ½), as retrains of one pipeline do.

  - *sequence*: a first model of true tau-b 0.55, then ``--honest-models`` models each truly better
    than the last by U(0.005, 0.03). *shown* = share of those real improvements the board showed
    within 3 submissions (the board moved at that submission or one of the next two); *lag* = mean
    submissions until it moved (1 = at once), over the shown ones.
  - *+0.02*: a first model of true tau-b 0.55 is displayed; the team then submits up to 3 retrains
    of a model truly 0.02 better (fresh model noise each); success = the board moved within those 3.
    Played as the team's 2nd-4th submissions and again after 50 earlier ones (``after``), which
    matters for an adaptive level.

Level rules (``--rules``): ``0.05`` and ``0.01`` (fixed), and ``adaptive`` = 0.05·min(1, 10/n) for the
team's n-th submission (0.05 for its first 10, 0.01 at its 50th). The hill attacker is also played
against each rule (its n-th proposal is the team's n-th submission); *ratio* = its Ladder overfit /
its exact-board overfit, same k and α.

Usage::

    .venv/bin/python benchmarks/bench_ladder_attack.py [--quick] [--ks 100 300 600] [--repeats 10]
        [--alphas 0.2 0.3] [--resamples 2000] [--level 0.05] [--step 0.01]
        [--rules 0.05 0.01 adaptive] [--honest-repeats 50] [--honest-models 10] [--skip-attacks]

Target (issue 15): the exact board shows apparent ≫ true; the Ladder cuts the boost attack's overfit by
at least half. Prints a table and one JSON line with the figures.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from threadpoolctl import threadpool_limits

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from server.benchmark.synth import Split, label_csv, simulate_labels
from server.scoring import metrics, ranks, weighted
from server.scoring.bootstrap import DEFAULT_RESAMPLES, resample_counts
from server.scoring.labels import LabelLayout, LabelTable, parse_labels
from server.scoring.ladder import DEFAULT_LEVEL, DEFAULT_STEP, LadderRun, LadderStep, climb, next_step
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
    level_at: Callable[[int], float] | None = None,
) -> list[Outcome]:
    """Propose leader + α·sd(leader)·u; keep it as the leader when the board showed a rise.

    Returns the outcome after the first k submissions for each k of ``ks`` (one climb, read at each k).
    ``level_at(n)``, when given, is the Ladder's level for the team's n-th submission (else ``level``).
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
            run_level = level if level_at is None else level_at(i + 1)
            after = climb([best, run], level=run_level, step=step)[1]
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


# --- The honest team (issue 21 item 8) -----------------------------------------------------------

HONEST_START = 0.55  # true tau-b of the team's first model
HONEST_STEP = 0.02  # the improvement that must still show
SHARED_ERROR = 0.5  # default share of a model's error variance common to all the team's models
SHOWN_WITHIN = 3  # submissions


def level_rule(name: str) -> Callable[[int], float]:
    """The Ladder level for the team's n-th submission (1-based) under a named rule."""
    if name == "adaptive":
        return lambda n: DEFAULT_LEVEL * min(1.0, 10.0 / n)
    fixed = float(name)
    return lambda n: fixed


def climb_with(
    runs: Sequence[LadderRun], level_at: Callable[[int], float], *, first: int, step: float
) -> list[LadderStep]:
    """:func:`climb` with a level per submission; ``runs[0]`` is the team's ``first``-th submission."""
    out: list[LadderStep] = []
    best: LadderRun | None = None
    displayed: float | None = None
    for i, run in enumerate(runs):
        decided = next_step(run, best, displayed, level=level_at(first + i), step=step)
        if decided.moved:
            best = run
        displayed = decided.displayed
        out.append(decided)
    return out


@dataclass(frozen=True)
class HonestModels:
    """Scores of a known true tau-b: σ = f⁻¹(tau) with f(σ) the mean full-set tau-b of z + σ·e."""

    z: np.ndarray  # the standardised private ground truth of all rows
    sigmas: np.ndarray  # increasing grid
    taus: np.ndarray  # f on the grid (decreasing)

    @classmethod
    def calibrate(cls, table: LabelTable, *, draws: int = 8) -> HonestModels:
        assert table.experts is not None
        truth = ranks.median_rank_ground_truth(ranks.rerank_experts(table.experts)).astype(np.float64)
        z = (truth - truth.mean()) / truth.std()
        rng = np.random.default_rng(12345)
        sigmas = np.linspace(0.05, 3.0, 60)
        taus = np.array(
            [
                statistics.fmean(
                    float(metrics.kendall_tau_b(truth, z + sigma * rng.standard_normal(z.size)).value)
                    for _ in range(draws)
                )
                for sigma in sigmas
            ]
        )
        return cls(z, sigmas, taus)

    def sigma(self, tau: float) -> float:
        return float(np.interp(tau, self.taus[::-1], self.sigmas[::-1]))

    def score(
        self, tau: float, team_error: np.ndarray, rng: np.random.Generator, shared: float
    ) -> np.ndarray:
        own = rng.standard_normal(self.z.size)
        error = math.sqrt(shared) * team_error + math.sqrt(1 - shared) * own
        return self.z + self.sigma(tau) * error


def honest_team(
    world: World,
    rules: Sequence[str],
    *,
    repeats: int,
    n_models: int,
    step: float,
    shared: float = SHARED_ERROR,
    seed: int = 0,
) -> list[dict[str, float | int | str]]:
    """Per rule: the sequence scenario (shown share, lag) and the +0.02 scenario (early, after 50)."""
    models = HonestModels.calibrate(world.table)
    levels = {rule: level_rule(rule) for rule in rules}
    shown: dict[str, list[float]] = {rule: [] for rule in rules}
    lags: dict[str, list[float]] = {rule: [] for rule in rules}
    plus: dict[tuple[str, int], list[bool]] = {(rule, first): [] for rule in rules for first in (1, 51)}
    for r in range(repeats):
        rng = np.random.default_rng([seed + r, 3])
        team_error = rng.standard_normal(models.z.size)
        gains = rng.uniform(0.005, 0.03, size=n_models)
        true = HONEST_START + np.concatenate([[0.0], np.cumsum(gains)])
        runs = [
            world.board.ladder_run(i, models.score(t, team_error, rng, shared)) for i, t in enumerate(true)
        ]
        better = HONEST_START + HONEST_STEP
        retrains = [
            world.board.ladder_run(i + 1, models.score(better, team_error, rng, shared))
            for i in range(SHOWN_WITHIN)
        ]
        for rule in rules:
            moved = [s.moved for s in climb_with(runs, levels[rule], first=1, step=step)]
            for m in range(1, len(runs)):
                later = [j for j in range(m, len(runs)) if moved[j]]
                lag = later[0] - m + 1 if later else None
                within = lag is not None and lag <= SHOWN_WITHIN
                shown[rule].append(float(within))
                if within:
                    assert lag is not None
                    lags[rule].append(float(lag))
            for first in (1, 51):
                steps = climb_with([runs[0], *retrains], levels[rule], first=first, step=step)
                plus[(rule, first)].append(any(s.moved for s in steps[1:]))
    return [
        {
            "rule": rule,
            "repeats": repeats,
            "improvements_shown": statistics.fmean(shown[rule]),
            "lag": statistics.fmean(lags[rule]) if lags[rule] else float("nan"),
            "plus_002_early": statistics.fmean(plus[(rule, 1)]),
            "plus_002_after_50": statistics.fmean(plus[(rule, 51)]),
        }
        for rule in rules
    ]


def rule_attacks(
    world: World,
    rules: Sequence[str],
    *,
    ks: Sequence[int],
    repeats: int,
    alphas: Sequence[float],
    step: float,
    seed: int = 0,
) -> list[Cell]:
    """The hill attacker against the Ladder under each rule, with run_attacks' seeds (so the exact
    board's cells of run_attacks are its paired baseline)."""
    ks = sorted(set(ks))
    results: dict[tuple[str, str, int], list[Outcome]] = {}
    for r in range(repeats):
        for alpha in alphas:
            for rule in rules:
                hill_rng = np.random.default_rng([seed + r, 2, round(alpha * 1000)])
                outcomes = hill(
                    world, ks, alpha, hill_rng, ladder=True, level=DEFAULT_LEVEL, step=step,
                    level_at=level_rule(rule),
                )  # fmt: skip
                for k, outcome in zip(ks, outcomes, strict=True):
                    results.setdefault((f"hill α={alpha:g}", f"L {rule}", k), []).append(outcome)
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
    parser.add_argument("--rules", nargs="*", default=["0.05", "0.01", "adaptive"])
    parser.add_argument("--honest-repeats", type=int, default=50)
    parser.add_argument("--honest-models", type=int, default=10)
    parser.add_argument("--shared-error", type=float, default=SHARED_ERROR)
    parser.add_argument("--skip-attacks", action="store_true", help="the honest team only")
    args = parser.parse_args()
    if args.quick:
        args.ks, args.repeats, args.alphas, args.honest_repeats = [50, 100], 3, [0.3], 10

    start = time.perf_counter()
    with threadpool_limits(1):
        world = World.make(resamples=args.resamples)
        gap = check_scorer(world)
        honest = honest_team(
            world,
            args.rules,
            repeats=args.honest_repeats,
            n_models=args.honest_models,
            step=args.step,
            shared=args.shared_error,
        )
        cells: list[Cell] = []
        if not args.skip_attacks:
            cells = run_attacks(
                world, ks=args.ks, repeats=args.repeats, alphas=args.alphas, level=args.level, step=args.step
            )
            # The plain "ladder" cells are the fixed rule at --level already; play the other rules.
            others = [rule for rule in args.rules if rule == "adaptive" or float(rule) != args.level]
            cells += rule_attacks(
                world, others, ks=args.ks, repeats=args.repeats, alphas=args.alphas, step=args.step
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
    exact = {(row["attack"], row["k"]): row["overfit"] for row in rows if row["board"] == "exact"}
    for row in rows:
        base = exact.get((row["attack"], row["k"]))
        if row["board"] == "ladder":
            row["rule"] = f"{args.level:g}"
        elif str(row["board"]).startswith("L "):
            row["rule"] = str(row["board"])[2:]
        if "rule" in row and base:
            row["ratio"] = float(row["overfit"]) / float(base)
    ratios = [row for row in rows if "ratio" in row]
    if ratios:
        print(f"{'attack':<12}{'rule':<12}{'k':>5}  {'overfit ratio (Ladder / exact)':>30}")
        for row in ratios:
            print(f"{row['attack']:<12}{row['rule']:<12}{row['k']:>5}  {row['ratio']:>30.2f}")
    print(
        f"honest team: {args.honest_models} improvements of U(0.005, 0.03) from {HONEST_START}; "
        f"+{HONEST_STEP} within {SHOWN_WITHIN} retrains; shared error {args.shared_error}; "
        f"{args.honest_repeats} repetitions"
    )
    print(f"{'rule':<10}{'shown ≤3':>10}{'lag':>6}{'+0.02 early':>13}{'+0.02 after 50':>16}")
    for h in honest:
        print(
            f"{h['rule']:<10}{h['improvements_shown']:>10.2f}{h['lag']:>6.2f}"
            f"{h['plus_002_early']:>13.2f}{h['plus_002_after_50']:>16.2f}"
        )
    print(f"{seconds:.1f} s wall on {platform.node()} ({os.cpu_count()} CPUs), one BLAS thread")
    print(
        json.dumps(
            {
                "benchmark": "ladder_attack",
                "seconds": round(seconds, 1),
                "scorer_gap": gap,
                "cells": rows,
                "honest": honest,
            }
        )
    )


if __name__ == "__main__":
    main()
