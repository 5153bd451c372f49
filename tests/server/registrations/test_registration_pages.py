"""The registration forms on the pages (TestClient): a team's members answer join requests on the
team page, maintainers decide on /admin; nobody else can."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from srvtest.app import Api, make_settings, running_api
from srvtest.factories import auth, member_token, user
from srvtest.registration import body, link
from srvtest.web import csrf_token, web_login

from server.models import Role

MAIL = {"smtp_host": "127.0.0.1", "smtp_tls": "none", "smtp_sender": "lb@board.example"}


@pytest.fixture
def api(tmp_path: Path, sqlite_url: str) -> Any:
    with running_api(make_settings(tmp_path, sqlite_url, public_url="https://board.example", **MAIL)) as api:
        yield api


def _awaiting_join(api: Api, maint: dict[str, str]) -> int:
    assert (
        api.client.post("/api/v1/registrations", json=body(answers={}, team={"join": "alpha"})).status_code
        == 202
    )
    api.client.get("/register/verify", params={"token": link(api, "ada@lab.example", "/register/verify")})
    (reg,) = api.client.get("/api/v1/admin/registrations", headers=maint).json()
    assert api.client.post(f"/api/v1/admin/registrations/{reg['id']}/approve", headers=maint).json()[
        "state"
    ] == ("awaiting_team")
    return int(reg["id"])


def _post_form(client: TestClient, page: str, action: str, **data: str) -> Any:
    form = client.get(page)
    return client.post(action, data={"csrf_token": csrf_token(form.text), **data}, follow_redirects=False)


def test_a_member_accepts_on_the_team_page_and_another_team_cannot(api: Api) -> None:
    alpha = member_token(api.db, "alpha", "a1@alpha.example")
    beta = member_token(api.db, "beta", "b1@beta.example")
    maint = auth(user(api.db, "maint@board.example", role=Role.MAINTAINER))
    reg_id = _awaiting_join(api, maint)
    outsider = TestClient(api.client.app)
    web_login(outsider, beta)
    assert "Join requests" not in outsider.get("/team").text
    stolen = _post_form(outsider, "/team", f"/team/join-requests/{reg_id}/accept")
    assert stolen.status_code == 404
    member = TestClient(api.client.app)
    web_login(member, alpha)
    page = member.get("/team")
    assert "Join requests (1)" in page.text and "ada@lab.example" in page.text
    done = _post_form(member, "/team", f"/team/join-requests/{reg_id}/accept")
    assert done.status_code == 303 and done.headers["location"] == "/team"
    assert "Join requests" not in member.get("/team").text
    (reg,) = api.client.get("/api/v1/admin/registrations", headers=maint).json()
    assert reg["state"] == "approved"


def test_maintainers_reject_on_admin_and_researchers_cannot(api: Api) -> None:
    researcher = member_token(api.db, "alpha", "a1@alpha.example")
    maint_token = user(api.db, "maint@board.example", role=Role.MAINTAINER)
    api.client.post("/api/v1/registrations", json=body(answers={}))
    (reg,) = api.client.get("/api/v1/admin/registrations", headers=auth(maint_token)).json()
    someone = TestClient(api.client.app)
    web_login(someone, researcher)
    refused = _post_form(someone, "/team", f"/admin/registrations/{reg['id']}/approve")
    assert refused.status_code == 403
    staff = TestClient(api.client.app)
    web_login(staff, maint_token, "/admin")
    assert "Registrations (1)" in staff.get("/admin").text
    early = _post_form(staff, "/admin", f"/admin/registrations/{reg['id']}/approve")
    assert early.status_code == 409 and "only a verified registration" in early.text
    no_reason = _post_form(staff, "/admin", f"/admin/registrations/{reg['id']}/reject", reason=" ")
    assert no_reason.status_code == 400
    done = _post_form(staff, "/admin", f"/admin/registrations/{reg['id']}/reject", reason="spam")
    assert done.status_code == 303
    assert "Registrations (0)" in staff.get("/admin").text
