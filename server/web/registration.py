"""The registration pages: `/register` (the form), `/register/verify` (the mail's link) and
`/welcome` (the approval mail's link: a button, then the first API token, shown once)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from sqlalchemy.orm import Session

from server.clock import utcnow
from server.core.db import Database
from server.core.deps import DatabaseDep, IdPath, SettingsDep
from server.core.errors import BadRequest, CsawmError
from server.core.principal import Principal
from server.core.settings import Settings
from server.models import Registration, TeamAction
from server.registrations import limits, questions, service
from server.registrations.router import client_address
from server.web.deps import SignerDep, WebUser
from server.web.session import CsrfError
from server.web.templating import error_page, render, staff_only

router = APIRouter(include_in_schema=False)
NO_STORE = {"Cache-Control": "no-store"}


def _form(
    request: Request, signer: Any, user: Any, settings: Settings, values: dict[str, str], **extra: Any
) -> HTMLResponse:
    status = extra.pop("status_code", 200)
    context = {"questions": questions.load(settings.registration_questions), "values": values, "error": None}
    return render(
        request, signer, user, "register.html", {**context, "done": False, **extra}, status_code=status
    )


@router.get("/register", response_class=HTMLResponse)
def register_page(request: Request, signer: SignerDep, user: WebUser, settings: SettingsDep) -> HTMLResponse:
    return _form(request, signer, user, settings, {})


def _submit(
    db: Database, settings: Settings, address: str, values: dict[str, str], answers: dict[str, str]
) -> None:
    limits.charge(db, address, utcnow())
    action = TeamAction.JOIN if values.get("team_mode") == "join" else TeamAction.CREATE
    with db.write_session() as session, session.begin():
        service.submit(
            session,
            settings,
            email=values.get("email", ""),
            name=values.get("name", "").strip(),
            affiliation=values.get("affiliation", "").strip(),
            orcid=values.get("orcid", "").strip() or None,
            team_action=action,
            team_name=values.get("team_name", "").strip(),
            answers=answers,
        )


@router.post("/register", response_class=HTMLResponse)
async def register(
    request: Request, signer: SignerDep, user: WebUser, db: DatabaseDep, settings: SettingsDep
) -> HTMLResponse:
    form = await request.form()
    values = {k: v for k, v in form.items() if isinstance(v, str)}
    answers = {
        k.removeprefix("answer_"): v for k, v in values.items() if k.startswith("answer_") and v.strip()
    }
    try:
        signer.check_csrf(request, values.get("csrf_token", ""))
    except CsrfError as exc:
        return _form(request, signer, user, settings, values, error=str(exc), status_code=400)
    for field in ("name", "email", "affiliation", "team_name"):
        if not values.get(field, "").strip():
            error = f"Fill in {field.replace('_', ' ')}."
            return _form(request, signer, user, settings, values, error=error, status_code=400)
    try:
        _submit(db, settings, client_address(request), values, answers)
    except CsawmError as exc:
        return _form(request, signer, user, settings, values, error=exc.message, status_code=exc.status_code)
    return _form(request, signer, user, settings, {}, done=True, status_code=202)


@router.get("/register/verify", response_class=HTMLResponse)
def verify_page(
    request: Request, signer: SignerDep, user: WebUser, db: DatabaseDep, token: str = ""
) -> HTMLResponse:
    try:
        with db.write_session() as session, session.begin():
            email = service.verify(session, token).email
    except CsawmError as exc:
        return render(
            request, signer, user, "registered.html", {"error": exc.message}, status_code=exc.status_code
        )
    return render(request, signer, user, "registered.html", {"error": None, "verified": email})


@router.get("/welcome", response_class=HTMLResponse)
def welcome_page(request: Request, signer: SignerDep, user: WebUser, token: str = "") -> HTMLResponse:
    """A button, not the token: a mail scanner that opens the link does not use it up."""
    return render(request, signer, user, "welcome.html", {"token": token, "api_token": None, "error": None})


@router.post("/welcome", response_class=HTMLResponse)
def welcome(
    request: Request,
    signer: SignerDep,
    user: WebUser,
    db: DatabaseDep,
    token: Annotated[str, Form()] = "",
    csrf_token: Annotated[str, Form()] = "",
) -> HTMLResponse:
    context: dict[str, Any] = {"token": token, "api_token": None, "error": None}
    try:
        signer.check_csrf(request, csrf_token)
        with db.write_session() as session, session.begin():
            account, _, plaintext = service.welcome(session, token)
            context.update(api_token=plaintext, email=account.email)
    except CsrfError as exc:
        context["error"] = str(exc)
        return render(request, signer, user, "welcome.html", context, status_code=400)
    except CsawmError as exc:
        context["error"] = exc.message
        return render(request, signer, user, "welcome.html", context, status_code=exc.status_code)
    response = render(request, signer, user, "welcome.html", context)
    response.headers.update(NO_STORE)
    return response


# -- the maintainers' section of /admin and the join requests on the team page ----------------------


def open_registrations(session: Session) -> list[Registration]:
    """What the /admin section lists: every registration not yet approved or rejected."""
    return [r for r in service.listing(session) if r.state in service.OPEN_STATES]


def _decided(
    request: Request, signer: Any, user: Principal, csrf_token: str, act: Any, back: str
) -> Response:
    try:
        signer.check_csrf(request, csrf_token)
        act()
    except CsrfError as exc:
        return error_page(request, signer, user, 400, "Not recorded", str(exc))
    except CsawmError as exc:
        return error_page(request, signer, user, exc.status_code, "Not recorded", exc.message)
    return RedirectResponse(back, status_code=303)


@router.post("/admin/registrations/{registration_id}/{decision}", response_model=None)
def admin_decide(
    registration_id: IdPath,
    decision: str,
    request: Request,
    db: DatabaseDep,
    settings: SettingsDep,
    signer: SignerDep,
    user: WebUser,
    reason: Annotated[str, Form(max_length=2000)] = "",
    csrf_token: Annotated[str, Form()] = "",
) -> Response:
    if user is None:
        return RedirectResponse("/login?next=/admin", status_code=303)
    if not user.is_staff:
        return staff_only(request, signer, user)
    who = user

    def act() -> None:
        with db.write_session() as session, session.begin():
            if decision == "approve":
                service.approve(
                    session, settings, registration_id, actor=who.audit_name, actor_user_id=who.user_id
                )
            elif decision == "reject" and reason.strip():
                service.reject(
                    session, registration_id, reason.strip(), actor=who.audit_name, actor_user_id=who.user_id
                )
            else:
                raise BadRequest("approve, or reject with a reason")

    return _decided(request, signer, user, csrf_token, act, "/admin#registrations-heading")


@router.post("/team/join-requests/{registration_id}/{decision}", response_model=None)
def team_decide(
    registration_id: IdPath,
    decision: str,
    request: Request,
    db: DatabaseDep,
    settings: SettingsDep,
    signer: SignerDep,
    user: WebUser,
    csrf_token: Annotated[str, Form()] = "",
) -> Response:
    if user is None:
        return RedirectResponse("/login?next=/team", status_code=303)
    if user.team_name is None:
        return error_page(
            request, signer, user, 403, "No team", "Join requests belong to a team; this account has none."
        )
    team, who = user.team_name, user

    def act() -> None:
        with db.write_session() as session, session.begin():
            if decision == "accept":
                service.accept_join(
                    session, settings, team, registration_id, actor=who.audit_name, actor_user_id=who.user_id
                )
            elif decision == "decline":
                service.decline_join(
                    session, team, registration_id, actor=who.audit_name, actor_user_id=who.user_id
                )
            else:
                raise BadRequest("accept or decline")

    return _decided(request, signer, user, csrf_token, act, "/team")
