"""The team's webhook endpoints, the delivery log (API and team page), and the review event."""

from __future__ import annotations

import html
import json
import re
from contextlib import AbstractContextManager
from pathlib import Path

from srvtest import factories as f
from srvtest.app import Api, make_settings, running_api
from srvtest.notify import Receiver, deliveries, scoring_run, serving, verify
from srvtest.web import web_login

from server.models import Role, RunStatus
from server.notifications.addresses import NOT_PUBLIC
from server.notifications.dispatcher import Dispatcher
from server.runs.transitions import transition

BASE = "/api/v1/teams/me"


def _api(tmp_path: Path, sqlite_url: str) -> AbstractContextManager[Api]:
    return running_api(make_settings(tmp_path, sqlite_url, webhook_allow_private=True))


def test_webhook_lifecycle_and_ping(tmp_path: Path, sqlite_url: str) -> None:
    with _api(tmp_path, sqlite_url) as api, serving(Receiver()) as receiver:
        alice = f.auth(f.member_token(api.db, "alpha", "alice@alpha.example"))
        eve = f.auth(f.member_token(api.db, "beta", "eve@beta.example"))
        made = api.client.post(f"{BASE}/webhooks", json={"url": receiver.url}, headers=alice)
        assert made.status_code == 201, made.text
        hook = made.json()
        assert hook["secret"].startswith("whsec_") and hook["url"] == receiver.url and hook["active"]
        listed = api.client.get(f"{BASE}/webhooks", headers=alice).json()
        assert listed == [{k: v for k, v in hook.items() if k != "secret"}]
        assert api.client.get(f"{BASE}/webhooks", headers=eve).json() == []
        assert api.client.delete(f"{BASE}/webhooks/{hook['id']}", headers=eve).status_code == 404
        assert api.client.post(f"{BASE}/webhooks/{hook['id']}/test", headers=eve).status_code == 404

        ping = api.client.post(f"{BASE}/webhooks/{hook['id']}/test", headers=alice)
        assert ping.status_code == 202 and ping.json()["state"] == "pending"
        assert Dispatcher(api.settings, api.db).run_once() == 1
        (got,) = receiver.wait_for(1)
        ts = int(got.headers["X-CSAWM-Timestamp"])
        assert verify(hook["secret"], ts, got.body, got.headers["X-CSAWM-Signature"])
        assert (
            json.loads(got.body)["event"] == "ping" and got.headers["X-CSAWM-Delivery"] == ping.json()["id"]
        )

        log = api.client.get(f"{BASE}/deliveries", headers=alice).json()
        assert [(d["id"], d["state"], d["attempts"]) for d in log] == [(ping.json()["id"], "delivered", 1)]
        assert log[0]["attempt_log"][0]["status_code"] == 204 and log[0]["attempt_log"][0]["ok"]
        assert api.client.get(f"{BASE}/deliveries", headers=eve).json() == []

        gone = api.client.delete(f"{BASE}/webhooks/{hook['id']}", headers=alice)
        assert gone.status_code == 200 and "secret" not in gone.json()
        assert api.client.get(f"{BASE}/webhooks", headers=alice).json() == []
        audit = [e["action"] for e in _audit(api)]
        assert "create_webhook" in audit and "delete_webhook" in audit


def _audit(api: Api) -> list[dict[str, object]]:
    admin = f.auth(f.user(api.db, "root@board.example", role=Role.ADMIN))
    result: list[dict[str, object]] = api.client.get("/api/v1/admin/audit", headers=admin).json()
    return result


def test_registration_refuses_private_addresses_without_the_setting(tmp_path: Path, sqlite_url: str) -> None:
    with running_api(make_settings(tmp_path, sqlite_url)) as api:
        alice = f.auth(f.member_token(api.db, "alpha", "alice@alpha.example"))
        for url in (
            "http://127.0.0.1:9/x", "http://169.254.169.254/", "http://[::1]/", "http://10.0.0.1/",
            "http://[2002:7f00:1::]/",  # 6to4 wrapping 127.0.0.1 (issue 19 item 8)
            "http://localhost:9/",
        ):  # fmt: skip
            r = api.client.post(f"{BASE}/webhooks", json={"url": url}, headers=alice)
            assert r.status_code == 400 and r.json()["error"]["code"] == "webhook_url_refused", url
            assert r.json()["error"]["message"] == NOT_PUBLIC, url  # never what the resolver said
        for url in ("http://exämple.org/", "http://example.org/\u2028", "http://example.org/\x85"):
            r = api.client.post(f"{BASE}/webhooks", json={"url": url}, headers=alice)
            assert r.status_code == 400 and "must be ASCII" in r.json()["error"]["message"], url
        r = api.client.post(f"{BASE}/webhooks", json={"url": "file:///etc/passwd"}, headers=alice)
        assert r.status_code == 400 and "http://" in r.json()["error"]["message"]
        assert api.client.get(f"{BASE}/webhooks", headers=alice).json() == []


def test_staff_without_a_team_and_anonymous_callers_are_refused(tmp_path: Path, sqlite_url: str) -> None:
    with running_api(make_settings(tmp_path, sqlite_url)) as api:
        maud = f.auth(f.user(api.db, "maud@board.example", role=Role.MAINTAINER))
        assert api.client.get(f"{BASE}/webhooks", headers=maud).status_code == 403
        assert api.client.get(f"{BASE}/deliveries", headers=maud).status_code == 403
        assert api.client.get(f"{BASE}/deliveries").status_code == 401


def test_a_team_has_at_most_ten_webhooks(tmp_path: Path, sqlite_url: str) -> None:
    with _api(tmp_path, sqlite_url) as api:
        alice = f.auth(f.member_token(api.db, "alpha", "alice@alpha.example"))
        codes = [
            api.client.post(
                f"{BASE}/webhooks", json={"url": f"http://127.0.0.1:9/{i}"}, headers=alice
            ).status_code
            for i in range(11)
        ]
        assert codes == [201] * 10 + [409]


def test_a_review_notifies_once_per_change(tmp_path: Path, sqlite_url: str) -> None:
    with _api(tmp_path, sqlite_url) as api:
        f.member_token(api.db, "alpha", "alice@alpha.example")
        maud = f.auth(f.user(api.db, "maud@board.example", role=Role.MAINTAINER))
        alice = f.auth(f.token(api.db, "alice@alpha.example"))
        api.client.post(f"{BASE}/webhooks", json={"url": "http://127.0.0.1:9/x"}, headers=alice)
        team_id = _team_id(api)
        sub = scoring_run(api.db, team_id)
        with api.db.transaction() as session:
            transition(session, sub, RunStatus.SUCCEEDED)
        url = f"/api/v1/admin/submissions/{sub}/review"
        assert api.client.post(url, json={"action": "approve"}, headers=maud).status_code == 200
        assert api.client.post(url, json={"action": "approve"}, headers=maud).status_code == 200  # no change
        hide = {"action": "hide", "reason": "duplicate entry"}
        assert api.client.post(url, json=hide, headers=maud).status_code == 200
        rows = deliveries(api.db)
        assert [r.event for r in rows] == ["run.finished", "run.reviewed", "run.reviewed"]
        assert [r.payload["review_state"] for r in rows] == ["pending", "approved", "hidden"]
        assert all("reason" not in json.dumps(r.payload) for r in rows)


def _team_id(api: Api) -> int:
    from sqlalchemy import select

    from server.models import Team

    with api.db.transaction(write=False) as session:
        return int(session.scalars(select(Team.id).where(Team.name == "alpha")).one())


def test_the_team_page_shows_the_delivery_log_escaped(tmp_path: Path, sqlite_url: str) -> None:
    with _api(tmp_path, sqlite_url) as api:
        token = f.member_token(api.db, "alpha", "alice@alpha.example")
        hostile = "http://127.0.0.1:9/<script>alert(1)</script>"
        made = api.client.post(f"{BASE}/webhooks", json={"url": hostile}, headers=f.auth(token))
        assert made.status_code == 201, made.text
        ping = api.client.post(f"{BASE}/webhooks/{made.json()['id']}/test", headers=f.auth(token)).json()
        Dispatcher(api.settings, api.db).run_once()  # port 9: refused, logged as a failed attempt
        web_login(api.client, token)
        page = api.client.get("/team").text
        title = re.search(r"<title>(.*?)</title>", page, re.DOTALL)
        assert title and "Notifications" not in title.group(1)
        assert page.count('<h2 id="deliveries-heading">') == 1
        page = page.split('<h2 id="deliveries-heading">', 1)[1]  # the delivery log section
        assert ping["id"] in page and "ping" in page and "pending" in page
        assert "<script>alert(1)</script>" not in page and html.escape("<script>alert(1)</script>") in page
        assert "ConnectionRefusedError" in page


def test_csawm_serve_runs_the_dispatcher(tmp_path: Path, sqlite_url: str) -> None:
    """The app's own dispatcher thread (the `csawm serve` default) delivers a ping unaided."""
    settings = make_settings(
        tmp_path, sqlite_url, webhook_allow_private=True, embedded_dispatcher=True, poll_interval=0.1
    )
    with running_api(settings) as api, serving(Receiver()) as receiver:
        alice = f.auth(f.member_token(api.db, "alpha", "alice@alpha.example"))
        hook = api.client.post(f"{BASE}/webhooks", json={"url": receiver.url}, headers=alice).json()
        ping = api.client.post(f"{BASE}/webhooks/{hook['id']}/test", headers=alice).json()
        (got,) = receiver.wait_for(1)
        assert got.headers["X-CSAWM-Delivery"] == ping["id"]
