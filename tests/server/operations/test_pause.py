"""The maintenance pause (issue 22 item 3): intake refused before the body, runs not leased,
audited, kept across a restart."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path

import httpx
from srvtest import factories as f
from srvtest.app import Api, make_settings, running_api
from srvtest.archives import write_archive
from srvtest.attacks import declare_and_wait, upload_while
from srvtest.live import live_server

from server.app import create_app
from server.core.db import Database
from server.models import AuditEntry, LedgerKind, QuotaEntry, Role, RunStatus, Submission
from server.worker import queue

TTL = timedelta(seconds=60)


def status_line(answer: bytes) -> int:
    return int(answer.split(b" ", 2)[1])


def body_of(answer: bytes) -> dict:
    return json.loads(answer.partition(b"\r\n\r\n")[2])


def _pause(api: Api, admin: str, **body: object) -> dict:
    r = api.client.post("/api/v1/admin/pause", json=body, headers=f.auth(admin))
    assert r.status_code == 200, r.text
    return r.json()


def test_paused_intake_answers_503_before_a_byte_of_the_body_and_charges_nothing(
    tmp_path: Path, db_url: str
) -> None:
    settings = make_settings(tmp_path, db_url)
    with live_server(create_app(settings, migrate_on_start=True)) as url:
        db = Database.connect(settings.effective_database_url)
        try:
            token = f.member_token(db)
            admin = f.user(db, "m@x.org", role=Role.MAINTAINER)
            r = httpx.post(
                f"{url}/api/v1/admin/pause",
                json={"intake": True, "runs": False, "message": "disk swap until 14:00"},
                headers=f.auth(admin),
            )
            assert r.status_code == 200, r.text
            answer, took = declare_and_wait(url, token, 400 * 1024**2)  # declares 400 MB, sends none
            assert status_line(answer) == 503, answer
            assert took < 3.0
            assert b"retry-after: 300" in answer.lower()
            error = body_of(answer)["error"]
            assert error["code"] == "paused"
            assert "disk swap until 14:00" in error["message"] and "nothing was charged" in error["message"]
            # a registry reference (JSON) is refused the same way, before its body
            answer, _ = declare_and_wait(url, token, 1000, "application/json")
            assert status_line(answer) == 503
            with db.transaction(write=False) as session:
                assert session.query(QuotaEntry).count() == 0
                assert session.query(Submission).count() == 0
            # lifted: the same upload goes through
            assert httpx.delete(f"{url}/api/v1/admin/pause", headers=f.auth(admin)).status_code == 200
            write_archive(tmp_path / "m.tar", seed="after")
            r = httpx.post(
                f"{url}/api/v1/submissions",
                params={"name": "m"},
                content=(tmp_path / "m.tar").read_bytes(),
                headers=f.auth(token),
                timeout=60,
            )
            assert r.status_code == 201, r.text
            with db.transaction(write=False) as session:
                actions = [a.action for a in session.query(AuditEntry).order_by(AuditEntry.id)]
            assert actions[-2:] == ["pause", "resume"]
        finally:
            db.dispose()


def test_pause_survives_a_restart_and_shows_on_the_status(tmp_path: Path, sqlite_url: str) -> None:
    settings = make_settings(tmp_path, sqlite_url)
    with running_api(settings) as api:
        admin = f.user(api.db, "m@x.org", role=Role.MAINTAINER)
        _pause(api, admin, intake=True, runs=True, message="upgrading")
    with running_api(settings) as api:
        status = api.client.get("/api/v1/status").json()
        assert status["paused"] == {"intake": True, "runs": True, "message": "upgrading"}
        token = f.member_token(api.db)
        r = api.client.post("/api/v1/submissions", params={"name": "m"}, content=b"x", headers=f.auth(token))
        assert r.status_code == 503 and r.headers["Retry-After"] == "300"


def test_only_maintainers_pause(api: Api) -> None:
    token = f.member_token(api.db)
    r = api.client.post("/api/v1/admin/pause", json={"intake": True}, headers=f.auth(token))
    assert r.status_code == 403
    assert api.client.delete("/api/v1/admin/pause").status_code == 401
    admin = f.user(api.db, "m@x.org", role=Role.MAINTAINER)
    r = api.client.post("/api/v1/admin/pause", json={"intake": True, "mesage": "typo"}, headers=f.auth(admin))
    assert r.status_code == 422
    assert api.client.get("/api/v1/status").json()["paused"]["intake"] is False


def _queued(db: Database, team_id: int, n: int, phase: str) -> list[int]:
    ids = []
    with db.transaction() as session:
        for i in range(n):
            sub = Submission(team_id=team_id, name=f"r{i}", phase=phase, image_digest=f"sha256:{team_id}-{i}")
            session.add(sub)
            session.flush()
            ids.append(sub.id)
    return ids


def test_paused_runs_lease_nothing_and_a_running_run_keeps_its_lease(api: Api) -> None:
    team_id = f.team(api.db, "alpha")
    first, second = _queued(api.db, team_id, 2, api.settings.phase)
    running = queue.lease_next(api.db, "w1", TTL)
    assert running is not None and running.submission_id == first
    admin = f.user(api.db, "m@x.org", role=Role.MAINTAINER)
    _pause(api, admin, intake=False, runs=True, message="")
    assert queue.lease_next(api.db, "w2", TTL) is None
    assert queue.renew(api.db, running, TTL).held  # the running run goes on
    with api.db.transaction(write=False) as session:
        assert session.get(Submission, second).status == RunStatus.QUEUED  # keeps its place
    api.client.delete("/api/v1/admin/pause", headers=f.auth(admin))
    lease = queue.lease_next(api.db, "w2", TTL)
    assert lease is not None and lease.submission_id == second


def test_an_upload_streaming_when_intake_is_paused_finishes_and_is_charged_once(
    tmp_path: Path, db_url: str
) -> None:
    """It was admitted before the pause (docs/run-policy.md "Maintenance pause"): it is stored and
    charged exactly once; the next upload is refused before its body."""
    settings = make_settings(tmp_path, db_url)
    write_archive(tmp_path / "m.tar", seed="streaming")
    data = (tmp_path / "m.tar").read_bytes()
    with live_server(create_app(settings, migrate_on_start=True)) as url:
        db = Database.connect(settings.effective_database_url)
        try:
            token = f.member_token(db)
            admin = f.user(db, "m@x.org", role=Role.MAINTAINER)

            def pause() -> None:
                r = httpx.post(f"{url}/api/v1/admin/pause", json={"intake": True}, headers=f.auth(admin))
                assert r.status_code == 200, r.text

            answer = upload_while(url, token, data, pause)
            assert status_line(answer) == 201, answer
            answer, _ = declare_and_wait(url, token, len(data))
            assert status_line(answer) == 503, answer
            with db.transaction(write=False) as session:
                assert session.query(Submission).filter_by(name="m").count() == 1
                assert session.query(QuotaEntry).filter_by(kind=LedgerKind.CHARGE).count() == 1
                assert session.query(QuotaEntry).filter_by(kind=LedgerKind.REFUND).count() == 0
        finally:
            db.dispose()
