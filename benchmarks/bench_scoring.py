"""Benchmark: the full score report with 2,000 bootstrap resamples on 475 rows, against a naive loop,
and scorer version 2 against the version-1 scope in the same run.

Ours: ``server.scoring.report.score_report`` (all point metrics plus the vectorised paired bootstrap
of tau-b, AMAE, the 8-level tau-b and AMAE, three AUCs and three OR Q4s; in version 2 also the three
LIBRA density comparators with the same bootstrap, low/high-bin scores and per-expert agreement).

v2 against v1 (issue 14), interleaved in the same run on the same rows: "v1 scope" is the report
without the version-2 parts (``_score_report(..., v2_parts=False)``, the same code otherwise);
"v2 cold" is the full report with the test-set memo (:mod:`server.scoring.memo`) emptied first, as
the first run on a new test set; "v2 warm" is every later report on that test set (expert rows and
density comparators come from the memo). Since scorer version 3 (issue 21 item 3) "v2 cold/warm" are
the current report, strata included; "v2 scope warm" is the warm report without the strata
(``v3_parts=False``), so ``strata_over_v2_scope`` is what the strata cost, same run.

Naive reference, in the same run, on the same rows and the very same resample indices: the report's
point metrics (``score_report`` with 0 resamples) plus a Python loop that, per resample, calls
``scipy.stats.kendalltau`` (rank and level view), a plain-Python AMAE (rank and level view),
``sklearn.metrics.roc_auc_score`` (three endpoints) and a numpy quartile table for OR Q4 (three
endpoints), then takes the same percentiles. The script checks that both give the same intervals,
so the speed-up is for identical output.

Usage::

    .venv/bin/python benchmarks/bench_scoring.py [--rows 475] [--resamples 2000] [--repeats 5]

Targets: ours <= 1 s on the 2-core development machine and >= 10x faster than the naive reference
(issue 2); v2 <= 1.5x the v1 scope (issue 14). Prints a table and one JSON line with the figures.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import scipy.stats
from sklearn.metrics import roc_auc_score

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from threadpoolctl import threadpool_limits

from server.scoring import report as report_module
from server.scoring.bootstrap import percentile_ci, resample_indices
from server.scoring.clinical import octile_quartiles
from server.scoring.inputs import tiebreak_codes
from server.scoring.labels import LabelLayout, LabelTable
from server.scoring.memo import TEST_SET_PARTS
from server.scoring.predictions import Predictions
from server.scoring.ranks import (
    average_ranks,
    equal_count_levels,
    median_rank_ground_truth,
    rerank_experts,
)
from server.scoring.report import ENDPOINTS, score_report


def synthetic_private_set(n: int, seed: int) -> tuple[LabelTable, Predictions]:
    """A private-layout table like the real one (raw sort positions with gaps) and a decent model."""
    rng = np.random.default_rng(seed)
    latent = rng.normal(size=n)
    experts = np.column_stack(
        [
            np.cumsum(rng.integers(1, 3, size=n))[
                np.argsort(np.argsort(latent + rng.normal(scale=0.6, size=n)))
            ]
            for _ in range(5)
        ]
    ).astype(np.float64)
    risk = 1 / (1 + np.exp(-(0.8 * latent - 1.8)))
    interval = (rng.random(n) < risk).astype(np.int64)
    large = (rng.random(n) < 0.8 * risk).astype(np.int64)
    composite = interval | large
    names = tuple(f"private_{i + 1}.png" for i in range(n))
    table = LabelTable(
        path=None,
        layout=LabelLayout.PRIVATE,
        filenames=names,
        label=None,
        experts=experts,
        if_cancer=composite,
        if_interval_cancer=interval,
        if_large_invasive_cancer=large,
        if_composite=composite,
        laterality=tuple("L" if i % 2 else "R" for i in range(n)),
        libra_percent_density=rng.uniform(5, 40, size=n),
        libra_dense_area=rng.uniform(5, 60, size=n),
        libra_breast_area=rng.uniform(50, 200, size=n),
    )
    predictions = Predictions(names, latent + rng.normal(scale=0.5, size=n), None, None)
    return table, predictions


def python_amae(truth: list[float], pred: list[float]) -> float:
    per_class: dict[float, list[float]] = {}
    for t, p in zip(truth, pred, strict=True):
        per_class.setdefault(t, []).append(abs(p - t))
    return sum(sum(errors) / len(errors) for errors in per_class.values()) / len(per_class)


def naive_odds_ratio_q4(endpoint: np.ndarray, score: np.ndarray) -> float:
    """OR Q4 of the resampled rows, binned by the report's own rule (tie blocks kept whole)."""
    quartiles = octile_quartiles(score)
    q1, q4 = endpoint[quartiles == 1], endpoint[quartiles == 4]
    a, c = int(q4.sum()), int(q1.sum())
    b, d = q4.size - a, q1.size - c
    return a * d / (b * c) if b * c > 0 else float("nan")


def naive_report_intervals(
    table: LabelTable, predictions: Predictions, resamples: int, seed: int
) -> dict[str, tuple[float, float]]:
    """The report's bootstrap intervals computed one resample at a time."""
    assert table.experts is not None
    n = len(table)
    codes = tiebreak_codes(table.filenames, n)
    truth = median_rank_ground_truth(rerank_experts(table.experts)).astype(float)
    pred = average_ranks(predictions.final_score)
    truth_levels = equal_count_levels(truth, codes).astype(float)
    pred_levels = equal_count_levels(predictions.final_score, codes).astype(float)
    endpoints = {key: np.asarray(getattr(table, attribute)) for key, attribute in ENDPOINTS.items()}
    score = predictions.final_score
    replicates: dict[str, list[float]] = {}

    def add(key: str, value: float) -> None:
        replicates.setdefault(key, []).append(value)

    for rows in resample_indices(n, resamples, seed):
        add("masking.kendall_tau_b", scipy.stats.kendalltau(pred[rows], truth[rows]).statistic)
        add("masking.amae", python_amae(truth[rows].tolist(), pred[rows].tolist()))
        add(
            "masking.levels.kendall_tau_b",
            scipy.stats.kendalltau(pred_levels[rows], truth_levels[rows]).statistic,
        )
        add("masking.levels.amae", python_amae(truth_levels[rows].tolist(), pred_levels[rows].tolist()))
        for key, endpoint in endpoints.items():
            y = endpoint[rows]
            add(f"{key}.auc", roc_auc_score(y, score[rows]) if 0 < y.sum() < y.size else float("nan"))
            add(f"{key}.or_q4", naive_odds_ratio_q4(y, score[rows]))
    return {key: percentile_ci(values) for key, values in replicates.items()}


def report_intervals(data: dict) -> dict[str, tuple[float, float]]:
    masking = data["masking"]
    result = {
        "masking.kendall_tau_b": masking["kendall_tau_b"]["ci95"],
        "masking.amae": masking["amae"]["ci95"],
        "masking.levels.kendall_tau_b": masking["levels"]["kendall_tau_b"]["ci95"],
        "masking.levels.amae": masking["levels"]["amae"]["ci95"],
    }
    for key in ENDPOINTS:
        result[f"{key}.auc"] = data["clinical"][key]["auc"]["ci95"]
        result[f"{key}.or_q4"] = data["clinical"][key]["odds_ratios"]["Q4"]["bootstrap_ci95"]
    return {key: tuple(value) for key, value in result.items()}


def compare_versions(
    table: LabelTable, predictions: Predictions, resamples: int, seed: int, repeats: int
) -> dict[str, list[float]]:
    """Wall times of the v1 scope, v2 cold and v2 warm, interleaved so load changes hit all three."""

    times: dict[str, list[float]] = {}

    def timed(name: str, v2_parts: bool, cold: bool, v3_parts: bool = True) -> None:
        if cold:
            TEST_SET_PARTS.clear()
        with threadpool_limits(limits=1, user_api="blas"):
            start, start_cpu = time.perf_counter(), time.process_time()
            report_module._score_report(
                predictions, table, None, resamples, seed, v2_parts=v2_parts, v3_parts=v3_parts
            )
            times.setdefault(name, []).append(time.perf_counter() - start)
            times.setdefault(f"{name}_cpu", []).append(time.process_time() - start_cpu)

    for _ in range(repeats):
        timed("v1", False, cold=True)
        timed("v2_cold", True, cold=True)
        timed("v2_warm", True, cold=False)
        timed("v2_scope_warm", True, cold=False, v3_parts=False)
    return times


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=475)
    parser.add_argument("--resamples", type=int, default=2000)
    parser.add_argument("--repeats", type=int, default=5, help="timed runs of ours (median reported)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--naive-resamples",
        type=int,
        default=None,
        help="run the naive loop on fewer resamples and scale its time (default: all; quick checks only)",
    )
    args = parser.parse_args()

    table, predictions = synthetic_private_set(args.rows, seed=1)
    score_report(predictions, table, resamples=20, seed=args.seed)  # warm-up: imports, BLAS threads

    ours_times, ours_cpu = [], []
    for _ in range(args.repeats):
        TEST_SET_PARTS.clear()  # "ours" is the cold report: nothing reused from an earlier run
        start, start_cpu = time.perf_counter(), time.process_time()
        report = score_report(predictions, table, resamples=args.resamples, seed=args.seed)
        ours_times.append(time.perf_counter() - start)
        ours_cpu.append(time.process_time() - start_cpu)
    ours = statistics.median(ours_times)

    scopes = compare_versions(table, predictions, args.resamples, args.seed, args.repeats)

    start = time.perf_counter()
    score_report(predictions, table, resamples=0, seed=args.seed)
    naive_points = time.perf_counter() - start
    naive_resamples = args.resamples if args.naive_resamples is None else args.naive_resamples
    start = time.perf_counter()
    naive = naive_report_intervals(table, predictions, naive_resamples, args.seed)
    naive_loop = (time.perf_counter() - start) * args.resamples / naive_resamples
    naive_total = naive_points + naive_loop

    if naive_resamples == args.resamples:
        ours_ci = report_intervals(report.data)
        worst = max(abs(a - b) for key in naive for a, b in zip(naive[key], ours_ci[key], strict=True))
    else:
        worst = float("nan")  # different resamples: the intervals are not comparable
    v1, cold, warm = (statistics.median(scopes[k]) for k in ("v1", "v2_cold", "v2_warm"))
    v1_cpu, cold_cpu, warm_cpu = (statistics.median(scopes[f"{k}_cpu"]) for k in ("v1", "v2_cold", "v2_warm"))
    figures = {
        "rows": args.rows,
        "v1_scope_cpu_s_median": round(v1_cpu, 4),
        "v2_cold_cpu_s_median": round(cold_cpu, 4),
        "v2_warm_cpu_s_median": round(warm_cpu, 4),
        "v2_cold_over_v1_cpu": round(cold_cpu / v1_cpu, 2),
        "v2_warm_over_v1_cpu": round(warm_cpu / v1_cpu, 2),
        "v1_scope_s_median": round(v1, 4),
        "v2_cold_s_median": round(cold, 4),
        "v2_warm_s_median": round(warm, 4),
        "v2_cold_over_v1": round(cold / v1, 2),
        "v2_warm_over_v1": round(warm / v1, 2),
        "v2_scope_warm_s_median": round(statistics.median(scopes["v2_scope_warm"]), 4),
        "strata_over_v2_scope": round(warm / statistics.median(scopes["v2_scope_warm"]), 2),
        "v2_scope_warm_cpu_s_median": round(statistics.median(scopes["v2_scope_warm_cpu"]), 4),
        "strata_over_v2_scope_cpu": round(warm_cpu / statistics.median(scopes["v2_scope_warm_cpu"]), 2),
        "resamples": args.resamples,
        "ours_s_median": round(ours, 4),
        "ours_s_min": round(min(ours_times), 4),
        "ours_cpu_s_median": round(statistics.median(ours_cpu), 4),
        "naive_s": round(naive_total, 3),
        "naive_loop_s": round(naive_loop, 3),
        "naive_resamples_run": naive_resamples,
        "speedup": round(naive_total / ours, 1),
        "max_ci_difference": worst,
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
        "numpy": np.__version__,
    }
    print(f"rows={args.rows} resamples={args.resamples}")
    print(
        f"ours  (full report, median of {args.repeats}): {ours:8.3f} s   (min {min(ours_times):.3f} s, "
        f"process CPU {statistics.median(ours_cpu):.3f} s)"
    )
    scaled = "" if naive_resamples == args.resamples else f", scaled from {naive_resamples} resamples"
    print(
        f"naive (point metrics + per-resample loop):   {naive_total:8.3f} s   "
        f"(loop {naive_loop:.3f} s{scaled})"
    )
    print(f"speed-up: {naive_total / ours:.1f}x; largest CI difference ours vs naive: {worst:.2e}")
    print(
        f"v1 scope {v1:.3f} s, v2 cold {cold:.3f} s ({cold / v1:.2f}x), "
        f"v2 warm {warm:.3f} s ({warm / v1:.2f}x) (wall, medians of {args.repeats}, interleaved)"
    )
    print(
        f"process CPU: v1 scope {v1_cpu:.3f} s, v2 cold {cold_cpu:.3f} s ({cold_cpu / v1_cpu:.2f}x), "
        f"v2 warm {warm_cpu:.3f} s ({warm_cpu / v1_cpu:.2f}x)"
    )
    print(
        f"strata: full warm report {warm:.3f} s against {figures['v2_scope_warm_s_median']:.3f} s "
        f"without them ({figures['strata_over_v2_scope']:.2f}x; process CPU "
        f"{warm_cpu:.3f} s against {figures['v2_scope_warm_cpu_s_median']:.3f} s, "
        f"{figures['strata_over_v2_scope_cpu']:.2f}x)"
    )
    print(json.dumps(figures))
    if worst > 1e-9:
        print("FAIL: the vectorised intervals differ from the naive ones", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
