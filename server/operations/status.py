"""What everyone may know of the queue: a queued run's place and estimate, and the server's status.

The rules (docs/api.md#status):

- A queued run's **position** counts the queued runs the lease query (`server.worker.queue`) takes
  before it: older queued runs, not of a held team, plus one. ``ahead`` = position - 1.
- Its **estimate** ``eta_s`` is the time until it has finished: the median duration (start to end)
  of the last `RECENT_RUNS` succeeded runs, times the rounds of work ahead of it on the workers
  alive now (``ahead // alive + 1``), rounded up to whole minutes. It is null until a run has
  succeeded, and while no worker is alive.
- A worker is **alive** while its heartbeat row (`server.models.WorkerHeartbeat`) is younger than
  three lease TTLs (as ``/readyz`` reads the embedded worker). Any worker that writes that table
  counts, the embedded one, ``csawm worker`` processes and remote workers alike: `alive_workers`
  is the one count.
- ``wait_s_median_24h`` is the median time from submission to the first lease of the runs started
  in the last 24 hours, rounded to whole minutes.

Anonymous callers get `PublicStatus` only; a maintainer's view adds the running count and each
worker's last heartbeat.
"""

from __future__ import annotations

import math
import statistics
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from server.clock import utcnow
from server.models import LEASED_STATUSES, RunStatus, Submission, TeamHold, WorkerHeartbeat
from server.operations import pause

RECENT_RUNS = 20
FRESH_TTLS = 3  # a heartbeat older than three lease TTLs is a dead worker (as /readyz)
DAY = timedelta(hours=24)


def whole_minutes(seconds: float) -> int:
    """Rounded up to whole minutes, in seconds (never 0 for a positive duration)."""
    return math.ceil(seconds / 60) * 60


@dataclass(frozen=True)
class QueuePlace:
    position: int
    ahead: int
    eta_s: int | None


def alive_workers(session: Session, lease_ttl: timedelta) -> int:
    """How many workers have a fresh heartbeat (see the module docstring)."""
    since = utcnow() - FRESH_TTLS * lease_ttl
    return (
        session.scalar(
            select(func.count()).select_from(WorkerHeartbeat).where(WorkerHeartbeat.beat_at > since)
        )
        or 0
    )


def median_run_s(session: Session) -> float | None:
    """The median start-to-end duration of the last succeeded runs; None before any."""
    rows = session.execute(
        select(Submission.started_at, Submission.finished_at)
        .where(
            Submission.status == RunStatus.SUCCEEDED,
            Submission.started_at.is_not(None),
            Submission.finished_at.is_not(None),
        )
        .order_by(Submission.finished_at.desc())
        .limit(RECENT_RUNS)
    ).all()
    durations = [
        (end - start).total_seconds() for start, end in rows if end is not None and start is not None
    ]
    return statistics.median(durations) if durations else None


def queue_place(session: Session, sub: Submission, lease_ttl: timedelta) -> QueuePlace | None:
    """The run's place in the queue while it is queued; None once it has left it."""
    if sub.status != RunStatus.QUEUED:
        return None
    ahead = (
        session.scalar(
            select(func.count())
            .select_from(Submission)
            .where(
                Submission.status == RunStatus.QUEUED,
                Submission.id < sub.id,
                Submission.team_id.not_in(select(TeamHold.team_id)),
            )
        )
        or 0
    )
    median = median_run_s(session)
    alive = alive_workers(session, lease_ttl)
    eta = None if median is None or alive == 0 else whole_minutes(median * (ahead // alive + 1))
    return QueuePlace(position=ahead + 1, ahead=ahead, eta_s=eta)


@dataclass(frozen=True)
class WorkerBeat:
    name: str
    state: str
    beat_at: datetime
    age_s: float


@dataclass(frozen=True)
class ServerStatus:
    paused: pause.PauseState
    queued: int
    alive: int
    wait_s_median_24h: int | None
    running: int  # maintainers only, with the fields below
    workers: tuple[WorkerBeat, ...]

    @property
    def oldest_heartbeat_age_s(self) -> float | None:
        return max((w.age_s for w in self.workers), default=None)


def median_wait_s(session: Session, now: datetime) -> int | None:
    rows = session.execute(
        select(Submission.created_at, Submission.started_at).where(
            Submission.started_at.is_not(None), Submission.started_at > now - DAY
        )
    ).all()
    waits = [
        max(0.0, (started - created).total_seconds()) for created, started in rows if started is not None
    ]
    return whole_minutes(statistics.median(waits)) if waits else None


def server_status(session: Session, lease_ttl: timedelta) -> ServerStatus:
    now = utcnow()
    counts = dict(
        session.execute(
            select(Submission.status, func.count())
            .where(Submission.status.in_((RunStatus.QUEUED, *LEASED_STATUSES)))
            .group_by(Submission.status)
        ).all()
    )
    beats = session.scalars(select(WorkerHeartbeat).order_by(WorkerHeartbeat.name)).all()
    since = now - FRESH_TTLS * lease_ttl
    return ServerStatus(
        paused=pause.current(session),
        queued=int(counts.get(RunStatus.QUEUED, 0)),
        alive=sum(1 for b in beats if b.beat_at > since),
        wait_s_median_24h=median_wait_s(session, now),
        running=sum(int(counts.get(s, 0)) for s in LEASED_STATUSES),
        workers=tuple(
            WorkerBeat(name=b.name, state=b.state, beat_at=b.beat_at, age_s=(now - b.beat_at).total_seconds())
            for b in beats
        ),
    )
