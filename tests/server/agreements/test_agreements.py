"""The data-use agreement (issue 15 item 5): read once at startup, accepted per version, and
required, before a byte of the body is read, by every submission path."""

from __future__ import annotations

import hashlib
import os
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from srvtest import factories as f
from srvtest.app import Api, make_settings, open_api, running_api
from srvtest.archives import write_archive
from srvtest.attacks import read_response
from srvtest.live import live_server
from typer.testing import CliRunner

from server.app import create_app
from server.cli.main import app as cli
from server.core.settings import SettingsError
from server.models import AgreementAcceptance, AuditEntry, QuotaEntry, Role, Submission
from server.submissions import service as submissions

DUA = "# Data-use agreement\n\nI will not try to identify patients.\n"


@pytest.fixture
def dua_file(tmp_path: Path) -> Path:
    path = tmp_path / "dua.md"
    path.write_text(DUA, encoding="utf-8")
    return path


@pytest.fixture
def dua_api(tmp_path: Path, db_url: str, dua_file: Path) -> Iterator[Api]:
    yield from open_api(make_settings(tmp_path, db_url, dua_file=dua_file))


def _version(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _upload(api: Api, token: str, archive: Path, name: str = "m") -> httpx.Response:
    return api.client.post(
        "/api/v1/submissions",
        params={"name": name},
        content=archive.read_bytes(),
        headers={**f.auth(token), "Content-Type": "application/x-tar"},
    )


def _counts(api: Api) -> tuple[int, int]:
    with api.db.transaction(write=False) as session:
        return session.query(Submission).count(), session.query(QuotaEntry).count()


def _accept(api: Api, token: str, version: object) -> httpx.Response:
    return api.client.post("/api/v1/agreements", json={"version": version}, headers=f.auth(token))


def test_get_shows_the_text_the_version_and_whether_accepted(dua_api: Api, dua_file: Path) -> None:
    token = f.member_token(dua_api.db)
    body = dua_api.client.get("/api/v1/agreements", headers=f.auth(token)).json()
    assert body == {
        "required": True,
        "version": _version(dua_file),
        "text": DUA,
        "accepted": False,
        "accepted_at": None,
        "url": "http://testserver/agreement",
    }
    assert dua_api.client.get("/api/v1/agreements").status_code == 401


def test_upload_needs_acceptance_then_passes(dua_api: Api, dua_file: Path, tmp_path: Path) -> None:
    token = f.member_token(dua_api.db)
    write_archive(tmp_path / "m.tar")
    refused = _upload(dua_api, token, tmp_path / "m.tar")
    assert refused.status_code == 403, refused.text
    error = refused.json()["error"]
    assert error["code"] == "agreement_required" and error["version"] == _version(dua_file)
    assert error["url"] == "http://testserver/agreement" and "csawm agreement --accept" in error["message"]
    assert _counts(dua_api) == (0, 0)
    assert not (dua_api.settings.data_dir / "uploads").exists()  # nothing was even staged

    accepted = _accept(dua_api, token, _version(dua_file))
    assert accepted.status_code == 200, accepted.text
    assert accepted.json()["accepted"] is True
    ok = _upload(dua_api, token, tmp_path / "m.tar")
    assert ok.status_code == 201, ok.text
    assert _counts(dua_api) == (1, 1)


def test_registry_reference_needs_acceptance_before_anything_else(dua_api: Api, dua_file: Path) -> None:
    """The JSON path is refused for the agreement before its body is parsed (this server has no
    registry, which would otherwise be the 400)."""
    token = f.member_token(dua_api.db)
    body = {"name": "r", "image": "registry.invalid/csawm/x@sha256:" + "0" * 64}
    refused = dua_api.client.post("/api/v1/submissions", json=body, headers=f.auth(token))
    assert refused.status_code == 403 and refused.json()["error"]["code"] == "agreement_required"
    _accept(dua_api, token, _version(dua_file))
    after = dua_api.client.post("/api/v1/submissions", json=body, headers=f.auth(token))
    assert after.status_code == 400 and "no registry is configured" in after.json()["error"]["message"]


def test_maintainers_submitting_need_it_too(dua_api: Api) -> None:
    f.team(dua_api.db, "staff")
    token = f.user(dua_api.db, "m@x.org", team="staff", role=Role.MAINTAINER)
    refused = dua_api.client.post(
        "/api/v1/submissions", params={"name": "x"}, content=b"x", headers=f.auth(token)
    )
    assert refused.status_code == 403 and refused.json()["error"]["code"] == "agreement_required"


def test_seeded_baselines_are_not_blocked(dua_api: Api, tmp_path: Path) -> None:
    write_archive(tmp_path / "b.tar", seed="baseline")
    with dua_api.db.transaction() as session:
        sub = submissions.create_baseline(
            session, dua_api.settings, name="b", image_digest="sha256:" + "b" * 64,
            archive_path=tmp_path / "b.tar", actor="cli:test",
        )  # fmt: skip
        assert sub.baseline and sub.status.value == "queued"


def _raw_post(url: str, token: str, path: str, content_type: str, declared: int, sent: bytes) -> bytes:
    port = int(url.rsplit(":", 1)[1])
    with socket.create_connection(("127.0.0.1", port), timeout=20) as sock:
        sock.sendall(
            f"POST {path} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {token}\r\n"
            f"Content-Type: {content_type}\r\nContent-Length: {declared}\r\n\r\n".encode()
            + sent
        )
        return read_response(sock)


def test_the_refusal_comes_before_the_body_is_read_issue_15(
    tmp_path: Path, sqlite_url: str, dua_file: Path
) -> None:
    """Each request declares a body under its cap and sends a sliver of it: an answer at once (not
    the idle timeout's 408, not a hang) means the server never waited for the rest."""
    settings = make_settings(tmp_path, sqlite_url, dua_file=dua_file, upload_idle_timeout="10s")
    app = create_app(settings, migrate_on_start=True)
    with live_server(app) as url:
        token = f.member_token(app.state.csawm.db)
        started = time.monotonic()
        archive = _raw_post(
            url, token, "/api/v1/submissions?name=big", "application/x-tar", 900_000, b"\0" * 1024
        )
        json_body = _raw_post(url, token, "/api/v1/submissions", "application/json", 60_000, b'{"name": "')
        elapsed = time.monotonic() - started
        with app.state.csawm.db.transaction(write=False) as session:
            assert session.query(Submission).count() == 0 and session.query(QuotaEntry).count() == 0
    for answer in (archive, json_body):
        assert answer.startswith(b"HTTP/1.1 403"), answer
        assert b'"code":"agreement_required"' in answer
    assert elapsed < 8, f"the server waited {elapsed:.1f} s for a body it should not read"
    assert not (settings.data_dir / "uploads").exists()


def test_accepting_is_audited_and_idempotent(dua_api: Api, dua_file: Path) -> None:
    token = f.member_token(dua_api.db, email="r@x.org")
    version = _version(dua_file)
    first = _accept(dua_api, token, version).json()
    again = _accept(dua_api, token, version).json()
    assert first["accepted"] and again["accepted_at"] == first["accepted_at"]
    with dua_api.db.transaction(write=False) as session:
        rows = session.query(AgreementAcceptance).all()
        audit = session.query(AuditEntry).filter_by(action="accept_agreement").all()
        assert [(r.version, r.user_id) for r in rows] == [(version, audit[0].actor_user_id)]
        assert [(a.actor, a.target_type, a.target_id) for a in audit] == [("r@x.org", "agreement", version)]
    got = dua_api.client.get("/api/v1/agreements", headers=f.auth(token)).json()
    assert got["accepted"] is True and got["accepted_at"] == first["accepted_at"]


def test_stale_or_malformed_versions_are_refused(dua_api: Api, dua_file: Path) -> None:
    token = f.member_token(dua_api.db)
    stale = _accept(dua_api, token, "a" * 64)
    assert stale.status_code == 409
    error = stale.json()["error"]
    assert error["code"] == "agreement_outdated" and error["version"] == _version(dua_file)
    for bad in ("A" * 64, "a" * 63, "", 5):
        assert _accept(dua_api, token, bad).status_code == 422, bad
    with dua_api.db.transaction(write=False) as session:
        assert session.query(AgreementAcceptance).count() == 0


def test_a_changed_file_needs_a_new_acceptance(tmp_path: Path, sqlite_url: str, dua_file: Path) -> None:
    """The version is the file's sha256, read at startup: after an edit and a restart, the earlier
    acceptance no longer lets the user submit, and accepting the old version is a 409."""
    write_archive(tmp_path / "m.tar")
    old = _version(dua_file)
    with running_api(make_settings(tmp_path, sqlite_url, dua_file=dua_file)) as api:
        token = f.member_token(api.db)
        assert _accept(api, token, old).status_code == 200
        dua_file.write_text(DUA + "\nNew clause.\n", encoding="utf-8")
        still = api.client.get("/api/v1/agreements", headers=f.auth(token)).json()
        assert still["version"] == old and still["accepted"]  # read once: no change until a restart
    new = _version(dua_file)
    assert new != old
    with running_api(make_settings(tmp_path, sqlite_url, dua_file=dua_file)) as api:
        body = api.client.get("/api/v1/agreements", headers=f.auth(token)).json()
        assert body["version"] == new and body["accepted"] is False and "New clause." in body["text"]
        refused = _upload(api, token, tmp_path / "m.tar")
        assert refused.status_code == 403 and refused.json()["error"]["version"] == new
        stale = _accept(api, token, old)
        assert stale.status_code == 409 and stale.json()["error"]["version"] == new
        assert _accept(api, token, new).status_code == 200
        assert _upload(api, token, tmp_path / "m.tar").status_code == 201
        with api.db.transaction(write=False) as session:
            versions = [
                r.version for r in session.query(AgreementAcceptance).order_by(AgreementAcceptance.id)
            ]
        assert versions == [old, new]


def test_no_agreement_configured_means_no_requirement(api: Api, tmp_path: Path) -> None:
    token = f.member_token(api.db)
    body = api.client.get("/api/v1/agreements", headers=f.auth(token)).json()
    assert body["required"] is False and body["version"] is None and body["text"] is None
    write_archive(tmp_path / "m.tar")
    assert _upload(api, token, tmp_path / "m.tar").status_code == 201
    nothing = _accept(api, token, "a" * 64)
    assert nothing.status_code == 404 and "CSAWM_DUA_FILE" in nothing.json()["error"]["message"]


def _bad_files(tmp_path: Path) -> dict[str, tuple[Path, str]]:
    (tmp_path / "latin1.md").write_bytes("Einverständnis".encode("latin-1"))
    (tmp_path / "empty.md").write_text("  \n")
    (tmp_path / "escape.md").write_text("Agree \x1b[2J here\n")
    (tmp_path / "folder").mkdir()
    (tmp_path / "huge.md").write_bytes(b"a" * (1024**2 + 1))
    return {
        "missing": (tmp_path / "nope.md", "does not exist"),
        "not utf-8": (tmp_path / "latin1.md", "not UTF-8"),
        "empty": (tmp_path / "empty.md", "is empty"),
        "terminal escape": (tmp_path / "escape.md", "control character U+001B is not allowed"),
        "directory": (tmp_path / "folder", "is a directory"),
        "too large": (tmp_path / "huge.md", "larger than 1024 KiB"),
    }


def test_a_bad_dua_file_stops_the_server_at_startup(tmp_path: Path, sqlite_url: str) -> None:
    for what, (path, reason) in _bad_files(tmp_path).items():
        settings = make_settings(tmp_path, sqlite_url, dua_file=path)
        with pytest.raises(SettingsError) as caught:
            create_app(settings)
        assert str(caught.value).startswith(f"CSAWM_DUA_FILE={path}: {reason}"), (what, caught.value)


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads a file whatever its mode")
def test_an_unreadable_dua_file_stops_the_server(tmp_path: Path, sqlite_url: str, dua_file: Path) -> None:
    dua_file.chmod(0)
    with pytest.raises(SettingsError, match=r"CSAWM_DUA_FILE=.*: cannot be read \(Permission denied\)"):
        create_app(make_settings(tmp_path, sqlite_url, dua_file=dua_file))


@pytest.mark.timeout(120)
def test_csawm_serve_exits_with_the_message(tmp_path: Path) -> None:
    env = {
        "CSAWM_DATA_DIR": str(tmp_path / "state"),
        "CSAWM_DUA_FILE": str(tmp_path / "nope.md"),
        "CSAWM_PORT": "1",  # never bound: the server must stop before uvicorn starts
    }
    result = CliRunner().invoke(cli, ["serve", "--no-worker"], env=env)
    assert result.exit_code == 2, result.output
    expected = f"CSAWM_DUA_FILE={tmp_path / 'nope.md'}: does not exist (expected the data-use agreement"
    assert result.stderr.startswith(f"error: {expected}") and result.stderr.count("\n") == 1
