"""Submission bodies (docs/api.md fields, plus the timeline, timings and reproducibility record)."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, HttpUrl

from server.core.text import NameStr, TextStr
from server.operations.schemas import QueueOut


class MethodCard(BaseModel):
    """What the model is, as a reviewer needs to know it. Every field optional; unknown keys refused."""

    model_config = ConfigDict(extra="forbid")

    architecture: TextStr | None = Field(default=None, max_length=500)
    pretrained_on: TextStr | None = Field(default=None, max_length=500)
    training_data: TextStr | None = Field(default=None, max_length=1000)
    external_data: bool | None = None
    input_resolution: TextStr | None = Field(default=None, max_length=100)
    code_url: HttpUrl | None = None
    paper_url: HttpUrl | None = None
    notes: TextStr | None = Field(default=None, max_length=2000)


class RegistrySubmissionIn(BaseModel):
    """JSON body of a submission by registry reference (only where a registry is configured)."""

    model_config = ConfigDict(extra="forbid")

    name: NameStr = Field(min_length=1, max_length=200)
    image: NameStr = Field(min_length=1, max_length=500, description="REGISTRY/REPO@sha256:<64 hex>")
    description: TextStr | None = Field(default=None, max_length=5000)
    url: HttpUrl | None = None
    method_card: MethodCard | None = None


class RunEventOut(BaseModel):
    from_status: str | None
    status: str
    at: datetime
    note: str | None
    detail: str | None = Field(default=None, description="maintainers only: hosts, exception text")


class LadderOut(BaseModel):
    """The team's displayed score after this run (rounded to the phase's step) and whether it moved."""

    displayed: float | None
    moved: bool
    note: str | None = Field(description='"not a significant improvement" when the board did not move')


class SubmissionSummary(BaseModel):
    id: int
    name: str
    team: str
    status: str
    error_code: str | None
    failed_phase: str | None
    error_message: str | None
    image_digest: str
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    baseline: bool
    review_state: str | None = Field(
        description="pending, approved, hidden or disqualified; null for a run that failed or was"
        " cancelled (unless a maintainer hid or disqualified it)"
    )
    kendall_tau_b: float | None
    amae: float | None
    scores_withheld: str | None = Field(
        default=None, description="why the scores are not shown to you (sealed or Ladder phase)"
    )
    ladder: LadderOut | None = Field(default=None, description="Ladder phases: what the board shows")
    selected: bool | None = Field(default=None, description="sealed phases: selected for the ranking")


class OutcomeOut(BaseModel):
    """What you are told of a run that failed or was cancelled (server.disclosure.run_view.Outcome)."""

    charged: bool = Field(description="the run keeps its quota slot")
    charge: str = Field(description='"charged: <why>", "refunded: <why>" or "not charged: …"')
    log: str = Field(description="where the log is, and who can read the hidden run's")
    next_step: str = Field(description="what to do next that helps; IMAGE stands for your image")
    hint: str | None = Field(
        default=None,
        description="CSAWM_HIDDEN_HINT=exception_type: a built-in exception class named in the hidden"
        ' log, or "other"',
    )


class NoteOut(BaseModel):
    """One scoring note (server.scoring.notes)."""

    path: str | None
    text: str


class SubmissionOut(SubmissionSummary):
    description: str | None
    url: str | None
    method_card: dict[str, Any] | None
    phase: str
    attempt: int
    cancel_requested: bool
    archive_bytes: int | None
    archive_sha256: str | None
    metrics: dict[str, Any] | None
    notes: list[NoteOut] = Field(
        default_factory=list,
        description="the report's scoring notes (metrics.warnings) in words: `text`, and the report's "
        "JSON `path` it is about (null for the whole report)",
    )
    timings: dict[str, Any] | None
    reproducibility: dict[str, Any] | None
    review_reason: str | None
    image_ref: str | None = None
    retries: int = 0
    hidden_figures: Literal["exact", "coarse", "withheld"] = Field(
        description="how you get the hidden run's figures (CSAWM_HIDDEN_RUNTIME): exact, coarse"
        " (minutes, GiB) or withheld",
    )
    runtime: dict[str, Any] | None = Field(
        default=None,
        description="per phase: wall_s, container_s, cpu_s, gpu_s, peak_memory_bytes;"
        " image_bytes, image_load_s",
    )
    error_detail: str | None = Field(default=None, description="maintainers only: the full error text")
    events: list[RunEventOut]
    queue: QueueOut | None = Field(
        default=None, description="while queued: its place and estimate; null once it left the queue"
    )
    outcome: OutcomeOut | None = Field(
        default=None, description="a failed or cancelled run: charge or refund, log, next step"
    )


class DuplicateOut(BaseModel):
    """`GET /api/v1/submissions/duplicate`: whether the team already submitted an image in the open
    phase (a run that still counts, as the upload itself would be refused)."""

    duplicate: bool
    submission_id: int | None
    phase: str


class LogsOut(BaseModel):
    id: int
    status: str
    log_tail: str
    hidden_log_tail: str | None = Field(
        default=None, description="maintainers only (CSAWM_HIDDEN_LOGS): the hidden run's log tail"
    )


class ReportOut(BaseModel):
    """One scoring of a run (`GET /api/v1/submissions/{id}/reports`)."""

    id: int
    created_at: datetime
    reason: str  # "scored" | "rescored"
    scorer_version: str
    test_set_sha256: str
    bootstrap_seed: int
    bootstrap_resamples: int
    current: bool
    metrics: dict[str, Any] | None


class SelectionOut(BaseModel):
    """`POST|DELETE /api/v1/submissions/{id}/select`."""

    submission_id: int
    phase: str
    selected: bool
    selected_ids: list[int]
    max_selected: int
