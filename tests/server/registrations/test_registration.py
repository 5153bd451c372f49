"""Registration with approval (issue 22 item 1) through the API: the happy paths, every bad input of
the issue, and the attacks (account enumeration, link reuse, floods). Mail is read from the outbox
here; tests/server/registrations/test_registration_mail.py sends it to a real SMTP server."""

from __future__ import annotations

import re
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select, update
from srvtest.app import Api, make_settings, running_api
from srvtest.factories import auth, member_token, user
from srvtest.registration import body, link, mails_to, welcome_token

from server.clock import utcnow
from server.models import Delivery, RateCounter, Registration, Role, Team, User
from server.registrations import limits

QUESTIONS = """\
- id: purpose
  text: What will you use the test set for?
  required: true
- id: group
  text: Your research group's web page
"""


@pytest.fixture
def reg_api(tmp_path: Path, db_url: str) -> Any:
    questions = tmp_path / "questions.yaml"
    questions.write_text(QUESTIONS)
    settings = make_settings(
        tmp_path,
        db_url,
        registration_questions=questions,
        max_team_size=2,
        **MAIL,
    )
    with running_api(settings) as api:
        yield api


#: Email on (no dispatcher runs here: the mails are read from the outbox).
MAIL = {
    "smtp_host": "127.0.0.1",
    "smtp_tls": "none",
    "smtp_sender": "lb@board.example",
    "public_url": "https://board.example",
}


def test_without_email_registration_is_refused_and_says_why(tmp_path: Path, sqlite_url: str) -> None:
    with running_api(make_settings(tmp_path, sqlite_url)) as api:
        answer = api.client.post("/api/v1/registrations", json=body(answers={}))
        assert answer.status_code == 503 and "CSAWM_SMTP_HOST" in answer.json()["error"]["message"]
        assert counts(api) == (0, 0, 0, 0)


def counts(api: Api) -> tuple[int, int, int, int]:
    with api.db.transaction(write=False) as session:
        return (
            session.scalar(select(func.count(Registration.id))) or 0,
            session.scalar(select(func.count(Delivery.id))) or 0,
            session.scalar(select(func.count(User.id))) or 0,
            session.scalar(select(func.count(Team.id))) or 0,
        )


_maintainers: dict[int, tuple[Api, dict[str, str]]] = {}


def maintainer_headers(api: Api) -> dict[str, str]:
    """A maintainer's token on `api`'s database, made once per app (the app is kept with it, so
    its id is never reused by another test's app)."""
    kept = _maintainers.get(id(api))
    if kept is None or kept[0] is not api:
        kept = (api, auth(user(api.db, "maint@board.example", role=Role.MAINTAINER)))
        _maintainers[id(api)] = kept
    return kept[1]


def registration_of(api: Api, email: str) -> dict[str, Any]:
    listed = api.client.get("/api/v1/admin/registrations", headers=maintainer_headers(api)).json()
    (found,) = [r for r in listed if r["email"] == email]
    return dict(found)


def verify(api: Api, email: str) -> None:
    page = api.client.get("/register/verify", params={"token": link(api, email, "/register/verify")})
    assert page.status_code == 200 and "is confirmed" in page.text, page.text


def test_create_a_team_end_to_end(reg_api: Api) -> None:
    api = reg_api
    answer = api.client.post("/api/v1/registrations", json=body())
    assert answer.status_code == 202
    reg = registration_of(api, "ada@lab.example")
    assert reg["state"] == "unverified" and reg["team"] == {"create": "engines"}
    assert reg["answers"] == {"purpose": "masking research"} and reg["orcid"] == "0000-0002-1825-0097"
    approve = f"/api/v1/admin/registrations/{reg['id']}/approve"
    refused = api.client.post(approve, headers=maintainer_headers(api))
    assert refused.status_code == 409 and "verified" in refused.json()["error"]["message"]
    verify(api, "ada@lab.example")
    assert registration_of(api, "ada@lab.example")["state"] == "verified"
    approved = api.client.post(approve, headers=maintainer_headers(api))
    assert approved.status_code == 200 and approved.json()["state"] == "approved"
    assert all("csawm_" not in m["text"] for m in mails_to(api, "ada@lab.example"))  # no token by mail
    token = welcome_token(api.client, link(api, "ada@lab.example", "/welcome"))
    me = api.client.get("/api/v1/me", headers=auth(token))
    assert me.json() == {"email": "ada@lab.example", "role": "researcher", "team": "engines"}
    again = api.client.post(approve, headers=maintainer_headers(api))
    assert again.status_code == 409


def test_the_welcome_link_works_once_and_the_verify_link_too(reg_api: Api) -> None:
    api = reg_api
    api.client.post("/api/v1/registrations", json=body())
    token = link(api, "ada@lab.example", "/register/verify")
    verify(api, "ada@lab.example")
    reused = api.client.get("/register/verify", params={"token": token})
    assert reused.status_code == 410 and "already used" in reused.text
    reg = registration_of(api, "ada@lab.example")
    api.client.post(f"/api/v1/admin/registrations/{reg['id']}/approve", headers=maintainer_headers(api))
    welcome = link(api, "ada@lab.example", "/welcome")
    welcome_token(api.client, welcome)
    page = api.client.get("/welcome", params={"token": welcome})
    csrf = re.search(r'name="csrf_token" value="([^"]+)"', page.text)
    assert csrf
    second = api.client.post("/welcome", data={"token": welcome, "csrf_token": csrf.group(1)})
    assert second.status_code == 410 and "csawm_" not in second.text


def test_an_expired_link_is_refused_and_changes_nothing(reg_api: Api) -> None:
    api = reg_api
    api.client.post("/api/v1/registrations", json=body())
    token = link(api, "ada@lab.example", "/register/verify")
    with api.db.transaction() as session:
        session.execute(update(Registration).values(verify_expires_at=utcnow() - timedelta(minutes=1)))
    page = api.client.get("/register/verify", params={"token": token})
    assert page.status_code == 410 and "expired" in page.text
    assert registration_of(api, "ada@lab.example")["state"] == "unverified"
    # An expired registration does not block a new one for the same address.
    assert api.client.post("/api/v1/registrations", json=body(team={"create": "engines2"})).status_code == 202
    assert "Confirm your email address" in mails_to(api, "ada@lab.example")[-1]["subject"]


def test_same_email_twice_and_a_known_email_get_the_same_202(reg_api: Api) -> None:
    api = reg_api
    user(api.db, "known@lab.example", team=None, role=Role.MAINTAINER)
    first = api.client.post("/api/v1/registrations", json=body())
    second = api.client.post("/api/v1/registrations", json=body(team={"create": "other"}))
    known = api.client.post(
        "/api/v1/registrations", json=body(email="Known@Lab.example", team={"create": "x"})
    )
    assert first.status_code == second.status_code == known.status_code == 202
    assert first.content == second.content == known.content
    with api.db.transaction(write=False) as session:
        assert session.scalars(select(Registration.email)).all() == ["ada@lab.example"]
    subjects = [m["subject"] for m in mails_to(api, "ada@lab.example")]
    assert subjects == ["Confirm your email address", "Your registration is already pending"]
    assert [m["subject"] for m in mails_to(api, "known@lab.example")] == ["You already have an account"]


@pytest.mark.parametrize(
    ("change", "status", "words"),
    [
        ({"email": "not-an-address"}, 400, "invalid email"),
        ({"email": "a@b@c.example"}, 400, "invalid email"),
        ({"orcid": "0000-0002-1825-0098"}, 400, "check digit"),
        ({"orcid": "0000-0002-1825"}, 400, "not an ORCID"),
        ({"answers": {"purpose": "x", "salary": "y"}}, 400, "unknown question ids: salary"),
        ({"answers": {}}, 400, "required questions not answered: purpose"),
        ({"answers": {"purpose": "x" * 5000}}, 400, "longer than 4000"),
        ({"answers": {"purpose": "x" * 1024**2}}, 413, ""),
        ({"team": {"create": "alpha"}}, 409, "is taken"),
        ({"team": {"join": "nobody"}}, 404, "no team named"),
        ({"team": {"create": "a", "join": "b"}}, 422, ""),
        ({"team": {"create": "bad/name"}}, 400, "invalid team name"),
        ({"name": "x\u202ey"}, 422, ""),
    ],
)
def test_bad_input_is_a_clear_4xx_and_creates_nothing(
    reg_api: Api, change: dict[str, Any], status: int, words: str
) -> None:
    api = reg_api
    member_token(api.db, "alpha", "a1@alpha.example")
    before = counts(api)
    answer = api.client.post("/api/v1/registrations", json=body(**change))
    assert answer.status_code == status, answer.text
    assert words in answer.text
    assert counts(api) == before


def test_a_team_name_claimed_by_a_pending_registration_is_taken(reg_api: Api) -> None:
    api = reg_api
    assert api.client.post("/api/v1/registrations", json=body()).status_code == 202
    other = api.client.post("/api/v1/registrations", json=body(email="bob@lab.example"))
    assert other.status_code == 409 and other.json()["error"]["reason"] == "team_taken"


def test_join_waits_for_a_member_and_the_team_size_holds(reg_api: Api) -> None:
    api = reg_api
    member = auth(member_token(api.db, "alpha", "a1@alpha.example"))
    outsider = auth(member_token(api.db, "beta", "b1@beta.example"))
    for email in ("c@lab.example", "d@lab.example"):
        assert (
            api.client.post(
                "/api/v1/registrations", json=body(email=email, team={"join": "alpha"})
            ).status_code
            == 202
        )
        verify(api, email)
        reg = registration_of(api, email)
        approved = api.client.post(
            f"/api/v1/admin/registrations/{reg['id']}/approve", headers=maintainer_headers(api)
        )
        assert approved.json()["state"] == "awaiting_team"
    requests = api.client.get("/api/v1/teams/me/join-requests", headers=member).json()
    assert [r["email"] for r in requests] == ["c@lab.example", "d@lab.example"]
    assert "answers" not in requests[0]
    assert api.client.get("/api/v1/teams/me/join-requests", headers=outsider).json() == []
    first, second = (r["id"] for r in requests)
    stolen = api.client.post(f"/api/v1/teams/me/join-requests/{first}/accept", headers=outsider)
    assert stolen.status_code == 404
    assert (
        api.client.post(f"/api/v1/teams/me/join-requests/{first}/accept", headers=member).status_code == 200
    )
    assert registration_of(api, "c@lab.example")["state"] == "approved"
    token = welcome_token(api.client, link(api, "c@lab.example", "/welcome"))
    assert api.client.get("/api/v1/me", headers=auth(token)).json()["team"] == "alpha"
    before = counts(api)
    full = api.client.post(f"/api/v1/teams/me/join-requests/{second}/accept", headers=member)
    assert full.status_code == 409 and "full" in full.text  # CSAWM_MAX_TEAM_SIZE=2
    assert counts(api) == before and registration_of(api, "d@lab.example")["state"] == "awaiting_team"
    declined = api.client.post(f"/api/v1/teams/me/join-requests/{second}/decline", headers=member)
    assert declined.status_code == 200
    reg = registration_of(api, "d@lab.example")
    assert reg["state"] == "rejected" and "declined" in reg["reason"]
    assert mails_to(api, "d@lab.example")[-1]["subject"] == "Your registration was not approved"
    full_now = api.client.post(
        "/api/v1/registrations", json=body(email="e@lab.example", team={"join": "alpha"})
    )
    assert full_now.status_code == 409 and full_now.json()["error"]["reason"] == "team_full"


def test_reject_with_a_reason_and_only_maintainers_decide(reg_api: Api) -> None:
    api = reg_api
    api.client.post("/api/v1/registrations", json=body())
    verify(api, "ada@lab.example")
    reg = registration_of(api, "ada@lab.example")
    researcher = auth(member_token(api.db, "alpha", "a1@alpha.example"))
    assert api.client.get("/api/v1/admin/registrations", headers=researcher).status_code == 403
    path = f"/api/v1/admin/registrations/{reg['id']}"
    assert api.client.post(f"{path}/approve", headers=researcher).status_code == 403
    assert (
        api.client.post(f"{path}/reject", json={"reason": ""}, headers=maintainer_headers(api)).status_code
        == 422
    )
    done = api.client.post(
        f"{path}/reject", json={"reason": "not a researcher"}, headers=maintainer_headers(api)
    )
    assert done.status_code == 200 and done.json()["state"] == "rejected"
    assert "not a researcher" in mails_to(api, "ada@lab.example")[-1]["text"]
    assert api.client.post(f"{path}/approve", headers=maintainer_headers(api)).status_code == 409
    states = api.client.get(
        "/api/v1/admin/registrations?state=rejected", headers=maintainer_headers(api)
    ).json()
    assert [r["id"] for r in states] == [reg["id"]]


def test_a_flood_from_one_address_is_429_and_holds_across_a_restart(tmp_path: Path, db_url: str) -> None:
    questions = tmp_path / "q.yaml"
    questions.write_text(QUESTIONS)
    settings = make_settings(tmp_path, db_url, registration_questions=questions, **MAIL)
    with running_api(settings) as api:
        for n in range(limits.PER_ADDRESS):
            answer = api.client.post(
                "/api/v1/registrations", json=body(email=f"u{n}@lab.example", team={"create": f"t{n}"})
            )
            assert answer.status_code == 202
        before = counts(api)
        flood = api.client.post("/api/v1/registrations", json=body(email="late@lab.example"))
        assert flood.status_code == 429 and int(flood.headers["Retry-After"]) > 0
        assert flood.json()["error"]["code"] == "rate_limited" and counts(api) == before
        bad = api.client.post("/api/v1/registrations", json=body(email="bad"))
        assert bad.status_code == 429  # bad input is counted too
        elsewhere = TestClient(api.client.app, client=("198.51.100.7", 40000))
        assert elsewhere.post("/api/v1/registrations", json=body(email="x@lab.example")).status_code == 202
    with running_api(settings) as api:  # a new process reads the same counters
        assert api.client.post("/api/v1/registrations", json=body(email="y@lab.example")).status_code == 429


def test_the_limit_in_all_counts_every_address(tmp_path: Path, db_url: str) -> None:
    with running_api(make_settings(tmp_path, db_url)) as api:
        now = utcnow().replace(minute=5)
        for n in range(limits.IN_ALL):
            limits.charge(api.db, f"203.0.113.{n % 250}:{n}", now)
        with pytest.raises(limits.RateLimited, match="in all"):
            limits.charge(api.db, "192.0.2.1", now)
        limits.charge(api.db, "192.0.2.1", now + timedelta(hours=1))  # the next window starts afresh


def test_counters_older_than_a_day_are_dropped_as_registrations_arrive(tmp_path: Path, db_url: str) -> None:
    """The counters table stays small: each registration prunes the windows of yesterday and before."""
    with running_api(make_settings(tmp_path, db_url)) as api:
        now = utcnow().replace(minute=5)
        limits.charge(api.db, "203.0.113.1", now - timedelta(days=2))
        limits.charge(api.db, "203.0.113.2", now - timedelta(hours=3))
        limits.charge(api.db, "203.0.113.3", now)
        with api.db.transaction(write=False) as session:
            kept = sorted(key for (key,) in session.execute(select(RateCounter.key)))
        assert kept == [
            "registration:addr:203.0.113.2",
            "registration:addr:203.0.113.3",
            "registration:all",
            "registration:all",
        ]


def test_a_broken_questions_file_is_a_clear_500_and_registers_nothing(
    tmp_path: Path, sqlite_url: str
) -> None:
    questions = tmp_path / "q.yaml"
    questions.write_text("- id: [unclosed\n")
    with running_api(make_settings(tmp_path, sqlite_url, registration_questions=questions, **MAIL)) as api:
        answer = api.client.post("/api/v1/registrations", json=body(answers={}))
        assert answer.status_code == 500 and str(questions) in answer.json()["error"]["message"]
        assert counts(api) == (0, 0, 0, 0)


def test_the_data_use_agreement_still_applies_to_a_registered_account(
    tmp_path: Path, sqlite_url: str
) -> None:
    dua = tmp_path / "dua.md"
    dua.write_text("# Agreement\n\nUse the data for research only.\n")
    with running_api(make_settings(tmp_path, sqlite_url, dua_file=dua, **MAIL)) as api:
        assert api.client.post("/api/v1/registrations", json=body(answers={})).status_code == 202
        verify(api, "ada@lab.example")
        reg = registration_of(api, "ada@lab.example")
        api.client.post(f"/api/v1/admin/registrations/{reg['id']}/approve", headers=maintainer_headers(api))
        token = welcome_token(api.client, link(api, "ada@lab.example", "/welcome"))
        upload = api.client.post("/api/v1/submissions?name=m", content=b"", headers=auth(token))
        assert upload.status_code == 403 and upload.json()["error"]["code"] == "agreement_required"
