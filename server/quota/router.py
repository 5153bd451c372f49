"""`GET /api/v1/quota` and the team's ledger."""

from __future__ import annotations

from fastapi import APIRouter, Depends
from sqlalchemy import select

from server.core.deps import CurrentUser, SessionDep, SettingsDep, get_principal
from server.core.errors import BadRequest
from server.core.openapi import error_responses
from server.core.principal import Principal
from server.disclosure.disclose import viewer_of
from server.disclosure.run_view import shown_time
from server.models import QuotaEntry, Team
from server.operations import budgets
from server.quota import service
from server.quota.schemas import ComputeOut, LedgerEntryOut, QuotaLimitsOut, QuotaOut, QuotaUsedOut

router = APIRouter(
    prefix="/api/v1/quota",
    tags=["quota"],
    dependencies=[Depends(get_principal)],
    responses=error_responses(400),
)


def _team_of(session: SessionDep, user: Principal) -> Team:
    if user.team_id is None:
        raise BadRequest("your account belongs to no team, so it has no quota")
    team = session.get(Team, user.team_id)
    assert team is not None
    return team


@router.get("", response_model=QuotaOut)
def get_quota(session: SessionDep, settings: SettingsDep, user: CurrentUser) -> QuotaOut:
    team = _team_of(session, user)
    status = service.compute_status(session, team, settings)
    compute = budgets.usage(session, team.id, status.phase)
    return QuotaOut(
        team=team.name,
        phase=status.phase,
        limits=QuotaLimitsOut(**vars(status.limits)),
        used=QuotaUsedOut(
            per_day=status.used_day, per_week=status.used_week, total=status.used_total, active=status.active
        ),
        allowed=status.allowed,
        blocked_by=list(status.blocked_by),
        next_slot_at=status.next_slot_at,
        max_upload_bytes=settings.max_upload_bytes,
        compute=ComputeOut(used_s=compute.shown_used_s, budget_s=compute.budget_s),
        open=status.open,
        closes_at=status.closes_at,
        next_opens_at=status.next_opens_at,
    )


@router.get("/ledger", response_model=list[LedgerEntryOut])
def get_ledger(session: SessionDep, settings: SettingsDep, user: CurrentUser) -> list[LedgerEntryOut]:
    """The team's charges and refunds, oldest first. A refund is written when its run ends, so its
    time is shown as a run's end is (server.disclosure.run_view)."""
    team = _team_of(session, user)
    viewer = viewer_of(user, settings)
    rows = session.scalars(select(QuotaEntry).where(QuotaEntry.team_id == team.id).order_by(QuotaEntry.id))
    return [
        LedgerEntryOut(
            id=r.id,
            kind=r.kind.value,
            submission_id=r.submission_id,
            refund_of=r.refund_of,
            phase=r.phase,
            reason=r.reason,
            created_at=shown_time(r.created_at, viewer),
        )
        for r in rows
    ]
