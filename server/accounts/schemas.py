"""Request and response bodies of the account endpoints."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, Field

from server.core.deps import DB_INT_MAX
from server.core.text import NameStr, OptionalNameStr
from server.models import Role

MAX_TOKEN_DAYS = 3650


class MeOut(BaseModel):
    email: str
    role: Role
    team: str | None


class TeamIn(BaseModel):
    name: NameStr = Field(min_length=1, max_length=100)


class QuotaLimitsIn(BaseModel):
    """Per-team overrides; null restores the server default. Omitted fields are left unchanged."""

    per_day: int | None = Field(default=None, ge=0, le=DB_INT_MAX)
    per_week: int | None = Field(default=None, ge=0, le=DB_INT_MAX)
    total: int | None = Field(default=None, ge=0, le=DB_INT_MAX)
    active: int | None = Field(default=None, ge=0, le=DB_INT_MAX)


class TeamOut(BaseModel):
    id: int
    name: str
    created_at: datetime
    quota_overrides: dict[str, int | None]


class UserIn(BaseModel):
    email: NameStr = Field(min_length=3, max_length=254)
    role: Role = Role.RESEARCHER
    team: NameStr | None = Field(default=None, max_length=100)


class UserOut(BaseModel):
    id: int
    email: str
    role: Role
    team: str | None
    created_at: datetime
    active: bool = Field(description="false while deactivated: no login, tokens refused, no team mail")
    deactivated_at: datetime | None


class TokenIn(BaseModel):
    expires_in_days: float | None = Field(
        default=90, gt=0, le=MAX_TOKEN_DAYS, description=f"1 to {MAX_TOKEN_DAYS} days; null = never expires"
    )
    label: OptionalNameStr = Field(default="", max_length=100)


class TokenOut(BaseModel):
    id: int
    prefix: str
    label: str
    created_at: datetime
    expires_at: datetime | None
    revoked_at: datetime | None


class NewTokenOut(TokenOut):
    token: str = Field(description="The token itself. Shown once; only its hash is stored.")
