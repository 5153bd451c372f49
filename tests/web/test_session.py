"""The session cookie and CSRF nonce: signed, bound to this server's key, refused when forged."""

from __future__ import annotations

import re
import socket
import stat
import threading
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn
from fastapi import Request, Response
from fastapi.testclient import TestClient

from server.accounts import service as accounts
from server.app import create_app
from server.core.settings import SettingsError, load_settings
from server.models import Role
from server.web.session import (
    CSRF_COOKIE,
    KEY_FILE,
    SESSION_COOKIE,
    CsrfError,
    SessionSigner,
    load_secret,
    session_key,
)

SECRET = "shared-by-every-replica-0123456789abcdef"


def _request(cookies: dict[str, str] | None = None, origin: str | None = None) -> Request:
    headers = [(b"host", b"testserver")]
    if cookies:
        headers.append((b"cookie", "; ".join(f"{k}={v}" for k, v in cookies.items()).encode()))
    if origin:
        headers.append((b"origin", origin.encode()))
    scope = {"type": "http", "method": "POST", "scheme": "http", "path": "/", "headers": headers,
             "query_string": b"", "server": ("testserver", 80)}  # fmt: skip
    return Request(scope)


def _cookies(response: Response) -> dict[str, str]:
    out = {}
    for header in response.headers.getlist("set-cookie"):
        name, _, rest = header.partition("=")
        out[name] = rest.split(";", 1)[0]
    return out


def test_secret_is_created_once_private_and_reused(tmp_path: Path) -> None:
    key = load_secret(tmp_path / "state")
    path = tmp_path / "state" / "web-session.key"
    assert len(key) == 32 and stat.S_IMODE(path.stat().st_mode) == 0o600
    assert load_secret(tmp_path / "state") == key
    path.write_bytes(b"short")
    with pytest.raises(ValueError, match="at least 32"):
        load_secret(tmp_path / "state")


def _token_hash(signer: SessionSigner, request: Request) -> str | None:
    """The token hash of a valid, unexpired session cookie, else None."""
    session = signer.session(request)
    return session.token_hash if session is not None else None


def test_session_round_trip_and_forgeries(tmp_path: Path) -> None:
    signer = SessionSigner.from_secret(load_secret(tmp_path))
    response = Response()
    signer.start_session(_request(), response, "a" * 64)
    cookies = _cookies(response)
    assert _token_hash(signer, _request(cookies)) == "a" * 64
    other = SessionSigner.from_secret(b"x" * 32)
    assert _token_hash(other, _request(cookies)) is None  # another server's key
    payload, _, signature = cookies[SESSION_COOKIE].partition(".")
    forged_payload = "eyJ0IjoiYmJiYiJ9"  # base64 of {"t":"bbbb"} with the original signature
    tampered = f"{forged_payload}.{signature}"
    assert payload != forged_payload
    assert _token_hash(signer, _request({SESSION_COOKIE: tampered})) is None
    assert _token_hash(signer, _request({SESSION_COOKIE: "garbage"})) is None
    assert _token_hash(signer, _request()) is None


def test_csrf_nonce_must_match_the_cookie_and_the_origin(tmp_path: Path) -> None:
    signer = SessionSigner.from_secret(load_secret(tmp_path))
    first = _request()
    nonce = signer.csrf_for_form(first)
    assert signer.csrf_for_form(first) == nonce  # one nonce per page
    response = Response()
    signer.attach_csrf(first, response)
    cookies = _cookies(response)
    assert set(cookies) == {CSRF_COOKIE}
    signer.check_csrf(_request(cookies), nonce)
    signer.check_csrf(_request(cookies, origin="http://testserver"), nonce)
    with pytest.raises(CsrfError, match="does not match"):
        signer.check_csrf(_request(cookies), nonce + "x")
    with pytest.raises(CsrfError, match="does not match"):
        signer.check_csrf(_request(cookies), None)
    with pytest.raises(CsrfError, match="missing or expired"):
        signer.check_csrf(_request(), nonce)
    with pytest.raises(CsrfError, match="another origin"):
        signer.check_csrf(_request(cookies, origin="http://evil.example"), nonce)
    # a page that already had a nonce sets no new cookie
    again = Response()
    signer.csrf_for_form(_request(cookies))
    signer.attach_csrf(_request(cookies), again)
    assert CSRF_COOKIE not in _cookies(again)


def test_configured_secret_replaces_the_key_file(tmp_path: Path) -> None:
    settings = load_settings(data_dir=tmp_path / "a", session_secret=SECRET)
    assert session_key(settings) == SECRET.encode()
    assert not (tmp_path / "a" / KEY_FILE).exists()
    unset = load_settings(data_dir=tmp_path / "b")
    assert session_key(unset) == (tmp_path / "b" / KEY_FILE).read_bytes()


def test_short_secret_fails_fast_without_echoing_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CSAWM_SESSION_SECRET", "hunter2-too-short")
    with pytest.raises(SettingsError, match=r"CSAWM_SESSION_SECRET: .*at least 32 bytes") as info:
        load_settings()
    assert "hunter2" not in str(info.value)
    monkeypatch.setenv("CSAWM_SESSION_SECRET", SECRET)
    settings = load_settings()
    assert SECRET not in repr(settings)  # a SecretStr: never in logs or tracebacks


def _login(client: TestClient, token: str) -> None:
    form = client.get("/login")
    match = re.search(r'name="csrf_token" value="([^"]+)"', form.text)
    assert match, "no CSRF field on the login page"
    response = client.post(
        "/login", data={"token": token, "csrf_token": match.group(1), "next": "/team"}, follow_redirects=False
    )
    assert response.status_code == 303, response.text


def test_servers_sharing_the_secret_accept_each_others_sessions(tmp_path: Path) -> None:
    """Two servers behind one load balancer: one database, separate DATA_DIRs, one CSAWM_SESSION_SECRET.
    A browser logged in on one is logged in on the other; a server with another key is not fooled."""
    url = f"sqlite:///{tmp_path / 'shared.db'}"

    def app(name: str, secret: str | None) -> TestClient:
        settings = load_settings(
            data_dir=tmp_path / name, database_url=url, embedded_worker=False, session_secret=secret
        )
        return TestClient(create_app(settings, embedded_worker=False, migrate_on_start=True))

    with app("a", SECRET) as first, app("b", SECRET) as second, app("c", None) as other:
        db = first.app.state.csawm.db  # type: ignore[attr-defined]
        with db.transaction() as session:
            accounts.create_team(session, "Alpha", actor="test")
            accounts.create_user(
                session, "a@alpha.example", role=Role.RESEARCHER, team_name="Alpha", actor="t"
            )
            _, token = accounts.issue_token(
                session, "a@alpha.example", expires_in=timedelta(days=1), actor="t"
            )
        _login(first, token)
        cookie = first.cookies[SESSION_COOKIE]
        second.cookies.set(SESSION_COOKIE, cookie)
        other.cookies.set(SESSION_COOKIE, cookie)
        on_second = second.get("/team", follow_redirects=False)  # logged in: to the team's page
        assert on_second.status_code == 303 and on_second.headers["location"] == "/teams/Alpha"
        on_other = other.get("/team", follow_redirects=False)
        assert on_other.status_code == 303 and on_other.headers["location"].startswith("/login")


# -- issue 12: logout on the server, TLS proxies --------------------------------------------------


def _csrf_of(html: str) -> str:
    match = re.search(r'name="csrf_token" value="([^"]+)"', html)
    assert match, "no CSRF field on the page"
    return match.group(1)


def _alpha_token(client: TestClient) -> str:
    db = client.app.state.csawm.db  # type: ignore[attr-defined]
    with db.transaction() as session:
        accounts.create_team(session, "Alpha", actor="test")
        accounts.create_user(session, "a@alpha.example", role=Role.RESEARCHER, team_name="Alpha", actor="t")
        _, token = accounts.issue_token(session, "a@alpha.example", expires_in=timedelta(days=1), actor="t")
    return token


def test_a_cookie_saved_before_logout_no_longer_works_issue_12(tmp_path: Path) -> None:
    settings = load_settings(data_dir=tmp_path / "state", embedded_worker=False)
    with TestClient(create_app(settings, embedded_worker=False, migrate_on_start=True)) as client:
        _login(client, _alpha_token(client))
        saved = client.cookies[SESSION_COOKIE]
        team = client.get("/teams/Alpha")
        logout = client.post("/logout", data={"csrf_token": _csrf_of(team.text)}, follow_redirects=False)
        assert logout.status_code == 303
        client.cookies.clear()
        client.cookies.set(SESSION_COOKIE, saved)  # the attacker's copy
        again = client.get("/team", follow_redirects=False)
        assert again.status_code == 303 and again.headers["location"].startswith("/login")
        _login(client, _alpha_token_again(client))  # a new login starts a new, valid session
        assert client.get("/team", follow_redirects=False).headers["location"] == "/teams/Alpha"


def _alpha_token_again(client: TestClient) -> str:
    db = client.app.state.csawm.db  # type: ignore[attr-defined]
    with db.transaction() as session:
        _, token = accounts.issue_token(session, "a@alpha.example", expires_in=timedelta(days=1), actor="t")
    return token


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _served_with(tmp_path: Path, forwarded_allow_ips: str | None) -> Any:
    """The app under uvicorn configured exactly as `csawm serve` configures it."""
    from server.cli.serve import uvicorn_options

    settings = load_settings(
        data_dir=tmp_path / "state",
        embedded_worker=False,
        port=free_port(),
        forwarded_allow_ips=forwarded_allow_ips,
    )
    options = uvicorn_options(settings)
    options.update(log_level="warning", log_config=None)
    return settings, uvicorn.Config(
        create_app(settings, embedded_worker=False, migrate_on_start=True), **options
    )


@pytest.mark.parametrize(("allowed", "trusted"), [("127.0.0.1", True), (None, False), ("192.0.2.1", False)])
def test_scheme_follows_a_trusted_tls_proxy_only_issue_12(
    tmp_path: Path, allowed: str | None, trusted: bool
) -> None:
    """Through a TLS proxy (X-Forwarded-Proto: https, Origin https://...) a form post is accepted
    and cookies are Secure, but only when the proxy's address is in CSAWM_FORWARDED_ALLOW_IPS."""
    settings, config = _served_with(tmp_path, allowed)
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        while not server.started:
            assert thread.is_alive(), "uvicorn did not start"
            time.sleep(0.02)
        host = f"127.0.0.1:{settings.port}"
        proxied = {
            "X-Forwarded-Proto": "https",
            "X-Forwarded-For": "198.51.100.7",
            "Origin": f"https://{host}",
        }
        with httpx.Client(base_url=f"http://{host}", timeout=30) as client:
            form = client.get(
                "/login", headers={"X-Forwarded-Proto": "https", "X-Forwarded-For": "198.51.100.7"}
            )
            cookie = form.headers["set-cookie"]
            assert ("secure" in cookie.lower()) is trusted, cookie
            posted = client.post(
                "/login",
                data={"token": "csawm_unknown", "csrf_token": _csrf_of(form.text)},
                headers={**proxied, "Cookie": f"{CSRF_COOKIE}={_cookie_value(cookie, CSRF_COOKIE)}"},
            )
        if trusted:
            assert posted.status_code == 401 and "not accepted" in posted.text  # past the origin check
        else:
            assert posted.status_code == 400 and "another origin" in posted.text
    finally:
        server.should_exit = True
        thread.join(timeout=30)


def _cookie_value(header: str, name: str) -> str:
    match = re.search(rf"{name}=([^;]+)", header)
    assert match, header
    return match.group(1)


def test_tokens_are_redacted_from_the_access_log_issue_12(tmp_path: Path) -> None:
    import logging

    from server.cli.serve import uvicorn_options
    from server.core.security import RedactTokens, redact

    token = "csawm_" + "A1b2" * 10
    assert redact(f"GET /x?token={token}&a=1") == "GET /x?token=[redacted]&a=1"
    assert token not in redact(f"Authorization: Bearer {token}")
    access_args = ("1.2.3.4", "GET", f"/a?t={token}", "1.1", 200)
    record = logging.LogRecord(
        "uvicorn.access", logging.INFO, "", 0, '%s - "%s %s HTTP/%s" %d', access_args, None
    )
    assert RedactTokens().filter(record) and token not in record.getMessage()
    log_config = uvicorn_options(load_settings(data_dir=tmp_path))["log_config"]
    assert all("redact_tokens" in h.get("filters", []) for h in log_config["handlers"].values())
