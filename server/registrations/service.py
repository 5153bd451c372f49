"""Registration with approval: submit, verify, decide, join requests, the welcome token.

The rules (docs/api.md#registration):

- `submit` answers every caller the same way once the body is valid: what happened is said only
  in the mail to the address (a new registration's verification link; "you already have an
  account"; "a registration is already pending"), so the API never tells whether an email is known.
- A link's token is random, stored as its SHA-256, works once and expires (`VERIFY_TTL`,
  `WELCOME_TTL`); using it clears the hash.
- Approval needs a verified address (else 409). It creates the team and the user, or, for a join,
  waits in ``awaiting_team`` until a member of that team accepts. Either way the user then gets a
  welcome link; the first API token is made when its page is opened, and shown there once.
- A team has at most ``CSAWM_MAX_TEAM_SIZE`` active members, checked with the team row locked.

Services flush, never commit: a refused step leaves nothing half-created.
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Sequence
from datetime import datetime, timedelta

from sqlalchemy import func, or_, select
from sqlalchemy.orm import Session

from server.accounts import service as accounts
from server.clock import utcnow
from server.core import audit
from server.core.errors import BadRequest, Conflict, CsawmError, NotFound, NotReady
from server.core.security import hash_token
from server.core.settings import Settings
from server.models import ApiToken, Registration, RegistrationState, Role, Team, TeamAction, User
from server.notifications.outbox import active_members, enqueue_account_mail
from server.registrations import mails, questions
from server.registrations.orcid import check_orcid

VERIFY_TTL = timedelta(hours=24)
WELCOME_TTL = timedelta(days=7)
OPEN_STATES = (RegistrationState.UNVERIFIED, RegistrationState.VERIFIED, RegistrationState.AWAITING_TEAM)
_EMAIL = re.compile(r"^[^@\s]{1,64}@[^@\s]+\.[^@\s]+$")


class LinkInvalid(CsawmError):
    """A one-time link that was used, expired, or never issued."""

    status_code = 410
    code = "link_invalid"


def normal_email(value: str) -> str:
    email = value.strip().lower()
    if len(email) > 254 or not _EMAIL.fullmatch(email):
        raise BadRequest(f"invalid email address {value[:300]!r}")
    return email


def _link(settings: Settings, path: str, token: str) -> str:
    return f"{settings.effective_public_url}{path}?token={token}"


def _new_link_token() -> tuple[str, str]:
    token = secrets.token_urlsafe(32)
    return token, hash_token(token)


def _require_room(session: Session, settings: Settings, team: Team) -> None:
    """409 ``team_full`` when `team` has ``CSAWM_MAX_TEAM_SIZE`` active members already."""
    members = session.scalar(select(func.count(User.id)).where(*active_members(team.id))) or 0
    if members >= settings.max_team_size:
        raise Conflict(f"team {team.name!r} is full ({settings.max_team_size} members)", reason="team_full")


def _pending(session: Session, email: str, now: datetime) -> Registration | None:
    return session.scalar(
        select(Registration)
        .where(
            Registration.email == email,
            or_(
                Registration.state.in_((RegistrationState.VERIFIED, RegistrationState.AWAITING_TEAM)),
                (Registration.state == RegistrationState.UNVERIFIED) & (Registration.verify_expires_at > now),
            ),
        )
        .limit(1)
    )


def submit(
    session: Session,
    settings: Settings,
    *,
    email: str,
    name: str,
    affiliation: str,
    orcid: str | None,
    team_action: TeamAction,
    team_name: str,
    answers: dict[str, str],
) -> None:
    """Judge the registration, then write it and its mail; see the module's rules."""
    if not settings.mail.enabled:
        raise NotReady(
            "self-registration needs email, and this server sends none (CSAWM_SMTP_HOST is not set)"
        )
    email = normal_email(email)
    if orcid is not None:
        try:
            check_orcid(orcid)
        except ValueError as exc:
            raise BadRequest(str(exc)) from None
    answers = questions.check_answers(questions.load(settings.registration_questions), answers)
    accounts.check_team_name(team_name)
    now = utcnow()
    team = session.scalar(select(Team).where(Team.name == team_name))
    if team_action is TeamAction.CREATE:
        claimed = session.scalar(
            select(Registration.id).where(
                Registration.team_action == TeamAction.CREATE,
                Registration.team_name == team_name,
                Registration.state.in_(OPEN_STATES),
            )
        )
        if team is not None or claimed is not None:
            raise Conflict(f"the team name {team_name!r} is taken; choose another", reason="team_taken")
    else:
        if team is None:
            raise NotFound(f"no team named {team_name!r} to join")
        _require_room(session, settings, team)

    if session.scalar(select(User.id).where(User.email == email)) is not None:
        enqueue_account_mail(session, email, *mails.known_account())
        return
    if _pending(session, email, now) is not None:
        enqueue_account_mail(session, email, *mails.already_pending())
        return
    token, digest = _new_link_token()
    reg = Registration(
        email=email,
        name=name,
        affiliation=affiliation,
        orcid=orcid,
        team_action=team_action,
        team_name=team_name,
        answers=answers,
        state=RegistrationState.UNVERIFIED,
        created_at=now,
        verify_hash=digest,
        verify_expires_at=now + VERIFY_TTL,
    )
    session.add(reg)
    session.flush()
    enqueue_account_mail(
        session, email, *mails.verify(reg, _link(settings, "/register/verify", token), now + VERIFY_TTL)
    )


def _by_link(session: Session, column: str, token: str) -> Registration:
    reg = session.scalar(
        select(Registration)
        .where(getattr(Registration, f"{column}_hash") == hash_token(token))
        .with_for_update()
    )
    if reg is None:
        raise LinkInvalid("this link was already used or is not valid")
    expires = getattr(reg, f"{column}_expires_at")
    if expires is None or expires <= utcnow():
        raise LinkInvalid(
            f"this link expired at {expires:%Y-%m-%d %H:%M} UTC" if expires else "this link expired"
        )
    return reg


def verify(session: Session, token: str) -> Registration:
    """Use a verification link: the registration is then ``verified`` and waits for a maintainer."""
    reg = _by_link(session, "verify", token)
    reg.state = RegistrationState.VERIFIED
    reg.verified_at = utcnow()
    reg.verify_hash = reg.verify_expires_at = None
    session.flush()
    return reg


def get(session: Session, registration_id: int, *, lock: bool = False) -> Registration:
    query = select(Registration).where(Registration.id == registration_id)
    reg = session.scalar(query.with_for_update() if lock else query)
    if reg is None:
        raise NotFound(f"registration {registration_id} does not exist")
    return reg


def listing(session: Session, state: RegistrationState | None = None) -> Sequence[Registration]:
    query = select(Registration).order_by(Registration.id)
    if state is not None:
        query = query.where(Registration.state == state)
    return session.scalars(query).all()


def _admit(session: Session, settings: Settings, reg: Registration, team: Team, *, actor: str) -> None:
    """Make the user in `team` (locked, its size checked) and send the welcome link."""
    accounts.lock_team(session, team.id)
    _require_room(session, settings, team)
    user = accounts.create_user(session, reg.email, role=Role.RESEARCHER, team_name=team.name, actor=actor)
    now = utcnow()
    token, digest = _new_link_token()
    reg.user_id = user.id
    reg.state = RegistrationState.APPROVED
    reg.welcome_hash = digest
    reg.welcome_expires_at = now + WELCOME_TTL
    session.flush()
    enqueue_account_mail(
        session, reg.email, *mails.welcome(reg, _link(settings, "/welcome", token), now + WELCOME_TTL)
    )


def approve(
    session: Session,
    settings: Settings,
    registration_id: int,
    *,
    actor: str,
    actor_user_id: int | None = None,
) -> Registration:
    reg = get(session, registration_id, lock=True)
    if reg.state is not RegistrationState.VERIFIED:
        raise Conflict(
            f"registration {reg.id} is {reg.state.value}; only a verified registration can be approved"
        )
    reg.decided_at = utcnow()
    reg.decided_by = actor
    if reg.team_action is TeamAction.CREATE:
        team = accounts.create_team(session, reg.team_name, actor=actor, actor_user_id=actor_user_id)
        _admit(session, settings, reg, team, actor=actor)
    else:
        accounts.get_team(session, reg.team_name)
        reg.state = RegistrationState.AWAITING_TEAM
    audit.record(
        session,
        actor=actor,
        actor_user_id=actor_user_id,
        action="approve_registration",
        target_type="registration",
        target_id=reg.id,
        detail={"email": reg.email, "state": reg.state.value},
    )
    session.flush()
    return reg


def _close(session: Session, reg: Registration, reason: str, *, actor: str) -> None:
    if reg.state not in OPEN_STATES:
        raise Conflict(f"registration {reg.id} is already {reg.state.value}")
    mail = reg.verified_at is not None  # never mail an address nobody confirmed
    reg.state = RegistrationState.REJECTED
    reg.reason = reason
    reg.decided_at = utcnow()
    reg.decided_by = actor
    reg.verify_hash = reg.verify_expires_at = None
    session.flush()
    if mail:
        enqueue_account_mail(session, reg.email, *mails.rejected(reg))


def reject(
    session: Session, registration_id: int, reason: str, *, actor: str, actor_user_id: int | None = None
) -> Registration:
    reg = get(session, registration_id, lock=True)
    _close(session, reg, reason, actor=actor)
    audit.record(
        session,
        actor=actor,
        actor_user_id=actor_user_id,
        action="reject_registration",
        target_type="registration",
        target_id=reg.id,
        reason=reason,
        detail={"email": reg.email},
    )
    return reg


def join_requests(session: Session, team_name: str) -> Sequence[Registration]:
    return session.scalars(
        select(Registration)
        .where(
            Registration.state == RegistrationState.AWAITING_TEAM,
            Registration.team_action == TeamAction.JOIN,
            Registration.team_name == team_name,
        )
        .order_by(Registration.id)
    ).all()


def _join_request(session: Session, team_name: str, registration_id: int) -> Registration:
    reg = get(session, registration_id, lock=True)
    if reg.team_action is not TeamAction.JOIN or reg.team_name != team_name:
        raise NotFound(f"no join request {registration_id} for team {team_name!r}")
    if reg.state is not RegistrationState.AWAITING_TEAM:
        raise Conflict(f"join request {reg.id} is {reg.state.value}")
    return reg


def accept_join(
    session: Session,
    settings: Settings,
    team_name: str,
    registration_id: int,
    *,
    actor: str,
    actor_user_id: int,
) -> Registration:
    reg = _join_request(session, team_name, registration_id)
    _admit(session, settings, reg, accounts.get_team(session, team_name), actor=actor)
    return _audit_join(session, reg, "accept_join_request", actor, actor_user_id)


def decline_join(
    session: Session, team_name: str, registration_id: int, *, actor: str, actor_user_id: int
) -> Registration:
    reg = _join_request(session, team_name, registration_id)
    _close(session, reg, f"declined by a member of team {team_name!r}", actor=actor)
    return _audit_join(session, reg, "decline_join_request", actor, actor_user_id)


def _audit_join(
    session: Session, reg: Registration, action: str, actor: str, actor_user_id: int
) -> Registration:
    detail = {"email": reg.email, "team": reg.team_name}
    audit.record(
        session,
        actor=actor,
        actor_user_id=actor_user_id,
        action=action,
        target_type="registration",
        target_id=reg.id,
        detail=detail,
    )
    return reg


def welcome(session: Session, token: str) -> tuple[User, ApiToken, str]:
    """Use a welcome link: the user's first API token, returned in plaintext this once."""
    reg = _by_link(session, "welcome", token)
    user = session.get(User, reg.user_id) if reg.user_id is not None else None
    if user is None:
        raise LinkInvalid("the account of this link no longer exists")
    api_token, plaintext = accounts.issue_token(
        session,
        user.email,
        expires_in=None,
        label="first token (welcome page)",
        actor=f"user:{user.email}",
        actor_user_id=user.id,
    )
    reg.welcome_hash = reg.welcome_expires_at = None
    session.flush()
    return user, api_token, plaintext
