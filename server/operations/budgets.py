"""Compute budgets: how many container-seconds a team's runs took in a phase, against the phase's
``compute_budget_s``.

The rule (docs/run-policy.md#compute-budgets): a run's compute is the sum, over its preflight and
hidden stages, of the stage's GPU-seconds where GPUs were attached and its container-seconds
otherwise, read from the runtime figures the worker records (``Submission.runtime``). A run whose
charge was refunded (an infrastructure failure, a cancel before it started) does not count;
baselines belong to no budget. A team shown its usage gets it rounded **up** to whole minutes, so
the figure does not tell a hidden run's exact duration.

At or over budget a submission is refused 429 ``compute_budget`` before its body is read
(`require_within_budget`, called by the intake's `admit` and again under the team's lock when the
run is created). When a team's usage reaches 80 % of the budget the maintainers are told once per
team and phase (`note_usage`): a `ComputeAlert` row with a unique key makes the alert once-only
even when two of the team's runs end at the same moment, and its notices go through the
notifications outbox in the same transaction (`server.notifications.outbox.enqueue_maintainers`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, aliased

from server.clock import iso, utcnow
from server.core.errors import CsawmError
from server.models import ComputeAlert, LedgerKind, Phase, QuotaEntry, Submission, Team

COUNTED_STAGES = ("preflight", "hidden")
ALERT_PERCENT = 80
ALERT_EVENT = "compute.budget"


class ComputeBudgetExceeded(CsawmError):
    status_code = 429
    code = "compute_budget"


@dataclass(frozen=True)
class ComputeUsage:
    used_s: float  # exact; for maintainers and the checks
    budget_s: int | None  # None: the phase sets no budget

    @property
    def shown_used_s(self) -> int:
        """What a team is shown: rounded up to whole minutes."""
        return math.ceil(self.used_s / 60) * 60

    @property
    def exhausted(self) -> bool:
        return self.budget_s is not None and self.used_s >= self.budget_s


def run_seconds(runtime: dict[str, Any] | None) -> float:
    """One run's compute from its ``runtime`` JSON (server/worker/stages.py `runtime_of`)."""
    stages = (runtime or {}).get("phases") or {}
    figures = [stages.get(name) or {} for name in COUNTED_STAGES]
    return sum(
        float((f["gpu_s"] if f.get("gpu_s") is not None else f.get("container_s")) or 0.0) for f in figures
    )


def used_seconds(session: Session, team_id: int, phase: str) -> float:
    """The team's compute in `phase`: its runs' recorded figures, refunded runs left out."""
    refund = aliased(QuotaEntry)
    refunded = (
        select(refund.id)
        .where(refund.submission_id == Submission.id, refund.kind == LedgerKind.REFUND)
        .exists()
    )
    rows = session.scalars(
        select(Submission.runtime).where(
            Submission.team_id == team_id,
            Submission.phase == phase,
            Submission.baseline.is_(False),
            Submission.runtime.is_not(None),
            ~refunded,
        )
    )
    return sum(run_seconds(r) for r in rows)


def budget_of(session: Session, phase: str) -> int | None:
    return session.scalar(select(Phase.compute_budget_s).where(Phase.name == phase))


def usage(session: Session, team_id: int, phase: str) -> ComputeUsage:
    return ComputeUsage(used_s=used_seconds(session, team_id, phase), budget_s=budget_of(session, phase))


def require_within_budget(session: Session, team_id: int, phase: str) -> None:
    """429 ``compute_budget`` when the team has used its phase's compute budget (nothing charged)."""
    budget = budget_of(session, phase)
    if budget is None:
        return
    current = ComputeUsage(used_s=used_seconds(session, team_id, phase), budget_s=budget)
    if current.exhausted:
        raise ComputeBudgetExceeded(
            f"compute budget used: your team's runs took {current.shown_used_s // 60} of "
            f"{budget / 60:g} minutes in phase {phase!r}; nothing was charged",
            used_s=current.shown_used_s,
            budget_s=budget,
        )


def note_usage(session: Session, team_id: int, phase: str) -> ComputeAlert | None:
    """Record, once per team and phase, that the team used 80 % of its budget; the new alert, or
    None (under the threshold, no budget, or already recorded). Called in the transaction that
    ends a run (`server.runs.transitions`), which sends the maintainers the notice of a new alert
    (`alert_payload`) through the outbox."""
    budget = budget_of(session, phase)
    if not budget:
        return None
    used = used_seconds(session, team_id, phase)
    if used * 100 < ALERT_PERCENT * budget:
        return None
    if session.scalar(
        select(ComputeAlert.id).where(
            ComputeAlert.team_id == team_id,
            ComputeAlert.phase == phase,
            ComputeAlert.percent == ALERT_PERCENT,
        )
    ):
        return None
    alert = ComputeAlert(
        team_id=team_id, phase=phase, percent=ALERT_PERCENT, used_s=math.ceil(used), budget_s=budget
    )
    try:
        with session.begin_nested():
            session.add(alert)
    except IntegrityError:  # another transaction wrote it first
        return None
    return alert


def alert_payload(session: Session, alert: ComputeAlert) -> dict[str, Any]:
    """The maintainers' notice of `alert` (no run, no score: a team, a phase and minutes)."""
    team = session.get(Team, alert.team_id)
    return {
        "event": ALERT_EVENT,
        "submission_id": None,
        "team": team.name if team else str(alert.team_id),
        "phase": alert.phase,
        "status": f"{alert.percent} % of its compute budget used"
        f" ({math.ceil(alert.used_s / 60)} of {alert.budget_s / 60:g} min)",
        "occurred_at": iso(alert.created_at or utcnow()),
    }
