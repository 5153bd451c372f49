"""Maintainer endpoints: the review queue, review actions, the audit log, the review flags, team holds."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query
from sqlalchemy import func, select

from server.accounts.service import get_team
from server.core.deps import (
    IdPath,
    MaintainerUser,
    OffsetQuery,
    SessionDep,
    SettingsDep,
    StateDep,
    require_maintainer,
)
from server.core.openapi import error_responses
from server.disclosure.disclose import ViewCache, disclose
from server.models import RunStatus, Submission, TeamHold
from server.review import flags, service
from server.review.schemas import AuditOut, FlagsOut, HoldIn, HoldOut, ReviewIn
from server.runs import holds
from server.submissions.router import summary
from server.submissions.schemas import SubmissionSummary

router = APIRouter(
    prefix="/api/v1/admin",
    tags=["review"],
    dependencies=[Depends(require_maintainer)],
    responses=error_responses(400, 404, 409),
)


@router.get("/review", response_model=list[SubmissionSummary])
def review_queue(session: SessionDep, settings: SettingsDep, user: MaintainerUser) -> list[SubmissionSummary]:
    teams = flags.team_names(session)
    cache = ViewCache()
    return [
        summary(s, teams.get(s.team_id, ""), disclose(session, settings, s, user, cache))
        for s in service.review_queue(session)
    ]


@router.post("/submissions/{submission_id}/review", response_model=SubmissionSummary)
def review_submission(
    submission_id: IdPath, body: ReviewIn, session: SessionDep, settings: SettingsDep, user: MaintainerUser
) -> SubmissionSummary:
    sub = service.review(session, user, submission_id, body.action, body.reason)
    view = disclose(session, settings, sub, user)
    return summary(sub, flags.team_names(session).get(sub.team_id, ""), view)


@router.get("/audit", response_model=list[AuditOut])
def audit(
    session: SessionDep,
    action: Annotated[str | None, Query(max_length=100)] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 200,
    offset: OffsetQuery = 0,
) -> list[AuditOut]:
    """Every maintainer and admin action, newest first."""
    entries = service.audit_log(session, action=action, limit=limit, offset=offset)
    return [AuditOut.model_validate(e, from_attributes=True) for e in entries]


@router.get("/flags", response_model=FlagsOut)
def review_flags(session: SessionDep, settings: SettingsDep, state: StateDep) -> FlagsOut:
    """Runs to look at: correlated predictions across teams, one image from several teams, sudden
    jumps (`server.review.flags`). Informational only: nothing is blocked or changed."""
    return flags.compute_flags(session, settings.data_dir, state.parts.get(flags.RankCache))


def _hold_out(session: SessionDep, row: TeamHold, team: str) -> HoldOut:
    queued = session.scalar(
        select(func.count())
        .select_from(Submission)
        .where(Submission.team_id == row.team_id, Submission.status == RunStatus.QUEUED)
    )
    return HoldOut(
        team=team,
        reason=row.reason,
        submission_id=row.submission_id,
        held_by=row.held_by,
        created_at=row.created_at,
        queued_runs=int(queued or 0),
    )


@router.get("/holds", response_model=list[HoldOut])
def list_holds(session: SessionDep) -> list[HoldOut]:
    """Held teams, oldest hold first: none of their queued runs is leased (`server.runs.holds`)."""
    return [_hold_out(session, row, name) for row, name in holds.listed(session)]


@router.put("/teams/{name}/hold", response_model=HoldOut)
def hold_team(name: str, body: HoldIn, session: SessionDep, user: MaintainerUser) -> HoldOut:
    """Hold a team: its queued runs wait until released. Holding a held team changes nothing."""
    team = get_team(session, name)
    row = holds.hold(session, team.id, reason=body.reason, actor=user.audit_name, actor_user_id=user.user_id)
    return _hold_out(session, row, team.name)


@router.delete("/teams/{name}/hold", response_model=HoldOut)
def release_team(name: str, session: SessionDep, user: MaintainerUser) -> HoldOut:
    """Release a held team (409 when it is not held): its queued runs are leased again, in order."""
    team = get_team(session, name)
    row = holds.release(session, team.id, actor=user.audit_name, actor_user_id=user.user_id)
    return _hold_out(session, row, team.name)
