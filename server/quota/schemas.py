"""Quota responses."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, Field


class QuotaLimitsOut(BaseModel):
    per_day: int
    per_week: int
    total: int
    active: int


class QuotaUsedOut(BaseModel):
    per_day: int
    per_week: int
    total: int
    active: int


class ComputeOut(BaseModel):
    """The team's compute in the phase (server/operations/budgets.py)."""

    used_s: int = Field(description="container-seconds (GPU-seconds with GPUs), rounded up to whole minutes")
    budget_s: int | None = Field(description="the phase's compute_budget_s per team; null: no budget")


class QuotaOut(BaseModel):
    team: str
    phase: str
    limits: QuotaLimitsOut
    used: QuotaUsedOut
    allowed: bool
    blocked_by: list[str]
    next_slot_at: datetime | None
    max_upload_bytes: int
    compute: ComputeOut
    open: bool = Field(
        default=True,
        description="whether the phase takes submissions now; false once it closed (then `allowed` says "
        "nothing: no submission is accepted before the next phase opens)",
    )
    closes_at: datetime | None = Field(
        default=None, description="when the phase closed; null while it has not closed"
    )
    next_opens_at: datetime | None = Field(
        default=None,
        description="where the phase is closed: when the next one opens; null: none is scheduled",
    )


class LedgerEntryOut(BaseModel):
    id: int
    kind: str
    submission_id: int | None
    refund_of: int | None
    phase: str
    reason: str
    created_at: datetime
