"""Acceptances of the data-use agreement, one row per user and version (issue 15)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from server.clock import utcnow
from server.models.base import Base, UTCDateTime


class AgreementAcceptance(Base):
    """User `user_id` accepted the agreement whose file had SHA-256 `version`.

    Rows are never updated: a new file is a new version, accepted in a new row, and the old rows
    stay as the record of what each user agreed to and when (the audit log has the same event).
    """

    __tablename__ = "agreement_acceptances"
    __table_args__ = (UniqueConstraint("user_id", "version", name="uq_agreement_acceptances_user_version"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    version: Mapped[str] = mapped_column(String(64))
    accepted_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
