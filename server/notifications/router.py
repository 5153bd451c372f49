"""`/api/v1/teams/me/webhooks` and `/api/v1/teams/me/deliveries`: a team manages its own notices."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from server.core.deps import CurrentUser, IdPath, OffsetQuery, SessionDep, SettingsDep
from server.core.openapi import error_responses
from server.disclosure.disclose import viewer_of
from server.disclosure.run_view import Viewer, shown_time
from server.models import Delivery, DeliveryAttempt, Webhook
from server.notifications import outbox, service
from server.notifications.schemas import AttemptOut, DeliveryOut, NewWebhookOut, WebhookIn, WebhookOut

router = APIRouter(
    prefix="/api/v1/teams/me", tags=["notifications"], responses=error_responses(400, 403, 404)
)


def _webhook_out(hook: Webhook) -> WebhookOut:
    return WebhookOut.model_validate(hook, from_attributes=True)


def delivery_out(row: Delivery, attempts: list[DeliveryAttempt], viewer: Viewer) -> DeliveryOut:
    """A delivery as the API and the team page show it; its times move with a run's end, so a
    submitter gets them as `viewer` allows (server.disclosure.run_view)."""
    state = "delivered" if row.delivered_at is not None else "dead" if row.dead_at is not None else "pending"
    return DeliveryOut(
        id=row.id,
        event=row.event,
        channel=row.channel.value,
        target=row.target,
        submission_id=row.submission_id,
        state=state,
        attempts=row.attempts,
        created_at=shown_time(row.created_at, viewer),
        next_attempt_at=shown_time(row.next_attempt_at, viewer) if state == "pending" else None,
        delivered_at=shown_time(row.delivered_at, viewer),
        dead_at=shown_time(row.dead_at, viewer),
        last_error=row.last_error,
        attempt_log=[
            AttemptOut(
                number=a.number,
                at=shown_time(a.at, viewer),
                ok=a.ok,
                status_code=a.status_code,
                error=a.error,
                duration_ms=a.duration_ms,
            )
            for a in attempts
        ],
    )


@router.post("/webhooks", response_model=NewWebhookOut, status_code=201)
def create_webhook(
    body: WebhookIn, session: SessionDep, user: CurrentUser, settings: SettingsDep
) -> NewWebhookOut:
    """Register a webhook; the answer holds its signing secret, shown this once."""
    hook = service.create(session, user, body.url, allow_private=settings.webhook_allow_private)
    return NewWebhookOut(**_webhook_out(hook).model_dump(), secret=hook.secret)


@router.get("/webhooks", response_model=list[WebhookOut])
def list_webhooks(session: SessionDep, user: CurrentUser) -> list[WebhookOut]:
    return [_webhook_out(h) for h in service.listed(session, user)]


@router.delete("/webhooks/{webhook_id}", response_model=WebhookOut)
def delete_webhook(webhook_id: IdPath, session: SessionDep, user: CurrentUser) -> WebhookOut:
    return _webhook_out(service.remove(session, user, webhook_id))


@router.post("/webhooks/{webhook_id}/test", response_model=DeliveryOut, status_code=202)
def test_webhook(
    webhook_id: IdPath, session: SessionDep, user: CurrentUser, settings: SettingsDep
) -> DeliveryOut:
    """Queue a signed ``ping`` delivery to the webhook; follow it in the delivery log."""
    return delivery_out(service.ping(session, user, webhook_id), [], viewer_of(user, settings))


@router.get("/deliveries", response_model=list[DeliveryOut])
def deliveries(
    session: SessionDep,
    user: CurrentUser,
    settings: SettingsDep,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
    offset: OffsetQuery = 0,
) -> list[DeliveryOut]:
    """The team's delivery log, newest first, each with its attempts."""
    rows = outbox.team_deliveries(session, service.team_of(user), limit=limit, offset=offset)
    attempts = outbox.attempts_of(session, [r.id for r in rows])
    viewer = viewer_of(user, settings)
    return [delivery_out(r, attempts[r.id], viewer) for r in rows]
