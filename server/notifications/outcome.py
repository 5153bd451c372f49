"""The result of one delivery attempt, whatever the channel."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Outcome:
    """`ok`: delivered. `permanent`: no retry can help (the webhook was removed, the address refused
    with a 5xx SMTP reply), so the delivery is dead at once. `status_code`: HTTP status or SMTP reply."""

    ok: bool
    duration_ms: int
    status_code: int | None = None
    error: str | None = None
    permanent: bool = False
