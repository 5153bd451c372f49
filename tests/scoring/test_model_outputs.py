"""The masking score and level from network outputs, on hand-made heads (facts §1.5)."""

from __future__ import annotations

import numpy as np
import pytest

from server.scoring.model_outputs import (
    levels_from_multihot_heads,
    levels_from_onehot_probs,
    probs_from_multihot_heads,
    scores_from_multihot_heads,
    scores_from_onehot_probs,
)


def test_onehot_score_divides_the_zero_based_expectation_by_seven() -> None:
    probs = np.zeros((3, 8))
    probs[0, 0] = 1  # level 1 -> 0
    probs[1, 7] = 1  # level 8 -> 1
    probs[2, [2, 3]] = 0.5  # E[level0] = 2.5 -> 2.5 / 7
    np.testing.assert_allclose(scores_from_onehot_probs(probs), [0.0, 1.0, 2.5 / 7])
    assert levels_from_onehot_probs(probs).tolist() == [1, 8, 3]


def test_multihot_running_max_from_the_right_raises_earlier_heads() -> None:
    # Raw heads (0.9, 0.2, 0.6, 0.1, 0.3, 0, 0): running max from the right gives
    # m = (0.9, 0.6, 0.6, 0.3, 0.3, 0, 0); with m0 = 1, m8 = 0 the differences are
    # p = (0.1, 0.3, 0, 0.3, 0, 0.3, 0, 0); score = (1*0.3 + 3*0.3 + 5*0.3) / 7 = 2.7 / 7,
    # which equals sum(m) / 7 = (0.9 + 0.6 + 0.6 + 0.3 + 0.3) / 7.
    heads = np.array([[0.9, 0.2, 0.6, 0.1, 0.3, 0.0, 0.0]])
    np.testing.assert_allclose(probs_from_multihot_heads(heads), [[0.1, 0.3, 0.0, 0.3, 0.0, 0.3, 0.0, 0.0]])
    np.testing.assert_allclose(scores_from_multihot_heads(heads), [2.7 / 7])


def test_multihot_extremes_and_monotonic_heads() -> None:
    heads = np.array([[0.0] * 7, [1.0] * 7, [0.8, 0.6, 0.4, 0.2, 0.1, 0.05, 0.0]])
    scores = scores_from_multihot_heads(heads)
    np.testing.assert_allclose(scores, [0.0, 1.0, 2.15 / 7])
    np.testing.assert_allclose(probs_from_multihot_heads(heads).sum(axis=1), 1.0)


def test_multihot_level_scans_raw_heads_until_the_first_zero() -> None:
    # Raw heads > 0.5: (1, 0, 1, 0, ...) -> one leading 1 -> level0 1 -> level 2, although the
    # monotonic score would put more mass higher (the authors' scan_thresholded).
    heads = np.array([[0.9, 0.2, 0.6, 0, 0, 0, 0], [0.6, 0.7, 0.51, 0.9, 0.4, 0.9, 0.9], [0.4] + [1.0] * 6])
    assert levels_from_multihot_heads(heads).tolist() == [2, 5, 1]


def test_bad_shapes_and_values_are_rejected() -> None:
    with pytest.raises(ValueError, match=r"shape \(n, 7\)"):
        scores_from_multihot_heads(np.zeros((2, 8)))
    with pytest.raises(ValueError, match=r"probabilities in \[0, 1\]"):
        scores_from_onehot_probs(np.full((1, 8), 1.5))
