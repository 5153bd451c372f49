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


class LedgerEntryOut(BaseModel):
    id: int
    kind: str
    submission_id: int | None
    refund_of: int | None
    phase: str
    reason: str
    created_at: datetime
