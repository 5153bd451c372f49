"""Web sessions ended on the server: a logout is final even for a copy of the cookie (issue 12)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import String
from sqlalchemy.orm import Mapped, mapped_column

from server.models.base import Base, UTCDateTime


class RevokedWebSession(Base):
    """A logged-out web session, by the random id its signed cookie carries.

    A row can be deleted once `expires_at` has passed: the cookie's signature has expired too.
    """

    __tablename__ = "web_session_revocations"

    session_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    revoked_at: Mapped[datetime] = mapped_column(UTCDateTime)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime, index=True)
