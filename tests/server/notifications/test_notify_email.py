"""Email notices over SMTP to a real local server (aiosmtpd on 127.0.0.1), from the same outbox."""

from __future__ import annotations

from pathlib import Path

import pytest
from srvtest.app import make_settings, running_api
from srvtest.notify import deliveries, scoring_run, smtp_server, team_with_members

from server.core.settings import SettingsError, load_settings
from server.models import Channel, RunStatus
from server.notifications.dispatcher import Dispatcher
from server.runs.transitions import transition

MEMBERS = ["ann@alpha.example", "bob@alpha.example"]


def _smtp(port: int) -> dict[str, object]:
    return {
        "smtp_host": "127.0.0.1",
        "smtp_port": port,
        "smtp_tls": "none",
        "smtp_sender": "leaderboard@board.example",
        "public_url": "https://board.example.org",
    }


def test_members_get_a_plain_text_mail_without_scores(tmp_path: Path, sqlite_url: str) -> None:
    with smtp_server() as (box, port), running_api(make_settings(tmp_path, sqlite_url, **_smtp(port))) as api:
        team = team_with_members(api.db, "alpha", MEMBERS)
        team_with_members(api.db, "beta", ["eve@beta.example"])
        sub = scoring_run(api.db, team, kendall_tau_b=0.4123, amae=1.2345)
        with api.db.transaction() as session:
            transition(session, sub, RunStatus.SUCCEEDED)
        rows = deliveries(api.db)
        assert sorted((r.channel, r.target) for r in rows) == [(Channel.EMAIL, m) for m in MEMBERS]
        assert Dispatcher(api.settings, api.db).run_once() == 2
        mails = box.wait_for(2)
    assert sorted(rcpt for rcpts, _ in mails for rcpt in rcpts) == MEMBERS
    for rcpts, msg in mails:
        assert msg["To"] == rcpts[0] and msg["From"] == "leaderboard@board.example"
        assert msg["Subject"] == f"[CSAW-M] alpha / model-a: run {sub} finished"
        assert msg.get_content_type() == "text/plain"
        text = msg.get_payload(decode=True).decode()
        assert f"https://board.example.org/submissions/{sub}" in text and "succeeded" in text
        assert "0.41" not in text and "1.23" not in text
        assert msg["X-CSAWM-Delivery"] in {r.id for r in rows}
    assert all(r.delivered_at is not None for r in deliveries(api.db))


def test_a_hostile_name_cannot_inject_headers(tmp_path: Path, sqlite_url: str) -> None:
    hostile = "x\r\nBcc: victim@evil.example\r\n\r\nforged body"
    with smtp_server() as (box, port), running_api(make_settings(tmp_path, sqlite_url, **_smtp(port))) as api:
        team = team_with_members(api.db, "alpha", MEMBERS[:1])
        sub = scoring_run(api.db, team, name=hostile)
        with api.db.transaction() as session:
            transition(session, sub, RunStatus.FAILED, error_code="nonzero_exit")
        Dispatcher(api.settings, api.db).run_once()
        ((rcpts, msg),) = box.wait_for(1)
    assert rcpts == MEMBERS[:1]
    assert msg["Bcc"] is None and len(msg.get_all("Subject") or []) == 1
    assert msg["Subject"] == f"[CSAW-M] alpha / x Bcc: victim@evil.example forged body: run {sub} failed"
    assert "victim@evil.example" not in str(msg["To"])


def test_a_name_with_invisible_characters_is_mailed_escaped_issue_19(tmp_path: Path, sqlite_url: str) -> None:
    """A run named before issue 19 with a bidi override and a zero-width space: the subject and the
    body show visible escapes, so the mail cannot read as another team's run."""
    with smtp_server() as (box, port), running_api(make_settings(tmp_path, sqlite_url, **_smtp(port))) as api:
        team = team_with_members(api.db, "alpha", MEMBERS[:1])
        sub = scoring_run(api.db, team, name="a\u202e\u200bb")
        with api.db.transaction() as session:
            transition(session, sub, RunStatus.SUCCEEDED)
        Dispatcher(api.settings, api.db).run_once()
        ((_, msg),) = box.wait_for(1)
    assert msg["Subject"] == f"[CSAW-M] alpha / a\\u202e\\u200bb: run {sub} finished"
    text = msg.get_payload(decode=True).decode()
    assert f"Run {sub} (a\\u202e\\u200bb)" in text and "\u202e" not in text and "\u200b" not in text


def test_no_smtp_host_means_no_email_rows(tmp_path: Path, sqlite_url: str) -> None:
    with running_api(make_settings(tmp_path, sqlite_url)) as api:
        team = team_with_members(api.db, "alpha", MEMBERS)
        sub = scoring_run(api.db, team)
        with api.db.transaction() as session:
            transition(session, sub, RunStatus.SUCCEEDED)
        assert deliveries(api.db) == []


def test_smtp_settings_are_checked_and_the_password_is_secret(tmp_path: Path) -> None:
    with pytest.raises(SettingsError, match="CSAWM_SMTP_SENDER"):
        load_settings(data_dir=tmp_path, smtp_host="smtp.example.org")
    with pytest.raises(SettingsError, match="CSAWM_SMTP_HOST is not"):
        load_settings(data_dir=tmp_path, smtp_sender="a@b.example")
    with pytest.raises(SettingsError, match="go together"):
        load_settings(
            data_dir=tmp_path, smtp_host="smtp.example.org", smtp_sender="a@b.example", smtp_username="u"
        )
    with pytest.raises(SettingsError, match="unencrypted"):
        load_settings(
            data_dir=tmp_path,
            smtp_host="smtp.example.org",
            smtp_sender="a@b.example",
            smtp_username="u",
            smtp_password="hunter2-long-password",
            smtp_tls="none",
        )
    with pytest.raises(SettingsError, match="CSAWM_SMTP_SENDER"):
        load_settings(data_dir=tmp_path, smtp_host="smtp.example.org", smtp_sender="a@b.example\r\nBcc: x@y")
    ok = load_settings(
        data_dir=tmp_path,
        smtp_host="smtp.example.org",
        smtp_sender="a@b.example",
        smtp_username="u",
        smtp_password="hunter2-long-password",
    )
    assert ok.mail.tls == "starttls" and ok.mail.port == 587 and ok.mail.enabled
    assert "hunter2" not in repr(ok) and "hunter2" not in str(ok.model_dump())


def test_a_bad_row_is_settled_not_wedged(tmp_path: Path, sqlite_url: str) -> None:
    """An address that cannot be a header (written behind the API's back) fails the attempt; no mail."""
    from server.clock import utcnow
    from server.models import Delivery, Role, User

    bad = "a@alpha.example\r\nBcc: x@evil.example"
    with smtp_server() as (box, port), running_api(make_settings(tmp_path, sqlite_url, **_smtp(port))) as api:
        team = team_with_members(api.db, "alpha", [])
        with api.db.transaction() as session:
            now = utcnow()
            session.add(User(email=bad, role=Role.RESEARCHER, team_id=team))  # a member, so it is sent
            session.add(
                Delivery(
                    id="dlv_bad",
                    team_id=team,
                    channel=Channel.EMAIL,
                    target=bad,
                    event="run.finished",
                    submission_id=1,
                    payload={"event": "run.finished", "submission_id": 1, "name": "n", "team": "alpha"},
                    created_at=now,
                    next_attempt_at=now,
                )
            )
        assert Dispatcher(api.settings, api.db).run_once() == 1
        (row,) = deliveries(api.db)
        assert row.attempts == 1 and row.claimed_by is None and row.last_error == "internal error: ValueError"
        assert box.messages == []
