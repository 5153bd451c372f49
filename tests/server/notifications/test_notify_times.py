"""Issue 19 item 3: a notice tells the team when a run ended only as ``CSAWM_HIDDEN_RUNTIME`` allows.

A run's end is a time the model chose on the hidden images. The webhook's ``occurred_at``, the mail's
``at:`` line and the times of the team's delivery log (API and team page) are rounded down to the
minute unless the level is ``submitters``; a maintainer's page keeps them exact.
"""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path

import pytest
from srvtest import factories as f
from srvtest.app import make_settings, running_api
from srvtest.notify import (
    Receiver,
    add_webhook,
    deliveries,
    scoring_run,
    serving,
    smtp_server,
    team_with_members,
)
from srvtest.web import page_times, web_login

from server.clock import iso
from server.models import Role, RunStatus
from server.notifications.dispatcher import Dispatcher
from server.runs.transitions import transition


def _at(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


def _minute(value: datetime) -> datetime:
    return value.replace(second=0, microsecond=0)


@pytest.mark.parametrize("level", ["maintainers", "coarse", "submitters"])
def test_notices_and_the_delivery_log_give_a_run_end_as_the_level_allows(
    tmp_path: Path, sqlite_url: str, level: str
) -> None:
    with smtp_server() as (box, port), serving(Receiver()) as receiver:
        settings = make_settings(
            tmp_path,
            sqlite_url,
            hidden_runtime=level,
            webhook_allow_private=True,  # the receiver is on 127.0.0.1
            smtp_host="127.0.0.1",
            smtp_port=port,
            smtp_tls="none",
            smtp_sender="leaderboard@board.example",
        )
        with running_api(settings) as api:
            team = team_with_members(api.db, "alpha", ["ann@alpha.example"])
            add_webhook(api.db, team, receiver.url)
            token = f.token(api.db, "ann@alpha.example")
            staff = f.user(api.db, "m@x.org", role=Role.MAINTAINER)
            sub = scoring_run(api.db, team)
            with api.db.transaction() as session:
                transition(session, sub, RunStatus.FAILED, error_code="oom")
            stored = deliveries(api.db)
            exact = _at(stored[0].payload["occurred_at"])
            assert Dispatcher(api.settings, api.db).run_once() == 2
            (hook,) = receiver.wait_for(1)
            ((_, mail),) = box.wait_for(1)
            log = api.client.get("/api/v1/teams/me/deliveries", headers=f.auth(token)).json()
            web_login(api.client, token)
            team_page = api.client.get("/team").text
            api.client.cookies.clear()
            web_login(api.client, staff)
            staff_page = api.client.get("/teams/alpha").text

    shown = exact if level == "submitters" else _minute(exact)
    assert _at(json.loads(hook.body)["occurred_at"]) == shown
    assert f"at:           {iso(shown)}" in mail.get_payload(decode=True).decode()
    times = [_at(d[k]) for d in log for k in ("created_at", "delivered_at") if d[k]]
    times += [_at(a["at"]) for d in log for a in d["attempt_log"]]
    assert len(times) == 6  # the webhook and the mail: queued, delivered, one attempt each
    if level == "submitters":
        assert any(t != _minute(t) for t in times)
    else:
        assert all(t == _minute(t) for t in times)
    # the team page shows the API's times; a maintainer's the stored ones
    assert sorted(page_times(team_page)) == sorted(_at(d["created_at"]) for d in log)
    assert sorted(page_times(staff_page)) == sorted(row.created_at for row in stored)
