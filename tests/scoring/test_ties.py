"""Octile quartiles of tied scores depend on the scores only (issue 14 item 1, scorer version 2).

Scorer version 1 broke score ties by Filename, so in the pooled view every tied ``private_*`` row
(the cancer-enriched set) sorted before every tied ``test_*`` row: renaming the files moved a tied
model's odds ratios. These tests rename every file and permute every row and require every odds
ratio, p-value, table and AUC of the clinical section to stay the same.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from server.scoring.clinical import octile_quartiles, straddling_rows
from server.scoring.labels import LabelTable

from .factories import predictions, private_labels, public_labels
from .schema import scored


def _renamed(table: LabelTable, prefix: str) -> LabelTable:
    names = tuple(f"{prefix}{i:04d}.png" for i in range(len(table)))
    return type(table)(**{**table.__dict__, "filenames": names})


def _clinical_numbers(data: dict[str, Any]) -> dict[str, Any]:
    """Every number of the clinical section (the model's and the density references')."""
    clinical = data["clinical"]
    return {key: clinical[key] for key in ("interval_cancer", "large_invasive_cancer", "composite")}


def _pooled(score_of: str, seed: int = 0) -> tuple[LabelTable, LabelTable, np.ndarray]:
    private, private_latent = private_labels(120, seed=seed)
    public, public_latent = public_labels(96, seed=seed + 1)
    latent = np.concatenate([private_latent, public_latent])
    if score_of == "constant":
        score = np.zeros(latent.size)
    elif score_of == "tied":
        score = np.round(latent, 0)  # a handful of distinct values: large tie blocks at every cut
    else:
        score = latent + np.random.default_rng(seed).normal(size=latent.size)
    return private, public, score


def _pooled_report(private: LabelTable, public: LabelTable, score: np.ndarray, resamples: int = 0) -> Any:
    """The report of `score` on private and public pooled (the clinical view of the paper)."""
    files = (*private.filenames, *public.filenames)
    return scored(predictions(files, score), private, public_labels=public, resamples=resamples)


@pytest.mark.parametrize("model", ["constant", "tied", "distinct"])
def test_renaming_and_permuting_rows_changes_no_odds_ratio_issue_14(model: str) -> None:
    private, public, score = _pooled(model)
    first = _pooled_report(private, public, score, 50).data

    # Rename both sets so that the public rows now sort before the private ones, and shuffle rows.
    rng = np.random.default_rng(7)
    renamed_private, renamed_public = _renamed(private, "zz_"), _renamed(public, "aa_")
    private_order, public_order = rng.permutation(len(private)), rng.permutation(len(public))
    shuffled_private = renamed_private.subset(private_order)
    shuffled_public = renamed_public.subset(public_order)
    shuffled_score = np.concatenate(
        [score[: len(private)][private_order], score[len(private) :][public_order]]
    )
    names = (*shuffled_private.filenames, *shuffled_public.filenames)
    rows = rng.permutation(len(names))
    second = scored(
        predictions([names[i] for i in rows], shuffled_score[rows]),
        shuffled_private,
        public_labels=shuffled_public,
        resamples=0,
    ).data

    def point_values(section: dict[str, Any]) -> dict[str, Any]:
        """Drop the bootstrap intervals: the second report has none (row order changes the draws)."""
        out: dict[str, Any] = {}
        for endpoint, entry in section.items():
            ratios = {
                q: {k: v for k, v in r.items() if k != "bootstrap_ci95"}
                for q, r in entry["odds_ratios"].items()
            }
            refs = {
                name: {"n": ref["n"], "auc": ref["auc"]["value"], "odds_ratios": ref["odds_ratios"]}
                for name, ref in entry["references"].items()
            }
            for ref in refs.values():
                ref["odds_ratios"] = {
                    q: {k: v for k, v in r.items() if k != "bootstrap_ci95"}
                    for q, r in ref["odds_ratios"].items()
                }
            out[endpoint] = {"auc": entry["auc"]["value"], "odds_ratios": ratios, "references": refs}
        return out

    assert point_values(_clinical_numbers(first)) == point_values(_clinical_numbers(second))


def test_a_constant_model_has_no_odds_ratios_and_says_why_issue_14() -> None:
    private, public, score = _pooled("constant")
    data = _pooled_report(private, public, score).data
    for endpoint in ("interval_cancer", "large_invasive_cancer", "composite"):
        assert all(r["value"] is None for r in data["clinical"][endpoint]["odds_ratios"].values())
    n = len(private) + len(public)
    assert (
        f"clinical: {n} row(s) sit in blocks of tied scores that straddle a quartile cut; each block is kept "
        "whole in the quartile its midpoint falls in, so the quartiles are not of equal size"
    ) in data["warnings"]


def test_tied_model_warning_counts_the_rows_in_straddling_blocks_issue_14() -> None:
    private, public, score = _pooled("tied")
    data = _pooled_report(private, public, score).data
    count = straddling_rows(score)
    assert count > 0
    assert any(
        w.startswith(f"clinical: {count} row(s) sit in blocks of tied scores") for w in data["warnings"]
    )
    # Each quartile's table holds exactly the rows the rule puts there.
    quartiles = octile_quartiles(score)
    q4 = data["clinical"]["composite"]["odds_ratios"]["Q4"]["table"]
    assert sum(q4[0]) == int((quartiles == 4).sum()) and sum(q4[1]) == int((quartiles == 1).sum())


def test_untied_scores_keep_the_authors_group_sizes() -> None:
    private, public, score = _pooled("distinct")
    data = _pooled_report(private, public, score).data
    assert not any("straddle" in w for w in data["warnings"])
    table = data["clinical"]["interval_cancer"]["odds_ratios"]["Q4"]["table"]
    per_bin = (len(private) + len(public)) // 8
    assert sum(table[1]) == 2 * per_bin and sum(table[0]) == 216 - 6 * per_bin
