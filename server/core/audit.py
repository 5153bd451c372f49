"""The audit log: every maintainer and admin action, with who, what, on which object and why, and
each user's acceptance of a data-use agreement version (``accept_agreement``)."""

from __future__ import annotations

from typing import Any

from sqlalchemy.orm import Session

from server.models import AuditEntry


def record(
    session: Session,
    *,
    actor: str,
    action: str,
    target_type: str,
    target_id: str | int,
    actor_user_id: int | None = None,
    reason: str | None = None,
    detail: dict[str, Any] | None = None,
) -> AuditEntry:
    entry = AuditEntry(
        actor=actor,
        actor_user_id=actor_user_id,
        action=action,
        target_type=target_type,
        target_id=str(target_id),
        reason=reason,
        detail=detail,
    )
    session.add(entry)
    session.flush()
    return entry
