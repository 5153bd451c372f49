"""Maintainer pages beside the review console (issue 23 item 7): phases (create, edit, reveal),
accounts and tokens, quotas, and re-scoring as a background job; the names the console's audit log
and sealed-selection sections show.

Every form calls the same service function as its ``csawm admin`` command and API route
(`server.phases.service`, `server.accounts.service`, `server.runs.rescore`), so a rule lives once and
the service writes the audit entry, with the logged-in user as actor. Every POST checks the
session's CSRF token. Who may use a page is the API's rule for the same action (`ACCESS`): phases and
re-scoring are for maintainers and admins, accounts, tokens and quotas for admins only, as
``/api/v1/admin/teams`` and ``/api/v1/admin/users`` are. Anonymous visitors are sent to the login page.
A new API token is shown once, on the page that answers the form, and is never stored (only its hash).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any, TypeVar
from urllib.parse import urlencode

from fastapi import APIRouter, Depends, Form, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from itsdangerous import BadSignature
from sqlalchemy import select
from sqlalchemy.orm import Session

from server.accounts import service as accounts
from server.clock import utcnow
from server.core.deps import IdPath, SessionDep, StateDep, get_state
from server.core.errors import BadRequest, CsawmError
from server.core.principal import Principal
from server.models import (
    ApiToken,
    AuditEntry,
    Phase,
    PhaseSelection,
    Role,
    Submission,
    Team,
    User,
    Visibility,
)
from server.phases import service as phases
from server.phases.service import PhaseView
from server.quota import service as quota
from server.web.admin_rescore import RescoreJobs
from server.web.deps import SignerDep, WebUser
from server.web.session import CsrfError, SessionSigner
from server.web.templating import error_page, render

router = APIRouter(include_in_schema=False)

#: Who may use each page: the role the API asks for the same action.
ACCESS: dict[str, frozenset[Role]] = {
    "phases": frozenset({Role.MAINTAINER, Role.ADMIN}),
    "rescore": frozenset({Role.MAINTAINER, Role.ADMIN}),
    "accounts": frozenset({Role.ADMIN}),
    "quotas": frozenset({Role.ADMIN}),
}
TEMPLATES = {name: f"admin_{name}.html" for name in ACCESS}
NO_STORE = {"Cache-Control": "no-store"}
NOTICE_MAX_AGE_S = 300
NONE_WORDS = ("", "none", "never")
QUOTA_KEYS = ("quota_total", "quota_per_day", "quota_per_week")  # a phase's; a team's: QUOTA_FIELDS
CLEARABLE = ("closes_at", *QUOTA_KEYS, "compute_budget_s")  # a blank clears these; other blanks keep


NoticeQuery = Annotated[str | None, Query(max_length=4000)]
N = TypeVar("N", int, float)


# -- access, errors --------------------------------------------------------------------------------


def _refused(request: Request, signer: SessionSigner, user: Principal | None, page: str) -> Response | None:
    """The login page for an anonymous visitor, a 403 page for a role the page is not for."""
    if user is None:
        target = request.url.path
        return RedirectResponse(f"/login?{urlencode({'next': target})}", status_code=303)
    if user.role not in ACCESS[page]:
        roles = " or ".join(sorted(r.value for r in ACCESS[page]))
        return error_page(
            request, signer, user, 403, "Not for your role", f"This page needs the {roles} role."
        )
    return None


def _page(
    request: Request, session: Session, signer: SessionSigner, user: Principal, page: str,
    *, notice: str | None = None, error: str | None = None, status_code: int = 200, **extra: Any,
) -> HTMLResponse:  # fmt: skip
    context = {**CONTEXTS[page](request, session), "notice": notice, "error": error, **extra}
    response = render(request, signer, user, TEMPLATES[page], context, status_code=status_code)
    response.headers.update(NO_STORE)
    return response


def _get_route(page: str) -> None:
    """``GET /admin/<page>``: access (login, role), then the page with the notice its form's
    redirect carried."""

    def get(
        request: Request, session: SessionDep, signer: SignerDep, user: WebUser, notice: NoticeQuery = None
    ) -> Response:
        refused = _refused(request, signer, user, page)
        if refused is not None:
            return refused
        assert user is not None
        return _page(request, session, signer, user, page, notice=_notice(signer, notice))

    router.get(f"/admin/{page}", response_model=None, name=f"{page}_page")(get)


def _post(
    request: Request, session: Session, signer: SessionSigner, user: Principal | None, page: str,
    csrf_token: str, action: Callable[[Principal], str | tuple[str, dict[str, Any]]],
) -> Response:  # fmt: skip
    """One form post: access, CSRF, then `action` (a service call) returning the notice to show, or
    the notice and extra page context (a new token). A refusal re-renders the page with the
    service's message, nothing changed; a success redirects to the page with the notice (PRG)."""
    refused = _refused(request, signer, user, page)
    if refused is not None:
        return refused
    assert user is not None
    try:
        signer.check_csrf(request, csrf_token)
        done = action(user)
    except CsrfError as exc:
        return _page(request, session, signer, user, page, error=str(exc), status_code=400)
    except CsawmError as exc:
        session.rollback()
        return _page(request, session, signer, user, page, error=exc.message, status_code=exc.status_code)
    if isinstance(done, tuple):  # a new token: shown on this answer only, never in a URL
        session.flush()
        return _page(request, session, signer, user, page, notice=done[0], **done[1])
    notice = urlencode({"notice": signer.serializer.dumps(done)})
    return RedirectResponse(f"/admin/{page}?{notice}", status_code=303)  # a reload posts nothing again


def _notice(signer: SessionSigner, signed: str | None) -> str | None:
    """The notice a form's redirect carries, signed by this server (a forged one shows nothing)."""
    if not signed:
        return None
    try:
        value = signer.serializer.loads(signed, max_age=NOTICE_MAX_AGE_S)
    except BadSignature:
        return None
    return value if isinstance(value, str) else None


def _number(value: str, field: str, kind: type[N]) -> N | None:
    """A posted number (`kind`), None when blank."""
    value = value.strip()
    if not value:
        return None
    try:
        return kind(value)
    except ValueError:
        what = "a whole number" if kind is int else "a number"
        raise BadRequest(f"{field} must be {what}, not {value!r}") from None


def _when(value: str, field: str) -> datetime | None:
    """An ISO 8601 time with its zone, ``now``, or blank / ``none`` (None), as the command takes it."""
    value = value.strip()
    if value.lower() in NONE_WORDS:
        return None
    if value.lower() == "now":
        return datetime.now(UTC)
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise BadRequest(f"{field}: {value!r} is not an ISO 8601 time (e.g. 2027-03-01T00:00Z)") from None
    if parsed.tzinfo is None:
        raise BadRequest(f"{field}: {value!r} has no time zone; add Z or +HH:MM")
    return parsed.astimezone(UTC)


for _name in ACCESS:  # the four pages, registered before their forms' routes
    _get_route(_name)


# -- phases ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class PhaseForm:
    """The fields of the phase form, as posted (text); FastAPI reads each from the form."""

    opens_at: Annotated[str, Form()] = ""
    closes_at: Annotated[str, Form()] = ""
    test_set: Annotated[str, Form()] = "private"
    visibility: Annotated[str, Form()] = "live"
    disclosure: Annotated[str, Form()] = ""
    ladder: Annotated[str, Form()] = ""
    ladder_level: Annotated[str, Form()] = ""
    ladder_step: Annotated[str, Form()] = ""
    max_selected: Annotated[str, Form()] = ""
    quota_total: Annotated[str, Form()] = ""
    quota_per_day: Annotated[str, Form()] = ""
    quota_per_week: Annotated[str, Form()] = ""
    compute_budget_s: Annotated[str, Form()] = ""

    def values(self) -> dict[str, Any]:
        """Typed values; a blank number is None (the server default), a blank end open-ended."""
        return {
            "opens_at": _when(self.opens_at, "opens at"),
            "closes_at": _when(self.closes_at, "closes at"),
            "test_set": self.test_set,
            "visibility": self.visibility,
            "disclosure": self.disclosure or None,
            "ladder": self.ladder == "on",
            "ladder_level": _number(self.ladder_level, "ladder level", float),
            "ladder_step": _number(self.ladder_step, "ladder step", float),
            **{
                key: _number(getattr(self, key), key.replace("_", " "), int)
                for key in ("max_selected", *QUOTA_KEYS, "compute_budget_s")
            },
        }


PhaseFormDep = Annotated[PhaseForm, Depends()]


def _phases_context(request: Request, session: Session) -> dict[str, Any]:
    now = utcnow()
    views = [PhaseView.of(row) for row in phases.rows(session)]
    revealable = {
        v.name for v in views
        if v.visibility == Visibility.SEALED.value and v.revealed_at is None
        and v.closes_at is not None and v.closes_at <= now
    }  # fmt: skip
    return {"phases": views, "revealable": revealable, "now": now}


@router.post("/admin/phases", response_model=None)
def create_phase(
    request: Request,
    session: SessionDep,
    signer: SignerDep,
    user: WebUser,
    form: PhaseFormDep,
    name: Annotated[str, Form()] = "",
    csrf_token: Annotated[str, Form()] = "",
) -> Response:
    def act(actor: Principal) -> str:
        values = {key: value for key, value in form.values().items() if value is not None}
        if "opens_at" not in values:
            raise BadRequest("opens at is required: an ISO 8601 time with its zone, or now")
        row = phases.create(
            session, {"name": name.strip(), **values}, actor=actor.audit_name, actor_user_id=actor.user_id
        )
        return f"Created phase {row.name}."

    return _post(request, session, signer, user, "phases", csrf_token, act)


@router.post("/admin/phases/{name}", response_model=None)
def update_phase(
    name: str,
    request: Request,
    session: SessionDep,
    signer: SignerDep,
    user: WebUser,
    form: PhaseFormDep,
    csrf_token: Annotated[str, Form()] = "",
) -> Response:
    """The edit form posts every field; only those that differ from the phase are changed, so an
    unchanged visibility of a revealed phase is no attempt to change it. A blank end, quota or
    budget clears it (open-ended, the server default, none); any other blank keeps the value."""

    def act(actor: Principal) -> str:
        row = session.scalar(select(Phase).where(Phase.name == name))
        posted = {k: v for k, v in form.values().items() if v is not None or k in CLEARABLE}
        current = PhaseView.of(row) if row is not None else None
        changed = {k: v for k, v in posted.items() if current is None or v != getattr(current, k)}
        if not changed and row is not None:
            return f"Phase {name}: nothing changed."
        updated = phases.update(session, name, changed, actor=actor.audit_name, actor_user_id=actor.user_id)
        return f"Updated phase {updated.name}: {', '.join(sorted(changed))}."

    return _post(request, session, signer, user, "phases", csrf_token, act)


@router.post("/admin/phases/{name}/reveal", response_model=None)
def reveal_phase(
    name: str,
    request: Request,
    session: SessionDep,
    state: StateDep,
    signer: SignerDep,
    user: WebUser,
    csrf_token: Annotated[str, Form()] = "",
) -> Response:
    """The API's reveal: the service, then the app's `RevealHook` (the revealed board's snapshot)."""

    def act(actor: Principal) -> str:
        row = phases.reveal(session, name, actor=actor.audit_name, actor_user_id=actor.user_id)
        state.parts.get(phases.RevealHook)(session, state.settings, row, actor.audit_name, actor.user_id)
        return f"Revealed phase {row.name}: its board now ranks the selected runs with exact scores."

    return _post(request, session, signer, user, "phases", csrf_token, act)


# -- accounts and tokens ---------------------------------------------------------------------------


def _accounts_context(request: Request, session: Session) -> dict[str, Any]:
    teams = list(session.scalars(select(Team).order_by(Team.name)))
    users = list(session.scalars(select(User).order_by(User.email)))
    tokens = list(session.scalars(select(ApiToken).order_by(ApiToken.id.desc()).limit(200)))
    emails = {u.id: u.email for u in users}
    return {
        "teams": teams, "users": users, "team_names": {t.id: t.name for t in teams},
        "tokens": [(t, emails.get(t.user_id, "")) for t in tokens], "roles": [r.value for r in Role],
        "now": utcnow(), "new_token": None,
    }  # fmt: skip


def _lifetime(days: str) -> timedelta | None:
    """Token lifetime in days as the command takes it: 0 never expires; blank is 90."""
    value = _number(days, "expires in days", float)
    value = 90.0 if value is None else value
    if value < 0:
        raise BadRequest(f"expires in days must be 0 (never) or more, not {value:g}")
    return None if value == 0 else timedelta(days=value)


@router.post("/admin/accounts/teams", response_model=None)
def create_team(
    request: Request, session: SessionDep, signer: SignerDep, user: WebUser,
    name: Annotated[str, Form()] = "", csrf_token: Annotated[str, Form()] = "",
) -> Response:  # fmt: skip
    def act(actor: Principal) -> str:
        team = accounts.create_team(
            session, name.strip(), actor=actor.audit_name, actor_user_id=actor.user_id
        )
        return f"Created team {team.name}."

    return _post(request, session, signer, user, "accounts", csrf_token, act)


@router.post("/admin/accounts/users", response_model=None)
def create_user(
    request: Request, session: SessionDep, signer: SignerDep, user: WebUser,
    email: Annotated[str, Form()] = "", role: Annotated[str, Form()] = "researcher",
    team: Annotated[str, Form()] = "", csrf_token: Annotated[str, Form()] = "",
) -> Response:  # fmt: skip
    def act(actor: Principal) -> str:
        if role not in {r.value for r in Role}:
            raise BadRequest(f"role must be researcher, maintainer or admin, not {role!r}")
        row = accounts.create_user(
            session, email, role=Role(role), team_name=team.strip() or None,
            actor=actor.audit_name, actor_user_id=actor.user_id,
        )  # fmt: skip
        return f"Created {row.role.value} {row.email}; issue their first token below."

    return _post(request, session, signer, user, "accounts", csrf_token, act)


@router.post("/admin/accounts/tokens", response_model=None)
def issue_token(
    request: Request, session: SessionDep, signer: SignerDep, user: WebUser,
    email: Annotated[str, Form()] = "", expires_days: Annotated[str, Form()] = "",
    label: Annotated[str, Form()] = "", csrf_token: Annotated[str, Form()] = "",
) -> Response:  # fmt: skip
    def act(actor: Principal) -> tuple[str, dict[str, Any]]:
        row, plaintext = accounts.issue_token(
            session, email.strip().lower(), expires_in=_lifetime(expires_days), label=label.strip(),
            actor=actor.audit_name, actor_user_id=actor.user_id,
        )  # fmt: skip
        notice = f"Issued token {row.id} for {email.strip().lower()}: copy it now, it is shown only once."
        return notice, {"new_token": plaintext}

    return _post(request, session, signer, user, "accounts", csrf_token, act)


@router.post("/admin/accounts/tokens/{token_id}/revoke", response_model=None)
def revoke_token(
    token_id: IdPath, request: Request, session: SessionDep, signer: SignerDep, user: WebUser,
    csrf_token: Annotated[str, Form()] = "",
) -> Response:  # fmt: skip
    def act(actor: Principal) -> str:
        row = accounts.revoke_token(
            session, str(token_id), actor=actor.audit_name, actor_user_id=actor.user_id
        )
        return f"Revoked token {row.id} ({row.prefix}…)."

    return _post(request, session, signer, user, "accounts", csrf_token, act)


# -- quotas ----------------------------------------------------------------------------------------


def _quotas_context(request: Request, session: Session) -> dict[str, Any]:
    settings = get_state(request).settings
    teams = list(session.scalars(select(Team).order_by(Team.name)))
    return {
        "teams": [(t, quota.compute_status(session, t, settings)) for t in teams],
        "fields": accounts.QUOTA_FIELDS,
    }


@router.post("/admin/quotas/{team_name}", response_model=None)
def set_quota(
    team_name: str, request: Request, session: SessionDep, signer: SignerDep, user: WebUser,
    per_day: Annotated[str, Form()] = "", per_week: Annotated[str, Form()] = "",
    total: Annotated[str, Form()] = "", active: Annotated[str, Form()] = "",
    csrf_token: Annotated[str, Form()] = "",
) -> Response:  # fmt: skip
    """Every limit is posted: a number overrides the server default, a blank restores it."""

    def act(actor: Principal) -> str:
        posted = {"per_day": per_day, "per_week": per_week, "total": total, "active": active}
        values = {key: _number(value, f"quota {key}", int) for key, value in posted.items()}
        accounts.set_quota(session, team_name, values, actor=actor.audit_name, actor_user_id=actor.user_id)
        return f"Quota of {team_name} saved."

    return _post(request, session, signer, user, "quotas", csrf_token, act)


# -- re-scoring ------------------------------------------------------------------------------------


def _rescore_context(request: Request, session: Session) -> dict[str, Any]:
    state = get_state(request)
    return {
        "job": state.parts.get(RescoreJobs).current,
        "benchmark": state.settings.benchmark_dir is not None,
    }


def _ids(text: str) -> list[int]:
    """Submission ids separated by spaces or commas."""
    words = text.replace(",", " ").split()
    if not words or not all(w.isdigit() and 0 < int(w) < 2**31 for w in words):
        raise BadRequest(
            f"give submission ids (numbers, separated by spaces or commas), or choose all; got {text!r}"
        )
    return sorted({int(w) for w in words})


@router.post("/admin/rescore", response_model=None)
def start_rescore(
    request: Request, session: SessionDep, state: StateDep, signer: SignerDep, user: WebUser,
    scope: Annotated[str, Form()] = "ids", ids: Annotated[str, Form()] = "",
    csrf_token: Annotated[str, Form()] = "",
) -> Response:  # fmt: skip
    def act(actor: Principal) -> str:
        wanted = None if scope == "all" else _ids(ids)
        job = state.parts.get(RescoreJobs).start(
            state.db, state.settings, wanted, actor=actor.audit_name, actor_user_id=actor.user_id
        )
        return f"Re-scoring job {job.number} started."

    return _post(request, session, signer, user, "rescore", csrf_token, act)


CONTEXTS: dict[str, Callable[[Request, Session], dict[str, Any]]] = {
    "phases": _phases_context,
    "accounts": _accounts_context,
    "quotas": _quotas_context,
    "rescore": _rescore_context,
}


# -- what the review console shows besides (server/web/router.py) ----------------------------------


def audit_names(session: Session, entries: Iterable[AuditEntry]) -> dict[tuple[str, str], str]:
    """The name of each team, user, phase and token an entry names, read now: ``(type, id) -> name``.
    A thing deleted since has no name here, and the page shows its id alone."""
    wanted: dict[str, set[int]] = {}
    for entry in entries:
        if entry.target_id.isdigit():
            wanted.setdefault(entry.target_type, set()).add(int(entry.target_id))
    names: dict[tuple[str, str], str] = {}
    sources: dict[str, Any] = {
        "team": (Team.id, Team.name),
        "user": (User.id, User.email),
        "phase": (Phase.id, Phase.name),
        "submission": (Submission.id, Submission.name),
    }
    for kind, (key, label) in sources.items():
        if wanted.get(kind):
            for found, name in session.execute(select(key, label).where(key.in_(wanted[kind]))):
                names[(kind, str(found))] = name
    if wanted.get("token"):
        rows = session.execute(
            select(ApiToken.id, User.email)
            .join(User, ApiToken.user_id == User.id)
            .where(ApiToken.id.in_(wanted["token"]))
        )
        for found, email in rows:
            names[("token", str(found))] = f"of {email}"
    return names


@dataclass(frozen=True)
class Selected:
    team: str
    sub: Submission
    selected_at: datetime


def sealed_selections(session: Session) -> list[tuple[PhaseView, list[Selected]]]:
    """Each sealed phase, newest first, with the runs its teams selected: what the final ranking
    will hold, which maintainers see before the reveal (researchers see their own team's only)."""
    sealed = [row for row in phases.rows(session) if row.visibility == Visibility.SEALED]
    out = []
    for row in reversed(sealed):
        found = session.execute(
            select(Team.name, Submission, PhaseSelection.created_at)
            .join(Submission, PhaseSelection.submission_id == Submission.id)
            .join(Team, PhaseSelection.team_id == Team.id)
            .where(PhaseSelection.phase_id == row.id)
            .order_by(Team.name, Submission.id)
        )
        out.append((PhaseView.of(row), [Selected(team, sub, at) for team, sub, at in found]))
    return out
