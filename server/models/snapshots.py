"""Frozen boards (issue 22 item 5): the exact JSON bytes of a board as it stood when a maintainer
froze it or its phase was revealed, kept with their SHA-256 so that a paper can cite them."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, LargeBinary, String
from sqlalchemy.orm import Mapped, deferred, mapped_column

from server.clock import utcnow
from server.models.base import Base, UTCDateTime


class BoardSnapshot(Base):
    """One frozen board. Never updated: `body` is what ``GET /api/v1/snapshots/{id}`` returns, byte
    for byte, and `sha256` its digest."""

    __tablename__ = "board_snapshots"

    id: Mapped[int] = mapped_column(primary_key=True)
    phase: Mapped[str] = mapped_column(String(64))
    reason: Mapped[str] = mapped_column(String(20))  # "admin" | "reveal"
    actor: Mapped[str] = mapped_column(String(254))
    actor_user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    sha256: Mapped[str] = mapped_column(String(64))
    body: Mapped[bytes] = deferred(mapped_column(LargeBinary, nullable=False))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
