"""Account operations shared by the admin API and `csawm admin`. Services flush, never commit."""

from __future__ import annotations

import re
from datetime import timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from server.clock import utcnow
from server.core import audit, text
from server.core.errors import BadRequest, Conflict, NotFound
from server.core.security import TOKEN_PREFIX, hash_token, new_token, token_display_prefix
from server.models import ApiToken, Role, Team, User

_EMAIL_RE = re.compile(r"^[^@\s]+@[^@\s]+$")
_TEAM_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9 ._-]{0,99}$")
QUOTA_FIELDS = ("per_day", "per_week", "total", "active")


def check_team_name(name: str) -> None:
    """The rule `create_team` applies, for callers that check a name before a team exists."""
    if not _TEAM_RE.fullmatch(name):
        raise BadRequest(
            f"invalid team name {name!r}: 1-100 characters, letters, digits, space, '.', '_' or '-'"
        )


def get_team(session: Session, name: str) -> Team:
    team = session.scalar(select(Team).where(Team.name == name))
    if team is None:
        raise NotFound(f"no team named {name!r}")
    return team


def get_user(session: Session, email: str) -> User:
    user = session.scalar(select(User).where(User.email == email.lower()))
    if user is None:
        raise NotFound(f"no user with email {email!r}")
    return user


def lock_team(session: Session, team_id: int) -> Team:
    """Load the team row locked for this transaction (``FOR UPDATE``): quota charges and phase
    selections of one team queue here (see `server.quota.service`)."""
    team = session.scalar(select(Team).where(Team.id == team_id).with_for_update())
    if team is None:
        raise NotFound(f"team {team_id} does not exist")
    return team


def create_team(session: Session, name: str, *, actor: str, actor_user_id: int | None = None) -> Team:
    check_team_name(name)
    if session.scalar(select(Team.id).where(Team.name == name)) is not None:
        raise Conflict(f"team {name!r} already exists")
    team = Team(name=name)
    session.add(team)
    session.flush()
    audit.record(
        session,
        actor=actor,
        actor_user_id=actor_user_id,
        action="create_team",
        target_type="team",
        target_id=team.id,
        detail={"name": name},
    )
    return team


def create_user(
    session: Session,
    email: str,
    *,
    role: Role,
    team_name: str | None,
    actor: str,
    actor_user_id: int | None = None,
) -> User:
    email = text.require(text.check_name, email.strip().lower(), "email address")
    if not _EMAIL_RE.match(email) or len(email) > 254:
        raise BadRequest(f"invalid email address {email!r}")
    if role == Role.RESEARCHER and not team_name:
        raise BadRequest("a researcher needs a team (--team)")
    team = get_team(session, team_name) if team_name else None
    if session.scalar(select(User.id).where(User.email == email)) is not None:
        raise Conflict(f"user {email!r} already exists")
    user = User(email=email, role=role, team_id=team.id if team else None)
    session.add(user)
    session.flush()
    audit.record(
        session,
        actor=actor,
        actor_user_id=actor_user_id,
        action="create_user",
        target_type="user",
        target_id=user.id,
        detail={"email": email, "role": role.value, "team": team_name},
    )
    return user


def issue_token(
    session: Session,
    email: str,
    *,
    expires_in: timedelta | None,
    label: str = "",
    actor: str,
    actor_user_id: int | None = None,
) -> tuple[ApiToken, str]:
    """Create a token for `email`; returns the row and the plaintext, which is never stored."""
    if expires_in is not None and expires_in <= timedelta(0):
        raise BadRequest("token lifetime must be positive")
    text.require(text.check_optional_name, label, "token label")
    user = get_user(session, email)
    if user.deactivated_at is not None:
        raise Conflict(f"user {user.email!r} is deactivated; reactivate the account first")
    plaintext = new_token()
    token = ApiToken(
        user_id=user.id,
        token_hash=hash_token(plaintext),
        prefix=token_display_prefix(plaintext),
        label=label[:100],
        expires_at=utcnow() + expires_in if expires_in is not None else None,
    )
    session.add(token)
    session.flush()
    audit.record(
        session,
        actor=actor,
        actor_user_id=actor_user_id,
        action="issue_token",
        target_type="token",
        target_id=token.id,
        detail={
            "email": user.email,
            "expires_at": token.expires_at.isoformat() if token.expires_at else None,
        },
    )
    return token, plaintext


def revoke_token(
    session: Session, token_or_id: str, *, actor: str, actor_user_id: int | None = None
) -> ApiToken:
    """Revoke by the token itself or by its numeric id. Revoking twice is an error naming the time."""
    if token_or_id.startswith(TOKEN_PREFIX):
        token = session.scalar(select(ApiToken).where(ApiToken.token_hash == hash_token(token_or_id)))
    elif token_or_id.isdigit():
        token = session.get(ApiToken, int(token_or_id))
    else:
        raise BadRequest(f"expected a token ({TOKEN_PREFIX}...) or a token id, got {token_or_id!r}")
    if token is None:
        raise NotFound("no such token")
    if token.revoked_at is not None:
        raise Conflict(f"token {token.id} was already revoked at {token.revoked_at.isoformat()}")
    token.revoked_at = utcnow()
    session.flush()
    audit.record(
        session,
        actor=actor,
        actor_user_id=actor_user_id,
        action="revoke_token",
        target_type="token",
        target_id=token.id,
    )
    return token


def set_active(
    session: Session, email: str, active: bool, *, actor: str, actor_user_id: int | None = None
) -> User:
    """Deactivate or reactivate an account, audited.

    A deactivated account cannot log in on the web, each of its tokens is refused (kept, not
    revoked: reactivation restores those still valid) and it gets no team mail. Its runs, its
    team's quota and its audit trail stay. An admin cannot deactivate their own account (the
    command line can still reactivate any account).
    """
    user = get_user(session, email)
    if active and user.deactivated_at is None:
        raise Conflict(f"user {user.email!r} is already active")
    if not active and user.deactivated_at is not None:
        raise Conflict(f"user {user.email!r} was already deactivated at {user.deactivated_at.isoformat()}")
    if not active and actor_user_id == user.id:
        raise BadRequest("you cannot deactivate your own account")
    user.deactivated_at = None if active else utcnow()
    session.flush()
    audit.record(
        session,
        actor=actor,
        actor_user_id=actor_user_id,
        action="reactivate_user" if active else "deactivate_user",
        target_type="user",
        target_id=user.id,
        detail={"email": user.email},
    )
    return user


def set_quota(
    session: Session,
    team_name: str,
    values: dict[str, int | None],
    *,
    actor: str,
    actor_user_id: int | None = None,
) -> Team:
    """Override quota limits for one team; a value of None restores the server default."""
    team = get_team(session, team_name)
    for key, value in values.items():
        if key not in QUOTA_FIELDS:
            raise BadRequest(f"unknown quota field {key!r}; expected one of {', '.join(QUOTA_FIELDS)}")
        if value is not None and value < 0:
            raise BadRequest(f"quota {key} must be >= 0, got {value}")
        setattr(team, f"quota_{key}", value)
    session.flush()
    audit.record(
        session,
        actor=actor,
        actor_user_id=actor_user_id,
        action="set_quota",
        target_type="team",
        target_id=team.id,
        detail={"team": team_name, **values},
    )
    return team
