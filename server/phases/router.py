"""`/api/v1/phases` (public list) and `/api/v1/admin/phases` (maintainers: create, change, reveal)."""

from __future__ import annotations

from fastapi import APIRouter

from server.clock import utcnow
from server.core.deps import MaintainerUser, SessionDep, SettingsDep, StateDep
from server.core.openapi import error_responses
from server.core.settings import Settings
from server.phases import service
from server.phases.schemas import PhaseIn, PhaseOut, PhasePatch
from server.phases.service import PhaseView

router = APIRouter(tags=["phases"], responses=error_responses(400, 404, 409))


def _out(view: PhaseView, current: str | None, settings: Settings) -> PhaseOut:
    now = utcnow()
    return PhaseOut(
        name=view.name, test_set=view.test_set, opens_at=view.opens_at, closes_at=view.closes_at,
        quota_total=view.quota_total, quota_per_day=view.quota_per_day, quota_per_week=view.quota_per_week,
        visibility=view.visibility, ladder=view.ladder, ladder_level=view.ladder_level,
        ladder_step=view.ladder_step, max_selected=view.max_selected, disclosure=view.disclosure,
        revealed_at=view.revealed_at, compute_budget_s=view.compute_budget_s,
        open=view.is_open(now), current=view.name == current,
    )  # fmt: skip


@router.get("/api/v1/phases", response_model=list[PhaseOut])
def list_phases(session: SessionDep, settings: SettingsDep) -> list[PhaseOut]:
    """Public. Every phase, by opening time."""
    shown = service.shown(session, settings).name
    views = [PhaseView.of(row) for row in service.rows(session)]
    return [_out(view, shown, settings) for view in views]


@router.post("/api/v1/admin/phases", response_model=PhaseOut, status_code=201)
def create_phase(body: PhaseIn, session: SessionDep, settings: SettingsDep, user: MaintainerUser) -> PhaseOut:
    row = service.create(session, body.model_dump(), actor=user.audit_name, actor_user_id=user.user_id)
    return _out(PhaseView.of(row), service.shown(session, settings).name, settings)


@router.patch("/api/v1/admin/phases/{name}", response_model=PhaseOut)
def update_phase(
    name: str, body: PhasePatch, session: SessionDep, settings: SettingsDep, user: MaintainerUser
) -> PhaseOut:
    values = body.model_dump(exclude_unset=True)
    row = service.update(session, name, values, actor=user.audit_name, actor_user_id=user.user_id)
    return _out(PhaseView.of(row), service.shown(session, settings).name, settings)


@router.post("/api/v1/admin/phases/{name}/reveal", response_model=PhaseOut)
def reveal_phase(
    name: str, session: SessionDep, state: StateDep, settings: SettingsDep, user: MaintainerUser
) -> PhaseOut:
    """Maintainers. Reveal a closed sealed phase; the app's `RevealHook` freezes the revealed board
    in the same transaction."""
    row = service.reveal(session, name, actor=user.audit_name, actor_user_id=user.user_id)
    state.parts.get(service.RevealHook)(session, settings, row, user.audit_name, user.user_id)
    return _out(PhaseView.of(row), service.shown(session, settings).name, settings)
