"""Review actions: reasons, allowed states, the audit log; and the whole loop with a scripted runner."""

from __future__ import annotations

from pathlib import Path

import pytest
from srvtest import factories as f
from srvtest.app import Api, make_settings, running_api
from srvtest.archives import write_archive
from srvtest.fakes import FakeRunner

from server.models import Role
from server.worker.loop import Worker


@pytest.fixture
def staff(api: Api) -> dict[str, str]:
    f.team(api.db, "alpha")
    return {
        "researcher": f.user(api.db, "r@x.org", team="alpha"),
        "maintainer": f.user(api.db, "m@x.org", role=Role.MAINTAINER),
    }


def _queued(api: Api, token: str, tmp_path: Path, seed: str = "s") -> int:
    write_archive(tmp_path / f"{seed}.tar", seed=seed)
    r = api.client.post(
        "/api/v1/submissions",
        params={"name": seed},
        content=(tmp_path / f"{seed}.tar").read_bytes(),
        headers=f.auth(token),
    )
    assert r.status_code == 201, r.text
    return int(r.json()["id"])


def test_review_rules_and_audit(api: Api, staff: dict[str, str], tmp_path: Path) -> None:
    sub = _queued(api, staff["researcher"], tmp_path)
    h = f.auth(staff["maintainer"])
    url = f"/api/v1/admin/submissions/{sub}/review"
    assert (
        api.client.post(url, json={"action": "approve"}, headers=f.auth(staff["researcher"])).status_code
        == 403
    )
    not_done = api.client.post(url, json={"action": "approve"}, headers=h)
    assert (
        not_done.status_code == 409 and "only a succeeded submission" in not_done.json()["error"]["message"]
    )
    no_reason = api.client.post(url, json={"action": "disqualify"}, headers=h)
    assert no_reason.status_code == 400 and "reason is required" in no_reason.json()["error"]["message"]
    ok = api.client.post(url, json={"action": "disqualify", "reason": "trained on the test set"}, headers=h)
    assert ok.status_code == 200 and ok.json()["review_state"] == "disqualified"
    missing = api.client.post(
        "/api/v1/admin/submissions/999/review", json={"action": "hide", "reason": "xyz"}, headers=h
    )
    assert missing.status_code == 404
    audit = api.client.get("/api/v1/admin/audit", params={"action": "review_disqualify"}, headers=h).json()
    assert len(audit) == 1
    entry = audit[0]
    assert (entry["actor"], entry["target_type"], entry["target_id"], entry["reason"]) == (
        "m@x.org",
        "submission",
        str(sub),
        "trained on the test set",
    )
    assert entry["detail"] == {"from": "pending", "to": "disqualified"}
    researcher_view = api.client.get(f"/api/v1/submissions/{sub}", headers=f.auth(staff["researcher"])).json()
    assert researcher_view["review_state"] == "disqualified"
    assert researcher_view["review_reason"] == "trained on the test set"


def test_other_teams_submissions_are_404(api: Api, staff: dict[str, str], tmp_path: Path) -> None:
    sub = _queued(api, staff["researcher"], tmp_path)
    f.team(api.db, "beta")
    other = f.user(api.db, "o@x.org", team="beta")
    for path in (f"/api/v1/submissions/{sub}", f"/api/v1/submissions/{sub}/logs"):
        assert api.client.get(path, headers=f.auth(other)).status_code == 404
    assert api.client.post(f"/api/v1/submissions/{sub}/cancel", headers=f.auth(other)).status_code == 404
    assert api.client.get("/api/v1/submissions", headers=f.auth(other)).json() == []
    assert [
        s["id"] for s in api.client.get("/api/v1/submissions", headers=f.auth(staff["researcher"])).json()
    ] == [sub]
    assert (
        api.client.get(f"/api/v1/submissions/{sub}", headers=f.auth(staff["maintainer"])).status_code == 200
    )


def test_submit_run_approve_leaderboard(tmp_path: Path, sqlite_url: str, synthetic_benchmark: Path) -> None:
    """The whole loop on the scripted runner: two teams' models end up ranked with paired ties."""
    settings = make_settings(tmp_path, sqlite_url, benchmark_dir=synthetic_benchmark, bootstrap_resamples=300)
    with running_api(settings) as api:
        maint = f.user(api.db, "m@x.org", role=Role.MAINTAINER)
        ids = []
        for team in ("alpha", "beta"):
            f.team(api.db, team)
            token = f.user(api.db, f"{team}@x.org", team=team)
            ids.append(_queued(api, token, tmp_path, seed=team))
        worker = Worker(settings, api.db, FakeRunner())
        while worker.run_once():
            pass
        for sub in ids:
            r = api.client.post(
                f"/api/v1/admin/submissions/{sub}/review", json={"action": "approve"}, headers=f.auth(maint)
            )
            assert r.status_code == 200
        rows = api.client.get("/api/v1/leaderboard").json()["rows"]
        subs = [r for r in rows if r["kind"] == "submission"]
        assert sorted(r["submission_id"] for r in subs) == sorted(ids)
        assert len([r for r in rows if r["kind"] == "expert"]) == 5
        # the scripted models predict the same scores: identical replicates, a tie with the leader
        assert [r["tied_with_leader"] for r in subs] == [False, True]
        taus = [r["kendall_tau_b"]["value"] for r in rows if r["kendall_tau_b"]["value"] is not None]
        assert taus == sorted(taus, reverse=True)
