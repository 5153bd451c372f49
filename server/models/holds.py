"""Team holds (issue 19): a team whose runs wait for a maintainer before any of them is leased.

A row exists while the team is held; releasing deletes it (the audit log keeps the history). The
hold is per team, not per image digest: one extra layer gives an image a new digest.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from server.clock import utcnow
from server.models.base import Base, UTCDateTime


class TeamHold(Base):
    """Why and since when a team's queued runs are not leased; `submission_id` is the run that
    caused it (a scorer crash), None for a maintainer's own hold."""

    __tablename__ = "team_holds"

    team_id: Mapped[int] = mapped_column(ForeignKey("teams.id", ondelete="CASCADE"), primary_key=True)
    reason: Mapped[str] = mapped_column(Text)
    submission_id: Mapped[int | None] = mapped_column(Integer)
    held_by: Mapped[str] = mapped_column(String(254))  # a maintainer's email, cli:<user> or worker:<name>
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
