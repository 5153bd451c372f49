"""Factories for accounts, going through the real services (as `csawm admin` does)."""

from __future__ import annotations

from datetime import timedelta

from server.accounts import service
from server.core.db import Database
from server.models import Role


def team(db: Database, name: str) -> int:
    with db.transaction() as session:
        return service.create_team(session, name, actor="test").id


def user(
    db: Database,
    email: str,
    *,
    team: str | None = None,
    role: Role = Role.RESEARCHER,
    expires_in: timedelta | None = timedelta(days=1),
) -> str:
    """Create a user and return a fresh token for them."""
    with db.transaction() as session:
        service.create_user(session, email, role=role, team_name=team, actor="test")
        _, token = service.issue_token(session, email, expires_in=expires_in, actor="test")
    return token


def token(db: Database, email: str, *, expires_in: timedelta | None = timedelta(days=1)) -> str:
    with db.transaction() as session:
        _, plaintext = service.issue_token(session, email, expires_in=expires_in, actor="test")
    return plaintext


def auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}
