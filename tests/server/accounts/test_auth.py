"""Authentication and role rules: 401 for missing/unknown/revoked/expired tokens, 403 for roles."""

from __future__ import annotations

from datetime import timedelta

import pytest
from srvtest import factories as f
from srvtest.app import Api

from server.accounts import service
from server.clock import utcnow
from server.core.security import hash_token
from server.models import ApiToken, AuditEntry, Role


def test_token_is_stored_only_as_its_hash(api: Api) -> None:
    f.team(api.db, "alpha")
    token = f.user(api.db, "a@x.org", team="alpha")
    with api.db.transaction(write=False) as session:
        rows = session.query(ApiToken).all()
        assert [r.token_hash for r in rows] == [hash_token(token)]
        assert token not in {r.prefix for r in rows} and token.startswith(rows[0].prefix)


@pytest.mark.parametrize(
    ("header", "message"),
    [
        (None, "missing bearer token"),
        ("Bearer csawm_nope", "invalid token"),
        ("Basic dXNlcjpwdw==", "missing bearer token"),
    ],
)
def test_bad_credentials_are_401(api: Api, header: str | None, message: str) -> None:
    headers = {"Authorization": header} if header else {}
    response = api.client.get("/api/v1/submissions", headers=headers)
    assert response.status_code == 401
    assert response.headers["www-authenticate"] == "Bearer"
    assert message in response.json()["error"]["message"]


def test_revoked_and_expired_tokens_are_401(api: Api) -> None:
    f.team(api.db, "alpha")
    token = f.user(api.db, "a@x.org", team="alpha")
    assert api.client.get("/api/v1/me", headers=f.auth(token)).json()["team"] == "alpha"
    with api.db.transaction() as session:
        service.revoke_token(session, token, actor="test")
    response = api.client.get("/api/v1/me", headers=f.auth(token))
    assert response.status_code == 401 and response.json()["error"]["message"] == "token revoked"

    short = f.token(api.db, "a@x.org", expires_in=timedelta(seconds=30))
    assert api.client.get("/api/v1/me", headers=f.auth(short)).status_code == 200
    with api.db.transaction() as session:
        session.query(ApiToken).filter_by(token_hash=hash_token(short)).update(
            {"expires_at": utcnow() - timedelta(seconds=1)}
        )
    response = api.client.get("/api/v1/me", headers=f.auth(short))
    assert response.status_code == 401 and response.json()["error"]["message"] == "token expired"


def test_roles_gate_admin_and_review_endpoints(api: Api) -> None:
    f.team(api.db, "alpha")
    researcher = f.user(api.db, "r@x.org", team="alpha")
    maintainer = f.user(api.db, "m@x.org", role=Role.MAINTAINER)
    admin = f.user(api.db, "root@x.org", role=Role.ADMIN)
    assert api.client.get("/api/v1/admin/teams", headers=f.auth(researcher)).status_code == 403
    assert api.client.get("/api/v1/admin/teams", headers=f.auth(maintainer)).status_code == 403
    assert api.client.get("/api/v1/admin/teams", headers=f.auth(admin)).status_code == 200
    assert api.client.get("/api/v1/admin/audit", headers=f.auth(researcher)).status_code == 403
    assert api.client.get("/api/v1/admin/audit", headers=f.auth(maintainer)).status_code == 200
    assert api.client.get("/api/v1/admin/review", headers=f.auth(admin)).status_code == 200
    assert api.client.get("/api/v1/leaderboard").status_code == 200  # public


def test_admin_api_manages_accounts_and_audits_every_action(api: Api) -> None:
    admin = f.user(api.db, "root@x.org", role=Role.ADMIN)
    h = f.auth(admin)
    assert api.client.post("/api/v1/admin/teams", json={"name": "beta"}, headers=h).status_code == 201
    assert api.client.post("/api/v1/admin/teams", json={"name": "beta"}, headers=h).status_code == 409
    response = api.client.post("/api/v1/admin/users", json={"email": "B@x.org", "team": "beta"}, headers=h)
    assert response.status_code == 201 and response.json()["email"] == "b@x.org"
    bad = api.client.post("/api/v1/admin/users", json={"email": "c@x.org", "team": "nope"}, headers=h)
    assert bad.status_code == 404 and "nope" in bad.json()["error"]["message"]
    issued = api.client.post("/api/v1/admin/users/b@x.org/tokens", json={"expires_in_days": 1}, headers=h)
    assert issued.status_code == 201
    token = issued.json()["token"]
    assert api.client.get("/api/v1/me", headers=f.auth(token)).json() == {
        "email": "b@x.org",
        "role": "researcher",
        "team": "beta",
    }
    listed = api.client.get("/api/v1/admin/users/b@x.org/tokens", headers=h).json()
    assert all("token" not in t for t in listed)
    quota = api.client.put("/api/v1/admin/teams/beta/quota", json={"per_day": 7}, headers=h)
    assert quota.json()["quota_overrides"]["per_day"] == 7
    revoked = api.client.delete(f"/api/v1/admin/tokens/{issued.json()['id']}", headers=h)
    assert revoked.status_code == 200 and revoked.json()["revoked_at"] is not None
    assert api.client.get("/api/v1/me", headers=f.auth(token)).status_code == 401
    audit = api.client.get("/api/v1/admin/audit", headers=h).json()
    actions = [(e["action"], e["actor"]) for e in audit if e["actor"] == "root@x.org"]
    assert [a for a, _ in reversed(actions)] == [
        "create_team",
        "create_user",
        "issue_token",
        "set_quota",
        "revoke_token",
    ]
    with api.db.transaction(write=False) as session:
        assert session.query(AuditEntry).count() == len(audit)
