"""The typed views of stored results (server/scoring/results.py, issue 20 item 1): the one reader of a
stored score report and of a reproducibility record.

Reports are the ones the scorer writes today (`score_report`, through a JSON round trip as the
database stores them) and the reports the golden API test recorded on the code before the typed
models; records are the 17-key literal the worker wrote before `RunRecord`. Each attribute is checked
against the JSON path docs/report.schema.json gives it, so a reader that drifts from the stored form
fails here.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from server.scoring.registry import ENDPOINT_KEYS
from server.scoring.report import ENDPOINTS as REPORT_ENDPOINTS
from server.scoring.results import (
    BinScores,
    Bootstrap,
    Estimate,
    Levels,
    OddsRatio,
    PairingBasis,
    Report,
    ReportBootstrap,
    RunRecord,
)
from server.scoring.summary import summary_report

from .factories import predictions, private_labels, public_labels
from .schema import scored

GOLDEN = Path(__file__).parents[1] / "server" / "phases" / "golden_api.json"

# The record the worker's score stage wrote as a dict literal before issue 20 (worker/phases.py).
OLD_RECORD: dict[str, Any] = {
    "image_digest": "sha256:" + "a" * 64,
    "test_set": "private",
    "test_set_manifest_sha256": "b" * 64,
    "public_manifest_sha256": "c" * 64,
    "predictions_sha256": "d" * 64,
    "scorer_version": "2",
    "runner_backend": "docker",
    "host": "worker-host",
    "worker": "w1",
    "attempt": 1,
    "retries": 0,
    "durations_s": {"preflight_s": 1.5, "hidden_s": 3.25, "scoring_s": 0.5},
    "peak_memory_bytes": {"preflight": 1024, "hidden": None},
    "bootstrap": {"resamples": 200, "seed": 0},
    "preflight_source": "public",
    "n_hidden_images": 216,
    "n_private_images": 120,
}


def _stored_report() -> dict[str, Any]:
    """A report the scorer writes today, as the database gives it back (JSON round trip)."""
    private, latent = private_labels(120)
    public, public_latent = public_labels(96)
    score = np.concatenate([latent, public_latent]) + np.random.default_rng(7).normal(size=216)
    names = (*private.filenames, *public.filenames)
    report = scored(predictions(names, score), private, public_labels=public, resamples=120)
    data: dict[str, Any] = json.loads(json.dumps(report.data))
    return data


def _estimate(entry: dict[str, Any] | None) -> Estimate:
    entry = entry or {}
    ci = entry.get("ci95")
    return Estimate(entry.get("value"), tuple(ci) if ci is not None else None)  # type: ignore[arg-type]


def _check(report: Report, data: dict[str, Any]) -> None:
    """Every attribute of `report` is what its JSON path in `data` holds."""
    masking = data.get("masking") or {}
    assert report.data == data
    assert report.scorer_version == data.get("scorer_version")
    assert report.kendall_tau_b == _estimate(masking.get("kendall_tau_b"))
    assert report.amae == _estimate(masking.get("amae"))
    assert report.amae_unit == (masking.get("amae") or {}).get("unit")
    clinical = data.get("clinical") or {}
    assert report.population == clinical.get("population")
    assert tuple(report.clinical) == ENDPOINT_KEYS
    for key in ENDPOINT_KEYS:
        section = clinical.get(key) or {}
        q4 = (section.get("odds_ratios") or {}).get("Q4") or {}
        result = report.clinical[key]
        assert result.auc == _estimate(section.get("auc"))
        assert result.odds_ratio_q4.value == q4.get("value")
        assert result.odds_ratio_q4.p_one_sided == q4.get("p_one_sided")
        _check_association(result, section)
        assert set(result.references) == set(section.get("references") or {})
        for variable, ref in (section.get("references") or {}).items():
            assert result.references[variable].auc == _estimate(ref.get("auc"))
            _check_association(result.references[variable], ref)
    experts = data.get("experts") or {}
    assert set(report.experts) == set(experts)
    for name, entry in experts.items():
        assert report.experts[name].kendall_tau_b == entry.get("kendall_tau_b")
        assert report.experts[name].amae == entry.get("amae")
        assert dict(report.experts[name].per_expert) == {
            k: v.get("kendall_tau_b") for k, v in (entry.get("per_expert") or {}).items()
        }
    assert dict(report.per_expert) == {
        k: v.get("kendall_tau_b") for k, v in (masking.get("per_expert") or {}).items()
    }
    assert {k: (v.kendall_tau_b, v.amae) for k, v in report.model_per_expert.items()} == {
        k: (v.get("kendall_tau_b"), v.get("amae")) for k, v in (masking.get("per_expert") or {}).items()
    }
    assert report.n_images == data.get("n_images")
    assert report.label_layout == data.get("label_layout")
    assert report.clinical_n == clinical.get("n")
    assert report.has_clinical == bool(clinical) and report.has_masking == bool(masking)
    assert list(report.warnings) == data.get("warnings", [])
    boot = data.get("bootstrap") or {}
    assert report.bootstrap == (
        ReportBootstrap(boot.get("resamples"), boot.get("seed"), boot.get("degenerate")) if boot else None
    )
    assert report.disclosure == data.get("disclosure")
    levels = masking.get("levels") or {}
    assert report.levels.present == bool(levels)
    assert report.levels.kendall_tau_b == _estimate(levels.get("kendall_tau_b"))
    assert report.levels.amae == _estimate(levels.get("amae"))
    assert dict(report.levels.group_amae) == (levels.get("group_amae") or {})
    matrix = report.levels.confusion_matrix
    assert (None if matrix is None else [list(row) for row in matrix]) == levels.get("confusion_matrix")
    for scores, key in ((report.levels.low_bin, "low_bin"), (report.levels.high_bin, "high_bin")):
        entry = levels.get(key)
        assert (None if scores is None else vars(scores)) == entry


def _check_association(result: Any, section: dict[str, Any]) -> None:
    """``n_positive`` and every stored quartile's odds ratio, as stored."""
    assert result.n_positive == section.get("n_positive")
    ratios = section.get("odds_ratios") or {}
    assert set(result.odds_ratios) == set(ratios)
    for quartile, entry in ratios.items():
        ratio = result.odds_ratios[quartile]
        assert (ratio.value, ratio.p_one_sided, ratio.haldane) == (
            entry.get("value"),
            entry.get("p_one_sided"),
            entry.get("haldane"),
        )
        assert ratio.ci95 == _estimate(entry).ci95
        boot = entry.get("bootstrap_ci95")
        assert ratio.bootstrap_ci95 == (tuple(boot) if boot is not None else None)


def test_a_report_the_scorer_writes_today_reads_whole() -> None:
    data = _stored_report()
    report = Report.read(data)
    assert report is not None
    _check(report, data)
    assert report.kendall_tau_b.value is not None and report.kendall_tau_b.ci95 is not None
    assert report.clinical["interval_cancer"].references  # scorer version 2 carries the comparators
    assert report.experts and report.per_expert


def test_its_summary_reads_as_the_summary() -> None:
    data = _stored_report()
    shown = Report.read_summary(data)
    assert shown is not None
    _check(shown, summary_report(data))
    full = Report.read(data)
    assert full is not None and shown.per_expert == full.per_expert  # the summary shows them (issue 21)
    assert data == _stored_report()  # the stored JSON is not changed by reading its summary


def test_the_reports_recorded_before_the_typed_models_read_whole() -> None:
    """The report bodies the golden API test recorded on the old code (current, summary, history)."""
    golden = json.loads(GOLDEN.read_text())
    seen = 0
    for name, body in golden.items():
        if not name.startswith("reports ") or not isinstance(body, list):
            continue
        for row in body:
            if isinstance(row.get("metrics"), dict):
                report = Report.read(row["metrics"])
                assert report is not None
                _check(report, row["metrics"])
                seen += 1
    assert seen > 0


@pytest.mark.parametrize("stored", [None, [], "text", 3])
def test_what_is_not_a_report_reads_as_none(stored: Any) -> None:
    assert Report.read(stored) is None
    assert Report.read_summary(stored) is None


def test_a_partial_or_odd_report_reads_as_missing_never_as_a_fake_value() -> None:
    report = Report.read(
        {"masking": {"kendall_tau_b": {"value": True, "ci95": [0.1]}, "amae": "x"}, "clinical": 7}
    )
    assert report is not None
    assert report.kendall_tau_b == Estimate() and report.amae == Estimate()
    assert all(result.auc == Estimate() for result in report.clinical.values())
    assert report.experts == {} and report.scorer_version is None
    assert report.levels == Levels() and report.bootstrap is None and report.disclosure is None
    assert report.n_images is None and report.clinical_n is None and report.warnings == ()
    assert not report.has_clinical and not report.model_per_expert


def test_an_old_or_partial_levels_section_reads_as_missing() -> None:
    """A version-1 report has no bins; an odd matrix or bin reads as missing, never as zeros."""
    levels = {
        "kendall_tau_b": {"value": 0.5, "ci95": None},
        "group_amae": {"1-2": 0.25, "3-4": None, "5-6": "x"},
        "confusion_matrix": [[1, 2], [3, 1.5]],
        "high_bin": {"precision": 1, "recall": None},
    }
    report = Report.read(
        {"masking": {"levels": levels}, "clinical": {"composite": {"odds_ratios": {"Q4": {}}}}}
    )
    assert report is not None
    assert report.levels.kendall_tau_b == Estimate(0.5, None) and report.levels.amae == Estimate()
    assert dict(report.levels.group_amae) == {"1-2": 0.25, "3-4": None, "5-6": None}
    assert report.levels.confusion_matrix is None
    assert report.levels.low_bin is None and report.levels.high_bin == BinScores(1, None, None)
    composite = report.clinical["composite"]
    assert composite.n_positive is None and dict(composite.odds_ratios) == {"Q4": OddsRatio()}
    assert composite.odds_ratio_q4.haldane is None and composite.odds_ratio_q4.bootstrap_ci95 is None
    assert dict(report.clinical["interval_cancer"].odds_ratios) == {}


def test_the_odds_ratio_json_of_the_board_is_unchanged() -> None:
    """The new parts (Haldane, bootstrap interval) stay out of what the board writes."""
    ratio = OddsRatio.read({"value": 2, "ci95": [1, 3], "p_one_sided": 0.1, "haldane": True,
                            "bootstrap_ci95": [1.5, 2.5], "table": [[1, 2], [3, 4]]})  # fmt: skip
    assert ratio.haldane is True and ratio.bootstrap_ci95 == (1.5, 2.5)
    assert ratio.to_json() == {"value": 2, "ci95": [1, 3], "p_one_sided": 0.1}


def test_a_stored_number_is_read_exactly_as_stored() -> None:
    """The board serialises what it read: an int stays an int, an infinite bound stays infinite."""
    report = Report.read({"masking": {"kendall_tau_b": {"value": 1, "ci95": [0.5, math.inf]}}})
    assert report is not None
    assert report.kendall_tau_b.to_json() == {"value": 1, "ci95": [0.5, math.inf]}
    assert isinstance(report.kendall_tau_b.value, int)


def test_endpoints_are_declared_once() -> None:
    assert tuple(REPORT_ENDPOINTS) == ENDPOINT_KEYS


def test_the_old_record_reads_and_writes_back_unchanged() -> None:
    record = RunRecord.read(OLD_RECORD)
    assert record.to_json() == OLD_RECORD
    assert list(record.to_json()) == list(OLD_RECORD)  # and in the same key order
    assert record.bootstrap == Bootstrap(200, 0)
    assert record.n_hidden_images == 216


def test_a_record_built_whole_has_the_old_keys() -> None:
    assert list(RunRecord().to_json()) == list(OLD_RECORD)


def test_a_rescore_changes_only_what_it_names_and_keeps_unknown_and_odd_values() -> None:
    stored = {"test_set": "private", "attempt": "2", "added_later": [1, 2], "bootstrap": {"seed": 3}}
    record = RunRecord.read(stored)
    assert record.attempt is None  # a value not of its type reads as missing ...
    assert record.to_json() == stored  # ... and is written back as it was
    after = record.rescored(scorer_version="2", bootstrap=Bootstrap(100, 0))
    assert after.to_json() == {**stored, "scorer_version": "2", "bootstrap": {"resamples": 100, "seed": 0}}


def test_pairing_basis_of_old_and_partial_records() -> None:
    assert PairingBasis.of(OLD_RECORD) == PairingBasis("2", "b" * 64, 0, 200)
    assert PairingBasis.of(OLD_RECORD).mismatch(PairingBasis.of(OLD_RECORD)) is None
    partial = PairingBasis.of({"scorer_version": "1", "bootstrap": {"seed": True}})
    assert partial.missing() == ["test_set", "seed", "resamples"]
    assert partial.known() is None
    assert PairingBasis.of(None).missing() == ["scorer_version", "test_set", "seed", "resamples"]


def test_the_cli_text_renders_a_partial_report_with_n_a() -> None:
    """`csawm score`'s text reads the typed report: what a report lacks prints as n/a, no KeyError."""
    from rich.console import Console

    from server.scoring.render import render_report

    console = Console(width=200, record=True)
    console.print(render_report({"masking": {"kendall_tau_b": {"value": 0.5, "ci95": [0.25, 0.75]}}}))
    text = console.export_text()
    assert "0.5000" in text and "[0.2500, 0.7500]" in text and "n/a" in text
