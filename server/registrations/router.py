"""Registration endpoints: anyone registers; maintainers decide; a team's members answer join requests."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse

from server.clock import utcnow
from server.core.deps import (
    CurrentUser,
    DatabaseDep,
    IdPath,
    MaintainerUser,
    SessionDep,
    SettingsDep,
    require_maintainer,
)
from server.core.errors import Forbidden
from server.core.openapi import error_responses
from server.models import RegistrationState
from server.registrations import limits, questions, service
from server.registrations.schemas import (
    AcceptedOut,
    JoinRequestOut,
    RegistrationIn,
    RegistrationOut,
    RejectIn,
)

router = APIRouter(prefix="/api/v1", tags=["registration"])
admin_router = APIRouter(
    prefix="/api/v1/admin/registrations",
    tags=["admin"],
    dependencies=[Depends(require_maintainer)],
    responses=error_responses(404, 409),
)


def client_address(request: Request) -> str:
    """The caller's address as the server sees it (behind a proxy: ``CSAWM_FORWARDED_ALLOW_IPS``)."""
    return request.client.host if request.client is not None else "unknown"


@router.post(
    "/registrations",
    status_code=202,
    response_model=AcceptedOut,
    responses=error_responses(400, 404, 409, 429, 503),
)
def register(
    body: RegistrationIn, request: Request, db: DatabaseDep, session: SessionDep, settings: SettingsDep
) -> JSONResponse:
    """Register (anyone). Valid bodies get the same 202 whatever the email; the mail says what happened."""
    limits.charge(db, client_address(request), utcnow())
    action, team_name = body.team.action
    service.submit(
        session,
        settings,
        email=body.email,
        name=body.name,
        affiliation=body.affiliation,
        orcid=body.orcid,
        team_action=action,
        team_name=team_name,
        answers=dict(body.answers),
    )
    return JSONResponse(AcceptedOut().model_dump(), status_code=202)


@router.get("/registrations/questions")
def registration_questions(settings: SettingsDep) -> list[dict[str, object]]:
    """The operator's questions (``CSAWM_REGISTRATION_QUESTIONS``): id, text, required."""
    return [
        {"id": q.id, "text": q.text, "required": q.required}
        for q in questions.load(settings.registration_questions)
    ]


@admin_router.get("", response_model=list[RegistrationOut])
def list_registrations(session: SessionDep, state: RegistrationState | None = None) -> list[RegistrationOut]:
    return [RegistrationOut.of(r) for r in service.listing(session, state)]


@admin_router.post("/{registration_id}/approve", response_model=RegistrationOut)
def approve(
    registration_id: IdPath, session: SessionDep, settings: SettingsDep, who: MaintainerUser
) -> RegistrationOut:
    reg = service.approve(session, settings, registration_id, actor=who.audit_name, actor_user_id=who.user_id)
    return RegistrationOut.of(reg)


@admin_router.post("/{registration_id}/reject", response_model=RegistrationOut)
def reject(
    registration_id: IdPath, body: RejectIn, session: SessionDep, who: MaintainerUser
) -> RegistrationOut:
    reg = service.reject(
        session, registration_id, body.reason, actor=who.audit_name, actor_user_id=who.user_id
    )
    return RegistrationOut.of(reg)


def _team_of(user: CurrentUser) -> str:
    if user.team_name is None:
        raise Forbidden("join requests belong to a team; this account has none")
    return user.team_name


def _join_out(reg: object) -> JoinRequestOut:
    return JoinRequestOut.model_validate(reg, from_attributes=True)


@router.get("/teams/me/join-requests", response_model=list[JoinRequestOut], responses=error_responses(403))
def join_requests(session: SessionDep, user: CurrentUser) -> list[JoinRequestOut]:
    return [_join_out(r) for r in service.join_requests(session, _team_of(user))]


@router.post(
    "/teams/me/join-requests/{registration_id}/accept",
    response_model=JoinRequestOut,
    responses=error_responses(403, 404, 409),
)
def accept_join(
    registration_id: IdPath, session: SessionDep, settings: SettingsDep, user: CurrentUser
) -> JoinRequestOut:
    reg = service.accept_join(
        session, settings, _team_of(user), registration_id, actor=user.audit_name, actor_user_id=user.user_id
    )
    return _join_out(reg)


@router.post(
    "/teams/me/join-requests/{registration_id}/decline",
    response_model=JoinRequestOut,
    responses=error_responses(403, 404, 409),
)
def decline_join(registration_id: IdPath, session: SessionDep, user: CurrentUser) -> JoinRequestOut:
    reg = service.decline_join(
        session, _team_of(user), registration_id, actor=user.audit_name, actor_user_id=user.user_id
    )
    return _join_out(reg)
