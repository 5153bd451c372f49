"""Several runs of one reference model as one board row (issue 21 item 7): the mean and the sample SD
(ddof=1) of each figure over the runs against numpy, the runs listed with their seeds, the row beside
the ranking (unranked, no tie test, not in the tiers), a model of one run unchanged, and the same row
in the page, the JSON download, the CSV and the board as it stood. Runs are scored by the real scorer
and stored by the real writer, on SQLite and PostgreSQL."""

from __future__ import annotations

import csv
import io
from typing import Any

import numpy as np
import pytest
from srvtest import factories as f
from srvtest.app import Api

from server.clock import iso, utcnow
from server.leaderboard.baseline_runs import spread
from server.models import BaselineSeed, ReviewState, RunStatus, Submission
from server.runs import reports
from server.scoring.registry import ENDPOINT_KEYS
from server.scoring.report import score_report
from server.scoring.results import Report
from tests.scoring.factories import predictions, private_labels

RESAMPLES = 60
LABELS, LATENT = private_labels(120)
ONE_HOT, MULTI_HOT = "ResNet-34 one-hot", "ResNet-34 multi-hot"
SCHEDULE = "CSAW-M reference ResNet-34 trained by `csawm seed-baselines`: 400 steps of batch 32."


def _run(
    api: Api,
    team_id: int,
    name: str,
    noise: float,
    *,
    baseline: bool = False,
    seed: int | None = None,
    description: str | None = SCHEDULE,
    review: ReviewState = ReviewState.APPROVED,
    phase: str | None = None,
) -> int:
    """A succeeded run scored by the real scorer (the latent score plus noise) and recorded as the worker
    records it."""
    rng = np.random.default_rng(int(noise * 1000) + (seed or 0))
    report = score_report(
        predictions(LABELS.filenames, LATENT + rng.normal(scale=noise, size=LATENT.size)),
        LABELS,
        resamples=RESAMPLES,
    )
    record = {
        "scorer_version": "2",
        "test_set_manifest_sha256": "a" * 64,
        "bootstrap": {"resamples": RESAMPLES, "seed": 0},
    }
    with api.db.transaction() as session:
        sub = Submission(
            team_id=team_id, name=name, description=description, phase=phase or api.settings.phase,
            image_digest=f"sha256:{name}-{seed}-{noise}", status=RunStatus.SUCCEEDED, review_state=review,
            baseline=baseline, reproducibility=record, finished_at=utcnow(),
        )  # fmt: skip
        session.add(sub)
        session.flush()
        if seed is not None:
            session.add(BaselineSeed(submission_id=sub.id, training_seed=seed))
        reports.record(session, sub, report, reason=reports.SCORED, test_set_sha256="a" * 64, seed=0,
                       resamples=RESAMPLES, predictions_sha256="c" * 64)  # fmt: skip
        return int(sub.id)


def _report_of(api: Api, sub_id: int) -> dict[str, Any]:
    with api.db.transaction(write=False) as session:
        sub = session.get_one(Submission, sub_id)
        return dict(sub.metrics or {})


def _odds_ratio(metrics: dict[str, Any], key: str) -> float | None:
    report = Report.read_summary(metrics)
    assert report is not None
    return report.clinical[key].odds_ratio_q4.value


@pytest.fixture
def board(api: Api) -> dict[str, Any]:
    """Three seeds of the one-hot model (and a hidden fourth), one multi-hot run, two teams' runs."""
    system, alpha, beta = f.team(api.db, "csawm"), f.team(api.db, "alpha"), f.team(api.db, "beta")
    seeds = {s: _run(api, system, ONE_HOT, 0.9 + s / 10, baseline=True, seed=s) for s in (3, 1, 2)}
    _run(api, system, ONE_HOT, 0.3, baseline=True, seed=4, review=ReviewState.HIDDEN)
    multi = _run(api, system, MULTI_HOT, 1.0, baseline=True, seed=1)
    _run(api, alpha, "alpha-net", 0.6)
    _run(api, beta, "beta-net", 1.4)
    return {"seeds": seeds, "multi": multi}


def test_the_runs_of_one_model_are_one_row_with_mean_and_sample_sd(api: Api, board: dict[str, Any]) -> None:
    rows = api.client.get("/api/v1/leaderboard").json()["rows"]
    models = [r for r in rows if r["kind"] != "expert"]
    assert sorted(r["name"] for r in models) == sorted([ONE_HOT, MULTI_HOT, "alpha-net", "beta-net"])
    row = next(r for r in models if r["name"] == ONE_HOT)
    reports_ = [_report_of(api, board["seeds"][s]) for s in (1, 2, 3)]  # the hidden seed 4 is left out
    taus = [r["masking"]["kendall_tau_b"]["value"] for r in reports_]
    amaes = [r["masking"]["amae"]["value"] for r in reports_]
    assert len(set(taus)) == 3  # three different runs, so the SD is no accident of equal values
    assert row["n_runs"] == 3
    assert row["kendall_tau_b"] == {"value": pytest.approx(np.mean(taus), abs=1e-12), "ci95": None}
    assert row["sd"]["kendall_tau_b"] == pytest.approx(np.std(taus, ddof=1), abs=1e-12)
    assert row["amae"]["value"] == pytest.approx(np.mean(amaes), abs=1e-12)
    assert row["sd"]["amae"] == pytest.approx(np.std(amaes, ddof=1), abs=1e-12)
    exported = next(r for r in api.client.get("/leaderboard.json").json()["rows"] if r["name"] == ONE_HOT)
    for key in ENDPOINT_KEYS:
        ors = [_odds_ratio(r, key) for r in reports_]
        assert all(v is not None for v in ors)
        assert exported["odds_ratio_q4"][key]["value"] == pytest.approx(np.mean(ors), abs=1e-12)  # type: ignore[arg-type]
        assert row["sd"]["odds_ratio_q4"][key] == pytest.approx(np.std(ors, ddof=1), abs=1e-12)  # type: ignore[arg-type]
    assert [(run["training_seed"], run["submission_id"]) for run in row["runs"]] == [
        (s, board["seeds"][s]) for s in (1, 2, 3)
    ]
    assert [run["kendall_tau_b"] for run in row["runs"]] == taus
    assert row["submission_id"] == board["seeds"][1]  # the row is its first run's (lowest seed)
    # beside the ranking: no rank, tie test or rank figures; the ranked rows are ranked among themselves
    assert row["rank"] is None and row["is_leader"] is False and row["tied_with_leader"] is None
    assert "reference row" in row["tie_reason"] and "tier" not in row
    ranked = [r for r in models if r["name"] != ONE_HOT]
    assert [r["rank"] for r in ranked] == [1, 2, 3] and all(r["tier"] is not None for r in ranked)
    # a model of one run is the ranked row it always was
    multi = next(r for r in models if r["name"] == MULTI_HOT)
    assert multi["submission_id"] == board["multi"] and multi["kendall_tau_b"]["ci95"] is not None
    assert not {"n_runs", "sd", "runs"} & set(multi)


def test_one_row_in_the_page_the_downloads_and_the_board_as_it_stood(api: Api, board: dict[str, Any]) -> None:
    api_row = next(r for r in api.client.get("/api/v1/leaderboard").json()["rows"] if r["name"] == ONE_HOT)
    exported = [r for r in api.client.get("/leaderboard.json").json()["rows"] if r["name"] == ONE_HOT]
    assert len(exported) == 1 and exported[0]["n_runs"] == 3 and exported[0]["runs"] == api_row["runs"]
    table = list(csv.DictReader(io.StringIO(api.client.get("/leaderboard.csv").text)))
    by_name = {r["name"]: r for r in table}
    assert [r["name"] for r in table].count(ONE_HOT) == 1
    assert by_name[ONE_HOT]["n_runs"] == "3" and by_name[ONE_HOT]["rank"] == ""
    assert float(by_name[ONE_HOT]["kendall_tau_b_sd"]) == pytest.approx(api_row["sd"]["kendall_tau_b"])
    assert by_name[MULTI_HOT]["n_runs"] == "" and by_name[MULTI_HOT]["kendall_tau_b_sd"] == ""
    page = api.client.get("/").text
    mean, sd = api_row["kendall_tau_b"]["value"], api_row["sd"]["kendall_tau_b"]
    assert f"{mean:.3f} ± {sd:.3f}" in page and "mean ± SD of 3 runs" in page
    assert all(f"run {board['seeds'][s]}</a>, seed {s}" not in page for s in (1, 2, 3))  # reports: staff
    assert all(f"run {board['seeds'][s]}, seed {s}:" in page for s in (1, 2, 3))
    then = iso(utcnow())  # after every run above (the board as it stood now)
    past = api.client.get("/api/v1/leaderboard", params={"as_of": then}).json()["rows"]
    assert [r.get("n_runs") for r in past if r["name"] == ONE_HOT] == [3]


def test_another_schedule_or_phase_is_another_model(api: Api) -> None:
    """Same name, another training schedule (description) or phase: not runs of the same model."""
    system = f.team(api.db, "csawm")
    _run(api, system, ONE_HOT, 0.9, baseline=True, seed=1)
    _run(api, system, ONE_HOT, 1.0, baseline=True, seed=2)
    _run(api, system, ONE_HOT, 1.1, baseline=True, seed=1, description="5400 steps of batch 64")
    _run(api, system, ONE_HOT, 1.2, baseline=True, seed=3, phase="private-0")
    rows = [r for r in api.client.get("/api/v1/leaderboard").json()["rows"] if r["name"] == ONE_HOT]
    assert sorted(r.get("n_runs", 1) for r in rows) == [1, 1, 2]


def test_spread_is_numpy_mean_and_sample_sd_over_the_runs_with_a_value() -> None:
    values = [0.41, 0.44, None, 0.39, float("nan")]
    found = spread(values)
    assert found.n == 3
    assert found.mean == pytest.approx(np.mean([0.41, 0.44, 0.39]))
    assert found.sd == pytest.approx(np.std([0.41, 0.44, 0.39], ddof=1))
    assert spread([0.5]).sd is None and spread([None]).mean is None
