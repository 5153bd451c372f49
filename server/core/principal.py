"""Who is calling: a small frozen value resolved once per request from the bearer token, and the one
function that resolves it (`principal_for_hash`, and `authenticate` for a plaintext token), used by
the request guard, the API dependency, the web login and the web session cookie alike."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from server.clock import utcnow
from server.core.errors import Forbidden, Unauthorized
from server.core.security import hash_token
from server.models import ApiToken, Role, Team, User, WorkerAccount


@dataclass(frozen=True)
class Principal:
    user_id: int
    email: str
    role: Role
    team_id: int | None
    team_name: str | None

    @property
    def is_staff(self) -> bool:
        """Maintainers and admins see every team's submissions."""
        return self.role in (Role.MAINTAINER, Role.ADMIN)

    @property
    def audit_name(self) -> str:
        return self.email


def authenticate(session: Session, token: str, *, now: datetime | None = None) -> Principal:
    """Resolve a bearer token to its user (`principal_for_hash` of its hash)."""
    return principal_for_hash(session, hash_token(token), now=now)


def principal_for_hash(session: Session, token_hash: str, *, now: datetime | None = None) -> Principal:
    """The user behind a token's SHA-256: the one lookup of a caller, for the API's bearer token
    and for a web session cookie (which holds the hash, never the token). Unknown, revoked and
    expired tokens, and the tokens of a deactivated account, are all 401."""
    row = session.execute(
        select(ApiToken, User, Team)
        .join(User, ApiToken.user_id == User.id)
        .outerjoin(Team, User.team_id == Team.id)
        .where(ApiToken.token_hash == token_hash)
    ).first()
    if row is None:
        if session.scalar(select(WorkerAccount.id).where(WorkerAccount.token_hash == token_hash)):
            raise Forbidden("a worker token reaches only the worker API (/api/v1/worker/)")
        raise Unauthorized("invalid token")
    api_token, user, team = row
    if api_token.revoked_at is not None:
        raise Unauthorized("token revoked")
    if api_token.expires_at is not None and api_token.expires_at <= (now or utcnow()):
        raise Unauthorized("token expired")
    if user.deactivated_at is not None:
        raise Unauthorized("account deactivated")
    return Principal(
        user_id=user.id,
        email=user.email,
        role=user.role,
        team_id=team.id if team else None,
        team_name=team.name if team else None,
    )
