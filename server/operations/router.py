"""`GET /api/v1/status` (anyone; more for maintainers) and `POST/DELETE /api/v1/admin/pause`."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Request

from server.core.deps import MaintainerUser, SessionDep, SettingsDep, require_maintainer
from server.core.guard import bearer_token
from server.core.openapi import error_responses
from server.core.principal import authenticate
from server.operations import pause, status
from server.operations.schemas import (
    PausedOut,
    PauseIn,
    PauseOut,
    StatusOut,
    StatusQueueOut,
    StatusWorkersOut,
    WorkerOut,
)

router = APIRouter(tags=["operations"], responses=error_responses(400))


def status_out(current: status.ServerStatus, *, staff: bool) -> StatusOut:
    """The status as a caller may see it: the anonymous fields, and the rest for maintainers (the
    route leaves out the fields not set, so an anonymous body has exactly the public fields)."""
    queue, workers = StatusQueueOut(queued=current.queued), StatusWorkersOut(alive=current.alive)
    if staff:  # an assigned field counts as set: it is in the body
        queue.running = current.running
        workers.oldest_heartbeat_age_s = current.oldest_heartbeat_age_s
        workers.each = [WorkerOut(**vars(w)) for w in current.workers]
    paused = PausedOut(intake=current.paused.intake, runs=current.paused.runs, message=current.paused.message)
    return StatusOut(paused=paused, queue=queue, workers=workers, wait_s_median_24h=current.wait_s_median_24h)


@router.get("/api/v1/status", response_model=StatusOut, response_model_exclude_unset=True)
def get_status(request: Request, session: SessionDep, settings: SettingsDep) -> StatusOut:
    """The pause, the queue's length, the workers alive and the median wait (anyone). With a
    maintainer's token: the running runs and each worker's last heartbeat. A token that is not
    valid is 401, not an anonymous view."""
    token = bearer_token(request.headers)
    staff = token is not None and authenticate(session, token).is_staff
    return status_out(status.server_status(session, settings.lease_ttl), staff=staff)


def _pause_out(state: pause.PauseState) -> PauseOut:
    return PauseOut(**vars(state))


@router.get("/api/v1/admin/pause", response_model=PauseOut, dependencies=[Depends(require_maintainer)])
def get_pause(session: SessionDep) -> PauseOut:
    return _pause_out(pause.current(session))


@router.post("/api/v1/admin/pause", response_model=PauseOut)
def set_pause(body: PauseIn, session: SessionDep, user: MaintainerUser) -> PauseOut:
    """Pause intake (503 + ``Retry-After`` before any body is read), runs (nothing leased; running
    runs finish) or both, with a message shown on every page (audited ``pause``)."""
    state = pause.set_pause(
        session,
        intake=body.intake,
        runs=body.runs,
        message=body.message,
        actor=user.audit_name,
        actor_user_id=user.user_id,
    )
    return _pause_out(state)


@router.delete("/api/v1/admin/pause", response_model=PauseOut)
def clear_pause(session: SessionDep, user: MaintainerUser) -> PauseOut:
    """Lift the pause (audited ``resume``)."""
    return _pause_out(pause.clear_pause(session, actor=user.audit_name, actor_user_id=user.user_id))
