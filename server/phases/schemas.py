"""Phase bodies (`/api/v1/phases`, `/api/v1/admin/phases`)."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field


class PhaseOut(BaseModel):
    name: str
    test_set: str = Field(description="private, or public for a development phase")
    opens_at: datetime | None
    closes_at: datetime | None = Field(description="null: open-ended")
    quota_total: int | None = Field(description="submissions per team in this phase; null: CSAWM_QUOTA_TOTAL")
    quota_per_day: int | None
    quota_per_week: int | None
    visibility: str = Field(description="live, or sealed: no score shown before the reveal")
    ladder: bool
    ladder_level: float
    ladder_step: float
    max_selected: int
    disclosure: str = Field(
        description="what researchers see of a scored report: full, or summary (headline metrics and "
        "their CIs only; docs/scoring.md)"
    )
    revealed_at: datetime | None
    compute_budget_s: int | None = Field(
        default=None,
        description="container-seconds per team in this phase (GPU-seconds with GPUs); null: none",
    )
    open: bool = Field(description="open now: submissions go to it")
    current: bool = Field(description="the phase the pages and the board default to")


class PhaseIn(BaseModel):
    """A new phase (`POST /api/v1/admin/phases`); left-out fields take their defaults."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=64)
    test_set: Literal["private", "public"] = "private"
    opens_at: AwareDatetime
    closes_at: AwareDatetime | None = None
    quota_total: int | None = Field(default=None, ge=0)
    quota_per_day: int | None = Field(default=None, ge=0)
    quota_per_week: int | None = Field(default=None, ge=0)
    visibility: Literal["live", "sealed"] = "live"
    ladder: bool = False
    ladder_level: float = Field(default=0.05, gt=0, lt=1)
    ladder_step: float = Field(default=0.01, gt=0, le=1)
    max_selected: int = Field(default=2, ge=1, le=100)
    disclosure: Literal["full", "summary"] | None = Field(
        default=None, description="left out: full for a public test set, summary for a private one"
    )
    compute_budget_s: int | None = Field(default=None, ge=0)


class PhasePatch(BaseModel):
    """Changed fields of a phase (`PATCH /api/v1/admin/phases/{name}`); a null clears a nullable one."""

    model_config = ConfigDict(extra="forbid")

    test_set: Literal["private", "public"] | None = None
    opens_at: AwareDatetime | None = None
    closes_at: AwareDatetime | None = None
    quota_total: int | None = Field(default=None, ge=0)
    quota_per_day: int | None = Field(default=None, ge=0)
    quota_per_week: int | None = Field(default=None, ge=0)
    visibility: Literal["live", "sealed"] | None = None
    ladder: bool | None = None
    ladder_level: float | None = Field(default=None, gt=0, lt=1)
    ladder_step: float | None = Field(default=None, gt=0, le=1)
    max_selected: int | None = Field(default=None, ge=1, le=100)
    disclosure: Literal["full", "summary"] | None = Field(
        default=None, description="left out when test_set changes: the new test set's default"
    )
    compute_budget_s: int | None = Field(default=None, ge=0)
