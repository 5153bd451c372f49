"""Registration end to end with a real SMTP server on loopback (aiosmtpd): the links are followed
from the mails as they arrive, and a delivered mail's one-time link does not stay in the outbox."""

from __future__ import annotations

import re
from pathlib import Path

from sqlalchemy import select
from srvtest.app import make_settings, running_api
from srvtest.factories import auth, user
from srvtest.notify import smtp_server
from srvtest.registration import body, welcome_token

from server.models import Delivery, Role
from server.notifications.dispatcher import Dispatcher

SMTP = {"smtp_tls": "none", "smtp_sender": "leaderboard@board.example", "public_url": "https://board.example"}


def test_register_verify_approve_welcome_over_smtp(tmp_path: Path, db_url: str) -> None:
    with (
        smtp_server() as (box, port),
        running_api(make_settings(tmp_path, db_url, smtp_host="127.0.0.1", smtp_port=port, **SMTP)) as api,
    ):
        maint = auth(user(api.db, "maint@board.example", role=Role.MAINTAINER))
        dispatcher = Dispatcher(api.settings, api.db)
        assert api.client.post("/api/v1/registrations", json=body(answers={})).status_code == 202
        assert dispatcher.run_once() == 1
        ((rcpts, verify_mail),) = box.wait_for(1)
        assert (
            rcpts == ["ada@lab.example"] and verify_mail["Subject"] == "[CSAW-M] Confirm your email address"
        )
        text = verify_mail.get_payload(decode=True).decode()
        verify_path = re.search(r"https://board\.example(/register/verify\?token=\S+)", text)
        assert verify_path, text
        page = api.client.get(verify_path.group(1))
        assert page.status_code == 200 and "ada@lab.example is confirmed" in page.text
        (reg,) = api.client.get("/api/v1/admin/registrations", headers=maint).json()
        assert (
            api.client.post(f"/api/v1/admin/registrations/{reg['id']}/approve", headers=maint).status_code
            == 200
        )
        assert dispatcher.run_once() == 1
        welcome_mail = box.wait_for(2)[1][1]
        assert welcome_mail["Subject"] == "[CSAW-M] Your registration was approved"
        text = welcome_mail.get_payload(decode=True).decode()
        assert "csawm_" not in text  # no API token is ever mailed
        found = re.search(r"https://board\.example/welcome\?token=(\S+)", text)
        assert found, text
        with api.db.transaction(write=False) as session:  # delivered: the links are gone from the outbox
            texts = [d.payload["text"] for d in session.scalars(select(Delivery))]
        assert texts and all("token=" not in t for t in texts)
        token = welcome_token(api.client, found.group(1))
        assert api.client.get("/api/v1/me", headers=auth(token)).json()["team"] == "engines"
        # A second registration with the same address: the same 202, and a mail that says why.
        again = body(answers={}, team={"create": "engines-2"})
        assert api.client.post("/api/v1/registrations", json=again).status_code == 202
        dispatcher.run_once()
        assert box.wait_for(3)[2][1]["Subject"] == "[CSAW-M] You already have an account"
