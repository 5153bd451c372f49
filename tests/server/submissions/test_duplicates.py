"""Duplicates are refused within a phase only (issue 23, item 5), and `GET
/api/v1/submissions/duplicate` tells a client so before it uploads anything (item 6)."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
from srvtest import factories as f
from srvtest.app import Api
from srvtest.archives import write_archive

from server.accounts import service
from server.clock import utcnow
from server.phases import service as phases


@pytest.fixture
def token(api: Api) -> str:
    f.team(api.db, "alpha")
    with api.db.transaction() as session:
        service.set_quota(session, "alpha", {"active": 5}, actor="test")
    return f.user(api.db, "a@x.org", team="alpha")


def _open_phase(api: Api, name: str, *, since: timedelta = timedelta(0)) -> None:
    """A phase open from now - `since`, open-ended: it ends the phase before it (`_yield_to`)."""
    with api.db.transaction() as session:
        phases.create(session, {"name": name, "opens_at": utcnow() - since}, actor="test")


def _submit(api: Api, token: str, archive: Path, name: str) -> dict:
    response = api.client.post(
        "/api/v1/submissions", params={"name": name}, content=archive.read_bytes(), headers=f.auth(token)
    )
    return {"http": response.status_code, **response.json()}


def _asked(api: Api, token: str, digest: str) -> dict:
    response = api.client.get(
        "/api/v1/submissions/duplicate", params={"image": digest}, headers=f.auth(token)
    )
    assert response.status_code == 200, response.text
    return response.json()


def test_the_same_image_enters_a_new_phase_but_not_the_same_one_twice(
    api: Api, token: str, tmp_path: Path
) -> None:
    digest = write_archive(tmp_path / "m.tar")
    _open_phase(api, "dev", since=timedelta(hours=1))
    assert _asked(api, token, digest) == {"duplicate": False, "submission_id": None, "phase": "dev"}
    first = _submit(api, token, tmp_path / "m.tar", "dev entry")
    assert first["http"] == 201 and first["phase"] == "dev"
    assert _asked(api, token, digest) == {"duplicate": True, "submission_id": first["id"], "phase": "dev"}
    again = _submit(api, token, tmp_path / "m.tar", "dev again")
    error = again["error"]
    assert again["http"] == 409 and error["code"] == "duplicate_submission"
    assert (error["submission_id"], error["phase"]) == (first["id"], "dev")
    assert f"submission {first['id']} in phase dev" in error["message"]

    _open_phase(api, "final")
    assert _asked(api, token, digest) == {"duplicate": False, "submission_id": None, "phase": "final"}
    final = _submit(api, token, tmp_path / "m.tar", "final entry")
    assert final["http"] == 201 and final["phase"] == "final" and final["image_digest"] == digest
    assert _asked(api, token, digest)["submission_id"] == final["id"]


def test_duplicate_question_refuses_a_malformed_id_and_answers_only_for_the_callers_team(
    api: Api, token: str, tmp_path: Path
) -> None:
    digest = write_archive(tmp_path / "m.tar")
    assert _submit(api, token, tmp_path / "m.tar", "one")["http"] == 201
    bad = api.client.get("/api/v1/submissions/duplicate", params={"image": "latest"}, headers=f.auth(token))
    assert bad.status_code in (400, 422) and "image" in bad.text
    f.team(api.db, "beta")
    other = f.user(api.db, "b@x.org", team="beta")
    assert _asked(api, other, digest)["duplicate"] is False
    anonymous = api.client.get("/api/v1/submissions/duplicate", params={"image": digest})
    assert anonymous.status_code == 401
