"""Paired, patient-level percentile bootstrap.

One row is one patient (one image per woman in the CSAW-M test sets), so resampling rows with
replacement resamples patients. The draws depend only on (number of rows, resamples, seed): two
submissions scored against the same label file with the same seed see identical resamples, which is
what makes their replicates *paired* and their difference testable (:func:`paired_difference_ci`).
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike

from server.scoring.inputs import FloatArray, IntArray

DEFAULT_RESAMPLES = 2000
DEFAULT_LEVEL = 0.95


def resample_indices(n_rows: int, resamples: int, seed: int) -> IntArray:
    """The drawn row indices, shape (resamples, n_rows), from ``numpy.random.default_rng(seed)``."""
    if n_rows < 1:
        raise ValueError(f"n_rows must be at least 1; got {n_rows}")
    if resamples < 0:
        raise ValueError(f"resamples must be non-negative; got {resamples}")
    rng = np.random.default_rng(seed)
    return rng.integers(0, n_rows, size=(resamples, n_rows), dtype=np.int64)


def resample_counts(n_rows: int, resamples: int, seed: int) -> FloatArray:
    """How often each row was drawn in each resample, shape (n_rows, resamples), as float64.

    Column b is ``numpy.bincount(resample_indices(...)[b], minlength=n_rows)``. Rows-first, so the
    per-row sums of :mod:`server.scoring.weighted` run over contiguous memory.
    """
    indices = resample_indices(n_rows, resamples, seed)
    offsets = indices * resamples + np.arange(resamples, dtype=np.int64)[:, None]
    flat = np.bincount(offsets.ravel(), minlength=resamples * n_rows)
    return flat.reshape(n_rows, resamples).astype(np.float64)


def percentile_ci(replicates: ArrayLike, level: float = DEFAULT_LEVEL) -> tuple[float, float]:
    """Percentile interval of the non-NaN replicates (NaN = degenerate resample, left out).

    Returns ``(nan, nan)`` when fewer than two replicates are defined. Percentiles use numpy's
    default linear interpolation.
    """
    if not 0 < level < 1:
        raise ValueError(f"level must lie strictly between 0 and 1; got {level}")
    values = np.asarray(replicates, dtype=np.float64)
    values = values[np.isfinite(values)]
    if values.size < 2:
        return (float("nan"), float("nan"))
    tail = round(50 * (1 - level), 12)  # 2.5 exactly for 0.95, not 2.5000000000000022
    low, high = np.percentile(values, [tail, 100 - tail])
    return (float(low), float(high))


def paired_difference_ci(a: np.ndarray, b: np.ndarray, level: float = DEFAULT_LEVEL) -> tuple[float, float]:
    """Percentile interval of ``a - b`` over shared resamples (NaN-aware).

    `a` and `b` are two submissions' replicates of one metric from the same draws (same rows, same
    seed). A resample degenerate for either is left out. An interval that contains 0 means the two
    are statistically tied at this level — the leaderboard's "tied with leader" test.
    """
    first = np.asarray(a, dtype=np.float64)
    second = np.asarray(b, dtype=np.float64)
    if first.shape != second.shape or first.ndim != 1:
        raise ValueError(
            "a and b must be 1-D replicates of the same resamples; "
            f"got shapes {first.shape} and {second.shape}"
        )
    return percentile_ci(first - second, level)
