"""A team's webhooks: register (the URL checked against SSRF, the secret made and shown once), list,
remove, ping; and the team's delivery log. Every change lands in the audit log."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from server.core import audit
from server.core.errors import Conflict, Forbidden, NotFound
from server.core.principal import Principal
from server.models import Delivery, Webhook
from server.notifications import addresses, outbox, signing

MAX_WEBHOOKS = 10


def team_of(user: Principal) -> int:
    if user.team_id is None:
        raise Forbidden("webhooks and deliveries belong to a team; this account has none")
    return user.team_id


def create(session: Session, user: Principal, url: str, *, allow_private: bool) -> Webhook:
    team_id = team_of(user)
    addresses.check(url, allow_private=allow_private)
    count = session.scalar(select(func.count()).select_from(Webhook).where(Webhook.team_id == team_id)) or 0
    if count >= MAX_WEBHOOKS:
        raise Conflict(f"a team may register at most {MAX_WEBHOOKS} webhooks; remove one first")
    hook = Webhook(team_id=team_id, url=url, secret=signing.new_secret(), active=True)
    session.add(hook)
    session.flush()
    audit.record(
        session,
        actor=user.audit_name,
        actor_user_id=user.user_id,
        action="create_webhook",
        target_type="webhook",
        target_id=hook.id,
        detail={"url": url},
    )
    return hook


def listed(session: Session, user: Principal) -> Sequence[Webhook]:
    return session.scalars(select(Webhook).where(Webhook.team_id == team_of(user)).order_by(Webhook.id)).all()


def get(session: Session, user: Principal, webhook_id: int) -> Webhook:
    hook = session.get(Webhook, webhook_id)
    if hook is None or hook.team_id != team_of(user):
        raise NotFound(f"webhook {webhook_id} not found")
    return hook


def remove(session: Session, user: Principal, webhook_id: int) -> Webhook:
    """Delete the webhook; its pending deliveries die at their next attempt (the secret is gone)."""
    hook = get(session, user, webhook_id)
    session.delete(hook)
    session.flush()
    audit.record(
        session,
        actor=user.audit_name,
        actor_user_id=user.user_id,
        action="delete_webhook",
        target_type="webhook",
        target_id=webhook_id,
        detail={"url": hook.url},
    )
    return hook


def ping(session: Session, user: Principal, webhook_id: int) -> Delivery:
    hook = get(session, user, webhook_id)
    return outbox.enqueue_ping(session, hook, user.team_name or "")
