"""Notifications (issue 15 item 6): a team's webhooks, the durable outbox, and every delivery attempt.

An outbox row is written in the same transaction as the state change it reports (a run's ending, a
review), so the notice exists exactly when the change does. Dispatchers claim due rows with a lease
and a compare-and-set update, send, and record each attempt; a delivered row is never sent again.
"""

from __future__ import annotations

import enum
from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Boolean, ForeignKey, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from server.clock import utcnow
from server.models.base import Base, UTCDateTime, enum_column


class Channel(enum.StrEnum):
    WEBHOOK = "webhook"
    EMAIL = "email"


class Webhook(Base):
    """A team's receiver. `secret` keys the HMAC signature; it is shown to the team once, at creation."""

    __tablename__ = "team_webhooks"

    id: Mapped[int] = mapped_column(primary_key=True)
    team_id: Mapped[int] = mapped_column(ForeignKey("teams.id", ondelete="CASCADE"), index=True)
    url: Mapped[str] = mapped_column(String(2000))
    secret: Mapped[str] = mapped_column(String(100))
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class Delivery(Base):
    """One notice to one target (a webhook URL or an email address): the outbox row.

    Due when ``delivered_at`` and ``dead_at`` are null and ``next_attempt_at`` has passed; a
    dispatcher owns it while ``claimed_by`` is set and ``claim_expires_at`` is in the future.
    """

    __tablename__ = "notification_deliveries"
    __table_args__ = (Index("ix_notification_deliveries_due", "delivered_at", "dead_at", "next_attempt_at"),)

    id: Mapped[str] = mapped_column(String(40), primary_key=True)  # random, sent as X-CSAWM-Delivery
    #: Null for an account mail (registration), which goes to one address, not to a team.
    team_id: Mapped[int | None] = mapped_column(ForeignKey("teams.id", ondelete="CASCADE"), index=True)
    channel: Mapped[Channel] = mapped_column(enum_column(Channel, 20))
    webhook_id: Mapped[int | None] = mapped_column(ForeignKey("team_webhooks.id", ondelete="SET NULL"))
    target: Mapped[str] = mapped_column(String(2000))  # the URL or the address, as it was at enqueue
    event: Mapped[str] = mapped_column(String(40))
    submission_id: Mapped[int | None] = mapped_column(Integer)
    payload: Mapped[dict[str, Any]] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    delivered_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    dead_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    last_error: Mapped[str | None] = mapped_column(Text)
    claimed_by: Mapped[str | None] = mapped_column(String(100))  # a random token per claim
    claim_expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class DeliveryAttempt(Base):
    """One try at a delivery: the HTTP status (or SMTP reply code) or the error, and how long it took."""

    __tablename__ = "notification_attempts"

    id: Mapped[int] = mapped_column(primary_key=True)
    delivery_id: Mapped[str] = mapped_column(
        ForeignKey("notification_deliveries.id", ondelete="CASCADE"), index=True
    )
    number: Mapped[int] = mapped_column(Integer)
    at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    status_code: Mapped[int | None] = mapped_column(Integer)
    error: Mapped[str | None] = mapped_column(Text)
    duration_ms: Mapped[int] = mapped_column(Integer)
    ok: Mapped[bool] = mapped_column(Boolean)
