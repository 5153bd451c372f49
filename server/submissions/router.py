"""`/api/v1/submissions`: create (streamed archive or registry reference), list, get, logs, cancel."""

from __future__ import annotations

import shutil
from typing import Annotated, Any

from fastapi import APIRouter, BackgroundTasks, Depends, Query, Request
from fastapi.concurrency import run_in_threadpool
from pydantic import ValidationError
from sqlalchemy import select
from sqlalchemy.orm import undefer

from server.agreements import service as agreements
from server.agreements.router import page_url
from server.core.deps import (
    CurrentUser,
    IdPath,
    OffsetQuery,
    SessionDep,
    SettingsDep,
    StateDep,
    get_principal,
)
from server.core.errors import BadRequest, CsawmError, InsufficientStorage, InvalidArchive
from server.core.guard import streamed_body
from server.core.openapi import error_responses
from server.core.settings import Settings
from server.core.text import NameStr, TextStr
from server.models import Submission, SubmissionReport, Team
from server.phases import selection
from server.phases import service as phases
from server.phases.service import PhaseView
from server.phases.visibility import ScoreView, ViewCache, score_view, shown_report
from server.runs.run_view import Viewer, run_view, shown_time, viewer_of
from server.submissions import service
from server.submissions.schemas import (
    LadderOut,
    LogsOut,
    MethodCard,
    RegistrySubmissionIn,
    ReportOut,
    RunEventOut,
    SelectionOut,
    SubmissionOut,
    SubmissionSummary,
)
from server.submissions.upload import UploadSlots, discard, private_dir, receive_archive

router = APIRouter(
    prefix="/api/v1/submissions",
    tags=["submissions"],
    dependencies=[Depends(get_principal)],
    responses=error_responses(400, 404, 409),
)

ARCHIVE_BODY_DOC = {
    "requestBody": {
        "description": "A `docker save` archive (tar or tar.gz) as the raw body, or a JSON "
        "RegistrySubmissionIn where a registry is configured.",
        "content": {
            "application/x-tar": {"schema": {"type": "string", "format": "binary"}},
            "application/gzip": {"schema": {"type": "string", "format": "binary"}},
            "application/octet-stream": {"schema": {"type": "string", "format": "binary"}},
            "application/json": {"schema": {"$ref": "#/components/schemas/RegistrySubmissionIn"}},
        },
    }
}


def summary(sub: Submission, team: str, view: ScoreView, viewer: Viewer) -> SubmissionSummary:
    """The run's summary; its scores only as `view` (server.phases.visibility) allows, its
    timestamps as `viewer` may see them (server.runs.run_view)."""
    return SubmissionSummary(
        id=sub.id,
        name=sub.name,
        team=team,
        status=sub.status.value,
        error_code=sub.error_code,
        failed_phase=sub.failed_phase.value if sub.failed_phase else None,
        error_message=sub.error_message,
        image_digest=sub.image_digest,
        created_at=sub.created_at,
        started_at=shown_time(sub.started_at, viewer),
        finished_at=shown_time(sub.finished_at, viewer),
        baseline=sub.baseline,
        review_state=sub.review_state.value,
        kendall_tau_b=sub.kendall_tau_b if view.exact else None,
        amae=sub.amae if view.exact else None,
        scores_withheld=view.note,
        ladder=LadderOut(**view.ladder) if view.ladder else None,
        selected=view.selected,
    )


def detail(sub: Submission, team: str, view: ScoreView, viewer: Viewer) -> SubmissionOut:
    """The submission as JSON: `view` decides whether the scores and the report are shown, `viewer`
    what of the runtime figures, timestamps and maintainer-only texts (server.runs.run_view)."""
    run = run_view(sub, viewer)
    return SubmissionOut(
        **summary(sub, team, view, viewer).model_dump(),
        description=sub.description,
        url=sub.url,
        method_card=sub.method_card,
        phase=sub.phase,
        attempt=sub.attempt,
        cancel_requested=sub.cancel_requested,
        archive_bytes=sub.archive_bytes,
        archive_sha256=sub.archive_sha256,
        metrics=shown_report(view, sub.metrics),
        timings=run.timings,
        reproducibility=run.reproducibility,
        review_reason=sub.review_reason,
        image_ref=sub.image_ref,
        retries=sub.retries,
        runtime=run.runtime,
        hidden_figures=run.figures,
        error_detail=run.error_detail,
        events=[
            RunEventOut(from_status=e.from_status, status=e.status, at=e.at, note=e.note, detail=e.detail)
            for e in run.events
        ],
    )


def _method_card(raw: str | None) -> dict[str, Any] | None:
    if raw is None:
        return None
    try:
        return MethodCard.model_validate_json(raw).model_dump(mode="json", exclude_none=True)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(map(str, e['loc'])) or 'method_card'}: {e['msg']}" for e in exc.errors()
        )
        raise BadRequest(f"invalid method_card: {problems}") from None


def _upload_slots(state: StateDep) -> UploadSlots:
    slots = state.extras.get("upload_slots")
    if not isinstance(slots, UploadSlots):
        slots = state.extras["upload_slots"] = UploadSlots(state.settings.max_concurrent_uploads)
    return slots


@router.post(
    "",
    response_model=SubmissionOut,
    status_code=201,
    openapi_extra=ARCHIVE_BODY_DOC,
    responses=error_responses(408, 413, 429, 507),
)
@streamed_body
async def create_submission(
    request: Request,
    background: BackgroundTasks,
    state: StateDep,
    session: SessionDep,
    user: CurrentUser,
    name: Annotated[NameStr | None, Query(min_length=1, max_length=200)] = None,
    description: Annotated[TextStr | None, Query(max_length=5000)] = None,
    url: Annotated[NameStr | None, Query(max_length=500)] = None,
    method_card: Annotated[
        str | None, Query(max_length=10_000, description="JSON object of MethodCard fields")
    ] = None,
) -> SubmissionOut:
    """Upload a model. The archive is streamed to disk, inspected, and only then queued and charged.

    Before the body is read (either kind), the caller must have accepted the current data-use
    agreement: otherwise 403 ``agreement_required`` and nothing is read or charged."""
    await run_in_threadpool(_require_agreement, state, user, page_url(request))
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type == "application/json":
        await run_in_threadpool(_phase_open, state)
        return await _create_from_registry(request, state, session, user)
    if name is None:
        raise BadRequest("missing query parameter 'name'")
    card = _method_card(method_card)
    await run_in_threadpool(_precheck, state, user)
    if user.team_id is None:
        raise BadRequest("your account belongs to no team, so it cannot submit")
    with _upload_slots(state).hold(user.team_id):
        return await _upload(request, background, state, session, user, name, description, url, card)


async def _upload(
    request: Request,
    background: BackgroundTasks,
    state: StateDep,
    session: SessionDep,
    user: Any,
    name: str,
    description: str | None,
    url: str | None,
    card: dict[str, Any] | None,
) -> SubmissionOut:
    settings = state.settings
    metrics = state.metrics
    try:
        received = await receive_archive(
            request,
            settings.data_dir / "uploads",
            settings.max_upload_bytes,
            idle_timeout=settings.upload_idle_timeout,
        )
    except CsawmError:
        metrics.uploads.labels("refused").inc()
        raise
    metrics.upload_bytes.inc(received.size)
    archive = settings.data_dir / "archives" / f"{received.sha256}-{received.path.stem.split('-')[-1]}.tar"
    stored = received.path
    try:
        info = await run_in_threadpool(_inspect, received.path, settings.max_upload_bytes)
        stored = await run_in_threadpool(_untag, received.path, settings.max_upload_bytes)
        private_dir(archive.parent)
        shutil.move(stored, archive)
        image_ref = await run_in_threadpool(service.publish_archive, settings, user, archive, info.digest)
        sub = await run_in_threadpool(
            service.create,
            session,
            user,
            settings,
            name=name,
            image_digest=info.digest,
            description=description,
            url=url,
            method_card=card,
            archive_path=archive,
            archive_sha256=received.sha256,
            archive_bytes=received.size,
            image_ref=image_ref,
        )
        out = await run_in_threadpool(_detail_after_create, session, settings, sub.id, user)
    except BaseException:
        metrics.uploads.labels("refused").inc()
        discard(received.path)
        discard(stored)
        discard(archive)
        raise
    metrics.uploads.labels("accepted").inc()
    if state.worker is not None:  # after the response, i.e. after the request's commit
        background.add_task(state.worker.wake)
    return out


def _require_agreement(state: Any, user: Any, url: str) -> None:
    with state.db.session() as session:
        agreements.require_accepted(session, user, state.agreement, url)


def _phase_open(state: Any) -> PhaseView:
    """`PhaseClosed` (403 ``phase_closed``) before a byte of the body is read when no phase is open."""
    with state.db.session() as session:
        return phases.require_open(session, state.settings)


def _precheck(state: Any, user: Any) -> None:
    check_free_space(state.settings)
    with state.db.session() as session:
        service.precheck_quota(session, user, state.settings)


def check_free_space(settings: Any) -> None:
    """507 before a byte is read when the data dir has less than ``CSAWM_MIN_FREE_BYTES`` free."""
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    free = shutil.disk_usage(settings.data_dir).free
    need = settings.effective_min_free_bytes
    if free < need:
        raise InsufficientStorage(
            f"the server is short of disk space ({free / 1024**3:.1f} GiB free, {need / 1024**3:.1f} GiB"
            " needed to accept an upload); nothing was charged — try again later"
        )


def _inspect(path: Any, max_bytes: int) -> Any:
    """Inspect the upload; a gzip archive may unpack to at most the upload cap (issue 12)."""
    from runner.imagetar import ImageArchiveError, inspect_archive

    try:
        return inspect_archive(path, max_total_bytes=max_bytes)
    except ImageArchiveError as exc:
        raise InvalidArchive(f"archive refused: {exc}") from None


def _untag(path: Any, max_bytes: int) -> Any:
    """The plain tar to store: the archive's tags removed, so loading it retags nothing (issue 12).
    ``archive_sha256`` stays the hash of the bytes uploaded."""
    from runner.imagetar import ImageArchiveError, remove_tags

    try:
        return remove_tags(path, max_total_bytes=max_bytes)
    except ImageArchiveError as exc:
        raise InvalidArchive(f"archive refused: {exc}") from None


def _detail_after_create(session: SessionDep, settings: Settings, sub_id: int, user: Any) -> SubmissionOut:
    sub = service.get_visible(session, user, sub_id, full=True)
    view = score_view(session, settings, sub, user)
    return detail(sub, user.team_name or "", view, viewer_of(user, settings))


async def _create_from_registry(
    request: Request, state: StateDep, session: SessionDep, user: Any
) -> SubmissionOut:
    raw = await request.body()
    try:
        body = RegistrySubmissionIn.model_validate_json(raw)
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(map(str, e['loc'])) or 'body'}: {e['msg']}" for e in exc.errors())
        raise BadRequest(f"invalid submission: {problems}") from None
    remote = await run_in_threadpool(service.check_registry_ref, state.settings, user, body.image)

    def create() -> SubmissionOut:
        sub = service.create(
            session,
            user,
            state.settings,
            name=body.name,
            image_digest=remote.image_id,
            description=body.description,
            url=str(body.url) if body.url else None,
            method_card=body.method_card.model_dump(mode="json", exclude_none=True)
            if body.method_card
            else None,
            image_ref=str(remote.reference),
        )
        return _detail_after_create(session, state.settings, sub.id, user)

    return await run_in_threadpool(create)


@router.get("", response_model=list[SubmissionSummary])
def list_submissions(
    session: SessionDep,
    settings: SettingsDep,
    user: CurrentUser,
    status: Annotated[str | None, Query(max_length=50)] = None,
    team: Annotated[str | None, Query(max_length=100)] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
    offset: OffsetQuery = 0,
) -> list[SubmissionSummary]:
    """Your team's submissions, newest first (maintainers and admins: every team's, `team` filters)."""
    rows = service.list_visible(session, user, status=status, team=team, limit=limit, offset=offset)
    cache = ViewCache()
    viewer = viewer_of(user, settings)
    return [summary(sub, name, score_view(session, settings, sub, user, cache), viewer) for sub, name in rows]


@router.get("/{submission_id}", response_model=SubmissionOut)
def get_submission(
    submission_id: IdPath, session: SessionDep, settings: SettingsDep, user: CurrentUser
) -> SubmissionOut:
    sub = service.get_visible(session, user, submission_id, full=True)
    team = session.get(Team, sub.team_id)
    return detail(
        sub, team.name if team else "", score_view(session, settings, sub, user), viewer_of(user, settings)
    )


@router.get("/{submission_id}/logs", response_model=LogsOut)
def get_logs(submission_id: IdPath, session: SessionDep, user: CurrentUser) -> LogsOut:
    """The tail of the model's output (bounded lines and bytes). Submitters get the preflight log
    (and the hidden run's only where ``CSAWM_HIDDEN_LOGS=submitters``); maintainers also get the
    hidden run's tail."""
    sub = service.get_visible(session, user, submission_id)
    return LogsOut(
        id=sub.id,
        status=sub.status.value,
        log_tail=sub.log_tail or "",
        hidden_log_tail=sub.hidden_log_tail if user.is_staff else None,
    )


@router.post("/{submission_id}/cancel", response_model=SubmissionSummary)
def cancel_submission(
    submission_id: IdPath, session: SessionDep, settings: SettingsDep, user: CurrentUser
) -> SubmissionSummary:
    sub = service.cancel(session, user, submission_id, keep_archives=settings.keep_archives)
    team = session.get(Team, sub.team_id)
    return summary(
        sub, team.name if team else "", score_view(session, settings, sub, user), viewer_of(user, settings)
    )


@router.get("/{submission_id}/reports", response_model=list[ReportOut])
def list_reports(
    submission_id: IdPath, session: SessionDep, settings: SettingsDep, user: CurrentUser
) -> list[ReportOut]:
    """Every report this run was scored with, oldest first: the first scoring and each re-score
    (``csawm admin rescore``), with the scorer version, test-set digest and bootstrap settings.
    Where the run's scores are withheld from the caller (sealed or Ladder phase) each ``metrics``
    is null; in a ``summary`` phase each is the summary."""
    sub = service.get_visible(session, user, submission_id)
    view = score_view(session, settings, sub, user)
    viewer = viewer_of(user, settings)
    rows = session.scalars(
        select(SubmissionReport)
        .where(SubmissionReport.submission_id == sub.id)
        .options(undefer(SubmissionReport.metrics))
        .order_by(SubmissionReport.id)
    ).all()
    return [
        ReportOut(
            id=r.id,
            created_at=shown_time(r.created_at, viewer),
            reason=r.reason,
            scorer_version=r.scorer_version,
            test_set_sha256=r.test_set_sha256,
            bootstrap_seed=r.bootstrap_seed,
            bootstrap_resamples=r.bootstrap_resamples,
            current=i == len(rows) - 1,
            metrics=shown_report(view, r.metrics),
        )
        for i, r in enumerate(rows)
    ]


def _selection_out(state: selection.SelectionState) -> SelectionOut:
    return SelectionOut(
        submission_id=state.submission_id,
        phase=state.phase,
        selected=state.selected,
        selected_ids=state.selected_ids,
        max_selected=state.max_selected,
    )


@router.post("/{submission_id}/select", response_model=SelectionOut)
def select_submission(submission_id: IdPath, session: SessionDep, user: CurrentUser) -> SelectionOut:
    """Select your team's run for the final ranking of its sealed phase (before the close; at most
    the phase's ``max_selected``, 409 ``selection_limit`` beyond; a failed or cancelled run cannot
    be selected)."""
    return _selection_out(selection.select_run(session, user, submission_id))


@router.delete("/{submission_id}/select", response_model=SelectionOut)
def unselect_submission(submission_id: IdPath, session: SessionDep, user: CurrentUser) -> SelectionOut:
    """Unselect the run (before the phase closes)."""
    return _selection_out(selection.unselect_run(session, user, submission_id))
