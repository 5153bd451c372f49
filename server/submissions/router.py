"""`/api/v1/submissions`: create (streamed archive or registry reference), list, get, logs, cancel."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, BackgroundTasks, Depends, Query, Request
from fastapi.concurrency import run_in_threadpool
from pydantic import ValidationError
from sqlalchemy import select
from sqlalchemy.orm import Session, undefer

from server.agreements.router import page_url
from server.core import wording
from server.core.deps import (
    CurrentUser,
    IdPath,
    OffsetQuery,
    SessionDep,
    SettingsDep,
    StateDep,
    get_principal,
)
from server.core.errors import BadRequest, CsawmError
from server.core.guard import streamed_body
from server.core.openapi import error_responses
from server.core.principal import Principal
from server.core.settings import Settings
from server.core.state import AppState
from server.core.text import NameStr, TextStr
from server.disclosure.disclose import RunDisclosure, ViewCache, disclose
from server.disclosure.run_view import shown_time
from server.models import Submission, SubmissionReport, Team
from server.operations import status
from server.operations.schemas import QueueOut
from server.operations.status import QueuePlace
from server.phases import selection
from server.phases import service as phases
from server.scoring.notes import readable
from server.scoring.results import Report
from server.submissions import intake, service
from server.submissions.schemas import (
    DuplicateOut,
    LadderOut,
    LogsOut,
    MethodCard,
    NoteOut,
    OutcomeOut,
    RegistrySubmissionIn,
    ReportOut,
    RunEventOut,
    SelectionOut,
    SubmissionOut,
    SubmissionSummary,
)
from server.submissions.upload import UploadSlots, discard, receive_archive
from server.worker.loop import Worker

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


def summary(sub: Submission, team: str, view: RunDisclosure) -> SubmissionSummary:
    """The run's summary: its scores and timestamps as `view` (server.disclosure.disclose) allows."""
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
        started_at=shown_time(sub.started_at, view.viewer),
        finished_at=shown_time(sub.finished_at, view.viewer),
        baseline=sub.baseline,
        review_state=None if view.review is None else view.review.value,
        kendall_tau_b=sub.kendall_tau_b if view.exact else None,
        amae=sub.amae if view.exact else None,
        scores_withheld=view.note,
        ladder=LadderOut(**view.ladder) if view.ladder else None,
        selected=view.selected,
    )


def _notes(metrics: dict[str, Any] | None) -> list[NoteOut]:
    """The shown report's scoring notes in words, each with the path it is about."""
    report = Report.read(metrics) if metrics else None
    return [] if report is None else [NoteOut(**vars(readable(w))) for w in report.warnings]


def detail(sub: Submission, team: str, view: RunDisclosure, place: QueuePlace | None = None) -> SubmissionOut:
    """The submission as JSON: `view` (server.disclosure.disclose) decides what of its scores, report,
    runtime figures, timestamps, maintainer-only texts and outcome are shown; `place` is its place in
    the queue while it is queued (server.operations.status)."""
    run = view.run
    return SubmissionOut(
        **summary(sub, team, view).model_dump(),
        description=sub.description,
        url=sub.url,
        method_card=sub.method_card,
        phase=sub.phase,
        attempt=sub.attempt,
        cancel_requested=sub.cancel_requested,
        archive_bytes=sub.archive_bytes,
        archive_sha256=sub.archive_sha256,
        metrics=(metrics := view.report_of(sub.metrics)),
        notes=_notes(metrics),
        timings=run.timings,
        reproducibility=run.reproducibility,
        review_reason=sub.review_reason,
        image_ref=sub.image_ref,
        retries=sub.retries,
        runtime=run.runtime,
        hidden_figures=run.figures,
        error_detail=run.error_detail,
        events=[RunEventOut(**vars(e)) for e in run.events],
        queue=QueueOut(**vars(place)) if place is not None else None,
        outcome=None if run.outcome is None else OutcomeOut(**vars(run.outcome)),
    )


def _method_card(raw: str | None) -> dict[str, Any] | None:
    if raw is None:
        return None
    try:
        return MethodCard.model_validate_json(raw).model_dump(mode="json", exclude_none=True)
    except ValidationError as exc:
        raise BadRequest(f"invalid method_card: {wording.problems(exc.errors(), 'method_card')}") from None


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
    """Upload a model. The archive is streamed to disk, inspected, and only then queued and charged
    (`server.submissions.intake`).

    Before the body is read (either kind), the caller must have accepted the current data-use
    agreement: otherwise 403 ``agreement_required`` and nothing is read or charged."""
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type == "application/json":
        await run_in_threadpool(intake.admit, state, user, page_url(request), archive=False)
        return await _create_from_registry(request, state, session, user)
    await run_in_threadpool(intake.admit, state, user, page_url(request), archive=True)
    if name is None:
        raise BadRequest("missing query parameter 'name'")
    entry = intake.Entry(name=name, description=description, url=url, method_card=_method_card(method_card))
    with state.parts.get(UploadSlots).hold(service.require_team(user)):
        out = await _upload(request, state, session, user, entry)
    worker = state.parts.find(Worker)
    if worker is not None:  # after the response, i.e. after the request's commit
        background.add_task(worker.wake)
    return out


async def _upload(
    request: Request, state: AppState, session: Session, user: Principal, entry: intake.Entry
) -> SubmissionOut:
    """Stream the body to disk, then the intake's storage and creation; counted in the metrics."""
    settings, metrics = state.settings, state.metrics
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
    try:
        image = await run_in_threadpool(intake.store_archive, settings, user, received)
        sub = await run_in_threadpool(intake.create, session, settings, user, entry, image)
        try:
            out = await run_in_threadpool(_detail_after_create, session, settings, sub.id, user)
        except BaseException:
            if image.archive_path is not None:
                discard(image.archive_path)
            raise
    except BaseException:
        metrics.uploads.labels("refused").inc()
        raise
    metrics.uploads.labels("accepted").inc()
    return out


def _detail_after_create(session: Session, settings: Settings, sub_id: int, user: Principal) -> SubmissionOut:
    sub = service.get_visible(session, user, sub_id, full=True)
    place = status.queue_place(session, sub, settings.lease_ttl)
    return detail(sub, user.team_name or "", disclose(session, settings, sub, user), place)


async def _create_from_registry(
    request: Request, state: AppState, session: Session, user: Principal
) -> SubmissionOut:
    raw = await request.body()
    try:
        body = RegistrySubmissionIn.model_validate_json(raw)
    except ValidationError as exc:
        raise BadRequest(f"invalid submission: {wording.problems(exc.errors(), 'body')}") from None
    entry = intake.Entry(
        name=body.name,
        description=body.description,
        url=str(body.url) if body.url else None,
        method_card=body.method_card.model_dump(mode="json", exclude_none=True) if body.method_card else None,
    )
    image = await run_in_threadpool(intake.registry_image, state.settings, user, body.image)

    def create() -> SubmissionOut:
        sub = intake.create(session, state.settings, user, entry, image)
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
    return [summary(sub, name, disclose(session, settings, sub, user, cache)) for sub, name in rows]


IMAGE_ID = r"^sha256:[0-9a-f]{64}$"


@router.get("/duplicate", response_model=DuplicateOut)
def find_duplicate(
    session: SessionDep,
    settings: SettingsDep,
    user: CurrentUser,
    image: Annotated[str, Query(pattern=IMAGE_ID, description="the image id, sha256:<64 hex>")],
) -> DuplicateOut:
    """Whether the caller's team already submitted image `image` in the open phase, asked by
    `csawm submit` before it uploads anything (the upload would be refused with 409)."""
    team_id = service.require_team(user)
    phase = phases.require_open(session, settings)
    earlier = service.team_duplicate(session, team_id, phase.name, image)
    return DuplicateOut(duplicate=earlier is not None, submission_id=earlier, phase=phase.name)


@router.get("/{submission_id}", response_model=SubmissionOut)
def get_submission(
    submission_id: IdPath, session: SessionDep, settings: SettingsDep, user: CurrentUser
) -> SubmissionOut:
    sub = service.get_visible(session, user, submission_id, full=True)
    team = session.get(Team, sub.team_id)
    view = disclose(session, settings, sub, user, outcome=True)
    place = status.queue_place(session, sub, settings.lease_ttl)
    return detail(sub, team.name if team else "", view, place)


@router.get("/{submission_id}/logs", response_model=LogsOut)
def get_logs(submission_id: IdPath, session: SessionDep, settings: SettingsDep, user: CurrentUser) -> LogsOut:
    """The tail of the model's output (bounded lines and bytes). Submitters get the preflight log
    (and the hidden run's only where ``CSAWM_HIDDEN_LOGS=submitters``); maintainers also get the
    hidden run's tail."""
    sub = service.get_visible(session, user, submission_id)
    return LogsOut(
        id=sub.id,
        status=sub.status.value,
        log_tail=sub.log_tail or "",
        hidden_log_tail=disclose(session, settings, sub, user).hidden_log_tail,
    )


@router.post("/{submission_id}/cancel", response_model=SubmissionSummary)
def cancel_submission(
    submission_id: IdPath, session: SessionDep, settings: SettingsDep, user: CurrentUser
) -> SubmissionSummary:
    sub = service.cancel(session, user, submission_id, keep_archives=settings.keep_archives)
    team = session.get(Team, sub.team_id)
    return summary(sub, team.name if team else "", disclose(session, settings, sub, user))


@router.get("/{submission_id}/reports", response_model=list[ReportOut])
def list_reports(
    submission_id: IdPath, session: SessionDep, settings: SettingsDep, user: CurrentUser
) -> list[ReportOut]:
    """Every report this run was scored with, oldest first: the first scoring and each re-score
    (``csawm admin rescore``), with the scorer version, test-set digest and bootstrap settings.
    Where the run's scores are withheld from the caller (sealed or Ladder phase) each ``metrics``
    is null; in a ``summary`` phase each is the summary."""
    sub = service.get_visible(session, user, submission_id)
    view = disclose(session, settings, sub, user)
    rows = session.scalars(
        select(SubmissionReport)
        .where(SubmissionReport.submission_id == sub.id)
        .options(undefer(SubmissionReport.metrics))
        .order_by(SubmissionReport.id)
    ).all()
    return [
        ReportOut(
            id=r.id,
            created_at=shown_time(r.created_at, view.viewer),
            reason=r.reason,
            scorer_version=r.scorer_version,
            test_set_sha256=r.test_set_sha256,
            bootstrap_seed=r.bootstrap_seed,
            bootstrap_resamples=r.bootstrap_resamples,
            current=i == len(rows) - 1,
            metrics=view.report_of(r.metrics),
        )
        for i, r in enumerate(rows)
    ]


def _selection_out(state: selection.SelectionState) -> SelectionOut:
    return SelectionOut(**vars(state))


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
