"""Teams, users and their API tokens."""

from __future__ import annotations

import enum
from datetime import datetime

from sqlalchemy import ForeignKey, Integer, String
from sqlalchemy.orm import Mapped, mapped_column, relationship

from server.clock import utcnow
from server.models.base import Base, UTCDateTime, enum_column


class Role(enum.StrEnum):
    RESEARCHER = "researcher"
    MAINTAINER = "maintainer"
    ADMIN = "admin"


class Team(Base):
    """A team submits and is charged quota. Quota columns override the server defaults when set."""

    __tablename__ = "teams"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(100), unique=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    quota_per_day: Mapped[int | None] = mapped_column(Integer)
    quota_per_week: Mapped[int | None] = mapped_column(Integer)
    quota_total: Mapped[int | None] = mapped_column(Integer)
    quota_active: Mapped[int | None] = mapped_column(Integer)

    users: Mapped[list[User]] = relationship(back_populates="team")


class User(Base):
    __tablename__ = "users"

    id: Mapped[int] = mapped_column(primary_key=True)
    email: Mapped[str] = mapped_column(String(254), unique=True)
    team_id: Mapped[int | None] = mapped_column(ForeignKey("teams.id", ondelete="RESTRICT"), index=True)
    role: Mapped[Role] = mapped_column(enum_column(Role, 20))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    #: Set while the account is deactivated: no login, its tokens refused, no team mail (issue 19).
    deactivated_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    team: Mapped[Team | None] = relationship(back_populates="users")
    tokens: Mapped[list[ApiToken]] = relationship(back_populates="user")


class ApiToken(Base):
    """Only the SHA-256 of the token is stored; `prefix` is its first characters, for listings."""

    __tablename__ = "api_tokens"

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    prefix: Mapped[str] = mapped_column(String(20))
    label: Mapped[str] = mapped_column(String(100), default="")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    user: Mapped[User] = relationship(back_populates="tokens")
