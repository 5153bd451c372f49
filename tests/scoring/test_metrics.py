"""Known values and edge cases of the masking metrics (server/scoring/metrics.py)."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.stats
from sklearn.metrics import f1_score, precision_score, recall_score

from server.scoring.metrics import (
    HIGH_BIN,
    LOW_BIN,
    amae,
    bin_scores,
    confusion_matrix,
    group_amae,
    kendall_tau_b,
)


def _python_amae(truth: list[float], pred: list[float]) -> float:
    """Straight transcription of the authors' calc_class_absolute_error (facts §1.3)."""
    per_class = []
    for c in sorted(set(truth)):
        errors = [abs(p - t) for t, p in zip(truth, pred, strict=True) if t == c]
        per_class.append(sum(errors) / len(errors))
    return sum(per_class) / len(per_class)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_tau_b_equals_scipy_kendalltau_with_ties(seed: int) -> None:
    # Provenance: scipy.stats.kendalltau(pred, gt) with default arguments (variant b) is what the
    # CSAW-M authors call (facts §1.2); levels 1..8 make ties in both vectors.
    rng = np.random.default_rng(seed)
    truth = rng.integers(1, 9, size=200)
    pred = np.clip(truth + rng.integers(-2, 3, size=200), 1, 8)
    expected = scipy.stats.kendalltau(pred, truth).statistic
    assert kendall_tau_b(truth, pred).value == pytest.approx(expected, abs=1e-12)


def test_tau_b_hand_computed_with_ties() -> None:
    # x = (1, 1, 2), y = (1, 2, 3): pairs (1,2) tied in x, (1,3) concordant, (2,3) concordant.
    # C - D = 2, n0 = 3, n1 = 1, n2 = 0: tau_b = 2 / sqrt(2 * 3).
    assert kendall_tau_b([1, 2, 3], [1, 1, 2]).value == pytest.approx(2 / np.sqrt(6))


def test_tau_b_of_identical_and_reversed_vectors() -> None:
    x = np.array([3.0, 1.0, 4.0, 1.0, 5.0, 9.0, 2.0, 6.0])
    assert kendall_tau_b(x, x).value == pytest.approx(1.0)
    assert kendall_tau_b(x, -x).value == pytest.approx(-1.0)


@pytest.mark.parametrize(
    ("truth", "pred", "reason"),
    [
        ([1, 2, 3], [4, 4, 4], "predictions are constant"),
        ([2, 2, 2], [1, 2, 3], "ground truth is constant"),
        ([1], [1], "at least 2 rows"),
    ],
)
def test_tau_b_undefined_is_nan_with_reason(truth: list[int], pred: list[int], reason: str) -> None:
    result = kendall_tau_b(truth, pred)
    assert np.isnan(result.value)
    assert not result.is_defined
    assert result.reason is not None and reason in result.reason


def test_amae_skips_an_absent_ground_truth_class() -> None:
    # Hand-computed: GT classes present are 1, 3 and 8 (2 and 4..7 absent).
    # class 1: |1-1|, |3-1| -> mean 1; class 3: |3-3|, |5-3|, |4-3| -> mean 1; class 8: |6-8| -> 2.
    # AMAE = (1 + 1 + 2) / 3 = 4/3. Counting absent classes as 0 over 8 would give 0.5 instead.
    truth = [1, 1, 3, 3, 3, 8]
    pred = [1, 3, 3, 5, 4, 6]
    assert amae(truth, pred).value == pytest.approx(4 / 3)
    assert _python_amae(truth, pred) == pytest.approx(4 / 3)


def test_amae_weighs_classes_equally_not_rows() -> None:
    # Class 1 (4 rows, error 0 each) and class 5 (1 row, error 4): AMAE = (0 + 4) / 2 = 2, MAE = 0.8.
    assert amae([1, 1, 1, 1, 5], [1, 1, 1, 1, 1]).value == pytest.approx(2.0)


def test_amae_predicted_values_do_not_create_classes() -> None:
    # Only GT class 4 exists; predictions 1 and 8 add no classes: (3 + 4) / 2 over one class.
    assert amae([4, 4], [1, 8]).value == pytest.approx(3.5)


@pytest.mark.parametrize("seed", [3, 4])
def test_amae_equals_python_transcription_in_rank_units(seed: int) -> None:
    rng = np.random.default_rng(seed)
    truth = rng.integers(1, 60, size=80).astype(float)
    pred = scipy.stats.rankdata(truth + rng.normal(scale=10, size=80))
    assert amae(truth, pred).value == pytest.approx(_python_amae(list(truth), list(pred)))


def test_amae_of_empty_input_is_undefined() -> None:
    result = amae([], [])
    assert np.isnan(result.value) and result.reason == "no rows"


def test_group_amae_per_level_group_and_empty_group() -> None:
    truth = [1, 2, 2, 3, 4, 7]
    pred = [2, 2, 4, 3, 3, 8]
    # 1-2: class 1 -> 1, class 2 -> (0 + 2)/2 = 1 => 1; 3-4: class 3 -> 0, class 4 -> 1 => 0.5;
    # 5-6: no rows; 7-8: class 7 -> 1.
    groups = group_amae(truth, pred)
    assert groups["1-2"].value == pytest.approx(1.0)
    assert groups["3-4"].value == pytest.approx(0.5)
    assert np.isnan(groups["5-6"].value) and "5, 6" in (groups["5-6"].reason or "")
    assert groups["7-8"].value == pytest.approx(1.0)


def test_confusion_matrix_rows_are_truth_columns_are_prediction() -> None:
    matrix = confusion_matrix([1, 1, 8, 3], [2, 1, 8, 8])
    assert matrix.shape == (8, 8)
    assert matrix[0, 1] == 1 and matrix[0, 0] == 1 and matrix[7, 7] == 1 and matrix[2, 7] == 1
    assert matrix.sum() == 4


def test_inputs_are_checked() -> None:
    with pytest.raises(ValueError, match="same length; got 3 and 2"):
        kendall_tau_b([1, 2, 3], [1, 2])
    with pytest.raises(ValueError, match="y_pred must be finite; row 2"):
        amae([1, 2], [1, float("nan")])
    with pytest.raises(ValueError, match=r"integer levels 1\.\.8; row 1 holds 0\.0"):
        confusion_matrix([0], [1])


@pytest.mark.parametrize("positive", [(1, 2), (7, 8)], ids=["low-bin", "high-bin"])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_bin_scores_equal_sklearn_binary_scores(positive: tuple[int, int], seed: int) -> None:
    # Provenance: the authors' calc_precision_and_recall_network (facts §1.4, §9) calls sklearn's
    # precision_score / recall_score / f1_score with average='binary' on (Label in bin) vs
    # (Final_pred in bin).
    rng = np.random.default_rng(seed)
    truth = rng.integers(1, 9, size=200)
    pred = np.clip(truth + rng.integers(-2, 3, size=200), 1, 8)
    scores = bin_scores(truth, pred, positive)
    actual, called = np.isin(truth, positive), np.isin(pred, positive)
    assert scores.precision.value == pytest.approx(precision_score(actual, called))
    assert scores.recall.value == pytest.approx(recall_score(actual, called))
    assert scores.f1.value == pytest.approx(f1_score(actual, called))


def test_bin_scores_without_positives_are_nan_not_sklearns_zero() -> None:
    scores = bin_scores([3, 4, 5], [4, 5, 6], LOW_BIN)
    assert all(np.isnan(v.value) for v in (scores.precision, scores.recall, scores.f1))
    assert scores.precision.reason == "no prediction in {1, 2}"
    assert scores.recall.reason == "no ground truth in {1, 2}"
    # A bin predicted but never true: recall undefined, precision a true 0, F1 a true 0.
    scores = bin_scores([8, 8, 3], [8, 1, 2], LOW_BIN)
    assert scores.precision.value == 0.0 and np.isnan(scores.recall.value) and scores.f1.value == 0.0
    assert bin_scores([7, 8, 1], [8, 8, 8], HIGH_BIN).precision.value == pytest.approx(2 / 3)
