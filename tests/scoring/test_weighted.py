"""The vectorised bootstrap statistics equal the plain ones on the resampled rows.

Each resample's value from server/scoring/weighted.py is compared with scipy / sklearn / the plain
metric computed on ``rows[indices]`` for the very same drawn indices.
"""

from __future__ import annotations

import numpy as np
import pytest
import scipy.stats
from sklearn.metrics import roc_auc_score

from server.scoring import metrics, weighted
from server.scoring.bootstrap import resample_counts, resample_indices

from .factories import quartile_odds_ratios

N = 97
RESAMPLES = 40


@pytest.fixture(scope="module")
def data() -> dict[str, np.ndarray]:
    rng = np.random.default_rng(11)
    latent = rng.normal(size=N)
    return {
        "gt_rank": np.floor(scipy.stats.rankdata(latent + rng.normal(scale=0.4, size=N)) / 2),  # ties
        "score": np.round(latent + rng.normal(scale=0.5, size=N), 1),  # ties in the score
        "gt_level": rng.integers(1, 9, size=N).astype(float),
        "pred_level": rng.integers(1, 9, size=N).astype(float),
        "endpoint": (rng.random(N) < 0.25).astype(np.int64),
        "codes": rng.permutation(N).astype(np.int64),
    }


@pytest.fixture(scope="module")
def draws() -> tuple[np.ndarray, np.ndarray]:
    return resample_indices(N, RESAMPLES, 5), resample_counts(N, RESAMPLES, 5)


def test_counts_are_the_bincount_of_the_drawn_indices(draws: tuple[np.ndarray, np.ndarray]) -> None:
    indices, counts = draws
    assert counts.shape == (N, RESAMPLES)
    for b in range(RESAMPLES):
        np.testing.assert_array_equal(counts[:, b], np.bincount(indices[b], minlength=N))


def test_same_seed_same_draws_other_seed_other_draws() -> None:
    np.testing.assert_array_equal(resample_counts(30, 5, 1), resample_counts(30, 5, 1))
    assert not np.array_equal(resample_counts(30, 5, 1), resample_counts(30, 5, 2))


@pytest.mark.parametrize(("x", "y"), [("score", "gt_rank"), ("pred_level", "gt_level")])
def test_weighted_tau_b_equals_scipy_on_resampled_rows(
    data: dict[str, np.ndarray], draws: tuple[np.ndarray, np.ndarray], x: str, y: str
) -> None:
    indices, counts = draws
    replicates = weighted.kendall_tau_b(data[x], data[y], counts)
    for b in range(RESAMPLES):
        rows = indices[b]
        expected = scipy.stats.kendalltau(data[x][rows], data[y][rows]).statistic
        assert replicates[b] == pytest.approx(expected, abs=1e-12)


def test_weighted_tau_b_blocks_agree(data: dict[str, np.ndarray], monkeypatch: pytest.MonkeyPatch) -> None:
    counts = resample_counts(N, 7, 3)
    whole = weighted.kendall_tau_b(data["score"], data["gt_rank"], counts)
    monkeypatch.setattr(weighted, "_BLOCK", 10)
    np.testing.assert_allclose(weighted.kendall_tau_b(data["score"], data["gt_rank"], counts), whole)


def test_weighted_tau_b_is_nan_for_a_constant_resample() -> None:
    counts = np.zeros((4, 2))
    counts[2, 0] = 4  # resample 0 draws row 2 four times: constant in both variables
    counts[:, 1] = 1
    replicates = weighted.kendall_tau_b(np.arange(4.0), np.arange(4.0), counts)
    assert np.isnan(replicates[0]) and replicates[1] == pytest.approx(1.0)


def test_weighted_amae_equals_plain_amae_on_resampled_rows(
    data: dict[str, np.ndarray], draws: tuple[np.ndarray, np.ndarray]
) -> None:
    indices, counts = draws
    pred = scipy.stats.rankdata(data["score"])
    replicates = weighted.amae(data["gt_rank"], pred, counts)
    for b in range(RESAMPLES):
        rows = indices[b]
        assert replicates[b] == pytest.approx(metrics.amae(data["gt_rank"][rows], pred[rows]).value)


def test_weighted_auc_equals_sklearn_on_resampled_rows(
    data: dict[str, np.ndarray], draws: tuple[np.ndarray, np.ndarray]
) -> None:
    indices, counts = draws
    replicates = weighted.roc_auc(data["endpoint"], data["score"], counts)
    for b in range(RESAMPLES):
        rows = indices[b]
        expected = roc_auc_score(data["endpoint"][rows], data["score"][rows])
        assert replicates[b] == pytest.approx(expected, abs=1e-12)


@pytest.mark.parametrize("quartile", [2, 3, 4])
@pytest.mark.parametrize("tied", [True, False], ids=["tied-score", "distinct-score"])
def test_weighted_odds_ratio_equals_plain_quartile_table_on_resampled_rows(
    data: dict[str, np.ndarray], draws: tuple[np.ndarray, np.ndarray], quartile: int, tied: bool
) -> None:
    # The plain table bins the resampled rows by the v2 rule (tie blocks whole, issue 14); copies of
    # one drawn row are such a block too, so this checks the rule on every resample.
    indices, counts = draws
    score = data["score"] if tied else data["score"] + np.arange(N) * 1e-6
    endpoints = {"endpoint": data["endpoint"]}
    replicates = weighted.association(score, counts, endpoints, quartile=quartile)["endpoint"].odds_ratio
    for b in range(RESAMPLES):
        rows = indices[b]
        plain = quartile_odds_ratios(data["endpoint"][rows], score[rows])
        expected = plain[f"Q{quartile}"]
        if expected.reason is None:
            assert replicates[b] == pytest.approx(expected.value)
        else:
            assert np.isnan(replicates[b])


def test_association_is_the_same_across_resample_blocks(data: dict[str, np.ndarray]) -> None:
    # 300 resamples span three column blocks of weighted._COLUMNS; check resamples on each side of
    # every block edge against the plain statistics.
    indices, counts = resample_indices(N, 300, 8), resample_counts(N, 300, 8)
    endpoints = {"a": data["endpoint"], "b": 1 - data["endpoint"]}
    result = weighted.association(data["score"], counts, endpoints)
    for b in (0, 127, 128, 255, 256, 299):
        rows = indices[b]
        for key, endpoint in endpoints.items():
            assert result[key].auc[b] == pytest.approx(roc_auc_score(endpoint[rows], data["score"][rows]))
            plain = quartile_odds_ratios(endpoint[rows], data["score"][rows])["Q4"]
            if plain.reason is None:
                assert result[key].odds_ratio[b] == pytest.approx(plain.value)
            else:
                assert np.isnan(result[key].odds_ratio[b])


def test_association_rejects_quartile_one(data: dict[str, np.ndarray]) -> None:
    with pytest.raises(ValueError, match="quartile must be 2, 3 or 4"):
        weighted.association(data["score"], np.ones((N, 2)), {"a": data["endpoint"]}, quartile=1)
