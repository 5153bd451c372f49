"""Time in one place: every timestamp the server writes is timezone-aware UTC.

It imports nothing of the server, so every layer may use it, the database models included
(docs/design.md#layers)."""

from __future__ import annotations

from datetime import UTC, datetime


def utcnow() -> datetime:
    return datetime.now(UTC)


def iso(value: datetime) -> str:
    """ISO 8601 in UTC with a ``Z`` suffix, as pydantic writes timestamps in API responses."""
    return value.astimezone(UTC).isoformat().replace("+00:00", "Z")
