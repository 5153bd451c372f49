"""AUC, octile quartiles and odds ratios (server/scoring/clinical.py)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import scipy.stats
from sklearn.metrics import roc_auc_score

from server.scoring.clinical import (
    block_quartiles,
    octile_quartiles,
    odds_ratio,
    roc_auc,
    straddling_rows,
)

from .factories import quartile_odds_ratios


@pytest.mark.parametrize("seed", [0, 1])
def test_auc_equals_sklearn_roc_auc_score_with_ties(seed: int) -> None:
    # Provenance: sklearn.metrics.roc_auc_score(If_x, Final_score), as in the authors'
    # get_table_metric_downstream_auc (facts §1.6). Scores rounded to 1 decimal make many ties.
    rng = np.random.default_rng(seed)
    y = (rng.random(300) < 0.15).astype(int)
    score = np.round(rng.normal(size=300) + 0.5 * y, 1)
    assert roc_auc(y, score).value == pytest.approx(roc_auc_score(y, score), abs=1e-12)


def test_auc_without_positives_or_negatives_is_undefined() -> None:
    assert "no positive" in (roc_auc([0, 0, 0], [1.0, 2.0, 3.0]).reason or "")
    assert np.isnan(roc_auc([1, 1], [1.0, 2.0]).value)


@pytest.mark.parametrize(
    ("n", "sizes"),
    [
        # Facts §1.7: 8 bins of floor(N/8), remainder in bin 8, Q_q = bins {2q-1, 2q}.
        (972, [242, 242, 242, 246]),  # the paper's pooled public + private set, 121 x 7 + 125
        (475, [118, 118, 118, 121]),  # the private set alone, 59 x 7 + 62
        (16, [4, 4, 4, 4]),
    ],
)
def test_octile_quartile_sizes(n: int, sizes: list[int]) -> None:
    quartiles = octile_quartiles(np.random.default_rng(0).normal(size=n))
    assert np.bincount(quartiles, minlength=5)[1:].tolist() == sizes


def test_octile_quartiles_sort_by_score() -> None:
    score = np.array([0.8, 0.1, 0.7, 0.2, 0.6, 0.3, 0.5, 0.4])
    assert octile_quartiles(score).tolist() == [4, 1, 4, 1, 3, 2, 3, 2]


def test_tie_block_goes_whole_to_the_side_holding_more_of_it_issue_14() -> None:
    # 16 rows, cuts at 4, 8, 12. Rows 2..4 (sorted positions 2, 3, 4) are tied: 2 below the cut
    # at 4, 1 above, so the block stays in Q1 (midpoint 3.5 < 4); Q2 then holds 3 rows.
    score = np.array([0, 1, 2, 2, 2, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15], dtype=float)
    quartiles = octile_quartiles(score)
    assert quartiles[:5].tolist() == [1, 1, 1, 1, 1]
    assert np.bincount(quartiles, minlength=5)[1:].tolist() == [5, 3, 4, 4]


def test_tie_block_split_evenly_goes_up_issue_14() -> None:
    # The block at sorted positions 3, 4 straddles the cut at 4 with one row on each side:
    # midpoint 4 is not below 4, so both rows go to Q2 (the rule's documented choice).
    score = np.array([0, 1, 2, 3, 3, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15], dtype=float)
    assert octile_quartiles(score)[3:5].tolist() == [2, 2]


def test_constant_score_has_no_quartiles_whatever_the_names_issue_14() -> None:
    endpoint = np.r_[np.ones(8, dtype=int), np.zeros(16, dtype=int)]
    ratios = quartile_odds_ratios(endpoint, np.zeros(24))
    assert all(np.isnan(r.value) and "group has no rows" in (r.reason or "") for r in ratios.values())
    assert ratios["Q3"].reason == "the reference group has no rows"  # all 24 rows are in Q3
    assert straddling_rows(np.zeros(24)) == 24


def test_block_quartiles_hand_cases() -> None:
    # Blocks [0,1) [1,4) [4,5) [5,6) [6,7) [7,8) with cuts 2, 4, 6 (s + e against 2c).
    assert block_quartiles([0, 1, 4, 5, 6, 7], [1, 4, 5, 6, 7, 8], [2, 4, 6]).tolist() == [1, 2, 3, 3, 4, 4]
    # One block over everything: midpoint 4 is at the middle cut, so Q3.
    assert block_quartiles([0], [8], [2, 4, 6]).tolist() == [3]


def test_fewer_than_eight_rows_leave_q1_empty() -> None:
    ratios = quartile_odds_ratios([1, 0, 1, 0], [1.0, 2.0, 3.0, 4.0])
    assert all(np.isnan(r.value) and "group has no rows" in (r.reason or "") for r in ratios.values())
    assert ratios["Q4"].reason == "the reference group has no rows"


@pytest.mark.parametrize("table", [[[30, 216], [15, 227]], [[3, 5], [7, 2]], [[12, 40], [9, 88]]])
def test_odds_ratio_and_p_equal_scipy_fisher_exact_greater(table: list[list[int]]) -> None:
    # Provenance: scipy.stats.fisher_exact(table, alternative="greater") gives the sample OR and the
    # one-sided p the authors report (calc_oddsratio_downstream, facts §1.7).
    expected = scipy.stats.fisher_exact(table, alternative="greater")
    result = odds_ratio(table)
    assert result.value == pytest.approx(expected.statistic)
    assert result.p_one_sided == pytest.approx(expected.pvalue)


def test_paper_percent_density_interval_cancer_odds_ratios() -> None:
    # Facts §6: the unique integer tables behind the notebook's percent-density interval-cancer row
    # (quartile sizes 242/242/242/246, positives 15/17/30/30) and §4.3's published values:
    # Q2 1.1434 (p 0.4276), Q3 2.1415 (p 0.0137), Q4 2.1019 (p 0.0159).
    sizes, positives = [242, 242, 242, 246], [15, 17, 30, 30]
    reference = [positives[0], sizes[0] - positives[0]]
    published = {1: (1.1434, 0.4276), 2: (2.1415, 0.0137), 3: (2.1019, 0.0159)}
    for q, (value, p) in published.items():
        result = odds_ratio([[positives[q], sizes[q] - positives[q]], reference])
        assert round(result.value, 4) == value
        assert round(result.p_one_sided, 4) == p


def test_woolf_interval_hand_computed() -> None:
    # [[10, 20], [5, 40]]: OR = 10*40 / (20*5) = 4; SE(ln OR) = sqrt(1/10 + 1/20 + 1/5 + 1/40)
    # = sqrt(0.375) = 0.612372; z = 1.959964; exp(ln 4 -+ 1.200228) = 1.204502, 13.283495.
    result = odds_ratio([[10, 20], [5, 40]])
    assert result.value == 4.0
    assert result.ci_low == pytest.approx(1.204502, abs=1e-6)
    assert result.ci_high == pytest.approx(13.283495, abs=1e-6)
    assert not result.haldane


def test_haldane_correction_only_with_a_zero_cell() -> None:
    # [[6, 10], [0, 12]]: b*c = 0, so the sample OR is infinite (reported as undefined), and the
    # interval uses 6.5, 10.5, 0.5, 12.5: ln OR = ln(6.5*12.5 / (10.5*0.5)) = ln(15.476190),
    # SE = sqrt(1/6.5 + 1/10.5 + 1/0.5 + 1/12.5) = sqrt(2.329084) = 1.526134.
    result = odds_ratio([[6, 10], [0, 12]])
    assert result.haldane
    assert math.isinf(result.value) and "infinite" in (result.reason or "")
    half = 1.959964 * 1.526134
    assert result.ci_low == pytest.approx(15.476190 * math.exp(-half), rel=1e-5)
    assert result.ci_high == pytest.approx(15.476190 * math.exp(half), rel=1e-5)


def test_odds_ratio_of_zero_is_defined_with_haldane_interval() -> None:
    result = odds_ratio([[0, 10], [4, 12]])
    assert result.value == 0.0 and result.reason is None and result.haldane
    # Haldane: ln(0.5*12.5 / (10.5*4.5)) = ln(0.132275); SE = sqrt(1/0.5 + 1/10.5 + 1/4.5 + 1/12.5).
    half = 1.959964 * math.sqrt(2 + 1 / 10.5 + 1 / 4.5 + 1 / 12.5)
    assert result.ci_low == pytest.approx(0.132275 * math.exp(-half), rel=1e-5)
    assert result.ci_high == pytest.approx(0.132275 * math.exp(half), rel=1e-5)


def test_swapping_the_rows_inverts_the_odds_ratio_and_its_interval() -> None:
    forward = odds_ratio([[12, 40], [9, 88]])
    backward = odds_ratio([[9, 88], [12, 40]])
    assert backward.value == pytest.approx(1 / forward.value)
    assert backward.ci_low == pytest.approx(1 / forward.ci_high)
    assert backward.ci_high == pytest.approx(1 / forward.ci_low)


def test_undefined_odds_ratio_without_positives() -> None:
    result = odds_ratio([[0, 10], [0, 12]])
    assert np.isnan(result.value) and np.isnan(result.ci_low)
    assert result.reason == "neither group has a positive row"


def test_bad_tables_are_rejected() -> None:
    with pytest.raises(ValueError, match="2x2 table of non-negative counts"):
        odds_ratio([[1, -1], [2, 3]])
    with pytest.raises(ValueError, match="2x2 table"):
        odds_ratio([[1, 2, 3], [2, 3, 4]])


def test_quartile_odds_ratios_count_the_right_rows() -> None:
    # 16 rows sorted by score: Q1 = rows 0-3, Q4 = rows 12-15. Positives: 1 in Q1, 3 in Q4.
    endpoint = np.zeros(16, dtype=int)
    endpoint[[0, 5, 12, 13, 15]] = 1
    ratios = quartile_odds_ratios(endpoint, np.arange(16.0))
    assert ratios["Q4"].table == ((3, 1), (1, 3))
    assert ratios["Q2"].table == ((1, 3), (1, 3))
    assert ratios["Q4"].value == pytest.approx(9.0)
