"""Registration helpers (issue 22 item 1): a valid body, the mails in the outbox, and the welcome page."""

from __future__ import annotations

import re
from typing import Any

from fastapi.testclient import TestClient
from sqlalchemy import select

from server.models import Delivery
from srvtest.app import Api
from srvtest.web import csrf_token


def body(**overrides: Any) -> dict[str, Any]:
    values: dict[str, Any] = {
        "name": "Ada Lovelace",
        "email": "ada@lab.example",
        "affiliation": "Analytical Engines Lab",
        "orcid": "0000-0002-1825-0097",
        "team": {"create": "engines"},
        "answers": {"purpose": "masking research"},
    }
    values.update(overrides)
    return values


def mails_to(api: Api, email: str) -> list[dict[str, Any]]:
    with api.db.transaction(write=False) as session:
        rows = session.scalars(
            select(Delivery).where(Delivery.target == email).order_by(Delivery.created_at)
        ).all()
        return [dict(r.payload) for r in rows]


def link(api: Api, email: str, path: str) -> str:
    """The token of the newest one-time link to `path` in the mail to `email`."""
    for payload in reversed(mails_to(api, email)):
        found = re.search(rf"https://board\.example{re.escape(path)}\?token=(\S+)", payload["text"])
        if found:
            return found.group(1)
    raise AssertionError(f"no {path} link mailed to {email}")


def welcome_token(client: TestClient, token: str) -> str:
    page = client.get("/welcome", params={"token": token})
    assert page.status_code == 200, page.text
    shown = client.post("/welcome", data={"token": token, "csrf_token": csrf_token(page.text)})
    assert shown.status_code == 200, shown.text
    assert shown.headers["cache-control"] == "no-store"
    found = re.search(r'<code id="api-token">(csawm_[^<]+)</code>', shown.text)
    assert found, shown.text
    return found.group(1)
