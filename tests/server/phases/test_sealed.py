"""Sealed final rounds: no score leaks to researchers or visitors through any endpoint, page, plot,
export or CLI output before the reveal; maintainers see everything; selection limits; after the
reveal only the selected runs are ranked, with exact scores."""

from __future__ import annotations

import logging
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from phasetest import leaked, make_phase, scored, surfaces, web
from srvtest import factories as f
from srvtest.app import Api, make_settings, running_api
from srvtest.archives import write_archive
from srvtest.fakes import FakeRunner

from server.clock import utcnow
from server.models import Role, RunStatus
from server.phases import service as phases
from server.worker.loop import Worker

HOUR = timedelta(hours=1)
TAU, AMAE = 0.734219, 37.918273
# How the exact values are written anywhere: JSON/CSV (full), the CLI (4 decimals), the pages
# (3 and 2 decimals), and the report's AUC (0.681234) and odds ratio (3.618254).
LEAKS = ("734219", "0.7342", "0.734", "918273", "37.92", "37.918", "681234", "0.681", "3.62", "618254")


@pytest.fixture
def sealed(api: Api) -> dict[str, Any]:
    """A sealed phase open now with one scored (approved) run of team alpha (SQLite and PostgreSQL)."""
    alice = f.member_token(api.db, "alpha", "a@x.org")
    maud = f.user(api.db, "m@x.org", role=Role.MAINTAINER)
    make_phase(api, "final", -HOUR, HOUR, visibility="sealed", max_selected=2)
    with api.db.transaction(write=False) as session:
        from server.models import Team

        team_id = session.query(Team).filter_by(name="alpha").one().id
    sub_id = scored(api, team_id, "secret-model", "final", TAU, AMAE)
    return {"api": api, "alice": alice, "maud": maud, "team_id": team_id, "sub_id": sub_id}


SURFACES = (
    "submission", "submission-list", "reports", "leaderboard", "leaderboard-phase", "leaderboard-all-runs",
    "leaderboard-clinical", "board-page", "board-page-phase", "board-json", "board-csv", "board-plot",
    "report-page", "team-page", "report-plots", "cli-status",
)  # fmt: skip
RESEARCHER_SURFACES = ("submission", "submission-list", "reports", "report-page", "team-page", "cli-status")


def _leaks(text: str) -> list[str]:
    return leaked(text, LEAKS)


@pytest.mark.parametrize("surface", SURFACES)
@pytest.mark.parametrize("viewer", ["researcher", "anonymous"])
def test_a_sealed_phase_leaks_no_score_before_the_reveal(
    sealed: dict[str, Any], surface: str, viewer: str
) -> None:
    token = sealed["alice"] if viewer == "researcher" else None
    text = surfaces(sealed["api"], sealed["sub_id"], "final")[surface](token)
    assert not _leaks(text), f"{surface} shows {_leaks(text)} to the {viewer}"


def test_the_researcher_sees_the_status_and_why_the_scores_are_withheld(sealed: dict[str, Any]) -> None:
    api, alice, sub_id = sealed["api"], sealed["alice"], sealed["sub_id"]
    body = api.client.get(f"/api/v1/submissions/{sub_id}", headers=f.auth(alice)).json()
    assert body["status"] == "succeeded" and body["kendall_tau_b"] is None and body["metrics"] is None
    assert "sealed phase" in body["scores_withheld"] and body["selected"] is False
    reports = api.client.get(f"/api/v1/submissions/{sub_id}/reports", headers=f.auth(alice)).json()
    assert len(reports) == 1 and reports[0]["metrics"] is None
    board = api.client.get("/api/v1/leaderboard").json()
    assert board["phase"]["name"] == "final" and not [r for r in board["rows"] if r["kind"] == "submission"]
    page = web(api, alice).get(f"/submissions/{sub_id}").text
    assert "succeeded" in page and "scores are withheld until the phase is revealed" in page
    assert "Phase <strong>final</strong>" in page  # every page names the current phase


@pytest.mark.parametrize("surface", RESEARCHER_SURFACES)
def test_maintainers_see_the_exact_scores_of_a_sealed_phase(sealed: dict[str, Any], surface: str) -> None:
    text = surfaces(sealed["api"], sealed["sub_id"], "final")[surface](sealed["maud"])
    assert "0.734" in text or "734219" in text, f"{surface} hides the score from a maintainer"


def _select(env: dict[str, Any], sub_id: int, token: str | None = None, undo: bool = False) -> Any:
    method = env["api"].client.delete if undo else env["api"].client.post
    return method(f"/api/v1/submissions/{sub_id}/select", headers=f.auth(token or env["alice"]))


def test_selection_limits(sealed: dict[str, Any]) -> None:
    api, team_id = sealed["api"], sealed["team_id"]
    first = sealed["sub_id"]
    second = scored(api, team_id, "two", "final", 0.5, 40.0)
    third = scored(api, team_id, "three", "final", 0.6, 40.0, status=RunStatus.QUEUED)
    failed = scored(api, team_id, "broken", "final", 0.0, 0.0, status=RunStatus.FAILED)
    r = _select(sealed, first)
    assert r.status_code == 200 and r.json() == {
        "submission_id": first, "phase": "final", "selected": True, "selected_ids": [first], "max_selected": 2
    }  # fmt: skip
    assert _select(sealed, first).json()["selected_ids"] == [first]  # idempotent
    assert _select(sealed, third).json()["selected_ids"] == [first, third]  # a queued run may be selected
    over = _select(sealed, second)
    assert over.status_code == 409 and over.json()["error"]["code"] == "selection_limit"
    assert over.json()["error"]["selected"] == [first, third] and "unselect one first" in over.text
    assert _select(sealed, third, undo=True).json()["selected_ids"] == [first]
    assert _select(sealed, second).json()["selected_ids"] == [first, second]
    broken = _select(sealed, failed)
    assert broken.status_code == 409 and "failed" in broken.json()["error"]["message"]
    # another team's run is not found; a maintainer has no team to select for
    bob = f.member_token(api.db, "beta", "b@x.org")
    assert _select(sealed, first, bob).status_code == 404
    assert _select(sealed, first, sealed["maud"]).status_code == 403
    body = api.client.get(f"/api/v1/submissions/{first}", headers=f.auth(sealed["alice"])).json()
    assert body["selected"] is True and body["kendall_tau_b"] is None
    # a live phase has nothing to select
    with api.db.transaction() as session:
        phases.update(session, "final", {"closes_at": utcnow() - timedelta(seconds=2)}, actor="test")
    make_phase(api, "next", timedelta(seconds=-1), HOUR)
    live = scored(api, team_id, "live-run", "next", 0.5, 40.0)
    assert _select(sealed, live).status_code == 409
    # after the close nothing changes any more
    late = _select(sealed, first, undo=True)
    assert late.status_code == 409 and "selections can no longer change" in late.json()["error"]["message"]


def test_after_the_reveal_only_selected_runs_are_ranked_with_exact_scores(sealed: dict[str, Any]) -> None:
    api, team_id, alice = sealed["api"], sealed["team_id"], sealed["alice"]
    chosen = sealed["sub_id"]
    better_unselected = scored(api, team_id, "unselected", "final", 0.912345, 30.0)
    assert _select(sealed, chosen).status_code == 200
    beta = f.team(api.db, "beta")
    beta_run = scored(api, beta, "beta-unselected", "final", 0.95, 20.0)
    with api.db.transaction() as session:
        phases.update(session, "final", {"closes_at": utcnow() - timedelta(seconds=1)}, actor="test")
    maud = sealed["maud"]
    revealed = api.client.post("/api/v1/admin/phases/final/reveal", headers=f.auth(maud))
    assert revealed.status_code == 200 and revealed.json()["revealed_at"] is not None
    rows = api.client.get("/api/v1/leaderboard", params={"phase": "final", "best_per_team": "false"}).json()
    models = [r for r in rows["rows"] if r["kind"] == "submission"]
    assert [r["submission_id"] for r in models] == [chosen]  # not the better unselected ones
    assert models[0]["kendall_tau_b"]["value"] == TAU
    body = api.client.get(f"/api/v1/submissions/{chosen}", headers=f.auth(alice)).json()
    assert body["kendall_tau_b"] == TAU and body["scores_withheld"] is None
    other = api.client.get(f"/api/v1/submissions/{better_unselected}", headers=f.auth(alice)).json()
    assert other["kendall_tau_b"] is None and "not selected" in other["scores_withheld"]
    assert "912345" not in web(api, alice).get("/teams/alpha").text
    assert "0.734" in web(api, None).get("/?phase=final").text
    assert beta_run not in [r.get("submission_id") for r in rows["rows"]]


def test_a_worker_scored_sealed_run_leaks_its_score_nowhere(
    tmp_path: Path, sqlite_url: str, synthetic_benchmark: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """End to end: a real upload, the worker's real scoring, then every surface, the logs and /metrics."""
    settings = make_settings(tmp_path, sqlite_url, benchmark_dir=synthetic_benchmark, bootstrap_resamples=100)
    with running_api(settings) as api, caplog.at_level(logging.DEBUG):
        alice = f.member_token(api.db)
        maud = f.user(api.db, "m@x.org", role=Role.MAINTAINER)
        make_phase(api, "final", -HOUR, HOUR, visibility="sealed")
        path = tmp_path / "m.tar"
        write_archive(path, seed="m")
        r = api.client.post(
            "/api/v1/submissions", params={"name": "m"}, content=path.read_bytes(), headers=f.auth(alice)
        )
        assert r.status_code == 201 and r.json()["phase"] == "final"
        sub_id = r.json()["id"]
        assert Worker(api.settings, api.db, FakeRunner()).run_once()
        exact = api.client.get(f"/api/v1/submissions/{sub_id}", headers=f.auth(maud)).json()
        assert exact["status"] == "succeeded" and exact["kendall_tau_b"] is not None
        digits = f"{exact['kendall_tau_b']:.4f}", repr(exact["kendall_tau_b"]), repr(exact["amae"])
        texts = [fn(alice) for fn in surfaces(api, sub_id, "final").values()]
        texts += [fn(None) for name, fn in surfaces(api, sub_id, "final").items() if "board" in name]
        texts += [api.client.get("/metrics").text, caplog.text]
        found = [(i, leaked(text, digits)) for i, text in enumerate(texts) if leaked(text, digits)]
        assert not found
        body = api.client.get(f"/api/v1/submissions/{sub_id}", headers=f.auth(alice)).json()
        assert body["status"] == "succeeded" and body["kendall_tau_b"] is None
