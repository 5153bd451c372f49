"""Logging in to the web pages with an API token, as the login form does (CSRF field included)."""

from __future__ import annotations

import re
from typing import Any

CSRF_FIELD = re.compile(r'name="csrf_token" value="([^"]+)"')


def csrf_token(html: str) -> str:
    """The CSRF token of the form on `html`."""
    match = CSRF_FIELD.search(html)
    assert match, "no CSRF field on the page"
    return match.group(1)


def web_login(client: Any, token: str, next_path: str = "/team") -> None:
    """Log `client` (a TestClient) in with `token`; the cookie stays on the client."""
    form = client.get("/login")
    done = client.post(
        "/login",
        data={"token": token, "csrf_token": csrf_token(form.text), "next": next_path},
        follow_redirects=False,
    )
    assert done.status_code == 303, done.text
