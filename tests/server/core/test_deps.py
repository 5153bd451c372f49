"""Every path and query integer is validated to the database's range (issue 12, row 9): an id or
offset of 2^63 was a 500 from the driver; now each is a 422 naming the parameter."""

from __future__ import annotations

import pytest
from srvtest import factories as f
from srvtest.app import Api

from server.core.deps import DB_INT_MAX
from server.models import Role

HUGE = 2**63


@pytest.fixture
def admin(api: Api) -> str:
    f.team(api.db, "alpha")
    f.user(api.db, "a@x.org", team="alpha")
    return f.user(api.db, "admin@x.org", role=Role.ADMIN)


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("GET", f"/api/v1/submissions/{HUGE}", None),
        ("GET", f"/api/v1/submissions/{DB_INT_MAX + 1}", None),
        ("GET", f"/api/v1/submissions/{HUGE}/logs", None),
        ("POST", f"/api/v1/submissions/{HUGE}/cancel", None),
        ("GET", f"/api/v1/submissions?offset={HUGE}", None),
        ("GET", f"/api/v1/admin/audit?offset={HUGE}", None),
        ("POST", f"/api/v1/admin/submissions/{HUGE}/review", {"action": "approve"}),
        ("DELETE", f"/api/v1/admin/tokens/{HUGE}", None),
        ("PUT", "/api/v1/admin/teams/alpha/quota", {"per_day": HUGE}),
        ("PUT", "/api/v1/admin/teams/alpha/quota", {"active": DB_INT_MAX + 1}),
        ("POST", "/api/v1/admin/users/a@x.org/tokens", {"expires_in_days": 1e12}),
        ("GET", f"/submissions/{HUGE}", None),
        ("GET", f"/submissions/{HUGE}/plots/confusion.svg", None),
        ("GET", f"/admin?reviewed={HUGE}", None),
    ],
)
def test_out_of_range_integers_are_422_issue_12(
    api: Api, admin: str, method: str, path: str, body: dict[str, object] | None
) -> None:
    response = api.client.request(method, path, json=body, headers=f.auth(admin))
    assert response.status_code == 422, response.text
    assert response.json()["error"]["code"] == "validation_error"


def test_in_range_unknown_ids_are_404(api: Api, admin: str) -> None:
    for path in (f"/api/v1/submissions/{DB_INT_MAX}", "/api/v1/submissions/1/logs"):
        assert api.client.get(path, headers=f.auth(admin)).status_code == 404
    assert api.client.delete(f"/api/v1/admin/tokens/{DB_INT_MAX}", headers=f.auth(admin)).status_code == 404


@pytest.mark.parametrize("bad", ["nul\x00byte", "bell\x07", "tab\tin name"])
def test_control_characters_in_names_are_422(api: Api, admin: str, bad: str) -> None:
    """A NUL in a team name was a 500 on PostgreSQL ("cannot contain NUL"); names are one line."""
    response = api.client.post("/api/v1/admin/teams", json={"name": bad}, headers=f.auth(admin))
    assert response.status_code == 422 and "control character" in response.json()["error"]["message"]
