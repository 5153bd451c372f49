"""Request and response bodies of the team's webhook and delivery-log endpoints."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, Field


class WebhookIn(BaseModel):
    url: str = Field(min_length=1, max_length=2000)


class WebhookOut(BaseModel):
    id: int
    url: str
    active: bool
    created_at: datetime


class NewWebhookOut(WebhookOut):
    secret: str


class AttemptOut(BaseModel):
    number: int
    at: datetime
    ok: bool
    status_code: int | None
    error: str | None
    duration_ms: int


class DeliveryOut(BaseModel):
    id: str
    event: str
    channel: str
    target: str
    submission_id: int | None
    state: str
    attempts: int
    created_at: datetime
    next_attempt_at: datetime | None
    delivered_at: datetime | None
    dead_at: datetime | None
    last_error: str | None
    attempt_log: list[AttemptOut]
