"""After the last phase closed, the quota says submissions are closed (issue 23 item 8): `csawm
quota`, `GET /api/v1/quota` and the team page, and `csawm submit` stops before the upload."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import httpx
import pytest
from fastapi.testclient import TestClient
from srvtest import factories as f
from srvtest.app import make_settings
from srvtest.archives import write_archive
from srvtest.fakes import FakeRunner
from srvtest.live import live_server
from srvtest.web import web_login
from typer.testing import CliRunner, Result

from server.app import create_app
from server.cli.main import app as cli
from server.clock import utcnow
from server.phases import service as phases


@pytest.fixture
def closed(tmp_path: Path, sqlite_url: str) -> Iterator[tuple[str, str, TestClient]]:
    """A live server whose only phase closed a minute ago, team alpha with two charged runs of 3."""
    settings = make_settings(tmp_path, sqlite_url, quota_active=5)
    app = create_app(settings, runner=FakeRunner(), embedded_worker=False, migrate_on_start=True)
    with live_server(app) as url:
        db = app.state.csawm.db
        f.team(db, "alpha")
        token = f.user(db, "a@x.org", team="alpha")
        with db.transaction() as session:
            phases.update(session, settings.phase, {"quota_total": 3}, actor="test")
        for seed in ("one", "two"):
            write_archive(tmp_path / f"{seed}.tar", seed=seed)
            done = _cli(url, token, "submit", str(tmp_path / f"{seed}.tar"), "--name", seed)
            assert done.exit_code == 0, done.stderr
        with db.transaction() as session:
            phases.update(
                session, settings.phase, {"closes_at": utcnow() - timedelta(minutes=1)}, actor="test"
            )
        yield url, token, TestClient(app)


def _cli(url: str, token: str, *args: str) -> Result:
    return CliRunner().invoke(cli, list(args), env={"CSAWM_SERVER_URL": url, "CSAWM_TOKEN": token})


def test_quota_says_submissions_are_closed_everywhere(
    closed: tuple[str, str, TestClient], tmp_path: Path
) -> None:
    url, token, client = closed
    body = httpx.get(f"{url}/api/v1/quota", headers=f.auth(token)).json()
    assert body["open"] is False and body["closes_at"] is not None and body["next_opens_at"] is None
    assert body["used"]["total"] == 2 and body["limits"]["total"] == 3
    shown = _cli(url, token, "quota")
    assert shown.exit_code == 0, shown.stderr  # type: ignore[attr-defined]
    out = shown.stdout  # type: ignore[attr-defined]
    assert (
        "submissions are closed: phase" in out
        and "closed on" in out
        and "no further phase is scheduled" in out
    )
    assert "2/3" not in out and "2 of 3 submissions were used" in out
    write_archive(tmp_path / "late.tar", seed="late")
    late = _cli(url, token, "submit", str(tmp_path / "late.tar"), "--name", "late")
    assert late.exit_code == 2
    assert "submissions are closed" in late.stderr and "nothing was uploaded" in late.stderr
    web_login(client, token)
    page = client.get("/team").text
    assert "Submissions are closed: phase" in page and "You can submit now" not in page
