"""Review and audit bodies."""

from __future__ import annotations

import enum
from datetime import datetime
from typing import Any

from pydantic import BaseModel, Field

from server.core.text import TextStr


class ReviewAction(enum.StrEnum):
    APPROVE = "approve"
    HIDE = "hide"
    DISQUALIFY = "disqualify"


class ReviewIn(BaseModel):
    action: ReviewAction
    reason: TextStr = Field(default="", max_length=2000, description="Required for hide and disqualify.")


class AuditOut(BaseModel):
    id: int
    actor: str
    action: str
    target_type: str
    target_id: str
    reason: str | None
    detail: dict[str, Any] | None
    created_at: datetime
