"""The maintainer pages (issue 23 item 7) through the app: who may use them, CSRF, the audit entries
they leave, the refusals in the services' words (nothing changed), flag badges and the confirmed
approval, the phase columns, sealed selections, and the audit log's names."""

from __future__ import annotations

import html
from datetime import timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient
from srvtest import factories as f
from srvtest.app import Api
from srvtest.web import csrf_token, web_login

from server.clock import iso, utcnow
from server.models import (
    ApiToken,
    AuditEntry,
    Phase,
    ReviewState,
    Role,
    RunStatus,
    Submission,
    Team,
)

PAGES = {  # each page and one form post of it
    "/admin/phases": "/admin/phases",
    "/admin/rescore": "/admin/rescore",
    "/admin/accounts": "/admin/accounts/teams",
    "/admin/quotas": "/admin/quotas/alpha",
}
ADMIN_ONLY = ("/admin/accounts", "/admin/quotas")


def _browser(api: Api, token: str | None) -> TestClient:
    """A client of its own (its own cookies), logged in with `token` unless None."""
    client = TestClient(api.client.app)
    if token is not None:
        web_login(client, token)
    return client


def _post(client: TestClient, page: str, action: str, data: dict[str, str]) -> Any:
    """Post a form of `page` with that page's CSRF token, as the browser would (following the
    redirect of a success to the page that shows its notice)."""
    token = csrf_token(client.get(page).text)
    return client.post(action, data={"csrf_token": token, **data})


def said(response: Any) -> str:
    """A page's text as the reader sees it (entities such as ``&#39;`` decoded)."""
    return html.unescape(response.text)


def _audit(api: Api, action: str) -> list[AuditEntry]:
    with api.db.transaction(write=False) as session:
        rows = session.query(AuditEntry).filter_by(action=action).order_by(AuditEntry.id).all()
        session.expunge_all()
        return rows


@pytest.fixture
def staff(api: Api) -> dict[str, TestClient]:
    f.team(api.db, "alpha")
    return {
        "researcher": _browser(api, f.user(api.db, "r@alpha.org", team="alpha")),
        "maintainer": _browser(api, f.user(api.db, "m@x.org", role=Role.MAINTAINER)),
        "admin": _browser(api, f.user(api.db, "root@x.org", role=Role.ADMIN)),
    }


def test_pages_send_visitors_to_login_and_refuse_the_wrong_role(
    api: Api, staff: dict[str, TestClient]
) -> None:
    anonymous = _browser(api, None)
    for path, action in PAGES.items():
        r = anonymous.get(path, follow_redirects=False)
        assert r.status_code == 303 and r.headers["location"].startswith("/login?next="), path
        assert anonymous.post(action, data={}, follow_redirects=False).status_code == 303, action
        refused = staff["researcher"].get(path)
        assert refused.status_code == 403 and "This page needs the" in said(refused), path
        assert staff["admin"].get(path).status_code == 200, path
        assert staff["maintainer"].get(path).status_code == (403 if path in ADMIN_ONLY else 200), path
    # a researcher's post with a valid session and CSRF token is refused too, and changes nothing
    token = csrf_token(staff["researcher"].get("/team").text)
    r = staff["researcher"].post("/admin/accounts/teams", data={"csrf_token": token, "name": "sneaky"})
    assert r.status_code == 403
    r = staff["maintainer"].post("/admin/quotas/alpha", data={"csrf_token": token, "per_day": "99"})
    assert r.status_code == 403
    with api.db.transaction(write=False) as session:
        assert session.query(Team).filter_by(name="sneaky").count() == 0
        assert session.query(Team).filter_by(name="alpha").one().quota_per_day is None


def test_a_post_without_the_session_csrf_token_changes_nothing(
    api: Api, staff: dict[str, TestClient]
) -> None:
    admin = staff["admin"]
    admin.get("/admin/accounts")
    for data in ({"name": "beta"}, {"name": "beta", "csrf_token": "forged"}):
        r = admin.post("/admin/accounts/teams", data=data)
        assert r.status_code == 400, r.text
    other = _browser(api, f.user(api.db, "root2@x.org", role=Role.ADMIN))  # another session's token
    r = admin.post(
        "/admin/accounts/teams", data={"name": "beta", "csrf_token": csrf_token(other.get("/admin").text)}
    )
    assert r.status_code == 400
    with api.db.transaction(write=False) as session:
        assert session.query(Team).filter_by(name="beta").count() == 0
    assert _audit(api, "create_team")[-1].detail == {"name": "alpha"}  # only the fixture's team


def test_phase_forms_create_edit_and_reveal_through_the_service(
    api: Api, staff: dict[str, TestClient]
) -> None:
    m = staff["maintainer"]
    opens = utcnow() + timedelta(days=30)
    base = {"name": "final-2027", "opens_at": iso(opens), "visibility": "sealed", "test_set": "private"}
    bad = _post(m, "/admin/phases", "/admin/phases", {**base, "closes_at": iso(opens - timedelta(days=1))})
    assert bad.status_code == 400 and "must be after opens_at" in said(bad)
    no_zone = _post(m, "/admin/phases", "/admin/phases", {**base, "opens_at": "2027-03-01T00:00"})
    assert no_zone.status_code == 400 and "has no time zone; add Z or +HH:MM" in said(no_zone)
    sealed_ladder = _post(m, "/admin/phases", "/admin/phases", {**base, "ladder": "on"})
    assert sealed_ladder.status_code == 400 and "the Ladder is for live phases" in said(sealed_ladder)
    with api.db.transaction(write=False) as session:
        assert session.query(Phase).filter_by(name="final-2027").count() == 0
    made = _post(m, "/admin/phases", "/admin/phases", {**base, "closes_at": iso(opens + timedelta(days=7))})
    assert made.status_code == 200 and "Created phase final-2027." in said(made)
    overlap = _post(m, "/admin/phases", "/admin/phases", {**base, "name": "other", "opens_at": iso(opens)})
    assert overlap.status_code == 409 and "overlaps phase 'final-2027'" in said(overlap)

    form = {k: v for k, v in base.items() if k != "name"} | {"closes_at": iso(opens + timedelta(days=9))}
    edited = _post(m, "/admin/phases", "/admin/phases/final-2027", {**form, "max_selected": "3"})
    assert edited.status_code == 200 and "Updated phase final-2027: closes_at, max_selected." in said(edited)
    (update,) = _audit(api, "update_phase")
    assert update.actor == "m@x.org" and set(update.detail or {}) == {"closes_at", "max_selected"}
    early = _post(m, "/admin/phases", "/admin/phases/final-2027/reveal", {})
    assert early.status_code == 409 and "is still open; close it first" in said(early)

    with api.db.transaction() as session:  # the phase has run and closed
        row = session.query(Phase).filter_by(name="final-2027").one()
        row.opens_at, row.closes_at = utcnow() - timedelta(days=2), utcnow() - timedelta(seconds=1)
    page = m.get("/admin/phases").text
    assert 'action="/admin/phases/final-2027/reveal"' in page
    revealed = _post(m, "/admin/phases", "/admin/phases/final-2027/reveal", {})
    assert revealed.status_code == 200 and "Revealed phase final-2027" in said(revealed)
    (reveal,) = _audit(api, "reveal_phase")
    assert reveal.actor == "m@x.org"
    assert [e.actor for e in _audit(api, "create_phase")] == ["m@x.org"]


def test_accounts_forms_create_issue_once_and_revoke(api: Api, staff: dict[str, TestClient]) -> None:
    admin, page = staff["admin"], "/admin/accounts"
    assert _post(admin, page, "/admin/accounts/teams", {"name": "beta"}).status_code == 200
    dup = _post(admin, page, "/admin/accounts/teams", {"name": "beta"})
    assert dup.status_code == 409 and "team 'beta' already exists" in said(dup)
    unknown = _post(
        admin, page, "/admin/accounts/users", {"email": "b@beta.org", "role": "researcher", "team": "nosuch"}
    )
    assert unknown.status_code == 404 and "no team named 'nosuch'" in said(unknown)
    made = _post(
        admin, page, "/admin/accounts/users", {"email": "b@beta.org", "role": "researcher", "team": "beta"}
    )
    assert made.status_code == 200 and "Created researcher b@beta.org" in said(made)

    issued = _post(
        admin, page, "/admin/accounts/tokens", {"email": "b@beta.org", "expires_days": "7", "label": "x"}
    )
    assert issued.status_code == 200 and issued.headers["cache-control"] == "no-store"
    plaintext = issued.text.split('<code id="new-token">')[1].split("</code>")[0]
    assert api.client.get("/api/v1/me", headers=f.auth(plaintext)).json()["email"] == "b@beta.org"
    assert plaintext not in admin.get(page).text  # shown once
    with api.db.transaction(write=False) as session:
        token = session.query(ApiToken).order_by(ApiToken.id.desc()).first()
        assert token is not None and plaintext not in (token.token_hash, token.prefix, token.label)
        token_id = token.id
    (entry,) = [e for e in _audit(api, "issue_token") if e.target_id == str(token_id)]
    assert entry.actor == "root@x.org" and plaintext not in str(entry.detail)

    revoked = _post(admin, page, f"/admin/accounts/tokens/{token_id}/revoke", {})
    assert revoked.status_code == 200 and f"Revoked token {token_id}" in said(revoked)
    assert api.client.get("/api/v1/me", headers=f.auth(plaintext)).status_code == 401
    again = _post(admin, page, f"/admin/accounts/tokens/{token_id}/revoke", {})
    assert again.status_code == 409 and "was already revoked" in said(again)


def test_quota_form_sets_restores_and_refuses(api: Api, staff: dict[str, TestClient]) -> None:
    admin, page = staff["admin"], "/admin/quotas"
    ok = _post(
        admin, page, "/admin/quotas/alpha", {"per_day": "3", "per_week": "", "total": "7", "active": ""}
    )
    assert ok.status_code == 200 and "Quota of alpha saved." in said(ok)
    for bad, status, words in (
        ({"per_day": "-1"}, 400, "quota per_day must be >= 0, got -1"),
        ({"per_day": "lots"}, 400, "quota per_day must be a whole number"),
    ):
        r = _post(admin, page, "/admin/quotas/alpha", bad)
        assert r.status_code == status and words in said(r), r.text
    unknown = _post(admin, page, "/admin/quotas/nosuch", {"per_day": "1"})
    assert unknown.status_code == 404 and "no team named 'nosuch'" in said(unknown)
    with api.db.transaction(write=False) as session:
        team = session.query(Team).filter_by(name="alpha").one()
        assert (team.quota_per_day, team.quota_per_week, team.quota_total, team.quota_active) == (
            3,
            None,
            7,
            None,
        )
    cleared = _post(admin, page, "/admin/quotas/alpha", {"per_day": "", "total": ""})
    assert cleared.status_code == 200
    with api.db.transaction(write=False) as session:
        assert session.query(Team).filter_by(name="alpha").one().quota_per_day is None
    entries = _audit(api, "set_quota")
    assert [e.actor for e in entries[-2:]] == ["root@x.org"] * 2 and entries[-2].detail["per_day"] == 3  # type: ignore[index]


def _run(api: Api, team: str, name: str, digest: str, **values: Any) -> int:
    with api.db.transaction() as session:
        team_id = session.query(Team).filter_by(name=team).one().id
        sub = Submission(
            team_id=team_id, name=name, phase=values.pop("phase", api.settings.phase), image_digest=digest,
            status=RunStatus.SUCCEEDED, finished_at=utcnow(),
            **{"review_state": ReviewState.PENDING, **values},
        )  # fmt: skip
        session.add(sub)
        session.flush()
        return sub.id


def test_a_flagged_run_shows_its_badge_and_is_approved_only_when_confirmed(
    api: Api, staff: dict[str, TestClient]
) -> None:
    """The attacker resubmits another team's image; the maintainer must not approve it unseen."""
    f.team(api.db, "copycat")
    original = _run(api, "alpha", "original", "sha256:" + "a" * 64)
    copy = _run(api, "copycat", "copy", "sha256:" + "a" * 64)
    clean = _run(api, "alpha", "clean", "sha256:" + "b" * 64)
    m = staff["maintainer"]
    page = m.get("/admin").text
    row = page.split(f'<a href="/submissions/{copy}">copy</a>')[1].split("</tr>")[0]
    assert 'class="badge flag-badge"' in row and "flag: same image" in row
    assert f'id="confirm-{copy}-approve"' in page and f'id="confirm-{clean}-approve"' not in page
    plain = _post(m, "/admin", f"/admin/submissions/{copy}/review", {"action": "approve"})
    assert plain.status_code == 409 and "the run is flagged (same image)" in said(plain)
    forged = _post(
        m, "/admin", f"/admin/submissions/{copy}/review", {"action": "approve", "confirm_flags": "on"}
    )
    assert forged.status_code == 409
    ok = _post(m, "/admin", f"/admin/submissions/{clean}/review", {"action": "approve"})
    assert ok.status_code == 200 and f"Submission {clean}: approve recorded." in said(ok)  # no box needed
    with api.db.transaction(write=False) as session:
        assert session.get(Submission, copy).review_state == ReviewState.PENDING  # type: ignore[union-attr]
    done = _post(
        m, "/admin", f"/admin/submissions/{copy}/review", {"action": "approve", "confirm_flags": "yes"}
    )
    assert done.status_code == 200 and f"Submission {copy}: approve recorded." in said(done)
    with api.db.transaction(write=False) as session:
        assert session.get(Submission, copy).review_state == ReviewState.APPROVED  # type: ignore[union-attr]
        assert session.get(Submission, original).review_state == ReviewState.PENDING  # type: ignore[union-attr]


def test_phase_columns_sealed_selections_and_audit_names(api: Api, staff: dict[str, TestClient]) -> None:
    m, researcher = staff["maintainer"], staff["researcher"]
    made = _post(m, "/admin/phases", "/admin/phases", {
        "name": "final", "opens_at": "now", "visibility": "sealed", "test_set": "private",
    })  # fmt: skip
    assert made.status_code == 200, made.text
    approved = _run(api, "alpha", "old-run", "sha256:" + "c" * 64, review_state=ReviewState.APPROVED)
    final = _run(api, "alpha", "final-run", "sha256:" + "d" * 64, phase="final")
    token = f.token(api.db, "r@alpha.org")
    assert api.client.post(f"/api/v1/submissions/{final}/select", headers=f.auth(token)).status_code == 200

    console = m.get("/admin").text
    approved_row = console.split(f'<a href="/submissions/{approved}">{approved}</a>')[-1].split("</tr>")[0]
    assert f"<td>{api.settings.phase}</td>" in approved_row
    sealed = console.split('data-phase="final"')[1].split("</table>")[0]
    assert "alpha" in sealed and f'href="/submissions/{final}"' in sealed and "final-run" in sealed
    team_page = researcher.get("/teams/alpha").text
    assert "<td>final</td>" in team_page and f"<td>{api.settings.phase}</td>" in team_page

    with api.db.transaction(write=False) as session:
        final_id = session.query(Phase).filter_by(name="final").one().id
        alpha_id = session.query(Team).filter_by(name="alpha").one().id
    audit = console.split('id="audit-heading"')[1]
    assert f'phase {final_id} <span class="audit-name">(final)</span>' in audit
    assert f'team {alpha_id} <span class="audit-name">(alpha)</span>' in audit
    with api.db.transaction() as session:  # a deleted thing keeps its id alone
        session.query(Phase).filter_by(name="final").delete()
    audit = m.get("/admin").text.split('id="audit-heading"')[1]
    assert f"phase {final_id}</td>" in audit and "(final)" not in audit


def test_rescoring_without_a_test_set_is_refused_in_the_commands_words(
    api: Api, staff: dict[str, TestClient]
) -> None:
    r = _post(staff["maintainer"], "/admin/rescore", "/admin/rescore", {"scope": "all"})
    assert r.status_code == 400 and "CSAWM_BENCHMARK_DIR is not set: re-scoring needs the test set" in said(r)
    bad = _post(staff["maintainer"], "/admin/rescore", "/admin/rescore", {"scope": "ids", "ids": "7; DROP"})
    assert bad.status_code == 400 and "give submission ids (numbers" in said(bad)
    assert _audit(api, "start_rescore") == []


def test_a_success_redirects_and_a_forged_notice_shows_nothing(
    api: Api, staff: dict[str, TestClient]
) -> None:
    m = staff["maintainer"]
    token = csrf_token(m.get("/admin/phases").text)
    form = {"csrf_token": token, "name": "later", "opens_at": "2031-01-01T00:00Z"}
    r = m.post("/admin/phases", data=form, follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"].startswith("/admin/phases?notice=")
    assert "Created phase later." in said(m.get(r.headers["location"]))  # a reload posts nothing again
    forged = m.get("/admin/phases", params={"notice": "Phase deleted: call +1 555 to restore"})
    assert forged.status_code == 200 and "call +1 555" not in forged.text
