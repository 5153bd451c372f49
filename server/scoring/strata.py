"""Kendall tau-b by stratum of the test set, with paired bootstrap intervals (issue 21 item 3).

The strata of a scored set (docs/scoring.md, "Results by stratum"):

* ``density_q1`` .. ``density_q4``: quartiles of ``Libra_percent_density`` on the scored rows, as
  ``pandas.qcut(x, 4)``; where quartile edges coincide there are fewer strata (and a warning); rows
  without a density value are in none of them;
* ``laterality_L``, ``laterality_R``: ``Dicom_image_laterality``;
* ``cancer``, ``no_cancer``: ``If_cancer``.

Within a stratum the ground truth is the run's ground truth restricted to the stratum's rows (not
re-ranked: tau-b depends on the order only), and the bootstrap is the report's own resamples
restricted to those rows, so every run's stratum replicates are paired as its headline ones are. A
stratum with fewer than ``min_size`` rows is suppressed: null with a reason. The differences between
paired strata (highest minus lowest density quartile, L - R, cancer - no cancer) get a paired
percentile interval over the same resamples.

Pure numpy/pandas: no database, web or server import.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from numpy.typing import NDArray
from threadpoolctl import threadpool_limits

from server.scoring import metrics, weighted
from server.scoring.bootstrap import percentile_ci
from server.scoring.inputs import FloatArray
from server.scoring.labels import LabelTable

#: Default of ``CSAWM_MIN_STRATUM``: strata with fewer rows are suppressed.
DEFAULT_MIN_STRATUM = 30

#: The paired strata whose difference is reported: (first, second) -> tau(first) - tau(second).
#: The density pair is filled in by :func:`define_strata` (highest quartile minus the lowest).
_FIXED_PAIRS = (("laterality_L", "laterality_R"), ("cancer", "no_cancer"))


@dataclass(frozen=True)
class Stratum:
    """One stratum: its name and the mask of its rows in label-file order."""

    name: str
    rows: NDArray[np.bool_]


@dataclass(frozen=True)
class Strata:
    """The strata of one label table, the pairs to difference, and the warnings of their definition."""

    strata: tuple[Stratum, ...]
    pairs: tuple[tuple[str, str], ...]
    warnings: tuple[str, ...]


def define_strata(labels: LabelTable) -> Strata:
    """The strata of a scored label table (module docstring), in a fixed order."""
    warnings: list[str] = []
    density = np.asarray(labels.libra_percent_density, dtype=np.float64)
    present = ~np.isnan(density)
    if not present.all():
        warnings.append(
            f"strata: {int((~present).sum())} row(s) without Libra_percent_density are in no density stratum"
        )
    codes = np.full(density.size, -1, dtype=np.int64)
    if present.any():
        cut = pd.qcut(density[present], 4, labels=False, duplicates="drop")
        codes[present] = np.asarray(cut, dtype=np.int64)
    n_bins = int(codes.max()) + 1
    if n_bins < 4:
        warnings.append(
            f"strata: Libra_percent_density quartile edges coincide, so {n_bins} density strata instead of 4"
        )
    strata = [Stratum(f"density_q{q + 1}", codes == q) for q in range(n_bins)]
    laterality = np.asarray(labels.laterality)
    strata += [Stratum(f"laterality_{side}", laterality == side) for side in ("L", "R")]
    cancer = np.asarray(labels.if_cancer) == 1
    strata += [Stratum("cancer", cancer), Stratum("no_cancer", ~cancer)]
    pairs = ((f"density_q{n_bins}", "density_q1"),) if n_bins >= 2 else ()
    return Strata(tuple(strata), pairs + _FIXED_PAIRS, tuple(warnings))


@dataclass(frozen=True)
class StratumResult:
    """One stratum's JSON entry and its replicates (None when suppressed or without resamples)."""

    entry: dict[str, Any]
    replicates: FloatArray | None


def _number(value: float) -> float | None:
    return float(value) if math.isfinite(value) else None


def _interval(values: FloatArray | None) -> list[float] | None:
    if values is None:
        return None
    low, high = percentile_ci(values)
    return None if math.isnan(low) else [low, high]


def score_stratum(
    truth: FloatArray, pred: FloatArray, counts: FloatArray | None, rows: NDArray[np.bool_], min_size: int
) -> StratumResult:
    """``{"n", "kendall_tau_b": {"value", "ci95"}}``, or ``kendall_tau_b`` null with a ``reason``."""
    n = int(rows.sum())
    if n < min_size:
        reason = f"suppressed: {n} row(s), fewer than the minimum of {min_size}"
        return StratumResult({"n": n, "kendall_tau_b": None, "reason": reason}, None)
    point = metrics.kendall_tau_b(truth[rows], pred[rows])
    if not point.is_defined:
        return StratumResult({"n": n, "kendall_tau_b": None, "reason": f"undefined ({point.reason})"}, None)
    reps = None if counts is None else weighted.kendall_tau_b(pred[rows], truth[rows], counts[rows])
    tau = {"value": _number(point.value), "ci95": _interval(reps)}
    return StratumResult({"n": n, "kendall_tau_b": tau}, reps)


def score_strata(
    truth: FloatArray,
    pred: FloatArray,
    counts: FloatArray | None,
    strata: Strata,
    *,
    min_size: int = DEFAULT_MIN_STRATUM,
    warnings: list[str] | None = None,
) -> tuple[dict[str, dict[str, Any]], dict[str, dict[str, Any]]]:
    """``(strata, differences)`` of one run.

    ``strata[name]`` is :func:`score_stratum`'s entry; ``differences["<a>_minus_<b>"]`` is
    ``{"value", "ci95"}`` of tau(a) - tau(b), null when either side is null.
    `counts` is the report's (n, R) resample counts (:func:`server.scoring.bootstrap.resample_counts`).
    A stratum's resamples in which its tau-b is undefined (too few of its rows drawn, or constant)
    are left out of its interval, with a message appended to `warnings` when given.
    One BLAS thread, as :func:`server.scoring.report.score_report` (2x faster on a shared machine).
    """
    with threadpool_limits(limits=1, user_api="blas"):
        results = {s.name: score_stratum(truth, pred, counts, s.rows, min_size) for s in strata.strata}
    for name, result in results.items():
        if result.replicates is not None and warnings is not None:
            bad = int((~np.isfinite(result.replicates)).sum())
            if bad:
                warnings.append(
                    f"strata.{name}.kendall_tau_b: {bad} of {result.replicates.size} bootstrap resamples "
                    "were degenerate and are left out of the interval"
                )
    differences: dict[str, dict[str, Any]] = {}
    for first, second in strata.pairs:
        a, b = results[first], results[second]
        tau_a, tau_b = a.entry["kendall_tau_b"], b.entry["kendall_tau_b"]
        if tau_a is None or tau_b is None or tau_a["value"] is None or tau_b["value"] is None:
            differences[f"{first}_minus_{second}"] = {"value": None, "ci95": None}
            continue
        # The replicates of both are the report's resamples restricted to their rows: paired.
        ci = None if a.replicates is None or b.replicates is None else _interval(a.replicates - b.replicates)
        differences[f"{first}_minus_{second}"] = {"value": tau_a["value"] - tau_b["value"], "ci95": ci}
    return {name: result.entry for name, result in results.items()}, differences
