"""Quota responses."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel


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


class QuotaOut(BaseModel):
    team: str
    phase: str
    limits: QuotaLimitsOut
    used: QuotaUsedOut
    allowed: bool
    blocked_by: list[str]
    next_slot_at: datetime | None
    max_upload_bytes: int


class LedgerEntryOut(BaseModel):
    id: int
    kind: str
    submission_id: int | None
    refund_of: int | None
    phase: str
    reason: str
    created_at: datetime
