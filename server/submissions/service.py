"""Submission logic: visibility, registry checks, cancel, baselines (`intake.create` queues a run).

The run itself is created and asked to stop through `server.runs.lifecycle`."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session, selectinload, undefer

from runner.errors import FaultKind
from runner.spec import ErrorCode
from server.core import audit
from server.core.errors import (
    BadRequest,
    Forbidden,
    NotFound,
    RegistryFailure,
    TransitionConflict,
)
from server.core.principal import Principal
from server.core.settings import Settings
from server.models import (
    TERMINAL_STATUSES,
    RunStatus,
    Submission,
    Team,
)
from server.phases import service as phases
from server.quota import service as quota
from server.registry.client import RegistryClient
from server.registry.config import RegistryConfig
from server.registry.errors import ImageRefused, ManifestNotFound, RegistryDenied, RegistryError
from server.registry.image_check import RemoteImage, inspect_reference
from server.registry.push import push_archive
from server.registry.reference import TEAM_NAMESPACE, image_tag, parse_reference, team_repository
from server.runs import lifecycle
from server.runs.policy import Fault, Stage, decide
from server.runs.transitions import transition

# An inspected archive may be gzip (up to this many times larger unpacked, as the router allows)
# and skopeo compresses each layer anew: the pushed image is checked against this generous bound.
_PUSHED_SIZE_FACTOR = 4


def require_team(user: Principal) -> int:
    if user.team_id is None:
        raise Forbidden("your account belongs to no team; only team members can submit")
    return user.team_id


def get_visible(session: Session, user: Principal, submission_id: int, *, full: bool = False) -> Submission:
    """The submission if the caller may see it. Another team's submission is 404, not 403."""
    query = select(Submission).where(Submission.id == submission_id)
    if full:
        query = query.options(undefer(Submission.metrics), selectinload(Submission.events))
    sub = session.scalar(query)
    if sub is None or (not user.is_staff and sub.team_id != user.team_id):
        raise NotFound(f"submission {submission_id} not found")
    return sub


def list_visible(
    session: Session, user: Principal, *, status: str | None, team: str | None, limit: int, offset: int
) -> list[tuple[Submission, str]]:
    query = select(Submission, Team.name).join(Team, Submission.team_id == Team.id)
    if not user.is_staff:
        query = query.where(Submission.team_id == user.team_id)
    elif team:
        query = query.where(Team.name == team)
    if status:
        try:
            query = query.where(Submission.status == RunStatus(status))
        except ValueError:
            raise BadRequest(f"unknown status {status!r}") from None
    return list(session.execute(query.order_by(Submission.id.desc()).limit(limit).offset(offset)).all())


def publish_archive(settings: Settings, user: Principal, archive: Path, image_id: str) -> str | None:
    """Push an inspected archive to the configured registry; its reference by manifest digest.

    None when no registry is configured. Runs before anything is queued or charged, outside any
    transaction (a push of a large image takes minutes). The pushed manifest is read back and its
    config must be the inspected image id, so the reference recorded is the image that was checked.
    Any failure is the operator's (`RegistryFailure`, 503), never the submitter's.
    """
    config = RegistryConfig.from_settings(settings)
    if config is None:
        return None
    repository = team_repository(require_team(user), user.team_name or "")
    try:
        pushed = push_archive(
            archive, repository, image_tag(image_id), config, work_dir=settings.data_dir / "registry"
        )
        with RegistryClient(config) as client:
            remote = inspect_reference(
                client, pushed.reference, max_bytes=settings.max_upload_bytes * _PUSHED_SIZE_FACTOR
            )
    except RegistryError as exc:
        raise RegistryFailure(
            f"could not store the image in the registry: {exc}; nothing was charged"
        ) from None
    if remote.image_id != image_id:
        raise RegistryFailure(
            f"the registry holds image {remote.image_id} under {pushed.reference}, not the uploaded "
            f"{image_id}; nothing was charged"
        )
    return str(pushed.reference)


def check_registry_ref(settings: Settings, user: Principal, image: str) -> RemoteImage:
    """Check a submitted ``REGISTRY/REPO@sha256:<hex>`` through the registry API before charging.

    The reference must be pinned by digest, name the configured registry and, inside the server's
    own ``csawm/`` namespace, the caller's team repository; the manifest must exist and pass the
    checks of `server.registry.image_check`. The submitter's problems are 400 with the reason; a
    registry that cannot be reached is 503.
    """
    config = RegistryConfig.from_settings(settings)
    if config is None:
        raise BadRequest("no registry is configured on this server; upload a `docker save` archive instead")
    try:
        reference = parse_reference(image)
    except ValueError as exc:
        raise BadRequest(f"{exc} (the configured registry is {config.host})") from None
    if reference.registry != config.host:
        raise BadRequest(f"image must come from the configured registry {config.host!r}")
    own = team_repository(require_team(user), user.team_name or "")
    if reference.repository.startswith(f"{TEAM_NAMESPACE}/") and reference.repository != own:
        raise BadRequest(f"{reference.repository} belongs to another team; your team's repository is {own}")
    try:
        with RegistryClient(config) as client:
            return inspect_reference(client, reference, max_bytes=settings.max_upload_bytes)
    except (ImageRefused, ManifestNotFound, RegistryDenied) as exc:
        raise BadRequest(f"image {image} refused: {exc}") from None
    except RegistryError as exc:
        raise RegistryFailure(
            f"could not check the image in the registry: {exc}; nothing was charged"
        ) from None


def team_duplicate(session: Session, team_id: int, phase: str, digest: str) -> int | None:
    """The team's earlier run of image `digest` that still counts in `phase`: duplicates are refused
    within a phase only, so a team may enter its development model in the final round (issue 23)."""
    scope = (Submission.team_id == team_id) & (Submission.phase == phase)
    return lifecycle.earlier_duplicate(session, digest, scope)


def cancel(
    session: Session, user: Principal, submission_id: int, *, keep_archives: bool = False
) -> Submission:
    """Cancel a queued run at once (refunded, its archive deleted unless `keep_archives`); ask the
    worker to stop an active one."""
    sub = get_visible(session, user, submission_id)
    if user.team_id != sub.team_id:  # a maintainer or admin stopping another team's run
        audit.record(
            session,
            actor=user.audit_name,
            actor_user_id=user.user_id,
            action="cancel_submission",
            target_type="submission",
            target_id=sub.id,
            detail={"status": sub.status.value},
        )
    if sub.status in TERMINAL_STATUSES:
        raise TransitionConflict(f"submission {submission_id} already ended ({sub.status.value})")
    if sub.status == RunStatus.QUEUED:
        # A queued run may be a retry that already ran on the hidden images: the policy table
        # decides who pays from the stage it would resume at.
        stage = {RunStatus.RUNNING.value: Stage.HIDDEN, RunStatus.SCORING.value: Stage.SCORING}.get(
            sub.resume_status or "", Stage.QUEUED
        )
        message = (
            "cancelled before it started" if stage is Stage.QUEUED else "cancelled while waiting to resume"
        )
        decision = decide(
            Fault(stage=stage, kind=FaultKind.CANCELLED, code=ErrorCode.CANCELLED, message=message),
            retries=sub.retries,
            max_attempts=1,
        )
        sub = transition(
            session,
            sub.id,
            RunStatus.CANCELLED,
            note=f"cancelled by {user.email}",
            error_code=decision.code.value,
            error_message=message,
        )
        if decision.refund:
            quota.refund(session, sub.id, decision.reason)
        if sub.archive_path and not keep_archives:
            Path(sub.archive_path).unlink(missing_ok=True)
        return sub
    return lifecycle.request_cancel(session, sub, note=f"cancel requested by {user.email}")


BASELINE_TEAM = "CSAW-M baselines"


def create_baseline(
    session: Session,
    settings: Settings,
    *,
    name: str,
    image_digest: str,
    archive_path: Path | None = None,
    image_ref: str | None = None,
    description: str | None = None,
    url: str | None = None,
    method_card: dict[str, Any] | None = None,
    team_name: str = BASELINE_TEAM,
    actor: str,
) -> Submission:
    """Queue a reference model as a baseline row: no quota, shown on the leaderboard once scored
    (unless hidden or disqualified). The team is created on first use. For `csawm seed-baselines`.
    """
    if archive_path is None and image_ref is None:
        raise BadRequest("a baseline needs an archive or an image reference")
    team = session.scalar(select(Team).where(Team.name == team_name))
    if team is None:
        team = Team(name=team_name)
        session.add(team)
        session.flush()
    phase = phases.baseline_phase(session, settings.phase, actor=actor)
    sub = Submission(
        team_id=team.id,
        user_id=None,
        name=name,
        description=description,
        url=url,
        method_card=method_card,
        phase=phase.name,
        baseline=True,
        image_digest=image_digest,
        image_ref=image_ref,
        archive_path=str(archive_path) if archive_path else None,
        archive_bytes=archive_path.stat().st_size if archive_path else None,
        status=RunStatus.QUEUED,
    )
    lifecycle.create(session, sub, note="baseline")
    audit.record(
        session,
        actor=actor,
        action="create_baseline",
        target_type="submission",
        target_id=sub.id,
        detail={"name": name, "image_digest": image_digest},
    )
    return sub
