"""Operations (issue 22): the maintenance pause and the compute-budget alerts already sent.

The pause is one row (``id = 1``) while intake or runs are paused; resuming deletes it (the audit
log keeps the history). It lives in the database so that it survives a restart and every server
process and worker reads the same one. A `ComputeAlert` row records that the maintainers were told
that a team used 80 % of its compute budget in a phase; its unique key makes the alert once-only
even when two runs of the team end at the same moment.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Boolean, ForeignKey, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from server.clock import utcnow
from server.models.base import Base, UTCDateTime


class Pause(Base):
    __tablename__ = "operations_pause"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, default=1)  # always 1: one pause at most
    intake: Mapped[bool] = mapped_column(Boolean, default=False)
    runs: Mapped[bool] = mapped_column(Boolean, default=False)
    message: Mapped[str] = mapped_column(Text, default="")
    set_by: Mapped[str] = mapped_column(String(254))
    set_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class ComputeAlert(Base):
    __tablename__ = "compute_alerts"
    __table_args__ = (UniqueConstraint("team_id", "phase", "percent", name="uq_compute_alerts_team_phase"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    team_id: Mapped[int] = mapped_column(ForeignKey("teams.id", ondelete="CASCADE"))
    phase: Mapped[str] = mapped_column(String(64))
    percent: Mapped[int] = mapped_column(Integer)
    used_s: Mapped[int] = mapped_column(Integer)
    budget_s: Mapped[int] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
