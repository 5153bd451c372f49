"""`/api/v1/me` and the admin endpoints for teams, users (and their deactivation), tokens and quota
overrides."""

from __future__ import annotations

from datetime import timedelta

from fastapi import APIRouter, Depends
from sqlalchemy import select

from server.accounts import service
from server.accounts.schemas import (
    MeOut,
    NewTokenOut,
    QuotaLimitsIn,
    TeamIn,
    TeamOut,
    TokenIn,
    TokenOut,
    UserIn,
    UserOut,
)
from server.core.deps import AdminUser, CurrentUser, IdPath, SessionDep, require_admin
from server.core.openapi import error_responses
from server.models import ApiToken, Team, User

me_router = APIRouter(prefix="/api/v1", tags=["accounts"])
admin_router = APIRouter(
    prefix="/api/v1/admin",
    tags=["admin"],
    dependencies=[Depends(require_admin)],
    responses=error_responses(400, 404, 409),
)


def _team_out(team: Team) -> TeamOut:
    return TeamOut(
        id=team.id,
        name=team.name,
        created_at=team.created_at,
        quota_overrides={k: getattr(team, f"quota_{k}") for k in service.QUOTA_FIELDS},
    )


def _user_out(user: User) -> UserOut:
    return UserOut(
        id=user.id,
        email=user.email,
        role=user.role,
        team=user.team.name if user.team else None,
        created_at=user.created_at,
        active=user.deactivated_at is None,
        deactivated_at=user.deactivated_at,
    )


def _token_out(token: ApiToken) -> TokenOut:
    return TokenOut.model_validate(token, from_attributes=True)


@me_router.get("/me", response_model=MeOut)
def me(user: CurrentUser) -> MeOut:
    return MeOut(email=user.email, role=user.role, team=user.team_name)


@admin_router.get("/teams", response_model=list[TeamOut])
def list_teams(session: SessionDep) -> list[TeamOut]:
    return [_team_out(t) for t in session.scalars(select(Team).order_by(Team.id))]


@admin_router.post("/teams", response_model=TeamOut, status_code=201)
def create_team(body: TeamIn, session: SessionDep, admin: AdminUser) -> TeamOut:
    team = service.create_team(session, body.name, actor=admin.audit_name, actor_user_id=admin.user_id)
    return _team_out(team)


@admin_router.put("/teams/{name}/quota", response_model=TeamOut)
def set_quota(name: str, body: QuotaLimitsIn, session: SessionDep, admin: AdminUser) -> TeamOut:
    values = body.model_dump(exclude_unset=True)
    team = service.set_quota(session, name, values, actor=admin.audit_name, actor_user_id=admin.user_id)
    return _team_out(team)


@admin_router.get("/users", response_model=list[UserOut])
def list_users(session: SessionDep) -> list[UserOut]:
    return [_user_out(u) for u in session.scalars(select(User).order_by(User.id))]


@admin_router.post("/users", response_model=UserOut, status_code=201)
def create_user(body: UserIn, session: SessionDep, admin: AdminUser) -> UserOut:
    user = service.create_user(
        session,
        body.email,
        role=body.role,
        team_name=body.team,
        actor=admin.audit_name,
        actor_user_id=admin.user_id,
    )
    return _user_out(user)


@admin_router.post("/users/{email}/deactivate", response_model=UserOut)
def deactivate_user(email: str, session: SessionDep, admin: AdminUser) -> UserOut:
    user = service.set_active(session, email, False, actor=admin.audit_name, actor_user_id=admin.user_id)
    return _user_out(user)


@admin_router.post("/users/{email}/reactivate", response_model=UserOut)
def reactivate_user(email: str, session: SessionDep, admin: AdminUser) -> UserOut:
    user = service.set_active(session, email, True, actor=admin.audit_name, actor_user_id=admin.user_id)
    return _user_out(user)


@admin_router.get("/users/{email}/tokens", response_model=list[TokenOut])
def list_tokens(email: str, session: SessionDep) -> list[TokenOut]:
    user = service.get_user(session, email)
    return [_token_out(t) for t in session.scalars(select(ApiToken).where(ApiToken.user_id == user.id))]


@admin_router.post("/users/{email}/tokens", response_model=NewTokenOut, status_code=201)
def issue_token(email: str, body: TokenIn, session: SessionDep, admin: AdminUser) -> NewTokenOut:
    expires = timedelta(days=body.expires_in_days) if body.expires_in_days is not None else None
    token, plaintext = service.issue_token(
        session,
        email,
        expires_in=expires,
        label=body.label,
        actor=admin.audit_name,
        actor_user_id=admin.user_id,
    )
    return NewTokenOut(**_token_out(token).model_dump(), token=plaintext)


@admin_router.delete("/tokens/{token_id}", response_model=TokenOut)
def revoke_token(token_id: IdPath, session: SessionDep, admin: AdminUser) -> TokenOut:
    token = service.revoke_token(session, str(token_id), actor=admin.audit_name, actor_user_id=admin.user_id)
    return _token_out(token)


router = APIRouter()
router.include_router(me_router)
router.include_router(admin_router)
