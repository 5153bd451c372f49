"""Reference models on their way to the board: what ``csawm seed-baselines`` is doing now (issue 10).

Training a reference model takes minutes; until its run is queued there is no submission to show.
One row per model kind records the build's state and training progress so that the leaderboard can
show the baselines as "training" (step n of N), "building" or "queued" before they are scored.
"""

from __future__ import annotations

import enum
from datetime import datetime

from sqlalchemy import ForeignKey, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from server.clock import utcnow
from server.models.base import Base, UTCDateTime, enum_column


class BuildState(enum.StrEnum):
    PREPARING = "preparing"  # the base image the models train in is being built (once per machine)
    TRAINING = "training"
    BUILDING = "building"
    QUEUED = "queued"  # the baseline's run exists (``submission_id``): its status says the rest
    FAILED = "failed"  # training or the image build failed, or seed-baselines was interrupted


class BaselineBuild(Base):
    __tablename__ = "baseline_builds"

    kind: Mapped[str] = mapped_column(String(20), primary_key=True)  # reference_models.rules.ModelKind
    name: Mapped[str] = mapped_column(String(200))
    state: Mapped[BuildState] = mapped_column(enum_column(BuildState, 20))
    step: Mapped[int] = mapped_column(Integer, default=0)
    steps: Mapped[int] = mapped_column(Integer, default=0)
    message: Mapped[str | None] = mapped_column(Text)  # operators' text (a failed build's reason)
    submission_id: Mapped[int | None] = mapped_column(ForeignKey("submissions.id", ondelete="SET NULL"))
    started_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)


class BaselineSeed(Base):
    """The training seed of a baseline run that ``csawm seed-baselines`` trained (``--runs N``: seeds
    1..N), listed with the run under its model's board row. A table of its own, not a submissions
    column: only seeded baselines have one."""

    __tablename__ = "baseline_seeds"

    submission_id: Mapped[int] = mapped_column(
        ForeignKey("submissions.id", ondelete="CASCADE"), primary_key=True
    )
    training_seed: Mapped[int] = mapped_column(Integer)
