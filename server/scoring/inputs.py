"""The shared input checker of the metric functions.

Every public metric takes one-dimensional arrays of equal length; a mismatch is a programming or
data error that is reported with what was expected and what arrived, never silently broadcast.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike, NDArray

FloatArray = NDArray[np.float64]
IntArray = NDArray[np.int64]


def as_vector(values: ArrayLike, name: str, *, allow_nan: bool = False) -> FloatArray:
    """Return `values` as a 1-D float64 array, or raise ValueError naming `name`.

    Parameters
    ----------
    values : array_like
        Numbers, one per row.
    name : str
        The argument name used in error messages.
    allow_nan : bool
        Whether NaN entries are allowed (infinities never are).
    """
    array = np.asarray(values, dtype=np.float64)
    if array.ndim != 1:
        raise ValueError(f"{name} must be one-dimensional; got shape {array.shape}")
    bad = np.isinf(array) if allow_nan else ~np.isfinite(array)
    if bad.any():
        first = int(np.flatnonzero(bad)[0])
        raise ValueError(f"{name} must be finite; row {first + 1} holds {float(array[first])!r}")
    return array


def as_pair(y_true: ArrayLike, y_pred: ArrayLike) -> tuple[FloatArray, FloatArray]:
    """Check a (reference, prediction) pair: both 1-D, finite and of the same length."""
    truth = as_vector(y_true, "y_true")
    pred = as_vector(y_pred, "y_pred")
    if truth.shape != pred.shape:
        raise ValueError(f"y_true and y_pred must have the same length; got {truth.size} and {pred.size}")
    return truth, pred


def as_binary(values: ArrayLike, name: str) -> IntArray:
    """Return a 0/1 endpoint column as int64, or raise ValueError naming the first bad row."""
    array = as_vector(values, name)
    bad = (array != 0) & (array != 1)
    if bad.any():
        first = int(np.flatnonzero(bad)[0])
        raise ValueError(f"{name} must hold only 0 and 1; row {first + 1} holds {float(array[first])!r}")
    return array.astype(np.int64)


def as_levels(values: ArrayLike, name: str, *, n_levels: int = 8) -> IntArray:
    """Return masking levels as int64, or raise ValueError unless every value is an integer 1..n."""
    array = as_vector(values, name)
    bad = (array != np.round(array)) | (array < 1) | (array > n_levels)
    if bad.any():
        first = int(np.flatnonzero(bad)[0])
        raise ValueError(
            f"{name} must hold integer levels 1..{n_levels}; row {first + 1} holds {float(array[first])!r}"
        )
    return array.astype(np.int64)


def tiebreak_codes(keys: object, n: int) -> IntArray:
    """Integer codes that order rows by their key (the Filename), for deterministic tie breaking.

    Parameters
    ----------
    keys : sequence of str
        One unique key per row.
    n : int
        The expected number of rows.
    """
    names = np.asarray(keys, dtype=object)
    if names.shape != (n,):
        raise ValueError(f"keys must hold one entry per row ({n}); got shape {names.shape}")
    order = np.argsort(names.astype(str), kind="stable")
    codes = np.empty(n, dtype=np.int64)
    codes[order] = np.arange(n, dtype=np.int64)
    return codes
