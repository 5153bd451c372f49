"""The durable outbox: write notices inside the state change's transaction; claim and settle them.

`enqueue` is called where a run reaches a terminal status (`server.runs.transitions.transition`)
and where a review changes a submission's state (`server.review.service.review`), with the same
session: if that transaction rolls back, no notice exists; if it commits, the notice does, and a
dispatcher will send it even after a crash. One row per target: each active webhook of the team,
and each member's address when email is on (not a deactivated account's: `active_members`).

Email is on when the session says so (``session.info[EMAIL_INFO_KEY]``, set by
`server.core.db.Database.connect` from ``CSAWM_SMTP_HOST``): the state-change code needs no settings.

Claiming (`claim`) is a compare-and-set update on a row that is due and unclaimed (or whose claim
expired), with a fresh random claim token; settling (`settle`) updates only a row still holding that
token. Two dispatchers, in one process or many, on SQLite or PostgreSQL, never hold one row at
once, and a delivered row is never claimed again.
"""

from __future__ import annotations

import random
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import ColumnElement, and_, or_, select, update
from sqlalchemy.orm import Session

from server.clock import utcnow
from server.models import Channel, Delivery, DeliveryAttempt, Role, Submission, Team, User, Webhook
from server.notifications.events import Event, ping_payload, run_payload
from server.notifications.outcome import Outcome

EMAIL_INFO_KEY = "csawm.notify_email"
JITTER = 0.1  # a retry waits up to 10% longer than its backoff, so retries of one outage spread out


def new_delivery_id() -> str:
    return "dlv_" + secrets.token_urlsafe(18)


def email_enabled(session: Session) -> bool:
    return bool(session.info.get(EMAIL_INFO_KEY, False))


def active_members(team_id: int) -> tuple[ColumnElement[bool], ...]:
    """The users who get a team's mail: its members whose account is not deactivated."""
    return (User.team_id == team_id, User.deactivated_at.is_(None))


def _save(session: Session, now: datetime, rows: list[dict[str, Any]]) -> list[Delivery]:
    """One `Delivery` per dict of columns, due `now`, in the caller's transaction (flushed)."""
    deliveries = [Delivery(id=new_delivery_id(), created_at=now, next_attempt_at=now, **row) for row in rows]
    session.add_all(deliveries)
    session.flush()
    return deliveries


def enqueue(session: Session, sub: Submission, event: Event) -> list[Delivery]:
    """Write the notices of `event` for `sub`'s team in the caller's transaction (flushed, not committed)."""
    team = session.get(Team, sub.team_id)
    if team is None:
        return []
    now = utcnow()
    common = {
        "team_id": team.id,
        "event": event.value,
        "submission_id": sub.id,
        "payload": run_payload(sub, team.name, event, now),
    }
    rows = [
        {**common, "channel": Channel.WEBHOOK, "webhook_id": hook.id, "target": hook.url}
        for hook in session.scalars(
            select(Webhook).where(Webhook.team_id == team.id, Webhook.active.is_(True)).order_by(Webhook.id)
        )
    ]
    if email_enabled(session):
        rows += [
            {**common, "channel": Channel.EMAIL, "target": email}
            for email in session.scalars(select(User.email).where(*active_members(team.id)).order_by(User.id))
        ]
    return _save(session, now, rows)


def enqueue_maintainers(
    session: Session, team_id: int, event: str, payload: dict[str, Any]
) -> list[Delivery]:
    """Mail a notice about team `team_id` to every active maintainer and admin (when email is on),
    in the caller's transaction: e.g. a team at 80 % of its compute budget (server/operations)."""
    if not email_enabled(session):
        return []
    staff = session.scalars(
        select(User.email)
        .where(User.role.in_((Role.MAINTAINER, Role.ADMIN)), User.deactivated_at.is_(None))
        .order_by(User.id)
    )
    row = {"team_id": team_id, "channel": Channel.EMAIL, "event": event, "payload": payload}
    return _save(session, utcnow(), [{**row, "target": email} for email in staff])


ACCOUNT_EVENT = "account.mail"
SENT_TEXT = "(sent; the text is not kept: it may have held a one-time link)"


def enqueue_account_mail(session: Session, to: str, subject: str, text: str) -> Delivery:
    """A mail to one address that belongs to no team (registration: verify, welcome, decisions).

    Sent like any notice (retries, backoff, attempts recorded); the text may hold a one-time link,
    so `settle` drops it once delivered: the link's token does not outlive its delivery in the outbox.
    """
    row = {"channel": Channel.EMAIL, "target": to, "event": ACCOUNT_EVENT}
    return _save(session, utcnow(), [{**row, "payload": {"subject": subject, "text": text}}])[0]


def enqueue_ping(session: Session, hook: Webhook, team_name: str) -> Delivery:
    now = utcnow()
    row = {
        "team_id": hook.team_id,
        "channel": Channel.WEBHOOK,
        "webhook_id": hook.id,
        "target": hook.url,
        "event": Event.PING.value,
        "payload": ping_payload(team_name, now),
    }
    return _save(session, now, [row])[0]


def _due(now: datetime) -> ColumnElement[bool]:
    return and_(
        Delivery.delivered_at.is_(None),
        Delivery.dead_at.is_(None),
        Delivery.next_attempt_at <= now,
        or_(Delivery.claim_expires_at.is_(None), Delivery.claim_expires_at <= now),
    )


def any_due(session: Session, now: datetime) -> bool:
    """A read-only look first, so an idle dispatcher never takes SQLite's write lock."""
    return session.scalar(select(Delivery.id).where(_due(now)).limit(1)) is not None


@dataclass(frozen=True)
class Claim:
    delivery_id: str
    token: str


def claim(session: Session, now: datetime, *, limit: int, lease: timedelta) -> list[Claim]:
    """Claim up to `limit` due rows, oldest due first; each claim is its own compare-and-set."""
    candidates = session.scalars(
        select(Delivery.id).where(_due(now)).order_by(Delivery.next_attempt_at, Delivery.id).limit(limit)
    ).all()
    claims = []
    for delivery_id in candidates:
        token = secrets.token_hex(16)
        taken = session.execute(
            update(Delivery)
            .where(Delivery.id == delivery_id, _due(now))
            .values(claimed_by=token, claim_expires_at=now + lease)
            .execution_options(synchronize_session=False)
        )
        if taken.rowcount == 1:  # type: ignore[attr-defined]
            claims.append(Claim(delivery_id, token))
    return claims


def backoff(attempts: int, base: timedelta, cap: timedelta, rng: random.Random | None = None) -> timedelta:
    """Wait after the `attempts`-th failure: ``min(base * 2^(attempts-1), cap) * (1 + U(0, JITTER))``."""
    wait: timedelta = min(base * (2 ** max(attempts - 1, 0)), cap)
    factor: float = 1 + (rng or random).uniform(0, JITTER)
    return wait * factor


def settle(
    session: Session,
    claim_: Claim,
    outcome: Outcome,
    now: datetime,
    *,
    max_attempts: int,
    base: timedelta,
    cap: timedelta,
) -> bool:
    """Record the attempt and move the row on; False when the claim was lost (nothing but the attempt
    is written then: whoever holds the row now decides its fate)."""
    row = session.get(Delivery, claim_.delivery_id, populate_existing=True)
    if row is None:
        return False
    number = row.attempts + 1
    session.add(
        DeliveryAttempt(
            delivery_id=row.id,
            number=number,
            at=now,
            status_code=outcome.status_code,
            error=outcome.error,
            duration_ms=outcome.duration_ms,
            ok=outcome.ok,
        )
    )
    values: dict[str, object] = {"attempts": number, "claimed_by": None, "claim_expires_at": None}
    if outcome.ok:
        values.update(delivered_at=now, last_error=None)
        if row.team_id is None:
            values["payload"] = {"subject": row.payload.get("subject"), "text": SENT_TEXT}
    else:
        values["last_error"] = outcome.error
        if outcome.permanent or number >= max_attempts:
            values["dead_at"] = now
        else:
            values["next_attempt_at"] = now + backoff(number, base, cap)
    done = session.execute(
        update(Delivery)
        .where(Delivery.id == row.id, Delivery.claimed_by == claim_.token)
        .values(**values)
        .execution_options(synchronize_session=False)
    )
    return bool(done.rowcount == 1)  # type: ignore[attr-defined]


def team_deliveries(session: Session, team_id: int, *, limit: int, offset: int) -> Sequence[Delivery]:
    return session.scalars(
        select(Delivery)
        .where(Delivery.team_id == team_id)
        .order_by(Delivery.created_at.desc(), Delivery.id)
        .limit(limit)
        .offset(offset)
    ).all()


def attempts_of(session: Session, delivery_ids: Sequence[str]) -> dict[str, list[DeliveryAttempt]]:
    found: dict[str, list[DeliveryAttempt]] = {i: [] for i in delivery_ids}
    if delivery_ids:
        for attempt in session.scalars(
            select(DeliveryAttempt)
            .where(DeliveryAttempt.delivery_id.in_(delivery_ids))
            .order_by(DeliveryAttempt.id)
        ):
            found[attempt.delivery_id].append(attempt)
    return found
