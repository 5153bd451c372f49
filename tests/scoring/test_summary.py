"""The summary of a report (server/scoring/summary.py, issue 19): the allow-list of docs/scoring.md
("Disclosure levels"), its schema docs/report-summary.schema.json, and its warnings filter."""

from __future__ import annotations

import copy
import json
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest

from server.scoring.report import ScoreReport
from server.scoring.summary import (
    IMAGE_DIFFERENCES,
    IMAGE_STRATA,
    SHOWN,
    field_shown,
    summary_report,
    warning_shown,
)

from .factories import predictions, private_labels, public_labels
from .schema import SUMMARY_SCHEMA_PATH, scored, valid_summary

RESAMPLES = 200
# Every key that names a withheld figure, wherever it sits (docs/scoring.md); ``per_expert`` is
# shown under ``masking`` only (the model against each expert), not under ``experts``.
WITHHELD_KEYS = {"levels", "confusion_matrix", "group_amae", "low_bin", "high_bin",
                 "n_positive", "table", "haldane", "Q2", "Q3",
                 "cancer", "no_cancer", "cancer_minus_no_cancer"}  # fmt: skip


def _pooled(final_pred: bool = False) -> ScoreReport:
    """A private report whose clinical section pools the public rows, as the server scores it."""
    private, latent = private_labels(120)
    public, public_latent = public_labels(96)
    rng = np.random.default_rng(7)
    score = np.concatenate([latent, public_latent]) + rng.normal(size=216)
    names = (*private.filenames, *public.filenames)
    pred = np.clip(np.round(score + 4.5), 1, 8).astype(np.int64) if final_pred else None
    return scored(predictions(names, score, pred), private, public_labels=public, resamples=RESAMPLES)


def _level_layout() -> ScoreReport:
    """A development phase's report: the public labels evaluated, levels from Final_pred."""
    public, latent = public_labels(96)
    rng = np.random.default_rng(3)
    pred = np.clip(np.round(latent * 2 + 4.5 + rng.normal(size=96)), 1, 8).astype(np.int64)
    return scored(predictions(public.filenames, latent, pred), public, resamples=RESAMPLES)


def _leaves(value: Any, path: str = "") -> Iterator[tuple[str, Any]]:
    """(dotted path, value) of every leaf; a list is a leaf (an interval, the matrix, warnings)."""
    if isinstance(value, dict):
        for key, sub in value.items():
            yield from _leaves(sub, f"{path}.{key}" if path else key)
    else:
        yield path, value


def _keys(value: Any) -> set[str]:
    if isinstance(value, dict):
        return set(value) | {k for sub in value.values() for k in _keys(sub)}
    return set()


@pytest.mark.parametrize("make", [_pooled, _level_layout], ids=["pooled-rank", "level"])
def test_a_summary_holds_the_shown_fields_of_the_report_and_nothing_else(make: Any) -> None:
    report = make().data
    before = copy.deepcopy(report)
    summary = valid_summary(summary_report(report))
    assert report == before  # the stored report is not touched
    assert summary["disclosure"] == "summary"
    assert not _keys(summary) & WITHHELD_KEYS, _keys(summary) & WITHHELD_KEYS
    assert not _keys(summary["experts"]) & {"per_expert"}  # expert against expert stays withheld
    full = dict(_leaves(report))
    shown = {path: value for path, value in _leaves(summary) if path not in ("disclosure", "warnings")}
    # every shown value is the report's own, and every field the list shows is there
    assert shown == {path: value for path, value in full.items() if field_shown(path) and path != "warnings"}
    assert set(summary["warnings"]) <= set(report["warnings"])
    assert summary_report(summary) == summary  # a summary of a summary is the same summary


def test_the_summary_keeps_the_boards_figures() -> None:
    report = _pooled().data
    summary = summary_report(report)
    assert summary["masking"] == {"kendall_tau_b": report["masking"]["kendall_tau_b"],
                                  "amae": report["masking"]["amae"],
                                  "per_expert": report["masking"]["per_expert"]}  # fmt: skip
    for endpoint in ("interval_cancer", "large_invasive_cancer", "composite"):
        full, short = report["clinical"][endpoint], summary["clinical"][endpoint]
        assert short["auc"] == full["auc"]
        q4 = full["odds_ratios"]["Q4"]
        kept = ("value", "ci95", "bootstrap_ci95", "p_one_sided")
        assert short["odds_ratios"] == {"Q4": {key: q4[key] for key in kept}}
        for name, reference in short["references"].items():
            assert set(reference) == {"n", "auc", "odds_ratios"}
            assert reference["auc"] == full["references"][name]["auc"]
    assert {name: set(values) for name, values in summary["experts"].items()} == {
        f"Expert_{k}": {"kendall_tau_b", "amae"} for k in range(1, 6)
    }
    assert summary["clinical"]["population"] == "pooled" and summary["clinical"]["n"] == 216


def test_a_full_report_does_not_pass_the_summary_schema() -> None:
    """The schema closes every object, so a withheld field cannot slip through it."""
    report = _pooled().data
    with pytest.raises(AssertionError, match="n_positive"):
        valid_summary({"disclosure": "summary", **report})
    for path, value in (("masking.levels", report["masking"]["levels"]),
                        ("clinical.composite.n_positive", 12),
                        ("clinical.composite.odds_ratios.Q4.table", [[1, 2], [3, 4]])):  # fmt: skip
        summary = summary_report(report)
        *parents, leaf = path.split(".")
        node = summary
        for key in parents:
            node = node[key]
        node[leaf] = value
        with pytest.raises(AssertionError, match=leaf):
            valid_summary(summary)


#: Optional members of the summary schema: what scorer version 3 added (a version-2 summary has no
#: strata, fewer density quartiles where edges coincide) and a stratum's reason for a null tau-b.
_OPTIONAL = {"strata", "strata_differences", "reason", *IMAGE_STRATA, *IMAGE_DIFFERENCES}


def _schema_paths(node: dict[str, Any], defs: dict[str, Any], path: str = "") -> set[str]:
    if "$ref" in node:
        node = defs[node["$ref"].rsplit("/", 1)[1]]
    objects = [b for b in node.get("anyOf", ()) if b.get("type") != "null"]
    if len(objects) == 1:  # a nullable object: its members are listed as the object's
        return _schema_paths(objects[0], defs, path)
    properties = node.get("properties")
    if node.get("type") != "object" or not properties:
        return {path}
    assert node.get("additionalProperties") is False, f"{path or '<root>'} is not closed"
    assert set(node["required"]) <= set(properties), path
    assert set(properties) - set(node["required"]) <= _OPTIONAL, path
    out: set[str] = set()
    for key, sub in properties.items():
        out |= _schema_paths(sub, defs, f"{path}.{key}" if path else key)
    return out


def _table_paths(rule: Any, path: str = "") -> set[str]:
    if rule is True:
        return {path}
    out: set[str] = set()
    for key, sub in rule.items():
        out |= _table_paths(sub, f"{path}.{key}" if path else key)
    return out


def test_the_summary_schema_lists_exactly_the_shown_fields() -> None:
    schema = json.loads(SUMMARY_SCHEMA_PATH.read_text())
    from_schema = _schema_paths(schema, schema["$defs"])
    from_table = _table_paths(SHOWN)
    # the table stops at a shown object ("bootstrap"); the schema spells out its members
    assert {p for p in from_schema if not any(p.startswith(t + ".") for t in from_table)} == from_table | {
        "disclosure", "warnings"
    }  # fmt: skip


@pytest.mark.parametrize(
    ("message", "kept"),
    [
        ("predictions: 2 row(s) for images not in the labels were ignored", True),
        ("bootstrap: disabled (0 resamples), so no confidence intervals", True),
        ("masking: the predictions have no Final_pred; levels are Final_score cut into 8 equal-count bins",
         True),
        ("masking.kendall_tau_b: 3 of 200 bootstrap resamples were degenerate and are left out", True),
        ("clinical.composite.odds_ratios.Q4: 5 of 200 bootstrap resamples were degenerate and are left out",
         True),
        ("clinical.composite.auc: null, undefined (no positive rows)", True),
        ("clinical references percent_density: 4 row(s) without a LIBRA value are left out", True),
        ("experts.Expert_2: 1 row(s) without a position; scored on the other 119", True),
        ("masking.levels.group_amae.7-8: null, undefined (no rows in the group)", False),
        ("masking.levels.kendall_tau_b: 2 of 200 bootstrap resamples were degenerate", False),
        ("masking.per_expert.Expert_3.amae: null, undefined (constant predictions)", True),
        ("clinical.interval_cancer.odds_ratios.Q2: null, infinite: a zero cell in the denominator", False),
        ("clinical.interval_cancer.references.dense_area.odds_ratios.Q3: null, the reference group has no "
         "rows", False),
        ("experts.Expert_1.per_expert.Expert_2.kendall_tau_b: null, undefined (constant)", False),
    ],
)  # fmt: skip
def test_warnings_about_withheld_fields_are_dropped(message: str, kept: bool) -> None:
    assert warning_shown(message) is kept
    report = {"scorer_version": "2", "warnings": [message]}
    assert summary_report(report)["warnings"] == ([message] if kept else [])


def test_a_partial_or_version_1_report_keeps_what_it_has_of_the_list() -> None:
    report = {"scorer_version": "1", "masking": {"kendall_tau_b": {"value": 0.5, "ci95": None},
              "levels": {"confusion_matrix": [[1]]}}, "extra": 1}  # fmt: skip
    masking = {"kendall_tau_b": {"value": 0.5, "ci95": None}}
    assert summary_report(report) == {"disclosure": "summary", "scorer_version": "1", "masking": masking}


def test_the_summary_shows_the_image_strata_and_withholds_the_outcome_strata() -> None:
    """Issue 21 items 3 and 6: density and laterality strata (defined by the images) under
    ``summary``; ``cancer``, ``no_cancer`` and their difference (their ``n`` is a count of
    positives, their tau-b a figure of an outcome-chosen subset) only in the full report."""
    report = _pooled().data
    assert {"cancer", "no_cancer"} <= set(report["strata"])
    extra = ["strata.cancer.kendall_tau_b: 3 of 200 were degenerate",
             "strata.laterality_L.kendall_tau_b: 1 of 200 were degenerate"]  # fmt: skip
    report["warnings"] = [*report["warnings"], *extra]
    summary = valid_summary(summary_report(report))
    assert summary["strata"] == {k: v for k, v in report["strata"].items() if k in IMAGE_STRATA}
    assert set(summary["strata"]) == set(IMAGE_STRATA)
    assert summary["strata_differences"] == {
        k: v for k, v in report["strata_differences"].items() if k != "cancer_minus_no_cancer"
    }
    assert not any(w.startswith("strata.cancer") for w in summary["warnings"])
    assert "strata.laterality_L.kendall_tau_b: 1 of 200 were degenerate" in summary["warnings"]
    for path in ("strata.cancer.n", "strata.no_cancer.kendall_tau_b.value",
                 "strata_differences.cancer_minus_no_cancer.ci95"):  # fmt: skip
        assert not field_shown(path)
