"""The dispatcher: a bounded loop that claims due outbox rows, sends them and records each attempt.

`csawm serve` runs one in a thread (``CSAWM_EMBEDDED_DISPATCHER``, default on) and so does every
`csawm worker`; any number may run against one database (`server.notifications.outbox` explains why
none sends a row another holds). Each pass claims at most `batch` rows in one short transaction,
sends them outside any transaction, and settles each in its own. The claim's lease outlives a
send's timeouts, so a row is sent twice only when its dispatcher died or stalled past the lease
mid-send: delivery is at least once, with a stable delivery id for the receiver to deduplicate.
"""

from __future__ import annotations

import logging
import os
import secrets
import threading
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select

from server.clock import utcnow
from server.core.db import Database
from server.core.settings import Settings
from server.disclosure.disclose import viewer_of
from server.models import Channel, Delivery, User, Webhook
from server.notifications import events, mail, outbox, webhook
from server.notifications.outcome import Outcome

log = logging.getLogger("csawm.notifications")

BATCH = 20


def claim_lease(settings: Settings) -> timedelta:
    """How long a claim holds: the SMTP or HTTP steps of one send (each `webhook_timeout`) and slack."""
    return max(timedelta(seconds=60), settings.webhook_timeout * 6)


class Dispatcher:
    def __init__(
        self,
        settings: Settings,
        db: Database,
        *,
        name: str | None = None,
        poll_interval: timedelta | None = None,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self.settings = settings
        self.db = db
        self.name = name or f"dispatcher:{os.getpid()}:{secrets.token_hex(3)}"
        self.poll_interval = poll_interval or settings.poll_interval * 2
        self.clock = clock
        self.viewer = viewer_of(None, settings)  # who reads a notice: the team
        self.stop_event = threading.Event()
        self.thread: threading.Thread | None = None

    def run_once(self) -> int:
        """One pass: claim what is due now, send, settle. Returns how many rows were attempted."""
        now = self.clock()
        with self.db.transaction(write=False) as session:
            if not outbox.any_due(session, now):
                return 0
        with self.db.transaction() as session:
            claims = outbox.claim(session, now, limit=BATCH, lease=claim_lease(self.settings))
        for claim in claims:
            if self.stop_event.is_set():
                break  # the unsent claims expire and another pass (or dispatcher) takes them
            try:
                outcome = self._send(claim)
            except Exception as exc:  # a bug or bad data must still settle the row, never wedge it
                log.exception("delivery %s: send failed", claim.delivery_id)
                outcome = Outcome(ok=False, duration_ms=0, error=f"internal error: {type(exc).__name__}")
            with self.db.transaction() as session:
                kept = outbox.settle(
                    session,
                    claim,
                    outcome,
                    self.clock(),
                    max_attempts=self.settings.notify_max_attempts,
                    base=self.settings.notify_backoff,
                    cap=self.settings.notify_backoff_max,
                )
            if not kept:
                log.warning("delivery %s: claim lost while sending", claim.delivery_id)
        return len(claims)

    def _send(self, claim: outbox.Claim) -> Outcome:
        account: tuple[str, dict[str, Any]] | None = None
        with self.db.transaction(write=False) as session:
            row = session.get(Delivery, claim.delivery_id)
            if row is None:
                return Outcome(ok=False, duration_ms=0, error="the delivery was removed", permanent=True)
            if row.team_id is None:  # an account mail (registration): to one address, no team
                account = (row.target, dict(row.payload))
            body = events.body(row.payload, row.id, self.settings.effective_public_url, self.viewer)
            hook = session.get(Webhook, row.webhook_id) if row.webhook_id is not None else None
            channel, target, event = row.channel, row.target, row.event
            secret = hook.secret if hook is not None and hook.active else None
            member = (
                channel is Channel.EMAIL
                and row.team_id is not None
                and session.scalar(
                    select(User.id).where(User.email == target, *outbox.active_members(row.team_id))
                )
            )
        if account is not None:
            if not self.settings.mail.enabled or self.settings.mail.sender is None:
                return Outcome(ok=False, duration_ms=0, error="email is off (CSAWM_SMTP_HOST is not set)")
            sender = self.settings.mail.sender
            msg = mail.account_message(account[1], claim.delivery_id, sender=sender, to=account[0])
            return mail.send(self.settings, msg)
        if channel is Channel.EMAIL:
            if not member:  # deactivated, or gone from the team, since the notice was written
                gone = "the recipient is no longer an active member of the team"
                return Outcome(ok=False, duration_ms=0, error=gone, permanent=True)
            if not self.settings.mail.enabled or self.settings.mail.sender is None:
                return Outcome(ok=False, duration_ms=0, error="email is off (CSAWM_SMTP_HOST is not set)")
            return mail.send(self.settings, mail.message(body, sender=self.settings.mail.sender, to=target))
        if secret is None:
            return Outcome(ok=False, duration_ms=0, error="the webhook was removed", permanent=True)
        return webhook.post(
            target,
            secret,
            event,
            claim.delivery_id,
            webhook.encode(body),
            timeout_s=self.settings.webhook_timeout.total_seconds(),
            allow_private=self.settings.webhook_allow_private,
        )

    def run_forever(self) -> None:
        """Pass after pass until `stop`; an idle pass waits `poll_interval`; an error is logged and
        waited out, never fatal (the rows stay in the outbox)."""
        while not self.stop_event.is_set():
            try:
                busy = self.run_once()
            except Exception:
                log.exception("notification dispatcher %s: pass failed", self.name)
                busy = 0
            if not busy:
                self.stop_event.wait(self.poll_interval.total_seconds())

    def start_thread(self) -> None:
        self.thread = threading.Thread(target=self.run_forever, name=self.name, daemon=True)
        self.thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        self.stop_event.set()
        if self.thread is not None:
            self.thread.join(timeout)
