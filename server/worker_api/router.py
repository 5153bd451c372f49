"""``/api/v1/worker/*``: the worker API (issue 25). Worker tokens only; every call but the lease
names the lease it acts under (owner, attempt), and the owner must be this worker account's."""

from __future__ import annotations

import re
from typing import Annotated

from fastapi import APIRouter, Depends, Header, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import FileResponse
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from starlette.requests import ClientDisconnect

from server.benchmark.manifest import sha256_file
from server.core.deps import DatabaseDep, IdPath, SettingsDep
from server.core.errors import BadRequest, Forbidden, NotFound, PayloadTooLarge, Unauthorized
from server.core.guard import streamed_body
from server.core.openapi import error_responses
from server.models import WorkerAccount
from server.worker_api import service
from server.worker_api.accounts import worker_for_token
from server.worker_api.schemas import (
    INSTANCE_PATTERN,
    AttemptIn,
    FaultIn,
    HandleIn,
    HeldOut,
    LeaseIn,
    LeaseOut,
    ProgressIn,
    RunStatusOut,
)

_bearer = HTTPBearer(auto_error=False, description="A worker token from `csawm admin create-worker`.")
_SHA_RE = re.compile(r"^[0-9a-f]{64}$")


def get_worker(
    db: DatabaseDep, credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]
) -> WorkerAccount:
    if credentials is None or not credentials.credentials:
        raise Unauthorized("missing worker token (Authorization: Bearer <token>)")
    with db.session() as session:
        row = worker_for_token(session, credentials.credentials)
        session.expunge(row)
        return row


WorkerDep = Annotated[WorkerAccount, Depends(get_worker)]
router = APIRouter(prefix="/api/v1/worker", tags=["worker"], responses=error_responses(400, 404, 409, 413))


def _own(worker: WorkerAccount, owner: str) -> str:
    instance = owner.removeprefix(f"{worker.name}/")
    if instance == owner or not re.match(INSTANCE_PATTERN, instance):
        raise Forbidden("this lease is not this worker's")
    return owner


@router.post("/lease", response_model=LeaseOut)
def lease(body: LeaseIn, worker: WorkerDep, db: DatabaseDep, settings: SettingsDep) -> LeaseOut:
    """Lease the next run, waiting up to ``wait_s`` for one (``lease: null`` when none came). A
    worker whose images differ from the server's test set is refused: 409 ``test_set_mismatch``."""
    digest = service.check_test_set(settings, body)
    service.seen(db, worker.id, body.version, digest)
    owner = f"{worker.name}/{body.instance}"  # what `_own` reads back
    return LeaseOut(lease=service.lease(db, settings, owner, body.wait_s))


@router.post("/runs/{submission_id}/renew", response_model=HeldOut)
def renew(
    submission_id: IdPath, body: AttemptIn, worker: WorkerDep, db: DatabaseDep, settings: SettingsDep
) -> HeldOut:
    held, cancel = service.heartbeat(db, settings, submission_id, _own(worker, body.owner), body.attempt)
    return HeldOut(held=held, cancel_requested=cancel)


@router.post("/runs/{submission_id}/handle", response_model=HeldOut)
def handle(submission_id: IdPath, body: HandleIn, worker: WorkerDep, db: DatabaseDep) -> HeldOut:
    owner, attempt = _own(worker, body.owner), body.attempt
    return HeldOut(held=service.record_handle(db, submission_id, owner, attempt, body.handle, body.started))


@router.get("/runs/{submission_id}/archive")
def archive(
    submission_id: IdPath,
    worker: WorkerDep,
    db: DatabaseDep,
    settings: SettingsDep,
    owner: Annotated[str, Query(max_length=200)],
    attempt: Annotated[int, Query(ge=1)],
) -> FileResponse:
    """The run's stored archive (the upload with its tags removed), streamed, with the sha256 of
    exactly these bytes in ``X-Archive-SHA256``: the worker checks it before loading the image."""
    run = service.leased(db, settings, submission_id, _own(worker, owner), attempt)
    path = run.ctx.archive
    if path is None or not path.is_file():
        raise NotFound(f"run {submission_id} has no stored archive (pull its registry reference)")
    sha = sha256_file(path)
    return FileResponse(path, media_type="application/x-tar", headers={"X-Archive-SHA256": sha})


@router.post("/runs/{submission_id}/preflight", response_model=RunStatusOut)
def preflight(
    submission_id: IdPath, body: ProgressIn, worker: WorkerDep, db: DatabaseDep, settings: SettingsDep
) -> RunStatusOut:
    """The preflight passed (the worker checked its predictions with the same reader): → running."""
    run = service.leased(db, settings, submission_id, _own(worker, body.owner), body.attempt)
    service.preflight_passed(run, body)
    return RunStatusOut(status="running")


@router.put("/runs/{submission_id}/predictions", response_model=RunStatusOut)
@streamed_body
async def predictions(
    submission_id: IdPath,
    request: Request,
    worker: WorkerDep,
    db: DatabaseDep,
    settings: SettingsDep,
    owner: Annotated[str, Query(max_length=200)],
    attempt: Annotated[int, Query(ge=1)],
    sha256: Annotated[str, Header(alias="X-Predictions-SHA256")],
) -> RunStatusOut:
    """The hidden predictions, streamed: capped at the hidden stage's output limit, hashed against
    ``X-Predictions-SHA256``; refused whole (nothing stored) otherwise."""
    if not _SHA_RE.match(sha256):
        raise BadRequest("X-Predictions-SHA256 must be 64 lowercase hex digits")
    run = await run_in_threadpool(service.leased, db, settings, submission_id, _own(worker, owner), attempt)
    cap = service.predictions_cap(settings)
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > cap:
        raise PayloadTooLarge(f"hidden predictions over {cap} bytes")
    data = bytearray()
    try:
        async for chunk in request.stream():
            data += chunk
            if len(data) > cap:
                raise PayloadTooLarge(f"hidden predictions over {cap} bytes")
    except ClientDisconnect:
        raise BadRequest("the upload was cut off") from None
    if declared is not None and declared.isdigit() and int(declared) != len(data):
        raise BadRequest("the upload was cut off")
    await run_in_threadpool(service.store_predictions, run, sha256, bytes(data))
    return RunStatusOut(status="stored")


@router.post("/runs/{submission_id}/hidden", response_model=RunStatusOut)
def hidden(
    submission_id: IdPath,
    body: ProgressIn,
    worker: WorkerDep,
    db: DatabaseDep,
    settings: SettingsDep,
    test_set: Annotated[str, Query(pattern="^(private|public)$")],
) -> RunStatusOut:
    """The hidden run finished with the predictions uploaded under this lease: → scoring, and the
    server scores them at once (the labels never leave it). Answers the run's status after."""
    run = service.leased(db, settings, submission_id, _own(worker, body.owner), body.attempt)
    return RunStatusOut(status=service.hidden_done(run, body, test_set).value)


@router.post("/runs/{submission_id}/fault", response_model=RunStatusOut)
def fault(
    submission_id: IdPath, body: FaultIn, worker: WorkerDep, db: DatabaseDep, settings: SettingsDep
) -> RunStatusOut:
    """A stage stopped: the policy table decides (retry, hand back, or end) as for any worker."""
    run = service.leased(db, settings, submission_id, _own(worker, body.owner), body.attempt)
    return RunStatusOut(status=service.end(run, service.reported_fault(body), body).value)


@router.post("/runs/{submission_id}/hand-back", response_model=RunStatusOut)
def hand_back(
    submission_id: IdPath, body: ProgressIn, worker: WorkerDep, db: DatabaseDep, settings: SettingsDep
) -> RunStatusOut:
    """The worker is stopping (SIGTERM): the run goes back to the queue, nothing charged."""
    run = service.leased(db, settings, submission_id, _own(worker, body.owner), body.attempt)
    return RunStatusOut(status=service.end(run, service.hand_back_fault(run.ctx.stage), body).value)
