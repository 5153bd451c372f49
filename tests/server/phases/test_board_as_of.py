"""Boards as they stood (issue 22 item 5): ``?as_of=`` on the API, the page and the CSV gives exactly
the board that was served at that instant, saved during the test while runs are scored, approved,
re-scored, disqualified, selected and revealed; frozen snapshots keep their bytes and digest."""

from __future__ import annotations

import hashlib
import json
from datetime import datetime, timedelta, timezone
from typing import Any

import numpy as np
import pytest
from phasetest import RESAMPLES, make_phase, record_score, scored, web
from srvtest import factories as f
from srvtest.app import Api

from server.clock import iso, utcnow
from server.models import AuditEntry, ReviewState, Role, Submission, Team

HOUR = timedelta(hours=1)
VIEWS: tuple[dict[str, str], ...] = ({}, {"best_per_team": "false"}, {"view": "clinical"})


class Saved:
    """The live board's bodies (API in each view, CSV) saved at the instants of a test."""

    def __init__(self, api: Api, phase: str) -> None:
        self.api, self.phase = api, phase
        self.boards: list[tuple[str, dict[str, Any], str]] = []

    def save(self) -> None:
        bodies = {
            json.dumps(view): self.api.client.get(
                "/api/v1/leaderboard", params={"phase": self.phase, **view}
            ).json()
            for view in VIEWS
        }
        csv = self.api.client.get("/leaderboard.csv", params={"phase": self.phase}).text
        self.boards.append((iso(utcnow()), bodies, csv))  # every change so far is at or before now

    def check(self) -> None:
        """Each saved board is what ``as_of`` gives for its instant, and the boards did change."""
        assert len({json.dumps(bodies, sort_keys=True) for _, bodies, _ in self.boards}) > 2
        for at, bodies, csv in self.boards:
            for view in VIEWS:
                live = bodies[json.dumps(view)]
                r = self.api.client.get(
                    "/api/v1/leaderboard", params={"phase": self.phase, "as_of": at, **view}
                )
                assert r.status_code == 200, r.text
                then = r.json()
                assert then["as_of"] == at and then["pending"] == []
                assert then["rows"] == live["rows"], (at, view)
                assert then["phase"]["revealed_at"] == live["phase"]["revealed_at"]
            r = self.api.client.get("/leaderboard.csv", params={"phase": self.phase, "as_of": at})
            assert r.status_code == 200 and r.text == csv, at


def _team_id(api: Api, name: str) -> int:
    with api.db.transaction(write=False) as session:
        return int(session.query(Team).filter_by(name=name).one().id)


def _review(api: Api, token: str, sub_id: int, action: str) -> None:
    r = api.client.post(
        f"/api/v1/admin/submissions/{sub_id}/review",
        json={"action": action, "reason": "checked by hand"},
        headers=f.auth(token),
    )
    assert r.status_code == 200, r.text


def _rescore(api: Api, sub_id: int, tau: float, reps: np.ndarray) -> None:
    with api.db.transaction() as session:
        sub = session.get(Submission, sub_id)
        assert sub is not None
        record_score(session, sub, tau, 40.0, reps, reason="rescored")


def test_as_of_gives_the_boards_saved_while_runs_are_scored_approved_rescored_and_disqualified(
    api: Api,
) -> None:
    maud = f.user(api.db, "m@x.org", role=Role.MAINTAINER)
    phase = api.settings.phase
    alpha, beta = f.team(api.db, "alpha"), f.team(api.db, "beta")
    rng = np.random.default_rng(7)
    base = rng.normal(0.0, 0.03, RESAMPLES)
    saved = Saved(api, phase)

    a1 = scored(api, alpha, "a1", phase, 0.749, 41.0, 0.749 + base + rng.normal(0, 0.01, RESAMPLES),
                review=ReviewState.PENDING)  # fmt: skip
    saved.save()  # scored, not approved: not on the board
    _review(api, maud, a1, "approve")
    saved.save()
    b1 = scored(api, beta, "b1", phase, 0.75, 40.0, 0.75 + base, review=ReviewState.PENDING)
    saved.save()
    _review(api, maud, b1, "approve")
    saved.save()  # b1 leads, a1 tied with it (paired replicates)
    live = api.client.get("/api/v1/leaderboard").json()["rows"]
    assert {r["name"]: r["tied_with_leader"] for r in live if r["kind"] == "submission"} == {
        "b1": False,
        "a1": True,
    }
    _rescore(api, a1, 0.60, 0.60 + base)  # no longer tied: the rebuilt board must pair the old replicates
    saved.save()
    a2 = scored(api, alpha, "a2", phase, 0.70, 42.0, review=ReviewState.PENDING)
    _review(api, maud, a2, "approve")
    saved.save()  # best per team: a2 replaces a1
    _review(api, maud, b1, "disqualify")
    saved.save()  # a board as it stood before this still shows b1
    saved.check()


def test_a_sealed_phase_before_its_reveal_shows_what_it_showed_then(api: Api) -> None:
    alice = f.member_token(api.db, "alpha", "a@x.org")
    maud = f.user(api.db, "m@x.org", role=Role.MAINTAINER)
    make_phase(api, "final", -HOUR, HOUR, visibility="sealed", max_selected=1)
    alpha = _team_id(api, "alpha")
    saved = Saved(api, "final")
    chosen = scored(api, alpha, "chosen", "final", 0.71, 40.0)
    other = scored(api, alpha, "other", "final", 0.93, 30.0)
    saved.save()
    for sub_id, method in ((other, "post"), (other, "delete"), (chosen, "post")):
        r = api.client.request(method.upper(), f"/api/v1/submissions/{sub_id}/select", headers=f.auth(alice))
        assert r.status_code == 200, r.text
    saved.save()
    with api.db.transaction(write=False) as session:  # the unselect is recorded, not just a deleted row
        trail = [(e.action, e.target_id) for e in session.query(AuditEntry).filter(
            AuditEntry.action.in_(("select_run", "unselect_run"))).order_by(AuditEntry.id)]  # fmt: skip
    assert trail == [("select_run", str(other)), ("unselect_run", str(other)), ("select_run", str(chosen))]
    r = api.client.patch(
        "/api/v1/admin/phases/final",
        json={"closes_at": iso(utcnow() - timedelta(seconds=1))},
        headers=f.auth(maud),
    )
    assert r.status_code == 200, r.text
    saved.save()
    assert api.client.post("/api/v1/admin/phases/final/reveal", headers=f.auth(maud)).status_code == 200
    saved.save()
    _rescore(api, chosen, 0.65, 0.65 + np.zeros(RESAMPLES))
    saved.save()
    before, after = saved.boards[2][1][json.dumps({})], saved.boards[3][1][json.dumps({})]
    assert [r["name"] for r in before["rows"] if r["kind"] == "submission"] == []
    assert [r["name"] for r in after["rows"] if r["kind"] == "submission"] == ["chosen"]
    saved.check()

    # the reveal froze the revealed board: its bytes hash to the digest it gives, and show "chosen" at 0.71
    listed = api.client.get("/api/v1/snapshots").json()
    assert [(s["phase"], s["reason"]) for s in listed] == [("final", "reveal")]
    data = api.client.get(f"/api/v1/snapshots/{listed[0]['id']}").content
    assert hashlib.sha256(data).hexdigest() == listed[0]["sha256"]
    assert json.loads(data)["rows"] == after["rows"]


def test_a_ladder_board_as_it_stood(api: Api) -> None:
    make_phase(api, "ladder", -HOUR, None, ladder=True)
    alpha = f.team(api.db, "alpha")
    maud = f.user(api.db, "m@x.org", role=Role.MAINTAINER)
    saved = Saved(api, "ladder")
    first = scored(api, alpha, "l1", "ladder", 0.70, 40.0, review=ReviewState.PENDING)
    saved.save()
    _review(api, maud, first, "approve")
    saved.save()
    better = scored(api, alpha, "l2", "ladder", 0.80, 38.0, review=ReviewState.PENDING)
    saved.save()
    _review(api, maud, better, "approve")
    saved.save()
    _review(api, maud, better, "hide")
    saved.save()
    shown = [b[1][json.dumps({})]["rows"] for b in saved.boards]
    assert [[r.get("ladder") is not None for r in rows if r["kind"] == "submission"] for rows in shown] == [
        [],
        [True],
        [True],
        [True],
        [True],
    ]
    saved.check()


def test_as_of_faults_get_a_clear_answer_and_change_nothing(api: Api) -> None:
    alpha = f.team(api.db, "alpha")
    phase = api.settings.phase
    early = utcnow()
    scored(api, alpha, "a1", phase, 0.7, 40.0)
    with api.db.transaction(write=False) as session:
        first: datetime = session.query(Submission).one().created_at
    cases = {
        "yesterday-ish": (400, "not an ISO 8601 timestamp"),
        "2026-13-45T00:00:00Z": (400, "not an ISO 8601 timestamp"),
        iso(first).replace("Z", ""): (400, "no time zone"),
        iso(utcnow() + HOUR): (400, "in the future"),
        iso(early - HOUR): (404, "the first run was submitted at"),
    }
    for raw, (status, words) in cases.items():
        for path in ("/api/v1/leaderboard", "/leaderboard.csv", "/leaderboard.json"):
            r = api.client.get(path, params={"as_of": raw})
            assert r.status_code == status and words in r.json()["error"]["message"], (raw, path, r.text)
        page = web(api, None).get("/", params={"as_of": raw})
        assert page.status_code == status and words in page.text
    assert api.client.get("/api/v1/leaderboard", params={"as_of": "x" * 65}).status_code == 422
    # +02:00 is the same instant as its UTC form
    at = utcnow()
    shifted = at.astimezone(timezone(timedelta(hours=2))).isoformat()
    assert api.client.get("/api/v1/leaderboard", params={"as_of": shifted}).json()["as_of"] == iso(at)
    page = web(api, None).get("/", params={"as_of": iso(at)})
    assert page.status_code == 200 and "as it stood at" in page.text and "a1" in page.text


def test_snapshots_are_frozen_bytes_with_their_digest(api: Api) -> None:
    alice = f.member_token(api.db, "alpha", "a@x.org")
    maud = f.user(api.db, "m@x.org", role=Role.MAINTAINER)
    phase = api.settings.phase
    sub_id = scored(api, _team_id(api, "alpha"), "a1", phase, 0.7, 40.0)
    board = api.client.get("/api/v1/leaderboard").json()

    assert api.client.post("/api/v1/admin/snapshots", json={}, headers=f.auth(alice)).status_code == 403
    assert (
        api.client.post("/api/v1/admin/snapshots", json={"phase": "nope"}, headers=f.auth(maud)).status_code
        == 404
    )
    assert (
        api.client.post("/api/v1/admin/snapshots", json={"phase": 3}, headers=f.auth(maud)).status_code == 422
    )
    r = api.client.post("/api/v1/admin/snapshots", json={"phase": None}, headers=f.auth(maud))
    assert r.status_code == 201, r.text
    made = r.json()
    assert set(made) >= {"id", "sha256", "url", "created_at"} and made["url"].endswith(
        f"/snapshots/{made['id']}"
    )
    data = api.client.get(f"/api/v1/snapshots/{made['id']}").content
    assert hashlib.sha256(data).hexdigest() == made["sha256"]
    frozen = json.loads(data)
    assert frozen["rows"] == board["rows"] and frozen["phase"]["name"] == phase
    assert frozen["scorer_version"] and frozen["bootstrap"] == {
        "seed": api.settings.bootstrap_seed, "resamples": api.settings.bootstrap_resamples
    }  # fmt: skip
    assert frozen["reports"][str(sub_id)]["test_set_sha256"] == "a" * 64

    _rescore(api, sub_id, 0.5, 0.5 + np.zeros(RESAMPLES))  # the live board moves, the snapshot does not
    assert api.client.get("/api/v1/leaderboard").json()["rows"] != board["rows"]
    assert api.client.get(f"/api/v1/snapshots/{made['id']}").content == data
    assert [s["id"] for s in api.client.get("/api/v1/snapshots").json()] == [made["id"]]
    page = web(api, None).get(f"/snapshots/{made['id']}")
    assert page.status_code == 200 and made["sha256"] in page.text and "0.700" in page.text
    assert api.client.get("/api/v1/snapshots/999").status_code == 404
    assert web(api, None).get("/snapshots/999").status_code == 404


@pytest.mark.parametrize("action", ["select", "unselect"])
def test_an_idempotent_selection_call_records_nothing(api: Api, action: str) -> None:
    alice = f.member_token(api.db, "alpha", "a@x.org")
    make_phase(api, "final", -HOUR, HOUR, visibility="sealed")
    sub_id = scored(api, _team_id(api, "alpha"), "a", "final", 0.7, 40.0)
    method = "POST" if action == "select" else "DELETE"
    if action == "unselect":
        api.client.post(f"/api/v1/submissions/{sub_id}/select", headers=f.auth(alice))
    for _ in range(2):
        assert (
            api.client.request(
                method, f"/api/v1/submissions/{sub_id}/select", headers=f.auth(alice)
            ).status_code
            == 200
        )
    with api.db.transaction(write=False) as session:
        actions = [e.action for e in session.query(AuditEntry).filter(AuditEntry.action.like("%select_run"))]
    assert actions == (["select_run"] if action == "select" else ["select_run", "unselect_run"])
