"""Worker accounts: the remote workers that reach the server over its worker API only (issue 25).

A worker is its own kind of account, named (``gpu-node-1``), not an email: its token reaches
``/api/v1/worker/*`` and nothing else, and no user's token reaches that API. Only the SHA-256 of
the token is stored, like `server.models.ApiToken`. `version` and `test_set_digest` are what the
worker last said of itself (shown to operators); `seen_at` is its last call.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import String
from sqlalchemy.orm import Mapped, mapped_column

from server.clock import utcnow
from server.models.base import Base, UTCDateTime


class WorkerAccount(Base):
    __tablename__ = "worker_accounts"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(64), unique=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    prefix: Mapped[str] = mapped_column(String(32))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    seen_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    version: Mapped[str | None] = mapped_column(String(64))
    test_set_digest: Mapped[str | None] = mapped_column(String(64))
