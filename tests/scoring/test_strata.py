"""Tau-b by stratum (server/scoring/strata.py) against scipy on the subsets and a resample loop."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import scipy.stats

from server.scoring import strata
from server.scoring.bootstrap import resample_counts, resample_indices
from server.scoring.experts import ExpertView
from server.scoring.labels import LabelTable
from server.scoring.predictions import Predictions
from server.scoring.report import score_report
from server.scoring.results import Estimate, Report

from .factories import predictions, private_labels
from .schema import scored, valid_report

RESAMPLES = 60
SEED = 4
Scored = tuple[LabelTable, Predictions]


def _masking_inputs(rows: Predictions, table: LabelTable) -> tuple[np.ndarray, np.ndarray]:
    """The (ground truth, prediction) of a private-layout report's headline tau-b."""
    return ExpertView.of(table).truth, rows.final_score


@pytest.fixture
def table_and_scores() -> tuple[LabelTable, Predictions]:
    table, latent = private_labels(160, seed=2)
    score = latent + np.random.default_rng(5).normal(scale=0.7, size=160)
    return table, predictions(table.filenames, score)


def test_density_quartiles_are_qcut_bins_and_the_other_strata_follow_their_columns(
    table_and_scores: Scored,
) -> None:
    table, _ = table_and_scores
    defined = strata.define_strata(table)
    names = [s.name for s in defined.strata]
    assert names == [f"density_q{q}" for q in (1, 2, 3, 4)] + [
        "laterality_L",
        "laterality_R",
        "cancer",
        "no_cancer",
    ]
    x = table.libra_percent_density
    # qcut's bins are right-closed, the lowest edge included: bin = number of inner edges below x.
    edges = np.quantile(x, [0.25, 0.5, 0.75])
    expected = np.searchsorted(edges, x, side="left")
    for q in range(4):
        assert (defined.strata[q].rows == (expected == q)).all()
    by_name = {s.name: s.rows for s in defined.strata}
    assert (by_name["laterality_L"] == (np.array(table.laterality) == "L")).all()
    assert (by_name["cancer"] == (table.if_cancer == 1)).all() and (
        by_name["no_cancer"] == (table.if_cancer == 0)
    ).all()
    assert defined.pairs == (
        ("density_q4", "density_q1"),
        ("laterality_L", "laterality_R"),
        ("cancer", "no_cancer"),
    )
    assert defined.warnings == ()


def test_coinciding_quartile_edges_give_fewer_strata_and_a_warning(table_and_scores: Scored) -> None:
    table, _ = table_and_scores
    density = np.where(
        np.arange(len(table)) < 100, 10.0, table.libra_percent_density
    )  # 10.0 below q1 and q2 edges
    defined = strata.define_strata(dataclasses.replace(table, libra_percent_density=density))
    density_names = [s.name for s in defined.strata if s.name.startswith("density")]
    assert len(density_names) < 4
    assert defined.pairs[0] == (density_names[-1], "density_q1")
    assert any("quartile edges coincide" in w for w in defined.warnings)


def test_stratum_tau_b_and_interval_equal_scipy_on_the_subset_and_its_resamples(
    table_and_scores: Scored,
) -> None:
    table, rows = table_and_scores
    truth, pred = _masking_inputs(rows, table)
    counts = resample_counts(len(table), RESAMPLES, SEED)
    defined = strata.define_strata(table)
    entries, differences = strata.score_strata(truth, pred, counts, defined, min_size=30)
    indices = resample_indices(len(table), RESAMPLES, SEED)
    loop_reps = {}
    for stratum in defined.strata:
        mask = stratum.rows
        entry = entries[stratum.name]
        assert entry["n"] == int(mask.sum())
        value = scipy.stats.kendalltau(truth[mask], pred[mask]).statistic
        assert entry["kendall_tau_b"]["value"] == pytest.approx(value)
        reps = []
        for draw in indices:
            drawn = draw[mask[draw]]  # the resample's rows that fall in the stratum
            reps.append(scipy.stats.kendalltau(truth[drawn], pred[drawn]).statistic)
        loop_reps[stratum.name] = np.array(reps)
        np.testing.assert_allclose(entry["kendall_tau_b"]["ci95"], np.percentile(reps, [2.5, 97.5]))
    diff = differences["density_q4_minus_density_q1"]
    assert diff["value"] == pytest.approx(
        entries["density_q4"]["kendall_tau_b"]["value"] - entries["density_q1"]["kendall_tau_b"]["value"]
    )
    paired = loop_reps["density_q4"] - loop_reps["density_q1"]
    np.testing.assert_allclose(diff["ci95"], np.percentile(paired, [2.5, 97.5]))
    assert set(differences) == {
        "density_q4_minus_density_q1",
        "laterality_L_minus_laterality_R",
        "cancer_minus_no_cancer",
    }


def test_a_stratum_of_every_row_is_the_reports_headline_tau_b(table_and_scores: Scored) -> None:
    table, rows = table_and_scores
    truth, pred = _masking_inputs(rows, table)
    counts = resample_counts(len(table), RESAMPLES, SEED)
    everyone = strata.score_stratum(truth, pred, counts, np.ones(len(table), dtype=bool), 30)
    report = score_report(rows, table, resamples=RESAMPLES, seed=SEED)
    headline = report.data["masking"]["kendall_tau_b"]
    assert everyone.entry["kendall_tau_b"]["value"] == pytest.approx(headline["value"])
    np.testing.assert_allclose(everyone.entry["kendall_tau_b"]["ci95"], headline["ci95"])
    assert everyone.replicates is not None
    np.testing.assert_allclose(everyone.replicates, report.replicates["kendall_tau_b"])


def test_a_small_stratum_is_suppressed_with_a_reason_and_its_difference_is_null(
    table_and_scores: Scored,
) -> None:
    table, rows = table_and_scores
    truth, pred = _masking_inputs(rows, table)
    n_cancer = int(table.if_cancer.sum())
    entries, differences = strata.score_strata(
        truth, pred, None, strata.define_strata(table), min_size=n_cancer + 1
    )
    assert entries["cancer"] == {
        "n": n_cancer,
        "kendall_tau_b": None,
        "reason": f"suppressed: {n_cancer} row(s), fewer than the minimum of {n_cancer + 1}",
    }
    assert differences["cancer_minus_no_cancer"] == {"value": None, "ci95": None}
    assert entries["no_cancer"]["kendall_tau_b"]["ci95"] is None  # no resamples given: no interval


def _loop(truth: np.ndarray, pred: np.ndarray, mask: np.ndarray, indices: np.ndarray) -> np.ndarray:
    """Tau-b by scipy on each resample's rows that fall in the stratum (the independent loop)."""
    return np.array([scipy.stats.kendalltau(truth[d[mask[d]]], pred[d[mask[d]]]).statistic for d in indices])


def test_the_reports_strata_equal_scipy_on_the_subsets_and_the_reports_own_resamples(
    table_and_scores: Scored,
) -> None:
    """Scorer version 3: ``strata`` and ``strata_differences`` of the report itself (schema-checked),
    on the report's resamples, with ``min_stratum`` deciding which strata are suppressed."""
    table, rows = table_and_scores
    report = scored(rows, table, resamples=RESAMPLES, seed=SEED, min_stratum=41)
    data = report.data
    assert data["scorer_version"] == "3"
    truth, pred = _masking_inputs(rows, table)
    indices = resample_indices(len(table), RESAMPLES, SEED)
    loops = {}
    for stratum in strata.define_strata(table).strata:
        entry, mask = data["strata"][stratum.name], stratum.rows
        assert entry["n"] == int(mask.sum())
        if entry["n"] < 41:
            reason = f"suppressed: {entry['n']} row(s), fewer than the minimum of 41"
            assert entry == {"n": entry["n"], "kendall_tau_b": None, "reason": reason}
            continue
        assert entry["kendall_tau_b"]["value"] == pytest.approx(
            scipy.stats.kendalltau(truth[mask], pred[mask]).statistic
        )
        loops[stratum.name] = _loop(truth, pred, mask, indices)
        np.testing.assert_allclose(
            entry["kendall_tau_b"]["ci95"], np.percentile(loops[stratum.name], [2.5, 97.5])
        )
    assert set(loops) == {"laterality_L", "laterality_R", "cancer", "no_cancer"}  # density: 40 rows each
    assert data["strata_differences"]["density_q4_minus_density_q1"] == {"value": None, "ci95": None}
    for first, second in (("laterality_L", "laterality_R"), ("cancer", "no_cancer")):
        diff = data["strata_differences"][f"{first}_minus_{second}"]
        tau = (
            data["strata"][first]["kendall_tau_b"]["value"] - data["strata"][second]["kendall_tau_b"]["value"]
        )
        assert diff["value"] == pytest.approx(tau)
        np.testing.assert_allclose(diff["ci95"], np.percentile(loops[first] - loops[second], [2.5, 97.5]))


def test_a_stored_version_2_report_stays_valid_and_a_version_3_one_needs_its_strata(
    table_and_scores: Scored,
) -> None:
    table, rows = table_and_scores
    data = scored(rows, table, resamples=RESAMPLES, seed=SEED, min_stratum=41).data
    version_2 = {k: v for k, v in data.items() if k not in ("strata", "strata_differences")}
    valid_report({**version_2, "scorer_version": "2"})
    assert Report.read({**version_2, "scorer_version": "2"}).strata == {}  # type: ignore[union-attr]
    with pytest.raises(AssertionError, match="strata"):
        valid_report(version_2)  # version 3 without its strata
    read = Report.read(data)
    assert read is not None and read.strata["laterality_L"].n == data["strata"]["laterality_L"]["n"]
    assert read.strata["density_q1"].kendall_tau_b is None and read.strata["density_q1"].reason
    assert read.strata["cancer"].kendall_tau_b == Estimate.read(data["strata"]["cancer"]["kendall_tau_b"])
