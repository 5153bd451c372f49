"""Alerts: endings the maintainers must look at (the policy's ``alert``: a broken deployment, retries
run out, a scorer crash).

An alert is an ``alert`` entry in the audit log, written in the same transaction as the ending
(``GET /api/v1/admin/audit?action=alert`` and the review console list them), and an ERROR log line
starting with ``ALERT`` for log-based monitoring. It carries the maintainers' full text; nothing of
it reaches a submitter.
"""

from __future__ import annotations

import logging
from typing import Any

from sqlalchemy.orm import Session

from server.core import audit
from server.models import AuditEntry

log = logging.getLogger("csawm.alerts")

ACTION = "alert"


def alert(
    session: Session, submission_id: int, *, actor: str, reason: str, detail: dict[str, Any]
) -> AuditEntry:
    """Record an alert about a run (in the caller's transaction) and log it."""
    log.error("ALERT run %s: %s (%s)", submission_id, reason, detail.get("error_code"))
    return audit.record(
        session,
        actor=actor,
        action=ACTION,
        target_type="submission",
        target_id=submission_id,
        reason=reason,
        detail=detail,
    )
