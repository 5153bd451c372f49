"""Ranks, the private set's rank ground truth, and the 8-level view of ranked data.

The private label file holds each expert's raw position in a longer sorted list (values can exceed
the row count; a cell may be empty). The CSAW-M authors re-rank every expert column within the
evaluated images (pandas ``rank()``, average method), take the median over experts and truncate it
with ``int(round(median, 8))``; the model's ``Final_score`` is ranked the same way (facts §1.1).
"""

from __future__ import annotations

import numpy as np
import scipy.stats
from numpy.typing import ArrayLike

from server.scoring.inputs import FloatArray, IntArray, as_vector

N_LEVELS = 8


def average_ranks(values: ArrayLike) -> FloatArray:
    """Ranks 1..m of the non-NaN entries, ties sharing their average rank; NaN stays NaN.

    This is pandas ``Series.rank()`` with its defaults (method ``average``, NaN kept).

    Examples
    --------
    >>> average_ranks([10.0, 30.0, 20.0, 20.0, float("nan")]).tolist()
    [1.0, 4.0, 2.5, 2.5, nan]
    """
    array = as_vector(values, "values", allow_nan=True)
    ranks = np.full(array.shape, np.nan)
    present = ~np.isnan(array)
    ranks[present] = scipy.stats.rankdata(array[present], method="average")
    return ranks


def rerank_experts(positions: ArrayLike) -> FloatArray:
    """Re-rank each expert column (raw sort positions) within the evaluated rows.

    Parameters
    ----------
    positions : array_like, shape (n, k)
        Expert sort positions; NaN marks an empty cell.

    Returns
    -------
    ndarray, shape (n, k)
        Average ranks 1..m_k per column (m_k = filled cells of expert k); NaN where the cell is empty.
    """
    matrix = np.asarray(positions, dtype=np.float64)
    if matrix.ndim != 2:
        raise ValueError(f"positions must be a 2-D (rows x experts) array; got shape {matrix.shape}")
    if np.isinf(matrix).any():
        raise ValueError("positions must be finite or NaN")
    return np.column_stack([average_ranks(matrix[:, k]) for k in range(matrix.shape[1])])


def median_rank_ground_truth(reranks: ArrayLike) -> IntArray:
    """The private ground truth: floor of the median expert re-rank of each row.

    ``L_i = int(round(median_k r_k(i), 8))`` as in the authors' ``make_ranks_from_private``: the
    median over the experts that rated the row (empty cells skipped), rounded to 8 decimals to
    remove float noise, then truncated, so a .5 median (ties or an even number of raters) is floored.

    Examples
    --------
    >>> median_rank_ground_truth([[1, 2, 3, 4, 5], [2, 3, float("nan"), 4, 5]]).tolist()
    [3, 3]
    """
    matrix = np.asarray(reranks, dtype=np.float64)
    if matrix.ndim != 2 or matrix.shape[1] == 0:
        raise ValueError(f"reranks must be a 2-D (rows x experts) array; got shape {matrix.shape}")
    empty = np.isnan(matrix).all(axis=1)
    if empty.any():
        first = int(np.flatnonzero(empty)[0])
        raise ValueError(f"row {first + 1} has no expert rank")
    medians = np.nanmedian(matrix, axis=1)
    return np.floor(np.round(medians, 8)).astype(np.int64)


def equal_count_levels(values: ArrayLike, tiebreak: IntArray, *, n_levels: int = N_LEVELS) -> IntArray:
    """Cut rows sorted by value into `n_levels` equal-count bins, as ``numpy.array_split`` does.

    The rows are ordered by value, ties broken by `tiebreak` (the Filename order), and the ordered
    list is split with ``numpy.array_split``: when ``n`` is not divisible by `n_levels` the first
    ``n % n_levels`` bins hold one row more. This is how the CSAW-M annotation tool turned each
    expert's full sort into levels 1..8 (lowest values -> level 1).

    Examples
    --------
    >>> equal_count_levels([5.0, 1.0, 3.0, 2.0, 4.0], np.arange(5), n_levels=2).tolist()
    [2, 1, 1, 1, 2]
    """
    array = as_vector(values, "values")
    codes = np.asarray(tiebreak, dtype=np.int64)
    if codes.shape != array.shape:
        raise ValueError(f"tiebreak must have one entry per row ({array.size}); got {codes.size}")
    order = np.lexsort((codes, array))
    levels = np.empty(array.size, dtype=np.int64)
    for level, chunk in enumerate(np.array_split(order, n_levels), start=1):
        levels[chunk] = level
    return levels
