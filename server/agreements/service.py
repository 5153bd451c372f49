"""Accepting the data-use agreement, and the check every researcher's submission passes first.

A submission needs an acceptance of the version the server serves now (`Agreement.version`): an
acceptance of an older file does not count, so a changed agreement is accepted anew. The rule holds
for every account that submits through the API, maintainers and admins included (one rule, and
nothing on the leaderboard from an account that did not agree); the reference baselines seeded by
``csawm seed-baselines`` go through `server.submissions.service.create_baseline` and need none.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from server.agreements.document import Agreement
from server.core import audit
from server.core.errors import AgreementOutdated, AgreementRequired, NotFound
from server.core.principal import Principal
from server.models import AgreementAcceptance

ACCEPT_HINT = "read it with `csawm agreement` and accept it with `csawm agreement --accept`, or on {url}"


def accepted_at(session: Session, user_id: int, version: str) -> datetime | None:
    """When `user_id` accepted `version`, or None."""
    return session.scalar(
        select(AgreementAcceptance.accepted_at).where(
            AgreementAcceptance.user_id == user_id, AgreementAcceptance.version == version
        )
    )


def require_accepted(session: Session, user: Principal, agreement: Agreement | None, url: str) -> None:
    """`AgreementRequired` (403) unless `user` accepted the current `agreement` (None: no agreement
    is configured, nothing to accept). Called before a submission's body is read."""
    if agreement is None or accepted_at(session, user.user_id, agreement.version) is not None:
        return
    raise AgreementRequired(
        f"accept the data-use agreement (version {agreement.version[:12]}) before submitting: "
        + ACCEPT_HINT.format(url=url),
        version=agreement.version,
        url=url,
    )


def accept(
    session: Session, user: Principal, agreement: Agreement | None, version: str, url: str
) -> tuple[datetime, bool]:
    """Record that `user` accepts `version`; returns (accepted_at, whether this call recorded it).

    Idempotent for the current version (a second call returns the first acceptance and writes
    nothing); another version is `AgreementOutdated` (409) with the current one, so nobody agrees
    to a text they were not shown. The first acceptance writes an audit entry.
    """
    if agreement is None:
        raise NotFound("this server has no data-use agreement (CSAWM_DUA_FILE is not set); nothing to accept")
    if version != agreement.version:
        raise AgreementOutdated(
            f"version {version[:12]} is not the current data-use agreement (version "
            f"{agreement.version[:12]}); read the current text and accept that version",
            version=agreement.version,
            url=url,
        )
    if (earlier := accepted_at(session, user.user_id, version)) is not None:
        return earlier, False
    row = AgreementAcceptance(user_id=user.user_id, version=version)
    try:
        with session.begin_nested():
            session.add(row)
            session.flush()
    except IntegrityError:  # the same user accepting twice at once: the other request recorded it
        earlier = accepted_at(session, user.user_id, version)
        assert earlier is not None
        return earlier, False
    audit.record(
        session,
        actor=user.audit_name,
        actor_user_id=user.user_id,
        action="accept_agreement",
        target_type="agreement",
        target_id=version,
        detail={"file": agreement.path.name},
    )
    return row.accepted_at, True
