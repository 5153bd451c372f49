"""Agreement with the experts: consensus rows and per-expert agreement (server/scoring/experts.py)."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.stats

from server.scoring import experts
from server.scoring.metrics import amae

from .factories import predictions, private_labels, public_labels
from .schema import scored


def test_private_model_against_each_expert_uses_that_experts_reranks() -> None:
    # Provenance: the notebook's per-expert heatmaps (facts §4.2, §9): scipy kendalltau of the
    # model's ranks against each expert's re-ranked positions; AMAE with the expert as ground truth.
    labels, latent = private_labels(80, seed=3)
    assert labels.experts is not None
    score = latent + np.random.default_rng(0).normal(scale=0.7, size=80)
    data = scored(predictions(labels.filenames, score), labels, resamples=0).data
    pred = scipy.stats.rankdata(score)
    for k in range(5):
        reranked = scipy.stats.rankdata(labels.experts[:, k])
        entry = data["masking"]["per_expert"][f"Expert_{k + 1}"]
        assert entry["kendall_tau_b"] == pytest.approx(scipy.stats.kendalltau(pred, reranked).statistic)
        assert entry["amae"] == pytest.approx(amae(reranked, pred).value)


def test_public_model_against_each_expert_uses_levels() -> None:
    labels, latent = public_labels(96)
    assert labels.experts is not None and labels.label is not None
    final_pred = np.clip(labels.label + np.random.default_rng(1).integers(-1, 2, size=96), 1, 8)
    data = scored(predictions(labels.filenames, latent, final_pred), labels, resamples=0).data
    entry = data["masking"]["per_expert"]["Expert_4"]
    expected = scipy.stats.kendalltau(final_pred, labels.experts[:, 3]).statistic
    assert entry["kendall_tau_b"] == pytest.approx(expected)
    assert entry["amae"] == pytest.approx(amae(labels.experts[:, 3], final_pred).value)


def test_expert_pairs_are_symmetric_in_tau_and_match_scipy() -> None:
    labels, _ = private_labels(60, seed=5)
    assert labels.experts is not None
    section, warnings = experts.expert_rows(labels)
    assert warnings == []
    tau_12 = section["Expert_1"]["per_expert"]["Expert_2"]["kendall_tau_b"]  # type: ignore[index]
    tau_21 = section["Expert_2"]["per_expert"]["Expert_1"]["kendall_tau_b"]  # type: ignore[index]
    expected = scipy.stats.kendalltau(labels.experts[:, 0], labels.experts[:, 1]).statistic
    assert tau_12 == pytest.approx(expected) and tau_21 == pytest.approx(expected)
    assert "Expert_1" not in section["Expert_1"]["per_expert"]  # type: ignore[operator]


def test_an_empty_expert_cell_is_left_out_of_that_pair_with_a_warning() -> None:
    labels, latent = private_labels(40)
    assert labels.experts is not None
    cells = labels.experts.copy()
    cells[[3, 7], 1] = np.nan
    labels = type(labels)(**{**labels.__dict__, "experts": cells})
    data = scored(predictions(labels.filenames, latent), labels, resamples=0).data
    assert (
        "masking.per_expert.Expert_2: 2 row(s) without a value left out of the comparison" in data["warnings"]
    )
    present = ~np.isnan(cells[:, 1])
    expected = scipy.stats.kendalltau(latent[present], cells[present, 1]).statistic
    assert data["masking"]["per_expert"]["Expert_2"]["kendall_tau_b"] == pytest.approx(expected)


def test_agreement_needs_a_test_set_layout() -> None:
    labels, _ = private_labels(10)
    train = type(labels)(**{**labels.__dict__, "experts": None})
    with pytest.raises(ValueError, match="expert annotations need a test-set label file"):
        experts.ExpertView.of(train)
