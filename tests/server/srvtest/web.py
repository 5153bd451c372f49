"""Logging in to the web pages with an API token, as the login form does (CSRF field included)."""

from __future__ import annotations

import html
import json
import re
from datetime import datetime
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


# -- what a report page shows (issue 19 item 5: the page must show exactly what the API shows) ------

_TIME = re.compile(r'<time datetime="([^"]+)"')
_RUNTIME_TABLE = re.compile(r'<table class="runtime">(.*?)</table>', re.S)
_RUNTIME_ROW = re.compile(r'<tr><th scope="row">([^<]+)</th>(.*?)</tr>', re.S)
_CELL = re.compile(r'<td data-key="(\w+)">(.*?)</td>', re.S)
_DATA = re.compile(r'<data value="([^"]*)">')
_REPRO = re.compile(r'<dd data-key="(\w+)" data-value="([^"]*)">')


def page_times(page: str) -> list[datetime]:
    """Every ``<time datetime>`` of a page, as timestamps."""
    return [datetime.fromisoformat(html.unescape(v).replace("Z", "+00:00")) for v in _TIME.findall(page)]


def runtime_table(page: str) -> dict[str, dict[str, Any]]:
    """The report page's runtime table: phase -> figure key -> the value in the cell (None: "–")."""
    table = _RUNTIME_TABLE.search(page)
    if table is None:
        return {}
    rows: dict[str, dict[str, Any]] = {}
    for phase, cells in _RUNTIME_ROW.findall(table.group(1)):
        values: dict[str, Any] = {}
        for key, cell in _CELL.findall(cells):
            data = _DATA.search(cell)
            values[key] = json.loads(html.unescape(data.group(1))) if data else None
        rows[html.unescape(phase)] = values
    return rows


def repro_record(page: str) -> dict[str, Any]:
    """The report page's reproducibility record (each entry's value as the page carries it in
    ``data-value``): mappings parsed, scalars as text."""
    found: dict[str, Any] = {}
    for key, raw in _REPRO.findall(page):
        value = json.loads(html.unescape(raw))
        found[key] = value if isinstance(value, dict) else str(value)
    return found


def as_shown(record: dict[str, Any]) -> dict[str, Any]:
    """An API reproducibility record as `repro_record` reads it off a page (scalars as text)."""
    return {k: v if isinstance(v, dict) else str(v) for k, v in record.items()}
