"""The CSAW-M authors' rules from network outputs to masking levels and scores, in numpy.

Torch-free on purpose: the same functions build training targets inside the image and are unit
tested on the host. Levels are 0-based here (0..7, the authors' training convention); the
predictions file shifts classes to 1..8.

Two heads (CSAW-M repository ``src/trainer/utility.py``, restated):

- **one-hot**: 8 logits, softmax probabilities p_0..p_7.
  Class = argmax p_i. Score = (sum_i i * p_i) / 7, i.e. (E[level] - 1) / 7 in [0, 1].
- **multi-hot**: 7 logits, one sigmoid per threshold, c_k ~ P(level >= k) for k = 1..7, trained on
  cumulative targets (level L -> the first L heads are 1).
  Class = the number of consecutive raw c_k > 0.5 counted from head 1 (the first c_k <= 0.5 stops the
  count). Score: monotone heads m_k = max(c_k, ..., c_7) (running max from the right), level
  probabilities p_i = m_i - m_{i+1} with m_0 = 1 and m_8 = 0, score = (sum_i i * p_i) / 7, which
  equals (sum_k m_k) / 7.

The class uses the raw heads and the score the monotone ones, so the two may disagree slightly; that
is the authors' behaviour and is kept.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

import numpy as np

N_LEVELS = 8
"""Masking levels 1..8 (0..7 during training)."""

N_THRESHOLDS = N_LEVELS - 1
"""Multi-hot heads: one per threshold level >= k, k = 1..7."""


class ModelKind(enum.Enum):
    """The two reference heads. The value is the name used in files, flags and image tags."""

    ONE_HOT = "one-hot"
    MULTI_HOT = "multi-hot"

    @property
    def n_outputs(self) -> int:
        """Width of the final linear layer: 8 softmax logits or 7 sigmoid logits."""
        return N_LEVELS if self is ModelKind.ONE_HOT else N_THRESHOLDS

    @classmethod
    def parse(cls, value: str) -> ModelKind:
        """Accept ``one-hot``/``multi-hot`` (also with ``_``); anything else is a ValueError."""
        normalised = value.strip().lower().replace("_", "-")
        for kind in cls:
            if kind.value == normalised:
                return kind
        raise ValueError(f"unknown model kind {value!r}; expected 'one-hot' or 'multi-hot'")


@dataclass(frozen=True)
class Outputs:
    """Per-image results in the authors' inference format.

    Attributes
    ----------
    probs : (n, 8) float64, level probabilities (rows sum to 1).
    pred : (n,) int64, predicted level 1..8 (``Final_pred``).
    score : (n,) float64 in [0, 1], continuous masking score (``Final_score``).
    """

    probs: np.ndarray
    pred: np.ndarray
    score: np.ndarray


def _check_logits(logits: np.ndarray, width: int, what: str) -> np.ndarray:
    array = np.asarray(logits, dtype=np.float64)
    if array.ndim != 2 or array.shape[1] != width:
        raise ValueError(f"{what} logits must have shape (n, {width}), got {array.shape}")
    if not np.all(np.isfinite(array)):
        raise ValueError(f"{what} logits contain NaN or infinite values")
    return array


def _check_levels(levels: np.ndarray) -> np.ndarray:
    array = np.asarray(levels)
    if array.ndim != 1:
        raise ValueError(f"levels must be one-dimensional, got shape {array.shape}")
    if not np.issubdtype(array.dtype, np.integer):
        raise ValueError(f"levels must be integers 0..7, got dtype {array.dtype}")
    if array.size and (array.min() < 0 or array.max() >= N_LEVELS):
        raise ValueError(f"levels must lie in 0..7 (0-based), got {array.min()}..{array.max()}")
    return array.astype(np.int64)


def softmax(logits: np.ndarray) -> np.ndarray:
    """Row-wise softmax, stabilised by subtracting the row maximum."""
    shifted = logits - logits.max(axis=1, keepdims=True)
    exp = np.exp(shifted)
    probs: np.ndarray = exp / exp.sum(axis=1, keepdims=True)
    return probs


def sigmoid(logits: np.ndarray) -> np.ndarray:
    """Element-wise logistic function, written to avoid overflow for large negative logits."""
    out = np.empty_like(logits, dtype=np.float64)
    positive = logits >= 0
    out[positive] = 1.0 / (1.0 + np.exp(-logits[positive]))
    exp = np.exp(logits[~positive])
    out[~positive] = exp / (1.0 + exp)
    return out


def multi_hot_targets(levels: np.ndarray) -> np.ndarray:
    """Cumulative targets for the 7 multi-hot heads.

    Level L (0-based) -> target t_k = 1 if k <= L else 0 for k = 1..7, so the first L heads are 1.

    >>> multi_hot_targets(np.array([0, 3, 7])).astype(int).tolist()
    [[0, 0, 0, 0, 0, 0, 0], [1, 1, 1, 0, 0, 0, 0], [1, 1, 1, 1, 1, 1, 1]]
    """
    checked = _check_levels(levels)
    thresholds = np.arange(1, N_LEVELS)
    return (checked[:, None] >= thresholds[None, :]).astype(np.float32)


def expected_level_score(probs: np.ndarray) -> np.ndarray:
    """Score = (sum_i i * p_i) / 7 over 0-based levels i = 0..7; in [0, 1]."""
    return probs @ np.arange(N_LEVELS, dtype=np.float64) / (N_LEVELS - 1)


def one_hot_outputs(logits: np.ndarray) -> Outputs:
    """Softmax head: class = argmax (first maximum on ties), score = expectation / 7."""
    checked = _check_logits(logits, N_LEVELS, "one-hot")
    probs = softmax(checked)
    pred = probs.argmax(axis=1).astype(np.int64) + 1
    return Outputs(probs=probs, pred=pred, score=expected_level_score(probs))


def make_monotonic(heads: np.ndarray) -> np.ndarray:
    """Running maximum from the right: m_k = max(c_k, c_{k+1}, ..., c_7).

    Raises earlier heads rather than clipping later ones, so the result is non-increasing.

    >>> make_monotonic(np.array([[0.9, 0.2, 0.6, 0.1]])).tolist()
    [[0.9, 0.6, 0.6, 0.1]]
    """
    return np.maximum.accumulate(heads[:, ::-1], axis=1)[:, ::-1]


def scan_thresholded(heads: np.ndarray, threshold: float = 0.5) -> np.ndarray:
    """Count consecutive heads c_k > threshold from head 1; the first c_k <= threshold stops it.

    Returns the 0-based level (0..7).

    >>> scan_thresholded(np.array([[0.9, 0.4, 0.8], [0.7, 0.6, 0.51], [0.5, 0.9, 0.9]])).tolist()
    [1, 3, 0]
    """
    above = heads > threshold
    # cumprod stays 1 while every head so far is above and drops to 0 for good after the first miss.
    counts: np.ndarray = np.cumprod(above, axis=1).sum(axis=1).astype(np.int64)
    return counts


def multi_hot_outputs(logits: np.ndarray) -> Outputs:
    """Sigmoid heads: class from the raw-threshold scan, score and probabilities from monotone heads."""
    checked = _check_logits(logits, N_THRESHOLDS, "multi-hot")
    heads = sigmoid(checked)
    pred = scan_thresholded(heads) + 1
    monotone = make_monotonic(heads)
    n = monotone.shape[0]
    bounded = np.concatenate([np.ones((n, 1)), monotone, np.zeros((n, 1))], axis=1)
    probs = bounded[:, :-1] - bounded[:, 1:]
    return Outputs(probs=probs, pred=pred, score=monotone.sum(axis=1) / (N_LEVELS - 1))


def outputs_for(kind: ModelKind, logits: np.ndarray) -> Outputs:
    """Apply the rules of `kind` to a batch of logits."""
    if kind is ModelKind.ONE_HOT:
        return one_hot_outputs(logits)
    return multi_hot_outputs(logits)
