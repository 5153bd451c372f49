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


def member_token(db: Database, team_name: str = "alpha", email: str = "a@x.org", runs: int = 10) -> str:
    """A researcher of `team_name` (created) whose quota allows `runs` active runs a day and a week."""
    team(db, team_name)
    with db.transaction() as session:
        service.set_quota(
            session, team_name, {"active": runs, "per_day": runs, "per_week": runs}, actor="test"
        )
    return user(db, email, team=team_name)


def ledger(db: Database, submission_id: int) -> list[str]:
    """The quota ledger of one submission, oldest first: e.g. ``["charge", "refund"]``."""
    from server.models import QuotaEntry

    with db.transaction(write=False) as session:
        rows = session.query(QuotaEntry).filter_by(submission_id=submission_id).order_by(QuotaEntry.id)
        return [r.kind.value for r in rows]
