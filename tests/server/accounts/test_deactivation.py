"""Deactivating an account (issue 19 item 10): a user whose only token was revoked still received the
team's mail. A deactivated account cannot log in on the web, its tokens are refused, it gets no team
mail (neither new notices nor ones queued before), and each change is audited. Through the API, the
admin command line, the web pages and a real SMTP server on 127.0.0.1."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import select, text
from srvtest import factories as f
from srvtest.app import Api, make_settings, running_api
from srvtest.notify import deliveries, scoring_run, smtp_server, team_with_members
from srvtest.web import csrf_token, web_login
from typer.testing import CliRunner

from server.accounts import service
from server.cli.main import app
from server.core import migrate
from server.core.db import Database
from server.core.errors import Unauthorized
from server.core.principal import authenticate
from server.models import AuditEntry, Channel, Role, RunStatus
from server.notifications.dispatcher import Dispatcher
from server.runs.transitions import transition

ALICE = "alice@alpha.example"


def _audit(db: Database) -> list[tuple[str, str, str | None]]:
    with db.transaction(write=False) as session:
        rows = session.scalars(select(AuditEntry).order_by(AuditEntry.id))
        return [(e.action, e.actor, e.target_id) for e in rows if e.action.endswith("activate_user")]


def test_a_deactivated_account_is_refused_by_the_api_until_reactivated(api: Api) -> None:
    f.team(api.db, "alpha")
    alice = f.user(api.db, ALICE, team="alpha")
    root = f.auth(f.user(api.db, "root@x.org", role=Role.ADMIN))
    maud = f.auth(f.user(api.db, "maud@x.org", role=Role.MAINTAINER))
    base = f"/api/v1/admin/users/{ALICE}"
    assert api.client.post(f"{base}/deactivate", headers=maud).status_code == 403  # admins only
    assert api.client.get("/api/v1/me", headers=f.auth(alice)).status_code == 200

    done = api.client.post(f"{base}/deactivate", headers=root)
    assert done.status_code == 200 and done.json()["active"] is False and done.json()["deactivated_at"]
    refused = api.client.get("/api/v1/me", headers=f.auth(alice))
    assert refused.status_code == 401 and refused.json()["error"]["message"] == "account deactivated"
    upload = api.client.post("/api/v1/submissions?name=m", content=b"x" * 1024, headers=f.auth(alice))
    assert upload.status_code == 401  # refused before the body is read (the request guard)
    listed = {u["email"]: u for u in api.client.get("/api/v1/admin/users", headers=root).json()}
    assert listed[ALICE]["active"] is False and listed["root@x.org"]["active"] is True

    again = api.client.post(f"{base}/deactivate", headers=root)
    assert again.status_code == 409 and "already deactivated" in again.json()["error"]["message"]
    issued = api.client.post(f"{base}/tokens", json={}, headers=root)
    assert issued.status_code == 409 and "deactivated" in issued.json()["error"]["message"]
    itself = api.client.post("/api/v1/admin/users/root@x.org/deactivate", headers=root)
    assert itself.status_code == 400 and "your own account" in itself.json()["error"]["message"]

    back = api.client.post(f"{base}/reactivate", headers=root)
    assert back.status_code == 200 and back.json()["active"] is True and back.json()["deactivated_at"] is None
    assert api.client.get("/api/v1/me", headers=f.auth(alice)).json()["email"] == ALICE  # the token works
    assert api.client.post(f"{base}/reactivate", headers=root).status_code == 409
    with api.db.transaction(write=False) as session:
        alice_id = service.get_user(session, ALICE).id
    assert _audit(api.db) == [
        ("deactivate_user", "root@x.org", str(alice_id)),
        ("reactivate_user", "root@x.org", str(alice_id)),
    ]


def test_a_deactivated_account_cannot_log_in_and_its_open_session_ends(sqlite_api: Api) -> None:
    f.team(sqlite_api.db, "alpha")
    alice = f.user(sqlite_api.db, ALICE, team="alpha")
    client = sqlite_api.client
    web_login(client, alice)
    assert client.get("/team", follow_redirects=False).status_code in (200, 303)
    assert ALICE in client.get("/team").text  # logged in
    with sqlite_api.db.transaction() as session:
        service.set_active(session, ALICE, False, actor="test")
    page = client.get("/team", follow_redirects=False)
    assert page.status_code == 303 and page.headers["location"].startswith("/login")  # the cookie is dead
    client.cookies.clear()
    form = client.get("/login")
    login = client.post(
        "/login",
        data={"token": alice, "csrf_token": csrf_token(form.text), "next": "/team"},
        follow_redirects=False,
    )
    assert login.status_code == 401 and "account deactivated" in login.text


def _smtp(port: int) -> dict[str, object]:
    return {
        "smtp_host": "127.0.0.1",
        "smtp_port": port,
        "smtp_tls": "none",
        "smtp_sender": "leaderboard@board.example",
        "public_url": "https://board.example.org",
    }


def test_a_deactivated_member_gets_no_team_mail(tmp_path: Path, sqlite_url: str) -> None:
    """Bob's only token is revoked and Cara is deactivated: Bob still gets the mail (the reported gap),
    Cara does not, neither a notice written after the deactivation nor one queued before it."""
    members = [ALICE, "bob@alpha.example", "cara@alpha.example"]
    with smtp_server() as (box, port), running_api(make_settings(tmp_path, sqlite_url, **_smtp(port))) as api:
        team = team_with_members(api.db, "alpha", members)
        queued = scoring_run(api.db, team, name="queued-before")
        with api.db.transaction() as session:
            transition(session, queued, RunStatus.SUCCEEDED)  # three mails queued, none sent yet
            service.set_active(session, "cara@alpha.example", False, actor="test")
        later = scoring_run(api.db, team, name="after")
        with api.db.transaction() as session:
            transition(session, later, RunStatus.SUCCEEDED)
        rows = [r for r in deliveries(api.db) if r.channel is Channel.EMAIL]
        assert sorted(r.target for r in rows if r.submission_id == later) == members[:2]
        Dispatcher(api.settings, api.db).run_once()
        mails = box.wait_for(4)
        dropped = [r for r in deliveries(api.db) if r.target == "cara@alpha.example"]
    assert sorted(rcpt for rcpts, _ in mails for rcpt in rcpts) == sorted(members[:2] * 2)
    assert len(dropped) == 1 and dropped[0].dead_at is not None and dropped[0].delivered_at is None
    assert "no longer an active member" in (dropped[0].last_error or "")


# -- the admin command line ------------------------------------------------------------------------


def _run(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(app, list(args))
    return result.exit_code, result.stdout, result.stderr


def test_the_admin_command_line_deactivates_and_reactivates(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CSAWM_DATA_DIR", str(tmp_path / "state"))
    monkeypatch.delenv("CSAWM_DATABASE_URL", raising=False)
    assert _run("db", "upgrade")[0] == 0 and _run("admin", "create-team", "alpha")[0] == 0
    code, token, _ = _run("admin", "create-user", ALICE, "--team", "alpha")
    assert code == 0
    code, out, err = _run("admin", "deactivate-user", ALICE)
    assert code == 0 and out == "" and err.startswith(f"deactivated {ALICE} (id ")
    db = Database.connect(f"sqlite:///{tmp_path / 'state' / 'csawm.db'}")
    try:
        with db.transaction(write=False) as session, pytest.raises(Unauthorized, match="account deactivated"):
            authenticate(session, token.strip())
        code, _, err = _run("admin", "deactivate-user", ALICE)
        assert code == 2 and "already deactivated" in err and err.count("\n") == 1
        code, _, err = _run("admin", "issue-token", ALICE)
        assert code == 2 and "reactivate the account first" in err
        assert _run("admin", "reactivate-user", ALICE)[0] == 0
        with db.transaction(write=False) as session:
            assert authenticate(session, token.strip()).email == ALICE
        code, _, err = _run("admin", "reactivate-user", "ghost@alpha.example")
        assert code == 2 and "no user with email" in err
        actions = [action for action, actor, _ in _audit(db) if actor.startswith("cli:")]
        assert actions == ["deactivate_user", "reactivate_user"]
    finally:
        db.dispose()


def test_accounts_made_before_the_migration_stay_active(db_url: str) -> None:
    """``0009_user_active`` adds the column; every existing account reads as active."""
    if db_url.startswith("sqlite"):
        Path(db_url.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
    db = Database.connect(db_url.replace("postgresql://", "postgresql+psycopg://"))
    try:
        migrate.upgrade(db.engine, "0005_phases")
        with db.engine.begin() as conn:
            conn.execute(
                text("INSERT INTO users (email, role, created_at) VALUES ('old@x.org', 'admin', :now)"),
                {"now": "2026-01-01 00:00:00+00:00"},
            )
        migrate.upgrade(db.engine)
        with db.transaction(write=False) as session:
            assert service.get_user(session, "old@x.org").deactivated_at is None
    finally:
        db.dispose()
