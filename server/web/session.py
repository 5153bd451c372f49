"""Web login: a signed session cookie, CSRF tokens for form posts, and the key that signs both.

A researcher pastes an API token once on ``/login``. The server checks it like any bearer token and
answers with a session cookie that holds the token's SHA-256 (never the token itself) and a random
session id, signed with itsdangerous and stamped with its issue time. Every later page resolves the
cookie back to the token row, so revoking or expiring the token also ends its web sessions.
Logging out records the session id as revoked in the database (`RevokedWebSession`), so a copy of
the cookie saved before the logout is refused too (issue 12); rows older than `SESSION_MAX_AGE`
are deleted at the next logout.

CSRF: every page that renders a form gets a random nonce kept in a second signed cookie; the form
carries the same nonce in a hidden field and a post is accepted only when both match
(``hmac.compare_digest``) and, when the browser sends an ``Origin`` header, it names this server.
Both cookies are ``HttpOnly`` and ``SameSite=Lax`` (and ``Secure`` when the page came over HTTPS;
behind a TLS proxy, uvicorn's proxy headers for ``CSAWM_FORWARDED_ALLOW_IPS`` make the scheme and
the origin the client's, see `server.cli.serve`).

The signing key is ``CSAWM_SESSION_SECRET`` when set; otherwise 32 random bytes in
``DATA_DIR/web-session.key`` (mode 0600), created on first use. Servers that share one database and
sit behind one load balancer must share the key: set the same ``CSAWM_SESSION_SECRET`` on each (or
share the file). Changing the key logs every browser out.
"""

from __future__ import annotations

import hmac
import os
import secrets
import threading
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

from fastapi import Request, Response
from itsdangerous import BadSignature, URLSafeTimedSerializer
from sqlalchemy import delete
from sqlalchemy.orm import Session

from server.clock import utcnow
from server.core.settings import Settings
from server.models import RevokedWebSession

SESSION_COOKIE = "csawm_session"
CSRF_COOKIE = "csawm_csrf"
CSRF_FIELD = "csrf_token"
SESSION_MAX_AGE = timedelta(hours=12)
CSRF_MAX_AGE = timedelta(hours=12)
KEY_FILE = "web-session.key"

_key_lock = threading.Lock()


class CsrfError(ValueError):
    """A form post without a matching CSRF token or from a foreign origin; the message says which."""


def load_secret(data_dir: Path) -> bytes:
    """Read the signing key from ``data_dir``, creating it (0600, atomically) when absent."""
    path = data_dir / KEY_FILE
    with _key_lock:
        if not path.exists():
            data_dir.mkdir(parents=True, exist_ok=True)
            staging = path.with_name(f".{KEY_FILE}.{os.getpid()}.{secrets.token_hex(4)}")
            fd = os.open(staging, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "wb") as handle:
                handle.write(secrets.token_bytes(32))
            try:
                os.link(staging, path)  # fails if another process created it first: keep theirs
            except FileExistsError:
                pass
            finally:
                staging.unlink()
        key = path.read_bytes()
    if len(key) < 32:
        raise ValueError(f"{path} holds {len(key)} bytes; the web session key needs at least 32")
    return key


def session_key(settings: Settings) -> bytes:
    """The cookie signing key: ``CSAWM_SESSION_SECRET`` when set, else the key file in ``DATA_DIR``."""
    if settings.session_secret is not None:
        return settings.session_secret.get_secret_value().encode()
    return load_secret(settings.data_dir)


@dataclass(frozen=True)
class WebSession:
    token_hash: str
    session_id: str


def is_revoked(session: Session, session_id: str) -> bool:
    return session.get(RevokedWebSession, session_id) is not None


def revoke(session: Session, session_id: str) -> None:
    """Record `session_id` as logged out; forget revocations whose cookies have expired anyway."""
    now = utcnow()
    session.execute(delete(RevokedWebSession).where(RevokedWebSession.expires_at < now))
    if session.get(RevokedWebSession, session_id) is None:
        session.add(
            RevokedWebSession(session_id=session_id, revoked_at=now, expires_at=now + SESSION_MAX_AGE)
        )
    session.flush()


@dataclass(frozen=True)
class SessionSigner:
    """Signs and checks the two cookies; one per app, built from the key on first use."""

    serializer: URLSafeTimedSerializer

    @classmethod
    def from_secret(cls, secret: bytes) -> SessionSigner:
        return cls(URLSafeTimedSerializer(secret, salt="csawm-web"))

    def session(self, request: Request) -> WebSession | None:
        """The session of a valid, unexpired session cookie, else None (revocation is the caller's
        check: it needs the database)."""
        value = self._cookie(request, SESSION_COOKIE, SESSION_MAX_AGE)
        if not isinstance(value, dict):
            return None
        token_hash, session_id = value.get("t"), value.get("s")
        if not isinstance(token_hash, str) or not isinstance(session_id, str) or not session_id:
            return None
        return WebSession(token_hash=token_hash, session_id=session_id)

    def start_session(self, request: Request, response: Response, token_hash: str) -> None:
        """Set the session cookie (a fresh session id) and rotate the CSRF nonce (no fixation)."""
        value = {"t": token_hash, "s": secrets.token_urlsafe(24)}
        _set_cookie(request, response, SESSION_COOKIE, self.serializer.dumps(value), SESSION_MAX_AGE)
        _set_cookie(
            request, response, CSRF_COOKIE, self.serializer.dumps(secrets.token_urlsafe(24)), CSRF_MAX_AGE
        )

    def end_session(self, response: Response) -> None:
        response.delete_cookie(SESSION_COOKIE, path="/")
        response.delete_cookie(CSRF_COOKIE, path="/")

    def _cookie(self, request: Request, name: str, max_age: timedelta) -> object:
        """The value of a signed cookie this server set no longer than `max_age` ago, else None."""
        raw = request.cookies.get(name)
        if not raw:
            return None
        try:
            return self.serializer.loads(raw, max_age=int(max_age.total_seconds()))
        except BadSignature:
            return None

    def _csrf_nonce(self, request: Request) -> str | None:
        value = self._cookie(request, CSRF_COOKIE, CSRF_MAX_AGE)
        return value if isinstance(value, str) and value else None

    def csrf_for_form(self, request: Request) -> str:
        """The nonce to put in this page's forms; a fresh one is remembered for `attach_csrf`."""
        nonce = self._csrf_nonce(request)
        if nonce is None:
            nonce = getattr(request.state, "new_csrf", None) or secrets.token_urlsafe(24)
            request.state.new_csrf = nonce
        return nonce

    def attach_csrf(self, request: Request, response: Response) -> None:
        """Set the CSRF cookie when `csrf_for_form` had to create a nonce for this page."""
        nonce = getattr(request.state, "new_csrf", None)
        if nonce:
            _set_cookie(request, response, CSRF_COOKIE, self.serializer.dumps(nonce), CSRF_MAX_AGE)

    def check_csrf(self, request: Request, submitted: str | None) -> None:
        """Raise `CsrfError` unless `submitted` equals the cookie's nonce and the origin is ours."""
        origin = request.headers.get("origin")
        if origin and origin != "null" and origin.rstrip("/") != _own_origin(request):
            raise CsrfError(f"form posted from another origin ({origin})")
        nonce = self._csrf_nonce(request)
        if nonce is None:
            raise CsrfError("the form's security cookie is missing or expired; reload the page and retry")
        if not submitted or not hmac.compare_digest(nonce.encode(), submitted.encode()):
            raise CsrfError("the form's security token does not match; reload the page and retry")


def _own_origin(request: Request) -> str:
    return f"{request.url.scheme}://{request.url.netloc}"


def _set_cookie(request: Request, response: Response, name: str, value: str, max_age: timedelta) -> None:
    response.set_cookie(
        name,
        value,
        max_age=int(max_age.total_seconds()),
        path="/",
        httponly=True,
        samesite="lax",
        secure=request.url.scheme == "https",
    )
