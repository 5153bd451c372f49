"""The maintainer pages in headless chromium (issue 23 item 7): a flagged run approved only with the
box ticked; a phase created and edited; a team, a user and a token (shown once) made and revoked; a
quota set; a re-scoring job followed on its page. A fresh server of its own (these forms change
phases and accounts, which the shared `site` of the other browser tests must not see)."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import uvicorn

from server.accounts import service as accounts
from server.app import create_app
from server.clock import iso, utcnow
from server.core.db import Database
from server.core.settings import load_settings
from server.models import ReviewState, Role, RunStatus, Submission, Team

from .conftest import _free_port
from .helpers import Site, login, screenshot

pytestmark = pytest.mark.browser
COPIED = "sha256:" + "e" * 64


@pytest.fixture(scope="module")
def site(synthetic_benchmark: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    """This module's server (it overrides the shared `site`, so `open_page` checks its origin)."""
    state = tmp_path_factory.mktemp("admin-site")
    settings = load_settings(
        data_dir=state, database_url=f"sqlite:///{state / 'csawm.db'}", embedded_worker=False,
        embedded_dispatcher=False, benchmark_dir=synthetic_benchmark, bootstrap_resamples=100,
    )  # fmt: skip
    app = create_app(settings, embedded_worker=False, migrate_on_start=True)
    port = _free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 60
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.05)
    try:
        db: Database = app.state.csawm.db
        tokens, ids = {}, {}
        with db.transaction() as session:
            for name in ("alpha", "copycat"):
                accounts.create_team(session, name, actor="t")
            for email, role in (("maud@x.org", Role.MAINTAINER), ("root@x.org", Role.ADMIN)):
                accounts.create_user(session, email, role=role, team_name=None, actor="t")
                tokens[email.split("@")[0]] = accounts.issue_token(
                    session, email, expires_in=None, actor="t"
                )[1]
            teams = {t.name: t.id for t in session.query(Team)}
            for key, team in (("original", "alpha"), ("copy", "copycat")):
                sub = Submission(
                    team_id=teams[team], name=key, phase=settings.phase, image_digest=COPIED,
                    status=RunStatus.SUCCEEDED, review_state=ReviewState.PENDING, finished_at=utcnow(),
                )  # fmt: skip
                session.add(sub)
                session.flush()
                ids[key] = sub.id
        yield Site(url=f"http://127.0.0.1:{port}", db=db, settings=settings, tokens=tokens, ids=ids)
    finally:
        server.should_exit = True
        thread.join(timeout=30)


def _state(site: Site, sub_id: int) -> ReviewState:
    with site.db.transaction(write=False) as session:
        sub = session.get(Submission, sub_id)
        assert sub is not None
        return sub.review_state


def test_a_flagged_run_is_approved_only_with_the_box_ticked(page: Any, site: Site) -> None:
    copy = site.ids["copy"]
    login(page, site, "maud", next_path="/admin")
    row = page.locator("tr", has=page.locator(f'a[href="/submissions/{copy}"]')).first
    assert "flag: same image" in row.inner_text()
    row.get_by_role("button", name="Record").click()
    page.wait_for_load_state("load")
    assert "the run is flagged (same image)" in page.get_by_role("alert").inner_text()
    assert _state(site, copy) == ReviewState.PENDING
    row = page.locator("tr", has=page.locator(f'a[href="/submissions/{copy}"]')).first
    row.get_by_label("Approve despite the flags").check()
    screenshot(page, "admin-flagged-approve")
    row.get_by_role("button", name="Record").click()
    page.wait_for_url("**/admin?reviewed=*")
    assert page.get_by_role("status").inner_text() == f"Submission {copy}: approve recorded."
    assert _state(site, copy) == ReviewState.APPROVED


def test_phase_account_token_and_quota_forms(open_page: Any, site: Site) -> None:
    maud, root = open_page(), open_page()
    login(maud, site, "maud", next_path="/admin/phases")
    form = maud.get_by_role("form", name="New phase")
    form.get_by_label("Name").fill("final-2030")
    form.get_by_label("Opens at").fill(iso(utcnow() + timedelta(days=2000)))
    form.get_by_label("Visibility").select_option("sealed")
    form.get_by_role("button", name="Create phase").click()
    maud.wait_for_load_state("load")
    assert maud.get_by_role("status").inner_text() == "Created phase final-2030."
    maud.locator("#phase-final-2030 summary").click()
    edit = maud.get_by_role("form", name="Edit phase final-2030")
    edit.get_by_label("Max selected").fill("4")
    edit.get_by_role("button", name="Save phase final-2030").click()
    maud.wait_for_load_state("load")
    assert maud.get_by_role("status").inner_text() == "Updated phase final-2030: max_selected."
    screenshot(maud, "admin-phases")
    assert maud.goto(site.url + "/admin/accounts").status == 403  # accounts are the admins'

    login(root, site, "root", next_path="/admin/accounts")
    root.get_by_role("form", name="New team").get_by_label("Team name").fill("gamma")
    root.get_by_role("button", name="Create team").click()
    root.wait_for_load_state("load")
    new_user = root.get_by_role("form", name="New user")
    new_user.get_by_label("Email").fill("g@gamma.org")
    new_user.get_by_label("Team (required for a researcher)").select_option("gamma")
    new_user.get_by_role("button", name="Create user").click()
    root.wait_for_load_state("load")
    assert "Created researcher g@gamma.org" in root.get_by_role("status").inner_text()
    issue = root.get_by_role("form", name="Issue a token")
    issue.get_by_label("For (email)").select_option("g@gamma.org")
    issue.get_by_role("button", name="Issue token").click()
    root.wait_for_load_state("load")
    token = root.locator("#new-token").inner_text()
    assert token.startswith("csawm_"), token
    screenshot(root, "admin-accounts-token")
    root.goto(site.url + "/admin/accounts")
    assert root.locator("#new-token").count() == 0 and token not in root.content()  # shown once
    row = root.locator("tr", has=root.get_by_text("g@gamma.org")).last
    row.get_by_role("button", name="Revoke token").click()
    root.wait_for_load_state("load")
    assert root.get_by_role("status").inner_text().startswith("Revoked token")

    root.goto(site.url + "/admin/quotas")
    quota = root.get_by_role("form", name="Quota of gamma")
    quota.get_by_label("per day").fill("4")
    quota.get_by_role("button", name="Save quota of gamma").click()
    root.wait_for_load_state("load")
    assert root.get_by_role("status").inner_text() == "Quota of gamma saved."
    with site.db.transaction(write=False) as session:
        assert session.query(Team).filter_by(name="gamma").one().quota_per_day == 4


def test_the_rescoring_page_follows_its_job(page: Any, site: Site) -> None:
    login(page, site, "maud", next_path="/admin/rescore")
    page.get_by_label("Submission ids").fill(f"{site.ids['original']} 424242")
    page.get_by_role("button", name="Start re-scoring").click()
    page.wait_for_load_state("load")
    assert "Re-scoring job 1 started." in page.get_by_role("status").first.inner_text()
    done = page.locator("#rescore-progress", has_text="finished")
    done.wait_for(timeout=60_000)  # the page reloads itself while the job runs
    assert "2 of 2 runs handled, 0 re-scored, 2 skipped" in done.inner_text()
    screenshot(page, "admin-rescore")
