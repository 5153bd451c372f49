"""Quota arithmetic over the ledger.

A charge counts against every window that contains its own timestamp until a refund row points at
it. With window length W and limit L, a team that has u >= L live charges in (now - W, now] gets its
next slot when the (u - L + 1)-th oldest of them leaves the window: ``t_(u-L+1) + W``. The overall
next slot is the latest over the windows that are full; it is unknown (None) when the phase total is
spent (never, within this phase) or when only the active-run cap blocks (it frees when a run ends).

`charge` must run inside the request's write transaction, after `server.accounts.service.lock_team`:
on PostgreSQL the team row is locked ``FOR UPDATE`` so concurrent submissions of one team queue on
it; on SQLite the write session began with ``BEGIN IMMEDIATE`` and already holds the database write
lock.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import func, select
from sqlalchemy.orm import Session, aliased

from server.clock import iso, utcnow
from server.core.errors import QuotaExceeded
from server.core.settings import Settings
from server.models import ACTIVE_STATUSES, LedgerKind, QuotaEntry, Submission, Team
from server.phases import service as phases
from server.phases.service import PhaseView

DAY = timedelta(hours=24)
WEEK = timedelta(days=7)
ACTIVE_RETRY_AFTER_S = 60


@dataclass(frozen=True)
class QuotaLimits:
    per_day: int
    per_week: int
    total: int
    active: int

    @classmethod
    def for_team(cls, team: Team, settings: Settings, phase: PhaseView) -> QuotaLimits:
        """A team's override wins, then the phase's own limit, then the server default."""

        def pick(*values: int | None) -> int:
            return next(v for v in values if v is not None)

        return cls(
            per_day=pick(team.quota_per_day, phase.quota_per_day, settings.quota_per_day),
            per_week=pick(team.quota_per_week, phase.quota_per_week, settings.quota_per_week),
            total=pick(team.quota_total, phase.quota_total, settings.quota_total),
            active=pick(team.quota_active, settings.quota_active),
        )


@dataclass(frozen=True)
class QuotaStatus:
    limits: QuotaLimits
    phase: str
    used_day: int
    used_week: int
    used_total: int
    active: int
    blocked_by: tuple[str, ...]
    next_slot_at: datetime | None
    open: bool = True  # the phase takes submissions now (after its close: "submissions are closed")
    closes_at: datetime | None = None  # when the phase closed (None: not closed yet)
    next_opens_at: datetime | None = None  # where it is closed: when the next phase opens, if one is set

    @property
    def allowed(self) -> bool:
        return not self.blocked_by


def _window_next_slot(times: list[datetime], window: timedelta, limit: int, now: datetime) -> datetime | None:
    """Times are the live charges inside the window, oldest first; see the module docstring."""
    live = [t for t in times if t > now - window]
    if len(live) < limit:
        return now
    if limit == 0:
        return None
    return live[len(live) - limit] + window


def compute_status(
    session: Session,
    team: Team,
    settings: Settings,
    *,
    now: datetime | None = None,
    phase: PhaseView | None = None,
) -> QuotaStatus:
    """The team's quota in `phase` (default: the phase shown now, `server.phases.service.shown`)."""
    now = now or utcnow()
    phase = phase or phases.shown(session, settings, now)
    limits = QuotaLimits.for_team(team, settings, phase)
    refund = aliased(QuotaEntry)
    live_charge = (
        (QuotaEntry.team_id == team.id)
        & (QuotaEntry.kind == LedgerKind.CHARGE)
        & ~select(refund.id).where(refund.refund_of == QuotaEntry.id).exists()
    )
    times = list(
        session.scalars(
            select(QuotaEntry.created_at)
            .where(live_charge, QuotaEntry.created_at > now - WEEK)
            .order_by(QuotaEntry.created_at)
        )
    )
    used_total = (
        session.scalar(
            select(func.count()).select_from(QuotaEntry).where(live_charge, QuotaEntry.phase == phase.name)
        )
        or 0
    )
    active = (
        session.scalar(
            select(func.count())
            .select_from(Submission)
            .where(Submission.team_id == team.id, Submission.status.in_(ACTIVE_STATUSES))
        )
        or 0
    )
    used_day = sum(1 for t in times if t > now - DAY)
    blocked: list[str] = []
    slots: list[datetime | None] = []
    for name, window, limit in (("per_day", DAY, limits.per_day), ("per_week", WEEK, limits.per_week)):
        slot = _window_next_slot(times, window, limit, now)
        if slot != now:
            blocked.append(name)
            slots.append(slot)
    if used_total >= limits.total:
        blocked.append("total")
        slots.append(None)
    if active >= limits.active:
        blocked.append("active")
        slots.append(None)
    if not blocked:
        next_slot: datetime | None = now
    elif any(s is None for s in slots):
        next_slot = None
    else:
        next_slot = max(s for s in slots if s is not None)
    return QuotaStatus(
        limits=limits,
        phase=phase.name,
        used_day=used_day,
        used_week=len(times),
        used_total=used_total,
        active=active,
        blocked_by=tuple(blocked),
        next_slot_at=next_slot,
        open=phase.is_open(now),
        closes_at=phase.closes_at if phase.closes_at is not None and phase.closes_at <= now else None,
        next_opens_at=None if phase.is_open(now) else phases.next_opening(session, now),
    )


def ensure_allowed(status: QuotaStatus) -> None:
    """Raise `QuotaExceeded` (429, ``Retry-After``, ``next_slot_at``) when any limit is reached."""
    if status.allowed:
        return
    reasons = {
        "per_day": f"{status.used_day}/{status.limits.per_day} submissions in the last 24 h",
        "per_week": f"{status.used_week}/{status.limits.per_week} submissions in the last 7 days",
        "total": f"{status.used_total}/{status.limits.total} submissions in phase {status.phase!r}",
        "active": f"{status.active}/{status.limits.active} runs still active",
    }
    message = "quota exceeded: " + "; ".join(reasons[b] for b in status.blocked_by)
    headers: dict[str, str] = {}
    if status.next_slot_at is not None:
        headers["Retry-After"] = str(max(1, math.ceil((status.next_slot_at - utcnow()).total_seconds())))
    elif status.blocked_by == ("active",):
        headers["Retry-After"] = str(ACTIVE_RETRY_AFTER_S)
    raise QuotaExceeded(
        message,
        headers=headers,
        next_slot_at=iso(status.next_slot_at) if status.next_slot_at else None,
        blocked_by=list(status.blocked_by),
    )


def charge(session: Session, team: Team, submission: Submission, settings: Settings) -> QuotaEntry:
    """Record one charge for `submission`, in the caller's transaction.

    The caller has already called `ensure_allowed` in the same transaction, after `lock_team` and
    before adding the submission (which would otherwise count as one of its own active runs). The
    charge counts in the submission's phase.
    """
    entry = QuotaEntry(
        team_id=team.id,
        submission_id=submission.id,
        kind=LedgerKind.CHARGE,
        phase=submission.phase,
        reason=f"submission {submission.id} ({submission.name})",
        created_at=utcnow(),
    )
    session.add(entry)
    session.flush()
    return entry


def refund(session: Session, submission_id: int, reason: str) -> QuotaEntry | None:
    """Refund the live charge of a submission, if any; idempotent (a second call returns None)."""
    refund_row = aliased(QuotaEntry)
    charge_row = session.scalar(
        select(QuotaEntry).where(
            QuotaEntry.submission_id == submission_id,
            QuotaEntry.kind == LedgerKind.CHARGE,
            ~select(refund_row.id).where(refund_row.refund_of == QuotaEntry.id).exists(),
        )
    )
    if charge_row is None:
        return None
    entry = QuotaEntry(
        team_id=charge_row.team_id,
        submission_id=submission_id,
        kind=LedgerKind.REFUND,
        refund_of=charge_row.id,
        phase=charge_row.phase,
        reason=reason,
    )
    session.add(entry)
    session.flush()
    return entry
