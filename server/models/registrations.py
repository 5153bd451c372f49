"""Self-registration (issue 22 item 1): a request to join, its one-time links, and the rate counters.

A registration is the applicant's own text until a maintainer approves it; only then (and, for a
join, once a member of the team accepts) does a user exist. Its one-time links store the SHA-256 of
their token, never the token; a used or expired link has its hash cleared.
"""

from __future__ import annotations

import enum
from datetime import datetime

from sqlalchemy import JSON, ForeignKey, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from server.clock import utcnow
from server.models.base import Base, UTCDateTime, enum_column


class RegistrationState(enum.StrEnum):
    UNVERIFIED = "unverified"
    VERIFIED = "verified"
    AWAITING_TEAM = "awaiting_team"
    APPROVED = "approved"
    REJECTED = "rejected"


class TeamAction(enum.StrEnum):
    CREATE = "create"
    JOIN = "join"


class Registration(Base):
    __tablename__ = "registrations"

    id: Mapped[int] = mapped_column(primary_key=True)
    email: Mapped[str] = mapped_column(String(254), index=True)
    name: Mapped[str] = mapped_column(String(200))
    affiliation: Mapped[str] = mapped_column(String(300))
    orcid: Mapped[str | None] = mapped_column(String(19))
    team_action: Mapped[TeamAction] = mapped_column(enum_column(TeamAction, 10))
    team_name: Mapped[str] = mapped_column(String(100))
    answers: Mapped[dict[str, str]] = mapped_column(JSON)
    state: Mapped[RegistrationState] = mapped_column(enum_column(RegistrationState, 20), index=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    verified_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    decided_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    decided_by: Mapped[str | None] = mapped_column(String(254))
    reason: Mapped[str | None] = mapped_column(Text)
    user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    #: SHA-256 of the verification link's token; cleared once used.
    verify_hash: Mapped[str | None] = mapped_column(String(64), unique=True)
    verify_expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    #: SHA-256 of the welcome link's token (the page that shows the first API token once).
    welcome_hash: Mapped[str | None] = mapped_column(String(64), unique=True)
    welcome_expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class RateCounter(Base):
    """Requests counted per key (a client address, or ``*`` for all) in a fixed window: in the
    database so that a limit holds across processes and restarts."""

    __tablename__ = "rate_counters"
    __table_args__ = (UniqueConstraint("key", "window_start", name="uq_rate_counters_key_window"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    key: Mapped[str] = mapped_column(String(100))
    window_start: Mapped[datetime] = mapped_column(UTCDateTime, index=True)
    count: Mapped[int] = mapped_column(Integer, default=0)
