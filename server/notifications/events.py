"""What a notification says: the event names and the payload, with no score, metric, log or error text.

A phase may be sealed (scores hidden until it is revealed) or a Ladder phase (rounded display): a
notification goes to addresses and URLs outside the server's access control, so it carries only
what the team's own submission list shows before any score: identity, status, error code, review
state and a link. Whoever wants the numbers follows the link and is checked there.
"""

from __future__ import annotations

import enum
from datetime import datetime
from typing import Any

from server.clock import iso
from server.disclosure.run_view import Viewer, shown_review, shown_time
from server.models import RunStatus, Submission


class Event(enum.StrEnum):
    FINISHED = "run.finished"  # succeeded (scored)
    FAILED = "run.failed"  # failed, whatever the cause (infra_error included)
    CANCELLED = "run.cancelled"  # cancelled, by the team or a maintainer
    REVIEWED = "run.reviewed"  # a maintainer changed the review state
    PING = "ping"  # POST /api/v1/teams/me/webhooks/{id}/test


EVENT_OF_STATUS: dict[RunStatus, Event] = {
    RunStatus.SUCCEEDED: Event.FINISHED,
    RunStatus.FAILED: Event.FAILED,
    RunStatus.CANCELLED: Event.CANCELLED,
}

#: Every key a payload may hold; a test checks the payload against it (no score can slip in).
PAYLOAD_FIELDS = frozenset(
    {
        "delivery_id",
        "event",
        "submission_id",
        "name",
        "team",
        "phase",
        "status",
        "error_code",
        "review_state",
        "url",
        "occurred_at",
    }
)


def run_payload(sub: Submission, team: str, event: Event, occurred_at: datetime) -> dict[str, Any]:
    """The stored part of a run's payload; `body` adds the delivery id and the link at send time."""
    return {
        "event": event.value,
        "submission_id": sub.id,
        "name": sub.name,
        "team": team,
        "phase": sub.phase,
        "status": sub.status.value,
        "error_code": sub.error_code,
        "review_state": None if (review := shown_review(sub)) is None else review.value,
        "occurred_at": iso(occurred_at),
    }


def ping_payload(team: str, occurred_at: datetime) -> dict[str, Any]:
    return {
        "event": Event.PING.value,
        "submission_id": None,
        "name": None,
        "team": team,
        "phase": None,
        "status": None,
        "error_code": None,
        "review_state": None,
        "occurred_at": iso(occurred_at),
    }


def body(payload: dict[str, Any], delivery_id: str, public_url: str, viewer: Viewer) -> dict[str, Any]:
    """The payload as sent: the stored fields plus the delivery id and the run's web page; the time
    as the team may see it (`viewer`: a run's end is rounded to the minute, server.disclosure.run_view)."""
    sub_id = payload.get("submission_id")
    url = f"{public_url}/submissions/{sub_id}" if sub_id is not None else None
    full = {"delivery_id": delivery_id, **payload, "url": url}
    occurred = payload.get("occurred_at")
    if isinstance(occurred, str):
        at = shown_time(datetime.fromisoformat(occurred.replace("Z", "+00:00")), viewer)
        full["occurred_at"] = iso(at) if at is not None else None
    return {key: value for key, value in full.items() if key in PAYLOAD_FIELDS}
