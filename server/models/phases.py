"""Competition phases (issue 15): a window with its own test set, quota, visibility and Ladder.

Every phase is a row: migration ``0010_phase_rows`` made one for each name the stored submissions
use and, on a server without phases, one for ``CSAWM_PHASE`` (live, private, no Ladder, open since
always until the next phase opens). `PhaseSelection` records the runs a team picked for the ranking
of a sealed phase.
"""

from __future__ import annotations

import enum
from datetime import datetime

from sqlalchemy import Boolean, Float, ForeignKey, Index, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from server.clock import utcnow
from server.models.base import Base, UTCDateTime, enum_column


class TestSet(enum.StrEnum):
    __test__ = False  # not a pytest test class, despite the name

    PRIVATE = "private"
    PUBLIC = "public"


class Visibility(enum.StrEnum):
    LIVE = "live"
    SEALED = "sealed"


class Disclosure(enum.StrEnum):
    """How much of a scored report a phase shows its submitters (issue 19; server/scoring/summary.py)."""

    FULL = "full"
    SUMMARY = "summary"

    @classmethod
    def default_for(cls, test_set: str) -> Disclosure:
        """``full`` for a development phase (public test set), ``summary`` for a private one."""
        return cls.FULL if test_set == TestSet.PUBLIC.value else cls.SUMMARY


class Phase(Base):
    __tablename__ = "phases"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(64), unique=True)
    test_set: Mapped[TestSet] = mapped_column(enum_column(TestSet, 10), default=TestSet.PRIVATE)
    opens_at: Mapped[datetime | None] = mapped_column(UTCDateTime)  # None: open since always
    closes_at: Mapped[datetime | None] = mapped_column(UTCDateTime)  # None: open-ended
    quota_total: Mapped[int | None] = mapped_column(Integer)  # None: CSAWM_QUOTA_TOTAL
    quota_per_day: Mapped[int | None] = mapped_column(Integer)  # None: CSAWM_QUOTA_PER_DAY
    quota_per_week: Mapped[int | None] = mapped_column(Integer)  # None: CSAWM_QUOTA_PER_WEEK
    visibility: Mapped[Visibility] = mapped_column(enum_column(Visibility, 10), default=Visibility.LIVE)
    ladder: Mapped[bool] = mapped_column(Boolean, default=False)
    ladder_level: Mapped[float] = mapped_column(Float, default=0.05)
    ladder_step: Mapped[float] = mapped_column(Float, default=0.01)
    max_selected: Mapped[int] = mapped_column(Integer, default=2)
    disclosure: Mapped[Disclosure] = mapped_column(enum_column(Disclosure, 10), default=Disclosure.SUMMARY)
    revealed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    compute_budget_s: Mapped[int | None] = mapped_column(Integer)  # per team; None: no budget (issue 22)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)


class PhaseSelection(Base):
    """A run its team selected for the ranking of a sealed phase (at most `Phase.max_selected`)."""

    __tablename__ = "phase_selections"
    __table_args__ = (Index("ix_phase_selections_phase_team", "phase_id", "team_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    phase_id: Mapped[int] = mapped_column(ForeignKey("phases.id", ondelete="CASCADE"))
    team_id: Mapped[int] = mapped_column(ForeignKey("teams.id", ondelete="CASCADE"))
    submission_id: Mapped[int] = mapped_column(ForeignKey("submissions.id", ondelete="CASCADE"), unique=True)
    user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
