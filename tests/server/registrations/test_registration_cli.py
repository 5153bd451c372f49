"""`csawm admin registrations | approve | reject` against an embedded SQLite."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from sqlalchemy import select
from typer.testing import CliRunner

from server.cli.main import app
from server.core.db import Database
from server.core.settings import load_settings
from server.models import Delivery, TeamAction, User
from server.registrations import service


@pytest.fixture
def db(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Database:
    for name, value in {
        "CSAWM_DATA_DIR": str(tmp_path / "state"),
        "CSAWM_SMTP_HOST": "127.0.0.1",
        "CSAWM_SMTP_TLS": "none",
        "CSAWM_SMTP_SENDER": "lb@board.example",
        "CSAWM_PUBLIC_URL": "https://board.example",
    }.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("CSAWM_DATABASE_URL", raising=False)
    assert CliRunner().invoke(app, ["db", "upgrade"]).exit_code == 0
    return Database.connect(f"sqlite:///{tmp_path / 'state' / 'csawm.db'}")


def _register(db: Database, email: str, team: str, *, verified: bool) -> None:
    settings = load_settings()
    with db.transaction() as session:
        service.submit(
            session, settings, email=email, name="N", affiliation="A", orcid=None,
            team_action=TeamAction.CREATE, team_name=team, answers={},
        )  # fmt: skip
        text = session.scalars(select(Delivery.payload).where(Delivery.target == email)).one()["text"]
        if verified:
            found = re.search(r"token=(\S+)", text)
            assert found
            service.verify(session, found.group(1))


def test_list_approve_and_reject_from_the_terminal(db: Database) -> None:
    _register(db, "ada@lab.example", "engines", verified=True)
    _register(db, "bob@lab.example", "pumps", verified=False)
    run = CliRunner().invoke
    listed = run(app, ["admin", "registrations"])
    assert listed.exit_code == 0
    assert listed.stdout.splitlines() == [
        "ID  STATE       EMAIL            TEAM            NAME  AFFILIATION",
        "1   verified    ada@lab.example  create engines  N     A",
        "2   unverified  bob@lab.example  create pumps    N     A",
    ]
    only = json.loads(run(app, ["admin", "registrations", "--state", "unverified", "--json"]).stdout)
    assert [r["email"] for r in only] == ["bob@lab.example"]
    refused = run(app, ["admin", "approve", "2"])
    assert refused.exit_code == 2 and "only a verified registration can be approved" in refused.stderr
    approved = run(app, ["admin", "approve", "1"])
    assert approved.exit_code == 0 and "approved" in approved.stderr and approved.stdout == ""
    rejected = run(app, ["admin", "reject", "2", "--reason", "no affiliation given"])
    assert rejected.exit_code == 0, rejected.stderr
    with db.transaction(write=False) as session:
        assert session.scalars(select(User.email)).all() == ["ada@lab.example"]
    again = run(app, ["admin", "reject", "1", "--reason", "late"])
    assert again.exit_code == 2 and "already approved" in again.stderr
    db.dispose()
