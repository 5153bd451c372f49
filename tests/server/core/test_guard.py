"""The request guard (issue 12, rows 1 and 3): authentication before any body is read, and a body
limit enforced while the body streams."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path

import pytest
from srvtest import factories as f
from srvtest.app import Api, make_settings, running_api
from srvtest.archives import write_archive
from srvtest.attacks import read_response
from srvtest.live import live_server

from server.app import create_app
from server.models import Role


@pytest.fixture
def admin(sqlite_api: Api) -> str:
    return f.user(sqlite_api.db, "admin@x.org", role=Role.ADMIN)


def test_unauthenticated_body_is_answered_401_before_it_is_sent_issue_12(
    tmp_path: Path, sqlite_url: str
) -> None:
    """The request declares 1 GB and sends 1 KB: the 401 arrives without the rest of the body, so
    the server never waited for (or read) it."""
    settings = make_settings(tmp_path, sqlite_url)
    with live_server(create_app(settings, migrate_on_start=True)) as url:
        port = int(url.rsplit(":", 1)[1])
        with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
            sock.sendall(
                b"POST /api/v1/admin/teams HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                b"Content-Length: 1000000000\r\n\r\n" + b'{"name": "' + b"a" * 1024
            )
            answer = read_response(sock)
    assert answer.startswith(b"HTTP/1.1 401"), answer
    assert b'"code":"unauthorized"' in answer and b"www-authenticate: bearer" in answer.lower()


def test_bad_token_with_a_body_is_401_and_no_work_is_done(sqlite_api: Api) -> None:
    response = sqlite_api.client.post(
        "/api/v1/admin/teams", json={"name": "x"}, headers=f.auth("csawm_" + "x" * 43)
    )
    assert response.status_code == 401 and response.json()["error"]["message"] == "invalid token"


def test_json_over_the_cap_is_413_declared_or_streamed_issue_12(sqlite_api: Api, admin: str) -> None:
    cap = sqlite_api.settings.max_json_bytes
    body = b'{"name": "' + b"a" * cap + b'"}'
    declared = sqlite_api.client.post(
        "/api/v1/admin/teams", content=body, headers={**f.auth(admin), "Content-Type": "application/json"}
    )
    assert declared.status_code == 413, declared.text
    assert declared.json()["error"] == {
        "code": "body_too_large",
        "message": f"request body over the limit of {cap} bytes (CSAWM_MAX_JSON_BYTES)",
        "limit_bytes": cap,
    }

    def chunks() -> Iterator[bytes]:
        for i in range(0, len(body), 4096):
            yield body[i : i + 4096]

    streamed = sqlite_api.client.post(
        "/api/v1/admin/teams", content=chunks(), headers={**f.auth(admin), "Content-Type": "application/json"}
    )
    assert streamed.status_code == 413 and streamed.json()["error"]["code"] == "body_too_large"
    ok = sqlite_api.client.post("/api/v1/admin/teams", json={"name": "fits"}, headers=f.auth(admin))
    assert ok.status_code == 201


def test_the_cap_covers_forms_and_registry_json_but_not_archives_issue_12(
    tmp_path: Path, sqlite_url: str
) -> None:
    settings = make_settings(tmp_path, sqlite_url, max_json_bytes=1024)
    with running_api(settings) as api:
        f.team(api.db, "alpha")
        token = f.user(api.db, "a@x.org", team="alpha")
        form = api.client.post("/login", data={"token": "x" * 2000, "csrf_token": "y"})
        assert form.status_code == 413
        registry_json = api.client.post(
            "/api/v1/submissions",
            content=b'{"name": "' + b"a" * 2000 + b'"}',
            headers={**f.auth(token), "Content-Type": "application/json"},
        )
        assert registry_json.status_code == 413
        write_archive(tmp_path / "m.tar")  # ~10 KiB: over the JSON cap, far under the upload cap
        assert (tmp_path / "m.tar").stat().st_size > 1024
        upload = api.client.post(
            "/api/v1/submissions",
            params={"name": "m"},
            content=(tmp_path / "m.tar").read_bytes(),
            headers={**f.auth(token), "Content-Type": "application/x-tar"},
        )
        assert upload.status_code == 201, upload.text


def test_public_routes_with_a_body_need_no_token(sqlite_api: Api) -> None:
    """The guard asks for a token only where the route does (the login form is public)."""
    response = sqlite_api.client.post("/login", data={"token": "", "csrf_token": "x"})
    assert response.status_code == 400  # the CSRF check, not a 401
