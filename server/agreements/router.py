"""`/api/v1/agreements`: read the data-use agreement and accept its current version."""

from __future__ import annotations

from datetime import datetime

from fastapi import APIRouter, Depends, Request

from server.agreements import service
from server.agreements.document import WEB_PATH, Agreement
from server.agreements.schemas import AgreementIn, AgreementOut
from server.core.deps import CurrentUser, SessionDep, StateDep, get_principal
from server.core.openapi import error_responses

router = APIRouter(
    prefix="/api/v1/agreements",
    tags=["agreements"],
    dependencies=[Depends(get_principal)],
)


def page_url(request: Request) -> str:
    """The absolute URL of the agreement's web page, as the client reached this server."""
    return str(request.base_url).rstrip("/") + WEB_PATH


def _out(agreement: Agreement | None, accepted_at: datetime | None, url: str) -> AgreementOut:
    if agreement is None:
        return AgreementOut(
            required=False, version=None, text=None, accepted=False, accepted_at=None, url=None
        )
    return AgreementOut(
        required=True,
        version=agreement.version,
        text=agreement.text,
        accepted=accepted_at is not None,
        accepted_at=accepted_at,
        url=url,
    )


@router.get("", response_model=AgreementOut)
def get_agreement(request: Request, state: StateDep, session: SessionDep, user: CurrentUser) -> AgreementOut:
    """The current agreement (version, Markdown text) and whether the caller accepted it."""
    agreement = state.parts.find(Agreement)
    when = service.accepted_at(session, user.user_id, agreement.version) if agreement else None
    return _out(agreement, when, page_url(request))


@router.post("", response_model=AgreementOut, responses=error_responses(404, 409))
def accept_agreement(
    body: AgreementIn, request: Request, state: StateDep, session: SessionDep, user: CurrentUser
) -> AgreementOut:
    """Accept the current version (409 with the current one for any other; repeating it is a no-op)."""
    url = page_url(request)
    agreement = state.parts.find(Agreement)
    when, _ = service.accept(session, user, agreement, body.version, url)
    return _out(agreement, when, url)
