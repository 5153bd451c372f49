"""Registration in headless chromium (issue 22 item 1): the /register form, the verification link
from a real mail (aiosmtpd on loopback), the maintainer's approval on /admin, and the welcome page
that shows the first API token once."""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import uvicorn

from server.accounts import service as accounts
from server.app import create_app
from server.core.db import Database
from server.core.settings import Settings, load_settings
from server.models import Role
from server.notifications.dispatcher import Dispatcher
from tests.server.srvtest.notify import smtp_server

from .conftest import _free_port

pytestmark = pytest.mark.browser


@dataclass
class RegSite:
    url: str
    db: Database
    settings: Settings
    box: Any
    maintainer_token: str

    def mail_link(self, count: int, path: str) -> str:
        """Send what is due, wait for the `count`-th mail and return its link to `path`."""
        Dispatcher(self.settings, self.db).run_once()
        text = self.box.wait_for(count)[count - 1][1].get_payload(decode=True).decode()
        found = re.search(rf"{re.escape(self.url)}{re.escape(path)}\?token=\S+", text)
        assert found, text
        return found.group(0)


@pytest.fixture
def reg_site(tmp_path: Path) -> Iterator[RegSite]:
    questions = tmp_path / "questions.yaml"
    questions.write_text("- id: purpose\n  text: What will you use the test set for?\n  required: true\n")
    port = _free_port()
    with smtp_server() as (box, smtp_port):
        settings = load_settings(
            data_dir=tmp_path / "state",
            database_url=f"sqlite:///{tmp_path / 'state' / 'csawm.db'}",
            embedded_worker=False,
            embedded_dispatcher=False,
            registration_questions=questions,
            smtp_host="127.0.0.1",
            smtp_port=smtp_port,
            smtp_tls="none",
            smtp_sender="leaderboard@board.example",
            public_url=f"http://127.0.0.1:{port}",
        )
        app = create_app(settings, embedded_worker=False, migrate_on_start=True)
        server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
        thread = threading.Thread(target=server.run, daemon=True)
        thread.start()
        deadline = time.monotonic() + 60
        while not server.started:
            assert thread.is_alive() and time.monotonic() < deadline, "uvicorn did not start"
            time.sleep(0.05)
        try:
            db: Database = app.state.csawm.db
            with db.transaction() as session:
                accounts.create_user(
                    session, "maud@board.example", role=Role.MAINTAINER, team_name=None, actor="t"
                )
                _, token = accounts.issue_token(session, "maud@board.example", expires_in=None, actor="t")
            yield RegSite(f"http://127.0.0.1:{port}", db, settings, box, token)
        finally:
            server.should_exit = True
            thread.join(timeout=30)


def _fill(page: Any, orcid: str) -> None:
    page.get_by_label("Your name").fill("Ada Lovelace")
    page.get_by_label("Email address").fill("ada@lab.example")
    page.get_by_label("Affiliation").fill("Analytical Engines Lab")
    page.get_by_label("ORCID iD (optional)").fill(orcid)
    page.get_by_label("Team name").fill("Engines")
    page.get_by_label("What will you use the test set for?").fill("masking research")
    page.get_by_role("button", name="Register").click()
    page.wait_for_load_state("load")


def test_register_verify_approve_and_see_the_token_once(browser: Any, reg_site: RegSite) -> None:
    context = browser.new_context()
    page = context.new_page()
    page.set_default_timeout(20_000)
    page.goto(reg_site.url + "/register")
    _fill(page, "0000-0002-1825-0098")  # a wrong check digit: a clear error, the form kept
    assert "check digit is wrong" in page.get_by_role("alert").inner_text()
    assert page.get_by_label("Affiliation").input_value() == "Analytical Engines Lab"
    page.get_by_label("ORCID iD (optional)").fill("0000-0002-1825-0097")
    page.get_by_role("button", name="Register").click()
    page.wait_for_load_state("load")
    assert "a message with the next step is on its way" in page.get_by_role("status").inner_text()

    page.goto(reg_site.mail_link(1, "/register/verify"))
    assert "ada@lab.example is confirmed" in page.get_by_role("status").inner_text()

    staff = browser.new_context().new_page()
    staff.goto(reg_site.url + "/login?next=/admin")
    staff.get_by_label("API token").fill(reg_site.maintainer_token)
    staff.get_by_role("button", name="Log in").click()
    staff.wait_for_load_state("load")
    section = staff.locator("section[aria-labelledby=registrations-heading]")
    assert "ada@lab.example" in section.inner_text() and "masking research" in section.inner_text()
    section.get_by_role("button", name=re.compile(r"^Approve \d+$")).click()
    staff.wait_for_load_state("load")
    assert (
        "No registration waits for a decision."
        in staff.locator("section[aria-labelledby=registrations-heading]").inner_text()
    )

    welcome = reg_site.mail_link(2, "/welcome")
    page.goto(welcome)
    page.get_by_role("button", name="Show my API token").click()
    page.wait_for_load_state("load")
    token = page.locator("#api-token").inner_text()
    assert token.startswith("csawm_")
    page.goto(welcome)  # the link works once
    page.get_by_role("button", name="Show my API token").click()
    page.wait_for_load_state("load")
    assert (
        "already used" in page.get_by_role("alert").inner_text() and page.locator("#api-token").count() == 0
    )

    page.goto(reg_site.url + "/login?next=/team")
    page.get_by_label("API token").fill(token)
    page.get_by_role("button", name="Log in").click()
    page.wait_for_load_state("load")
    assert "Engines" in page.locator("h1").inner_text()
    context.close()
