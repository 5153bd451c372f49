"""The stored Ladder (issue 19 item 4): one append-only sequence of steps per team and phase.

Each step is decided once, when its run is scored (`server.phases.ladder_steps`), and never
changed: review actions, approval order and re-scores read the steps, they do not recompute them, so
nothing shown later can reveal a number the Ladder did not reveal when the run was scored.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Boolean, Float, ForeignKey, Integer, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from server.clock import utcnow
from server.models.base import Base, UTCDateTime


class LadderStepRow(Base):
    """What the Ladder showed after one scored run of a Ladder phase; `seq` orders a team's steps
    (1, 2, ...; unique per phase and team, so two runs scored at once still get one order)."""

    __tablename__ = "ladder_steps"
    __table_args__ = (UniqueConstraint("phase", "team_id", "seq", name="uq_ladder_steps_phase_team_seq"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    phase: Mapped[str] = mapped_column(String(64))
    team_id: Mapped[int] = mapped_column(ForeignKey("teams.id", ondelete="CASCADE"))
    submission_id: Mapped[int] = mapped_column(ForeignKey("submissions.id", ondelete="CASCADE"), unique=True)
    seq: Mapped[int] = mapped_column(Integer)
    displayed: Mapped[float | None] = mapped_column(Float)  # None before the team's first scored run
    moved: Mapped[bool] = mapped_column(Boolean)
    note: Mapped[str | None] = mapped_column(String(64))  # why it did not move; None when it moved
    # The team's best run this run was compared with (None for the first scored run).
    best_submission_id: Mapped[int | None] = mapped_column(ForeignKey("submissions.id", ondelete="SET NULL"))
    decided_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
