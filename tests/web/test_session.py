"""The session cookie and CSRF nonce: signed, bound to this server's key, refused when forged."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest
from fastapi import Request, Response

from server.web.session import CSRF_COOKIE, SESSION_COOKIE, CsrfError, SessionSigner, load_secret


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


def test_session_round_trip_and_forgeries(tmp_path: Path) -> None:
    signer = SessionSigner.from_secret(load_secret(tmp_path))
    response = Response()
    signer.start_session(_request(), response, "a" * 64)
    cookies = _cookies(response)
    assert signer.token_hash(_request(cookies)) == "a" * 64
    other = SessionSigner.from_secret(b"x" * 32)
    assert other.token_hash(_request(cookies)) is None  # another server's key
    payload, _, signature = cookies[SESSION_COOKIE].partition(".")
    forged_payload = "eyJ0IjoiYmJiYiJ9"  # base64 of {"t":"bbbb"} with the original signature
    tampered = f"{forged_payload}.{signature}"
    assert payload != forged_payload
    assert signer.token_hash(_request({SESSION_COOKIE: tampered})) is None
    assert signer.token_hash(_request({SESSION_COOKIE: "garbage"})) is None
    assert signer.token_hash(_request()) is None


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
