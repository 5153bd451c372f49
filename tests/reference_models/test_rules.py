"""The authors' score rules (reference_models.rules) on hand-made logits; numpy only, no torch.

Expected values are worked by hand from the formulas in the module docstring (CSAW-M repository
``src/trainer/utility.py``), shown next to each case.
"""

from __future__ import annotations

import numpy as np
import pytest
from numpy.typing import ArrayLike

from reference_models.rules import (
    ModelKind,
    make_monotonic,
    multi_hot_outputs,
    multi_hot_targets,
    one_hot_outputs,
    outputs_for,
    scan_thresholded,
    sigmoid,
)


def logit(p: ArrayLike) -> np.ndarray:
    """Inverse sigmoid, so test cases can be written as head probabilities."""
    q = np.asarray(p, dtype=np.float64)
    return np.log(q / (1 - q))


# --- targets -----------------------------------------------------------------------------------


def test_multi_hot_targets_first_level_heads_are_one() -> None:
    targets = multi_hot_targets(np.arange(8))
    assert targets.shape == (8, 7)
    assert targets.dtype == np.float32
    for level in range(8):
        assert targets[level].tolist() == [1.0] * level + [0.0] * (7 - level)


@pytest.mark.parametrize(
    ("levels", "message"),
    [
        (np.array([0, 8]), r"0\.\.7 \(0-based\), got 0\.\.8"),
        (np.array([-1, 3]), r"0\.\.7 \(0-based\), got -1\.\.3"),
        (np.array([0.0, 1.0]), "must be integers"),
        (np.array([[1, 2]]), "one-dimensional"),
    ],
)
def test_multi_hot_targets_reject_bad_levels(levels: np.ndarray, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        multi_hot_targets(levels)


# --- one-hot ---------------------------------------------------------------------------------


def test_one_hot_score_is_expectation_over_zero_based_levels_divided_by_7() -> None:
    # Equal logits on levels 2 and 4 (0-based) only: p = 0.5 each -> E = 3 -> score 3/7.
    logits = np.full((1, 8), -1e3)
    logits[0, [2, 4]] = 0.0
    out = one_hot_outputs(logits)
    assert out.score[0] == pytest.approx(3 / 7)
    np.testing.assert_allclose(out.probs[0, [2, 4]], [0.5, 0.5])
    assert out.pred[0] == 3  # argmax takes the first of the tie (0-based 2), reported 1-based


def test_one_hot_uniform_and_extremes() -> None:
    logits = np.zeros((3, 8))
    logits[1, 0] = 50.0  # certain level 1 -> score 0
    logits[2, 7] = 50.0  # certain level 8 -> score 1
    out = one_hot_outputs(logits)
    assert out.score.tolist() == pytest.approx([3.5 / 7, 0.0, 1.0])
    assert out.pred.tolist() == [1, 1, 8]
    np.testing.assert_allclose(out.probs.sum(axis=1), 1.0)


def test_one_hot_softmax_is_stable_for_huge_logits() -> None:
    out = one_hot_outputs(np.array([[1e4, 0, 0, 0, 0, 0, 0, 1e4 + 1]]))
    assert np.all(np.isfinite(out.probs))
    assert out.pred[0] == 8


# --- multi-hot ---------------------------------------------------------------------------------


def test_monotone_heads_are_a_running_max_from_the_right() -> None:
    heads = np.array([[0.9, 0.3, 0.6, 0.2, 0.7, 0.1, 0.05]])
    assert make_monotonic(heads).tolist() == [[0.9, 0.7, 0.7, 0.7, 0.7, 0.1, 0.05]]


def test_threshold_scan_counts_consecutive_raw_heads_above_half() -> None:
    heads = np.array(
        [
            [0.9, 0.8, 0.4, 0.9, 0.9, 0.9, 0.9],  # stops at head 3 -> 2
            [0.5, 0.9, 0.9, 0.9, 0.9, 0.9, 0.9],  # 0.5 is not > 0.5 -> 0
            [0.6, 0.6, 0.6, 0.6, 0.6, 0.6, 0.6],  # all above -> 7
            [0.1, 0.1, 0.1, 0.1, 0.1, 0.1, 0.1],  # none -> 0
        ]
    )
    assert scan_thresholded(heads).tolist() == [2, 0, 7, 0]


def test_multi_hot_class_uses_raw_heads_score_uses_monotone_heads() -> None:
    # Raw heads 0.9, 0.3, 0.8, 0.1, 0.1, 0.1, 0.1: the scan stops at head 2 -> level 1 (0-based),
    # Final_pred 2. Monotone: 0.9, 0.8, 0.8, 0.1, 0.1, 0.1, 0.1 -> score = 2.9 / 7.
    out = multi_hot_outputs(logit([[0.9, 0.3, 0.8, 0.1, 0.1, 0.1, 0.1]]))
    assert out.pred.tolist() == [2]
    assert out.score[0] == pytest.approx(2.9 / 7)
    # p_i = m_i - m_{i+1} with m_0 = 1, m_8 = 0.
    np.testing.assert_allclose(out.probs[0], [0.1, 0.1, 0.0, 0.7, 0.0, 0.0, 0.0, 0.1], atol=1e-12)


def test_multi_hot_score_equals_expectation_of_its_probabilities() -> None:
    rng = np.random.default_rng(0)
    out = multi_hot_outputs(rng.normal(0, 3, size=(200, 7)))
    np.testing.assert_allclose(out.score, out.probs @ np.arange(8) / 7)
    assert np.all(out.probs >= 0)
    np.testing.assert_allclose(out.probs.sum(axis=1), 1.0)
    assert np.all((out.score >= 0) & (out.score <= 1))


def test_multi_hot_extremes() -> None:
    out = multi_hot_outputs(np.array([[40.0] * 7, [-40.0] * 7]))
    assert out.pred.tolist() == [8, 1]
    assert out.score.tolist() == pytest.approx([1.0, 0.0])


def test_sigmoid_is_finite_for_large_negative_logits() -> None:
    values = sigmoid(np.array([-1000.0, 0.0, 1000.0]))
    assert values.tolist() == pytest.approx([0.0, 0.5, 1.0])


# --- dispatch and input checks -------------------------------------------------------------------


def test_outputs_for_dispatches_on_kind_and_width() -> None:
    assert outputs_for(ModelKind.ONE_HOT, np.zeros((2, 8))).probs.shape == (2, 8)
    assert outputs_for(ModelKind.MULTI_HOT, np.zeros((2, 7))).probs.shape == (2, 8)
    with pytest.raises(ValueError, match=r"one-hot logits must have shape \(n, 8\), got \(2, 7\)"):
        outputs_for(ModelKind.ONE_HOT, np.zeros((2, 7)))
    with pytest.raises(ValueError, match="multi-hot logits contain NaN"):
        multi_hot_outputs(np.array([[np.nan] * 7]))


@pytest.mark.parametrize("text", ["one-hot", "ONE_HOT", " multi-hot", "multi_hot"])
def test_model_kind_parses_both_spellings(text: str) -> None:
    assert ModelKind.parse(text).value in {"one-hot", "multi-hot"}


def test_model_kind_rejects_unknown_names() -> None:
    with pytest.raises(ValueError, match="unknown model kind 'ordinal'"):
        ModelKind.parse("ordinal")
    assert ModelKind.ONE_HOT.n_outputs == 8
    assert ModelKind.MULTI_HOT.n_outputs == 7


def test_docstring_examples_hold() -> None:
    import doctest

    from reference_models import rules

    result = doctest.testmod(rules)
    assert result.attempted >= 3
    assert result.failed == 0
