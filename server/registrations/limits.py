"""Rate limits on registrations: per client address and in all, counted in the database.

The counters are rows (`server.models.RateCounter`) in fixed one-hour windows, so a limit holds
across server processes and restarts. Each request is counted in its own committed transaction
before its body is judged: a flood of bad requests is a flood too. A request refused for its
address is not counted in the total, so one address cannot use up everyone's registrations.
"""

from __future__ import annotations

import math
from datetime import datetime, timedelta

from sqlalchemy import delete, select, update
from sqlalchemy.exc import IntegrityError

from server.core.db import Database
from server.core.errors import CsawmError
from server.models import RateCounter

WINDOW = timedelta(hours=1)
#: The policy: (counter key, how many registrations an hour).
PER_ADDRESS = 5
IN_ALL = 100


class RateLimited(CsawmError):
    status_code = 429
    code = "rate_limited"


def _window(now: datetime) -> datetime:
    return now.replace(minute=0, second=0, microsecond=0)


def _count(db: Database, key: str, start: datetime) -> int:
    """Add one to `key`'s counter of the window at `start`; its count after."""
    where = (RateCounter.key == key, RateCounter.window_start == start)
    bump = (
        update(RateCounter)
        .where(*where)
        .values(count=RateCounter.count + 1)
        .execution_options(synchronize_session=False)
    )
    with db.transaction() as session:
        if session.execute(bump).rowcount == 0:  # type: ignore[attr-defined]
            try:
                with session.begin_nested():
                    session.add(RateCounter(key=key, window_start=start, count=1))
            except IntegrityError:  # another request created it first
                session.execute(bump)
        return int(session.scalar(select(RateCounter.count).where(*where)) or 0)


def charge(db: Database, address: str, now: datetime) -> None:
    """Count one registration from `address`; `RateLimited` (429, ``Retry-After``) past a limit."""
    prune(db, now)
    start = _window(now)
    retry = str(max(1, math.ceil((start + WINDOW - now).total_seconds())))
    for key, limit, refusal in (
        (f"registration:addr:{address[:60]}", PER_ADDRESS, "from this address: at most {} an hour"),
        ("registration:all", IN_ALL, "in all: at most {} an hour; try later"),
    ):
        if _count(db, key, start) > limit:
            raise RateLimited(
                f"too many registrations {refusal.format(limit)}", headers={"Retry-After": retry}
            )


def prune(db: Database, now: datetime) -> None:
    """Drop windows older than a day (called with each registration; the table stays small)."""
    with db.transaction() as session:
        session.execute(
            delete(RateCounter).where(RateCounter.window_start < _window(now) - timedelta(days=1))
        )
