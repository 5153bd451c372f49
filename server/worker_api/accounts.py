"""Worker accounts: created and revoked by operators, resolved from a worker's bearer token.

A worker token is a token of a worker account only: it resolves here and nowhere else, and
`server.core.principal` answers 403 for it on every other route. No user's token resolves here.
"""

from __future__ import annotations

import re

from sqlalchemy import select
from sqlalchemy.orm import Session

from server.clock import utcnow
from server.core import audit
from server.core.errors import BadRequest, Conflict, NotFound, Unauthorized
from server.core.security import hash_token, new_token, token_display_prefix
from server.models import WorkerAccount

NAME_RE = re.compile(r"^[a-z0-9][a-z0-9-]{0,62}$")


def create_worker(session: Session, name: str, *, actor: str) -> tuple[WorkerAccount, str]:
    """A new worker account named `name` and its token (returned once; only its hash is stored)."""
    if not NAME_RE.match(name):
        raise BadRequest(f"{name!r} is not a worker name: lowercase letters, digits and '-', up to 63")
    if session.scalar(select(WorkerAccount.id).where(WorkerAccount.name == name)) is not None:
        raise Conflict(f"a worker named {name} exists already")
    token = new_token()
    row = WorkerAccount(name=name, token_hash=hash_token(token), prefix=token_display_prefix(token))
    session.add(row)
    session.flush()
    audit.record(session, actor=actor, action="worker.create", target_type="worker", target_id=row.id)
    return row, token


def revoke_worker(session: Session, name: str, *, actor: str) -> WorkerAccount:
    """Revoke the worker's token at once: its next call is 401 and its run goes back to the queue
    when the lease expires."""
    row = session.scalar(select(WorkerAccount).where(WorkerAccount.name == name))
    if row is None:
        raise NotFound(f"no worker named {name}")
    if row.revoked_at is None:
        row.revoked_at = utcnow()
        audit.record(session, actor=actor, action="worker.revoke", target_type="worker", target_id=row.id)
    return row


def list_workers(session: Session) -> list[WorkerAccount]:
    """Every worker account, by name, with its last call, version and test-set digest (``/admin``)."""
    return list(session.scalars(select(WorkerAccount).order_by(WorkerAccount.name)))


def worker_for_token(session: Session, token: str) -> WorkerAccount:
    """The worker account of `token`; 401 for any other token (a user's included) or a revoked one."""
    row = session.scalar(select(WorkerAccount).where(WorkerAccount.token_hash == hash_token(token)))
    if row is None:
        raise Unauthorized("not a worker token")
    if row.revoked_at is not None:
        raise Unauthorized("worker token revoked")
    return row
