"""`/api/v1/phases` (public list) and `/api/v1/admin/phases` (maintainers: create, change, reveal)."""

from __future__ import annotations

from dataclasses import asdict

from fastapi import APIRouter

from server.clock import utcnow
from server.core.deps import MaintainerUser, SessionDep, SettingsDep, StateDep
from server.core.openapi import error_responses
from server.phases import service
from server.phases.schemas import PhaseIn, PhaseOut, PhasePatch
from server.phases.service import PhaseView

router = APIRouter(tags=["phases"], responses=error_responses(400, 404, 409))


def _out(view: PhaseView, current: str | None) -> PhaseOut:
    return PhaseOut(**asdict(view), open=view.is_open(utcnow()), current=view.name == current)


@router.get("/api/v1/phases", response_model=list[PhaseOut])
def list_phases(session: SessionDep, settings: SettingsDep) -> list[PhaseOut]:
    """Public. Every phase, by opening time."""
    shown = service.shown(session, settings).name
    return [_out(PhaseView.of(row), shown) for row in service.rows(session)]


@router.post("/api/v1/admin/phases", response_model=PhaseOut, status_code=201)
def create_phase(body: PhaseIn, session: SessionDep, settings: SettingsDep, user: MaintainerUser) -> PhaseOut:
    row = service.create(session, body.model_dump(), actor=user.audit_name, actor_user_id=user.user_id)
    return _out(PhaseView.of(row), service.shown(session, settings).name)


@router.patch("/api/v1/admin/phases/{name}", response_model=PhaseOut)
def update_phase(
    name: str, body: PhasePatch, session: SessionDep, settings: SettingsDep, user: MaintainerUser
) -> PhaseOut:
    values = body.model_dump(exclude_unset=True)
    row = service.update(session, name, values, actor=user.audit_name, actor_user_id=user.user_id)
    return _out(PhaseView.of(row), service.shown(session, settings).name)


@router.post("/api/v1/admin/phases/{name}/reveal", response_model=PhaseOut)
def reveal_phase(
    name: str, session: SessionDep, state: StateDep, settings: SettingsDep, user: MaintainerUser
) -> PhaseOut:
    """Maintainers. Reveal a closed sealed phase; the app's `RevealHook` freezes the revealed board
    in the same transaction."""
    row = service.reveal(session, name, actor=user.audit_name, actor_user_id=user.user_id)
    state.parts.get(service.RevealHook)(session, settings, row, user.audit_name, user.user_id)
    return _out(PhaseView.of(row), service.shown(session, settings).name)
