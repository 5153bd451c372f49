"""The queue everyone can see (issue 22 item 2): a queued run's place and estimate on its
submission, and ``GET /api/v1/status`` with exactly the anonymous fields."""

from __future__ import annotations

from datetime import timedelta

from srvtest import factories as f
from srvtest.app import Api

from server.clock import utcnow
from server.core.db import Database
from server.models import Role, RunStatus, Submission, Team, TeamHold, WorkerHeartbeat
from server.worker import presence, queue

TTL = timedelta(seconds=60)


def _submit(db: Database, team_id: int, phase: str, name: str, **values: object) -> int:
    with db.transaction() as session:
        sub = Submission(team_id=team_id, name=name, phase=phase, image_digest=f"sha256:{name}", **values)
        session.add(sub)
        session.flush()
        return sub.id


def _queue(api: Api, token: str, sub_id: int) -> dict | None:
    r = api.client.get(f"/api/v1/submissions/{sub_id}", headers=f.auth(token))
    assert r.status_code == 200, r.text
    return r.json()["queue"]


def test_positions_across_teams_and_workers(api: Api) -> None:
    phase = api.settings.phase
    alpha = f.member_token(api.db, "alpha", "a@x.org")
    beta = f.member_token(api.db, "beta", "b@x.org")
    f.team(api.db, "gamma")
    ids = {name: [] for name in ("alpha", "beta", "gamma")}
    with api.db.transaction(write=False) as session:
        team_ids = {t.name: t.id for t in session.query(Team)}
    for i, team in enumerate(["alpha", "beta", "gamma", "alpha", "beta"]):
        ids[team].append(_submit(api.db, team_ids[team], phase, f"{team}{i}"))
    # before any run succeeded, no estimate
    assert _queue(api, alpha, ids["alpha"][0]) == {"position": 1, "ahead": 0, "eta_s": None}
    assert _queue(api, beta, ids["beta"][1])["position"] == 5
    # a held team's runs are not leased, so they are not ahead of anyone
    with api.db.transaction() as session:
        session.add(TeamHold(team_id=team_ids["gamma"], reason="test", held_by="test"))
    assert _queue(api, alpha, ids["alpha"][1])["position"] == 3
    assert _queue(api, beta, ids["beta"][1])["position"] == 4
    # one succeeded run of 10 minutes and two live workers: beta's second run has 3 ahead
    now = utcnow()
    _submit(
        api.db, team_ids["gamma"], phase, "done", status=RunStatus.SUCCEEDED,
        started_at=now - timedelta(minutes=20), finished_at=now - timedelta(minutes=10),
    )  # fmt: skip
    assert _queue(api, beta, ids["beta"][1])["eta_s"] is None  # no worker alive yet
    presence.beat(api.db, "w1", state="idle")
    presence.beat(api.db, "w2", state="idle")
    with api.db.transaction() as session:  # a worker gone quiet for long is not alive
        session.add(WorkerHeartbeat(name="dead", beat_at=now - 4 * TTL, state="busy"))
    assert _queue(api, beta, ids["beta"][1]) == {"position": 4, "ahead": 3, "eta_s": 2 * 600}
    assert _queue(api, alpha, ids["alpha"][0]) == {"position": 1, "ahead": 0, "eta_s": 600}
    # two workers lease: the first two runnable runs leave the queue, the rest move up
    assert queue.lease_next(api.db, "w1", TTL).submission_id == ids["alpha"][0]
    assert queue.lease_next(api.db, "w2", TTL).submission_id == ids["beta"][0]
    assert _queue(api, alpha, ids["alpha"][0]) is None
    assert _queue(api, alpha, ids["alpha"][1])["position"] == 1
    assert _queue(api, beta, ids["beta"][1])["position"] == 2
    # another team's run is 404, its place too
    assert api.client.get(f"/api/v1/submissions/{ids['beta'][1]}", headers=f.auth(alpha)).status_code == 404


def test_status_anonymous_fields_and_the_maintainers_view(api: Api) -> None:
    team_id = f.team(api.db, "alpha")
    phase = api.settings.phase
    now = utcnow()
    for i in range(3):
        _submit(api.db, team_id, phase, f"q{i}")
    waited = {"created_at": now - timedelta(minutes=30), "started_at": now, "status": RunStatus.RUNNING}
    _submit(api.db, team_id, phase, "waited", **waited)
    old = now - timedelta(days=2)
    long_ago = {"created_at": old, "started_at": old, "finished_at": old, "status": RunStatus.SUCCEEDED}
    _submit(api.db, team_id, phase, "long ago", **long_ago)  # started more than 24 h ago: not counted
    presence.beat(api.db, "w1", state="busy")
    body = api.client.get("/api/v1/status").json()
    assert body == {
        "paused": {"intake": False, "runs": False, "message": ""},
        "queue": {"queued": 3},
        "workers": {"alive": 1},
        "wait_s_median_24h": 1800,
    }
    researcher = f.user(api.db, "r@x.org", team="alpha")
    assert api.client.get("/api/v1/status", headers=f.auth(researcher)).json() == body
    assert api.client.get("/api/v1/status", headers=f.auth("csawm_" + "x" * 43)).status_code == 401
    maintainer = f.user(api.db, "m@x.org", role=Role.MAINTAINER)
    staff = api.client.get("/api/v1/status", headers=f.auth(maintainer)).json()
    assert staff["queue"] == {"queued": 3, "running": 1}
    assert staff["workers"]["alive"] == 1
    assert [w["name"] for w in staff["workers"]["each"]] == ["w1"]
    assert 0 <= staff["workers"]["oldest_heartbeat_age_s"] < 60
