"""From network outputs to the masking score and level, as the CSAW-M authors' ``utility.py`` does.

One-hot models (8-way softmax) and multi-hot models (7 cumulative sigmoid heads, head k estimating
P(level0 >= k) for the 0-based level) both end in level probabilities p_0..p_7 and the continuous
score ``sum_i i * p_i / 7`` in [0, 1] (facts §1.5). The score drives AUC, the odds-ratio bins and the
private-set ranks; the predicted level drives the public-set Kendall and AMAE.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike

from server.scoring.inputs import FloatArray, IntArray

N_LEVELS = 8
N_HEADS = N_LEVELS - 1


def _matrix(values: ArrayLike, name: str, columns: int) -> FloatArray:
    array = np.asarray(values, dtype=np.float64)
    if array.ndim != 2 or array.shape[1] != columns:
        raise ValueError(f"{name} must have shape (n, {columns}); got {array.shape}")
    if not np.isfinite(array).all() or (array < 0).any() or (array > 1).any():
        raise ValueError(f"{name} must hold probabilities in [0, 1]")
    return array


def scores_from_onehot_probs(probs: ArrayLike) -> FloatArray:
    r"""Masking score of a one-hot model: :math:`\sum_{i=0}^{7} i\,p_i / 7`.

    The authors divide the expectation of the 0-based level by 7 (not 8), so the score spans [0, 1].

    Examples
    --------
    >>> scores_from_onehot_probs([[0.5, 0, 0, 0, 0, 0, 0, 0.5]]).tolist()
    [0.5]
    """
    return _matrix(probs, "probs", N_LEVELS) @ np.arange(N_LEVELS) / N_HEADS


def probs_from_multihot_heads(heads: ArrayLike) -> FloatArray:
    r"""Level probabilities from 7 sigmoid heads, made monotonic first.

    1. Running maximum from the right, :math:`m_k = \max(c_k, \dots, c_7)`: raises earlier heads
       rather than clipping later ones, so the sequence is non-increasing.
    2. With :math:`m_0 = 1, m_8 = 0`: :math:`p_i = m_i - m_{i+1}` for i = 0..7.

    Examples
    --------
    Heads (0.9, 0.2, 0.6, 0, 0, 0, 0) become (0.9, 0.6, 0.6, 0, 0, 0, 0):

    >>> probs_from_multihot_heads([[0.9, 0.2, 0.6, 0, 0, 0, 0]]).round(2).tolist()
    [[0.1, 0.3, 0.0, 0.6, 0.0, 0.0, 0.0, 0.0]]
    """
    raw = _matrix(heads, "heads", N_HEADS)
    monotonic = np.maximum.accumulate(raw[:, ::-1], axis=1)[:, ::-1]
    n = raw.shape[0]
    padded = np.hstack([np.ones((n, 1)), monotonic, np.zeros((n, 1))])
    probs: FloatArray = padded[:, :-1] - padded[:, 1:]
    return probs


def scores_from_multihot_heads(heads: ArrayLike) -> FloatArray:
    r"""Masking score of a multi-hot model: :math:`\sum_i i\,p_i / 7` of the monotonic probabilities.

    Algebraically this equals :math:`\sum_{k=1}^{7} m_k / 7` (the monotonic heads' mean).

    Examples
    --------
    (0.9 + 0.6 + 0.6) / 7 = 0.3:

    >>> scores_from_multihot_heads([[0.9, 0.2, 0.6, 0, 0, 0, 0]]).round(6).tolist()
    [0.3]
    """
    return probs_from_multihot_heads(heads) @ np.arange(N_LEVELS) / N_HEADS


def levels_from_onehot_probs(probs: ArrayLike) -> IntArray:
    """Predicted level 1..8 of a one-hot model: argmax + 1 (the first maximum on ties)."""
    levels: IntArray = np.argmax(_matrix(probs, "probs", N_LEVELS), axis=1).astype(np.int64) + 1
    return levels


def levels_from_multihot_heads(heads: ArrayLike, threshold: float = 0.5) -> IntArray:
    """Predicted level 1..8 of a multi-hot model from the *raw* heads.

    Each head is thresholded at ``> threshold``; the count of consecutive 1s from head 1 up to the
    first 0 is the 0-based level (the authors' ``scan_thresholded``). Because the raw heads are used,
    this level can disagree slightly with the monotonic score.

    Examples
    --------
    >>> levels_from_multihot_heads([[0.9, 0.2, 0.6, 0, 0, 0, 0], [1, 1, 1, 1, 1, 1, 1]]).tolist()
    [2, 8]
    """
    above = _matrix(heads, "heads", N_HEADS) > threshold
    run = np.cumprod(above, axis=1).sum(axis=1)
    levels: IntArray = run.astype(np.int64) + 1
    return levels
