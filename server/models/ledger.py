"""The quota ledger and the audit log: append-only rows with a reason."""

from __future__ import annotations

import enum
from datetime import datetime
from typing import Any

from sqlalchemy import JSON, ForeignKey, Index, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from server.clock import utcnow
from server.models.base import Base, UTCDateTime, enum_column


class LedgerKind(enum.StrEnum):
    CHARGE = "charge"
    REFUND = "refund"


class QuotaEntry(Base):
    """A charge (one submission slot) or the refund of one charge (`refund_of` = the charge's id).

    A charge counts against the windows it falls into by its own `created_at` until refunded.
    """

    __tablename__ = "quota_ledger"
    __table_args__ = (Index("ix_quota_ledger_team_created", "team_id", "created_at"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    team_id: Mapped[int] = mapped_column(ForeignKey("teams.id", ondelete="RESTRICT"))
    submission_id: Mapped[int | None] = mapped_column(
        ForeignKey("submissions.id", ondelete="SET NULL"), index=True
    )
    kind: Mapped[LedgerKind] = mapped_column(enum_column(LedgerKind, 10))
    refund_of: Mapped[int | None] = mapped_column(ForeignKey("quota_ledger.id"), unique=True)
    phase: Mapped[str] = mapped_column(String(64))
    reason: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class AuditEntry(Base):
    """One maintainer or admin action. `actor` is a user email or ``cli:<os user>``."""

    __tablename__ = "audit_log"

    id: Mapped[int] = mapped_column(primary_key=True)
    actor: Mapped[str] = mapped_column(String(254))
    actor_user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    action: Mapped[str] = mapped_column(String(64), index=True)
    target_type: Mapped[str] = mapped_column(String(32))
    target_id: Mapped[str] = mapped_column(String(64))
    reason: Mapped[str | None] = mapped_column(Text)
    detail: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, index=True)
