"""A submission is one model image and its single run through the queue.

The run's state lives on the submission row (status, lease, attempt, error); `RunEvent` rows keep the
status timeline. Scores are stored whole (`metrics` = the §4 report) with the bootstrap replicates
needed for paired tie tests, plus the two leaderboard keys denormalised for ordering.
"""

from __future__ import annotations

import enum
from datetime import datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Text,
)
from sqlalchemy.orm import Mapped, deferred, mapped_column, relationship

from server.clock import utcnow
from server.models.base import Base, UTCDateTime, enum_column


class RunStatus(enum.StrEnum):
    QUEUED = "queued"
    PREFLIGHT = "preflight"
    RUNNING = "running"
    SCORING = "scoring"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"


ACTIVE_STATUSES = (RunStatus.QUEUED, RunStatus.PREFLIGHT, RunStatus.RUNNING, RunStatus.SCORING)
LEASED_STATUSES = (RunStatus.PREFLIGHT, RunStatus.RUNNING, RunStatus.SCORING)
TERMINAL_STATUSES = (RunStatus.SUCCEEDED, RunStatus.FAILED, RunStatus.CANCELLED)


class FailedPhase(enum.StrEnum):
    PREFLIGHT = "preflight"
    HIDDEN = "hidden"
    SCORING = "scoring"


class ReviewState(enum.StrEnum):
    PENDING = "pending"
    APPROVED = "approved"
    HIDDEN = "hidden"
    DISQUALIFIED = "disqualified"


class Submission(Base):
    __tablename__ = "submissions"
    __table_args__ = (
        Index("ix_submissions_status_lease", "status", "lease_expires_at"),
        Index("ix_submissions_team_digest", "team_id", "image_digest"),
        # covers the leaderboard's change check (count, max(updated_at) of scored runs) without
        # touching the wide rows that hold reports and bootstrap replicates
        Index("ix_submissions_status_updated", "status", "updated_at"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    team_id: Mapped[int] = mapped_column(ForeignKey("teams.id", ondelete="RESTRICT"), index=True)
    user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    name: Mapped[str] = mapped_column(String(200))
    description: Mapped[str | None] = mapped_column(Text)
    url: Mapped[str | None] = mapped_column(String(500))
    method_card: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    phase: Mapped[str] = mapped_column(String(64))
    baseline: Mapped[bool] = mapped_column(Boolean, default=False)

    image_digest: Mapped[str] = mapped_column(String(80))
    image_ref: Mapped[str | None] = mapped_column(String(500))
    archive_path: Mapped[str | None] = mapped_column(String(1000))
    archive_sha256: Mapped[str | None] = mapped_column(String(64))
    archive_bytes: Mapped[int | None] = mapped_column(BigInteger)

    status: Mapped[RunStatus] = mapped_column(enum_column(RunStatus, 20), default=RunStatus.QUEUED)
    error_code: Mapped[str | None] = mapped_column(String(32))
    failed_phase: Mapped[FailedPhase | None] = mapped_column(enum_column(FailedPhase, 20))
    error_message: Mapped[str | None] = mapped_column(Text)  # what the submitter is told (runs.disclosure)
    error_detail: Mapped[str | None] = mapped_column(Text)  # the full text, for maintainers
    log_tail: Mapped[str | None] = mapped_column(Text)  # preflight log (hidden: CSAWM_HIDDEN_LOGS)
    hidden_log_tail: Mapped[str | None] = deferred(mapped_column(Text))  # maintainers only
    cancel_requested: Mapped[bool] = mapped_column(Boolean, default=False)

    attempt: Mapped[int] = mapped_column(Integer, default=0)  # leases taken (names containers)
    retries: Mapped[int] = mapped_column(Integer, default=0)  # failed tries so far (runs.policy)
    # Where a queued run resumes (the status it was in when it was requeued), and not before when.
    resume_status: Mapped[str | None] = mapped_column(String(20))
    retry_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # The hidden run's predictions, stored content-addressed in DATA_DIR/predictions/<sha256>.csv:
    # a retry or a re-score reads them instead of running the model on the hidden images again.
    predictions_sha256: Mapped[str | None] = mapped_column(String(64))
    runtime: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    lease_owner: Mapped[str | None] = mapped_column(String(200))
    runner_handle: Mapped[str | None] = mapped_column(String(300))
    lease_expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    heartbeat_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)
    started_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    container_started_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    metrics: Mapped[dict[str, Any] | None] = deferred(mapped_column(JSON))
    reproducibility: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    timings: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    kendall_tau_b: Mapped[float | None] = mapped_column(Float)
    amae: Mapped[float | None] = mapped_column(Float)
    tau_replicates: Mapped[bytes | None] = deferred(mapped_column(LargeBinary))
    amae_replicates: Mapped[bytes | None] = deferred(mapped_column(LargeBinary))

    review_state: Mapped[ReviewState] = mapped_column(
        enum_column(ReviewState, 20), default=ReviewState.PENDING
    )
    review_reason: Mapped[str | None] = mapped_column(Text)
    reviewed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    events: Mapped[list[RunEvent]] = relationship(
        back_populates="submission", order_by="RunEvent.id", cascade="all, delete-orphan"
    )


class RunEvent(Base):
    """One status change: the timeline shown on a submission."""

    __tablename__ = "run_events"

    id: Mapped[int] = mapped_column(primary_key=True)
    submission_id: Mapped[int] = mapped_column(ForeignKey("submissions.id", ondelete="CASCADE"), index=True)
    from_status: Mapped[str | None] = mapped_column(String(20))
    to_status: Mapped[str] = mapped_column(String(20))
    at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    note: Mapped[str | None] = mapped_column(Text)  # shown to the submitter
    detail: Mapped[str | None] = mapped_column(Text)  # maintainers only (hosts, exception text)

    submission: Mapped[Submission] = relationship(back_populates="events")


class WorkerHeartbeat(Base):
    """One row per worker process: alive, what it does, and its last error (``/readyz``, ``/metrics``)."""

    __tablename__ = "worker_heartbeats"

    name: Mapped[str] = mapped_column(String(200), primary_key=True)
    started_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    beat_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    state: Mapped[str] = mapped_column(String(20), default="idle")  # idle|busy|backoff|stopping|blocked
    submission_id: Mapped[int | None] = mapped_column(Integer)
    last_error: Mapped[str | None] = mapped_column(Text)


class SubmissionReport(Base):
    """Every report a run was scored with: the first scoring and each re-score (issue 14).

    The submission row holds the current report (``metrics``); these rows keep the history, with the
    scorer version, test-set digest and bootstrap settings each was computed under.
    """

    __tablename__ = "submission_reports"

    id: Mapped[int] = mapped_column(primary_key=True)
    submission_id: Mapped[int] = mapped_column(ForeignKey("submissions.id", ondelete="CASCADE"), index=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    reason: Mapped[str] = mapped_column(String(20))  # "scored" | "rescored"
    scorer_version: Mapped[str] = mapped_column(String(20))
    test_set_sha256: Mapped[str] = mapped_column(String(64))
    bootstrap_seed: Mapped[int] = mapped_column(Integer)
    bootstrap_resamples: Mapped[int] = mapped_column(Integer)
    predictions_sha256: Mapped[str | None] = mapped_column(String(64))
    metrics: Mapped[dict[str, Any] | None] = deferred(mapped_column(JSON))
