"""The ``/agreement`` page: the file's Markdown shown as text (never as markup), an accept form
behind login and CSRF, and the team page pointing at it while acceptance is missing."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from pathlib import Path

import pytest
from srvtest import factories as f
from srvtest.app import Api, make_settings, open_api
from srvtest.web import csrf_token, web_login

from server.models import AgreementAcceptance, AuditEntry
from tests.web.a11y import audit_html

HOSTILE = (
    "# Terms\n\n"
    "<script>alert('dua')</script>\n\n"
    '<img src=x onerror="alert(1)">\n\n'
    "[click](javascript:alert(2))\n\n"
    "Use the data for research only.\n"
)


@pytest.fixture
def dua_file(tmp_path: Path) -> Path:
    path = tmp_path / "dua.md"
    path.write_text(HOSTILE, encoding="utf-8")
    return path


@pytest.fixture
def site(tmp_path: Path, sqlite_url: str, dua_file: Path) -> Iterator[Api]:
    yield from open_api(make_settings(tmp_path, sqlite_url, dua_file=dua_file))


def _login(api: Api, token: str) -> None:
    web_login(api.client, token)


def test_the_file_is_shown_as_text_never_as_markup(site: Api, dua_file: Path) -> None:
    page = site.client.get("/agreement")
    assert page.status_code == 200
    html = page.text
    assert "<p>&lt;script&gt;alert('dua')&lt;/script&gt;</p>" in html
    assert "<p>&lt;img src=x onerror=&quot;alert(1)&quot;&gt;</p>" in html
    assert html.count("<script") == 1  # the page's own sort.js, nothing from the file
    assert "<img" not in html and 'href="javascript' not in html
    assert "<h2>Terms</h2>" in html  # the file's own h1 sits under the page's
    assert "Use the data for research only." in html
    assert hashlib.sha256(dua_file.read_bytes()).hexdigest() in html
    assert "script-src 'self'" in page.headers["content-security-policy"]
    assert audit_html(html) == []
    assert 'action="/agreement"' not in html and 'href="/login?next=/agreement"' in html  # no form: log in


def test_accepting_on_the_page(site: Api, dua_file: Path) -> None:
    token = f.member_token(site.db, email="w@x.org")
    _login(site, token)
    assert 'href="/agreement"' in site.client.get("/teams/alpha").text  # the team page points at it
    page = site.client.get("/agreement")
    assert 'action="/agreement"' in page.text and audit_html(page.text) == []
    version = hashlib.sha256(dua_file.read_bytes()).hexdigest()

    no_csrf = site.client.post("/agreement", data={"version": version, "csrf_token": "forged"})
    assert no_csrf.status_code == 400 and "security token" in no_csrf.text
    stale = site.client.post("/agreement", data={"version": "b" * 64, "csrf_token": csrf_token(page.text)})
    assert stale.status_code == 409 and "The agreement changed" in stale.text
    with site.db.transaction(write=False) as session:
        assert session.query(AgreementAcceptance).count() == 0

    done = site.client.post(
        "/agreement", data={"version": version, "csrf_token": csrf_token(page.text)}, follow_redirects=False
    )
    assert done.status_code == 303 and done.headers["location"] == "/agreement"
    after = site.client.get("/agreement").text
    assert "You accepted this version on" in after and 'action="/agreement"' not in after
    assert 'href="/agreement"' not in site.client.get("/teams/alpha").text
    api_view = site.client.get("/api/v1/agreements", headers=f.auth(token)).json()
    assert api_view["accepted"] is True
    with site.db.transaction(write=False) as session:
        audit = session.query(AuditEntry).filter_by(action="accept_agreement").all()
        assert [(a.actor, a.target_id) for a in audit] == [("w@x.org", version)]


def test_posting_without_login_goes_to_login(site: Api) -> None:
    response = site.client.post("/agreement", data={"version": "a" * 64}, follow_redirects=False)
    assert response.status_code == 303 and response.headers["location"].startswith("/login?next=")


def test_no_agreement_no_page(sqlite_api: Api) -> None:
    assert sqlite_api.client.get("/agreement").status_code == 404
    token = f.member_token(sqlite_api.db)
    _login(sqlite_api, token)
    assert 'href="/agreement"' not in sqlite_api.client.get("/teams/alpha").text
