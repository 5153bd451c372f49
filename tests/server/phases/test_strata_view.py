"""Results by stratum on the board and the run's own report (issue 21 items 3 and 6): the board's
``?view=strata`` shows each model row's density and laterality strata; the outcome strata
(``cancer``, ``no_cancer``) only reach a team whose phase discloses the ``full`` report; sealed
phases before the reveal and Ladder phases show no stratum figure to researchers or visitors."""

from __future__ import annotations

import copy
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from phasetest import leaked, make_phase, scored, surfaces, web
from sqlalchemy import select
from srvtest import factories as f
from srvtest.app import Api, make_settings, open_api

from server.models import Role, Submission, SubmissionReport, Team

HOUR = timedelta(hours=1)
IMAGE_TAU, OUTCOME_TAU = 0.431975, 0.876543
# How each stratum's tau-b would be written anywhere (JSON: exact; pages: 3 decimals).
IMAGE_LEAKS, OUTCOME_LEAKS = ("431975", "0.432"), ("876543", "0.877")


def _entry(tau: float, n: int) -> dict[str, Any]:
    return {"n": n, "kendall_tau_b": {"value": tau, "ci95": [tau - 0.1, tau + 0.1]}}


STRATA = {
    **{f"density_q{q}": _entry(IMAGE_TAU, 15) for q in (1, 2, 3, 4)},
    "laterality_L": _entry(IMAGE_TAU, 31),
    "laterality_R": {
        "n": 29,
        "kendall_tau_b": None,
        "reason": "suppressed: 29 row(s), fewer than the minimum of 30",
    },
    "cancer": _entry(OUTCOME_TAU, 33),
    "no_cancer": _entry(OUTCOME_TAU, 27),
}
DIFFERENCES = {
    "density_q4_minus_density_q1": {"value": 0.0, "ci95": [-0.2, 0.2]},
    "laterality_L_minus_laterality_R": {"value": None, "ci95": None},
    "cancer_minus_no_cancer": {"value": OUTCOME_TAU - 0.5, "ci95": [OUTCOME_TAU - 0.6, OUTCOME_TAU - 0.4]},
}


def with_strata(api: Api, sub_id: int) -> None:
    """Make a scored run's stored report a version-3 one with `STRATA` (as the worker now writes)."""
    with api.db.transaction() as session:
        sub = session.get(Submission, sub_id)
        assert sub is not None
        metrics = {**copy.deepcopy(sub.metrics), "scorer_version": "3"}
        sub.metrics = {**metrics, "strata": STRATA, "strata_differences": DIFFERENCES}
        for row in session.scalars(select(SubmissionReport).where(SubmissionReport.submission_id == sub_id)):
            row.metrics = sub.metrics


@pytest.fixture
def board(tmp_path: Path, sqlite_url: str, synthetic_benchmark: Path) -> Iterator[Api]:
    yield from open_api(make_settings(tmp_path, sqlite_url, benchmark_dir=synthetic_benchmark))


def _team_run(api: Api, phase: str, name: str = "mine") -> tuple[str, int]:
    alice = f.member_token(api.db, "alpha", "a@x.org")
    with api.db.transaction(write=False) as session:
        team = session.scalars(select(Team.id).where(Team.name == "alpha")).one()
    sub_id = scored(api, team, name, phase, 0.7, 30.0)
    with_strata(api, sub_id)
    return alice, sub_id


def test_the_strata_view_adds_each_model_rows_image_strata(board: Api) -> None:
    alice, mine = _team_run(board, board.settings.phase)
    old = scored(board, f.team(board.db, "beta"), "version-2", board.settings.phase, 0.6, 31.0)
    rows = board.client.get("/api/v1/leaderboard", params={"view": "strata"}).json()["rows"]
    by_name = {r["name"]: r for r in rows}
    row = by_name["mine"]
    assert row["submission_id"] == mine and row["rank"] == 1
    assert row["strata"] == {k: v for k, v in STRATA.items() if k not in ("cancer", "no_cancer")}
    assert row["strata_differences"] == {
        k: v for k, v in DIFFERENCES.items() if k != "cancer_minus_no_cancer"
    }
    assert by_name["version-2"]["submission_id"] == old and by_name["version-2"]["strata"] is None
    assert all(r["strata"] is None for r in rows if r["kind"] == "expert")
    masking = board.client.get("/api/v1/leaderboard").json()["rows"]
    assert all("strata" not in r for r in masking)  # the default view is unchanged
    # the team's own report under the default `summary` disclosure: image strata, no outcome strata
    metrics = board.client.get(f"/api/v1/submissions/{mine}", headers=f.auth(alice)).json()["metrics"]
    assert set(metrics["strata"]) == set(STRATA) - {"cancer", "no_cancer"}
    for name, read in surfaces(board, mine, board.settings.phase).items():
        for viewer in (alice, None):
            assert leaked(read(viewer), OUTCOME_LEAKS) == [], (name, viewer)
    page = web(board, None).get("/", params={"view": "strata"}).text
    assert 'id="strata"' in page and leaked(page, IMAGE_LEAKS) and "laterality L" in page
    assert 'id="strata"' not in web(board, None).get("/").text  # the default page has no strata table
    browser = web(board, alice)
    report = browser.get(f"/submissions/{mine}").text
    assert 'id="strata-table"' in report and "suppressed: 29 row(s)" in report and leaked(report, IMAGE_LEAKS)
    plot = browser.get(f"/submissions/{mine}/plots/strata.svg")
    assert plot.status_code == 200 and plot.text.lstrip().startswith("<?xml")


def test_a_full_disclosure_phase_shows_its_team_the_outcome_strata_but_not_the_board(board: Api) -> None:
    make_phase(board, "open-full", -HOUR, HOUR, disclosure="full")
    alice, mine = _team_run(board, "open-full")
    metrics = board.client.get(f"/api/v1/submissions/{mine}", headers=f.auth(alice)).json()["metrics"]
    assert metrics["strata"] == STRATA and metrics["strata_differences"] == DIFFERENCES
    board_rows = board.client.get("/api/v1/leaderboard", params={"view": "strata"}).json()["rows"]
    (row,) = [r for r in board_rows if r["name"] == "mine"]
    assert "cancer" not in row["strata"]  # the public board reads every report through its summary


@pytest.mark.parametrize("kind", ["sealed", "ladder"])
def test_sealed_and_ladder_phases_withhold_every_stratum_from_researchers(board: Api, kind: str) -> None:
    """The attacker reads every surface (API in every view, pages, CSV, JSON, plots, CLI) as the
    run's team and as a visitor: no stratum figure; a maintainer sees them (so the check can fail)."""
    values = {"visibility": "sealed"} if kind == "sealed" else {"ladder": True}
    make_phase(board, "round", -HOUR, HOUR, **values)
    alice, mine = _team_run(board, "round")
    baseline = scored(board, f.team(board.db, "ref"), "base", "round", 0.5, 30.0)
    with board.db.transaction() as session:
        sub = session.get(Submission, baseline)
        assert sub is not None
        sub.baseline = True
    with_strata(board, baseline)  # baselines are on a sealed board: their strata are withheld too
    for name, read in surfaces(board, mine, "round").items():
        for viewer in (alice, None):
            assert leaked(read(viewer), IMAGE_LEAKS + OUTCOME_LEAKS) == [], (name, viewer)
    rows = board.client.get("/api/v1/leaderboard", params={"view": "strata"}).json()["rows"]
    assert all(r["strata"] is None for r in rows)
    maud = f.user(board.db, "m@x.org", role=Role.MAINTAINER)
    seen = board.client.get("/api/v1/leaderboard", params={"view": "strata"}, headers=f.auth(maud)).json()
    assert [r["name"] for r in seen["rows"] if r["strata"]] == ["base"]
    assert leaked(surfaces(board, mine, "round")["submission"](maud), OUTCOME_LEAKS)
