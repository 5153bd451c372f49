"""The report JSON of docs/scoring.md (server/scoring/report.py)."""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import pytest
import scipy.stats
from sklearn.metrics import roc_auc_score

from server.scoring.labels import LabelLayout
from server.scoring.metrics import amae
from server.scoring.predictions import PredictionsError
from server.scoring.ranks import median_rank_ground_truth, rerank_experts
from server.scoring.report import SCORER_VERSION, ScoringInputError

from .factories import predictions, private_labels, public_labels
from .schema import scored

RESAMPLES = 200


def _keys(section: dict[str, Any]) -> set[str]:
    return set(section)


def _check_estimate(entry: dict[str, Any]) -> None:
    assert _keys(entry) >= {"value", "ci95"}
    if entry["value"] is not None and entry["ci95"] is not None:
        assert len(entry["ci95"]) == 2 and entry["ci95"][0] <= entry["ci95"][1]


def test_private_report_has_exactly_the_design_shape() -> None:
    labels, latent = private_labels(120)
    rng = np.random.default_rng(3)
    report = scored(predictions(labels.filenames, latent + rng.normal(size=120)), labels, resamples=RESAMPLES)
    data = report.data
    json.dumps(data, allow_nan=False)  # no NaN or inf leaks into the JSON
    assert set(data) == {
        "scorer_version",
        "n_images",
        "label_layout",
        "masking",
        "clinical",
        "experts",
        "strata",
        "strata_differences",
        "bootstrap",
        "warnings",
    }
    assert data["scorer_version"] == SCORER_VERSION == "3"
    assert data["n_images"] == 120 and data["label_layout"] == "rank"
    masking = data["masking"]
    assert set(masking) == {"kendall_tau_b", "amae", "levels", "per_expert"}
    _check_estimate(masking["kendall_tau_b"])
    assert masking["amae"]["unit"] == "rank"
    levels = masking["levels"]
    assert set(levels) == {"kendall_tau_b", "amae", "group_amae", "confusion_matrix", "low_bin", "high_bin"}
    assert levels["amae"]["unit"] == "level"
    assert set(levels["group_amae"]) == {"1-2", "3-4", "5-6", "7-8"}
    matrix = np.array(levels["confusion_matrix"])
    assert matrix.shape == (8, 8) and matrix.sum() == 120
    clinical = data["clinical"]
    assert clinical["population"] == "evaluated" and clinical["n"] == 120
    for endpoint in ("interval_cancer", "large_invasive_cancer", "composite"):
        entry = clinical[endpoint]
        assert set(entry) == {"n_positive", "auc", "odds_ratios", "references"}
        assert set(entry["references"]) == {"percent_density", "dense_area", "breast_area"}
        _check_estimate(entry["auc"])
        assert set(entry["odds_ratios"]) == {"Q2", "Q3", "Q4"}
        for quartile, ratio in entry["odds_ratios"].items():
            expected = {"value", "ci95", "p_one_sided", "table", "haldane"}
            assert set(ratio) == (expected | {"bootstrap_ci95"} if quartile == "Q4" else expected)
            (a, b), (c, d) = ratio["table"]
            assert a + b in (30, 30 + 120 % 8) and c + d == 30
    assert set(data["experts"]) == {f"Expert_{k}" for k in range(1, 6)}
    assert all(set(e) == {"kendall_tau_b", "amae", "per_expert"} for e in data["experts"].values())
    assert set(data["bootstrap"]) == {"resamples", "seed", "degenerate"}
    assert data["bootstrap"]["resamples"] == RESAMPLES and data["bootstrap"]["seed"] == 0
    # Small Q1 (30 rows): a few resamples have no case there, so their OR Q4 is undefined.
    assert 0 <= data["bootstrap"]["degenerate"] < RESAMPLES // 10
    assert all("bootstrap resamples were degenerate" in warning for warning in data["warnings"])
    assert report.replicates["kendall_tau_b"].shape == (RESAMPLES,)


def test_private_values_follow_the_authors_definitions() -> None:
    labels, latent = private_labels(90, seed=4)
    score = latent + np.random.default_rng(0).normal(size=90)
    data = scored(predictions(labels.filenames, score), labels, resamples=0).data
    assert labels.experts is not None
    truth = median_rank_ground_truth(rerank_experts(labels.experts))
    pred = scipy.stats.rankdata(score)
    assert data["masking"]["kendall_tau_b"]["value"] == pytest.approx(
        scipy.stats.kendalltau(pred, truth).statistic
    )
    assert data["masking"]["amae"]["value"] == pytest.approx(amae(truth, pred).value)
    auc = roc_auc_score(labels.if_interval_cancer, score)
    assert data["clinical"]["interval_cancer"]["auc"]["value"] == pytest.approx(auc)
    assert data["clinical"]["interval_cancer"]["n_positive"] == int(labels.if_interval_cancer.sum())
    assert data["masking"]["kendall_tau_b"]["ci95"] is None
    assert "bootstrap: disabled (0 resamples), so no confidence intervals" in data["warnings"]


def test_public_report_uses_levels_and_final_pred() -> None:
    labels, latent = public_labels(96)
    assert labels.label is not None and labels.experts is not None
    final_pred = np.clip(labels.label + np.random.default_rng(1).integers(-1, 2, size=96), 1, 8)
    data = scored(predictions(labels.filenames, latent, final_pred), labels, resamples=RESAMPLES).data
    assert data["label_layout"] == "level" and data["masking"]["amae"]["unit"] == "level"
    expected_tau = scipy.stats.kendalltau(final_pred, labels.label).statistic
    assert data["masking"]["kendall_tau_b"]["value"] == pytest.approx(expected_tau)
    assert data["masking"]["levels"]["kendall_tau_b"] == data["masking"]["kendall_tau_b"]
    expert_tau = scipy.stats.kendalltau(labels.experts[:, 2], labels.label).statistic
    assert data["experts"]["Expert_3"]["kendall_tau_b"] == pytest.approx(expert_tau)


def test_public_report_without_final_pred_bins_the_score() -> None:
    labels, latent = public_labels(96)
    data = scored(predictions(labels.filenames, latent), labels, resamples=0).data
    assert np.array(data["masking"]["levels"]["confusion_matrix"]).sum(axis=0).tolist() == [12] * 8
    assert any("no Final_pred" in w for w in data["warnings"])


def test_constant_predictions_give_null_plus_warning_never_zero() -> None:
    labels, _ = private_labels(64)
    data = scored(predictions(labels.filenames, np.zeros(64)), labels, resamples=50).data
    tau = data["masking"]["kendall_tau_b"]
    assert tau == {"value": None, "ci95": None}
    assert data["masking"]["levels"]["kendall_tau_b"]["value"] is not None  # Filename order breaks ties
    assert "masking.kendall_tau_b: null, undefined (the predictions are constant)" in data["warnings"]
    json.dumps(data, allow_nan=False)


def test_infinite_odds_ratio_is_null_with_warning_and_haldane_interval() -> None:
    labels, latent = private_labels(64)
    endpoint = (latent > np.quantile(latent, 0.5)).astype(np.int64)  # the oracle puts no case in Q1
    labels = type(labels)(**{**labels.__dict__, "if_interval_cancer": endpoint})
    data = scored(predictions(labels.filenames, latent), labels, resamples=50).data
    q4 = data["clinical"]["interval_cancer"]["odds_ratios"]["Q4"]
    assert q4["value"] is None and q4["haldane"] is True and q4["ci95"] is not None
    assert q4["table"][1][0] == 0 and q4["bootstrap_ci95"] is None
    assert any(
        w.startswith("clinical.interval_cancer.odds_ratios.Q4: null, infinite") for w in data["warnings"]
    )


def test_degenerate_resamples_are_counted_not_hidden() -> None:
    labels, latent = private_labels(20, seed=2)
    endpoint = np.zeros(20, dtype=np.int64)
    endpoint[0] = 1  # a single case: many resamples miss it and their AUC is undefined
    labels = type(labels)(**{**labels.__dict__, "if_interval_cancer": endpoint})
    data = scored(predictions(labels.filenames, latent), labels, resamples=300, seed=1).data
    assert data["bootstrap"]["degenerate"] > 50
    assert any(w.startswith("clinical.interval_cancer.auc:") and "degenerate" in w for w in data["warnings"])


def test_pooled_clinical_section_uses_public_and_evaluated_rows() -> None:
    private, private_latent = private_labels(80)
    public, public_latent = public_labels(48)
    names = (*private.filenames, *public.filenames)
    score = np.concatenate([private_latent, public_latent])
    data = scored(predictions(names, score), private, public_labels=public, resamples=RESAMPLES).data
    clinical = data["clinical"]
    assert clinical["population"] == "pooled" and clinical["n"] == 128
    endpoint = np.concatenate([private.if_composite, public.if_composite])
    assert clinical["composite"]["n_positive"] == int(endpoint.sum())
    assert clinical["composite"]["auc"]["value"] == pytest.approx(roc_auc_score(endpoint, score))
    q4 = clinical["composite"]["odds_ratios"]["Q4"]["table"]
    assert sum(q4[0]) == 128 - 6 * 16 and sum(q4[1]) == 32
    assert data["n_images"] == 80  # the masking metrics stay on the evaluated rows


def test_predictions_must_cover_the_labels() -> None:
    labels, latent = private_labels(30)
    with pytest.raises(PredictionsError, match=r"no prediction row for 'private_30\.png'"):
        scored(predictions(labels.filenames[:-1], latent[:-1]), labels)
    public, _ = public_labels(16)
    with pytest.raises(PredictionsError, match=r"'test_1\.png'"):
        scored(predictions(labels.filenames, latent), labels, public_labels=public)


def test_extra_prediction_rows_are_ignored_with_a_warning() -> None:
    labels, latent = private_labels(30)
    rows = predictions((*labels.filenames, "other.png"), np.r_[latent, 0.0])
    data = scored(rows, labels, resamples=0).data
    assert "predictions: 1 row(s) for images not in the labels were ignored" in data["warnings"]


def test_wrong_layouts_and_overlaps_are_rejected() -> None:
    labels, latent = private_labels(30)
    train = type(labels)(**{**labels.__dict__, "layout": LabelLayout.TRAIN})
    with pytest.raises(ScoringInputError, match="got the train layout"):
        scored(predictions(labels.filenames, latent), train)
    with pytest.raises(ScoringInputError, match="public labels must have the public layout"):
        scored(predictions(labels.filenames, latent), labels, public_labels=labels)
    public, _ = public_labels(16, prefix="private")
    with pytest.raises(ScoringInputError, match="share 16 file name"):
        scored(predictions(labels.filenames, latent), labels, public_labels=public)


def test_row_order_of_the_predictions_does_not_matter() -> None:
    labels, latent = private_labels(50)
    order = np.random.default_rng(9).permutation(50)
    first = scored(predictions(labels.filenames, latent), labels, resamples=100)
    shuffled = predictions([labels.filenames[i] for i in order], latent[order])
    second = scored(shuffled, labels, resamples=100)
    assert first.data == second.data
    np.testing.assert_array_equal(first.replicates["amae"], second.replicates["amae"])


def test_row_order_of_the_labels_changes_no_point_value() -> None:
    labels, latent = private_labels(50)
    order = np.random.default_rng(9).permutation(50)
    shuffled_labels = labels.subset(order)
    first = scored(predictions(labels.filenames, latent), labels, resamples=0).data
    second = scored(predictions(labels.filenames, latent), shuffled_labels, resamples=0).data
    assert first == second


def test_same_seed_gives_paired_replicates_across_submissions() -> None:
    labels, latent = private_labels(60)
    rng = np.random.default_rng(2)
    good = scored(predictions(labels.filenames, latent), labels, resamples=100, seed=5)
    noisy = scored(predictions(labels.filenames, latent + rng.normal(size=60)), labels, resamples=100, seed=5)
    again = scored(predictions(labels.filenames, latent), labels, resamples=100, seed=5)
    np.testing.assert_array_equal(good.replicates["kendall_tau_b"], again.replicates["kendall_tau_b"])
    # Paired resamples: the difference varies much less than either replicate set.
    difference = good.replicates["kendall_tau_b"] - noisy.replicates["kendall_tau_b"]
    assert np.std(difference) < np.std(noisy.replicates["kendall_tau_b"])
    other = scored(predictions(labels.filenames, latent), labels, resamples=100, seed=6)
    assert other.data["bootstrap"]["seed"] == 6
    assert not np.array_equal(good.replicates["kendall_tau_b"], other.replicates["kendall_tau_b"])


def test_private_expert_with_empty_cells_is_scored_on_its_rows() -> None:
    labels, latent = private_labels(40)
    assert labels.experts is not None
    experts = labels.experts.copy()
    experts[[3, 7], 1] = np.nan
    labels = type(labels)(**{**labels.__dict__, "experts": experts})
    data = scored(predictions(labels.filenames, latent), labels, resamples=0).data
    assert "experts.Expert_2: 2 row(s) without a position; scored on the other 38" in data["warnings"]
    assert data["experts"]["Expert_2"]["kendall_tau_b"] is not None


def test_public_low_and_high_bins_are_the_authors_binary_scores() -> None:
    # Provenance: facts §1.4 / §9, sklearn precision/recall/f1 (average='binary') on
    # (Label in bin) vs (Final_pred in bin); the public layout's level view is Label vs Final_pred.
    labels, latent = public_labels(96)
    assert labels.label is not None
    final_pred = np.clip(labels.label + np.random.default_rng(4).integers(-1, 2, size=96), 1, 8)
    data = scored(predictions(labels.filenames, latent, final_pred), labels, resamples=0).data
    for key, positive in (("low_bin", (1, 2)), ("high_bin", (7, 8))):
        actual, called = np.isin(labels.label, positive), np.isin(final_pred, positive)
        tp = int((actual & called).sum())
        expected = {
            "precision": tp / int(called.sum()),
            "recall": tp / int(actual.sum()),
            "f1": 2 * tp / (int(called.sum()) + int(actual.sum())),
        }
        assert data["masking"]["levels"][key] == pytest.approx(expected)


def test_rank_layout_bins_use_the_equal_count_level_view() -> None:
    labels, latent = private_labels(80)
    data = scored(predictions(labels.filenames, latent), labels, resamples=0).data
    low = data["masking"]["levels"]["low_bin"]
    # Equal-count levels put 20 rows in {1, 2} on both sides, so precision = recall = F1 here.
    matrix = np.array(data["masking"]["levels"]["confusion_matrix"])
    tp = int(matrix[:2, :2].sum())
    assert low == pytest.approx({"precision": tp / 20, "recall": tp / 20, "f1": tp / 20})
