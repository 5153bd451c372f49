"""The intake pipeline: how a model becomes a queued run, for every way one arrives.

A model arrives as a streamed ``docker save`` archive (the API's upload), as a reference into the
configured registry (the API's JSON body), or as an archive the operators saved themselves
(``csawm seed-baselines``). Each goes through the same steps, in this order, so a rule added to one
holds for all:

1. `admit`: before a byte of the body is read, in one short session: the data-use agreement, the
   free disk space (archives), an open phase and the team's quota (archives). Nothing is charged;
   the binding checks are step 4's.
2. `store_archive` / `stored_baseline` / `registry_image`: the image is inspected (a gzip archive
   may unpack to at most the upload cap) and its tags removed (loading it retags nothing); an
   upload is kept under ``DATA_DIR/archives`` and pushed to the configured registry, whose copy is
   read back and must be the image inspected; a registry reference is checked through the
   registry API.
3. The result is an `Image`: the image id and where the worker finds it.
4. `create` / `create_baseline`: the run is queued and charged in the request's transaction
   (phase, duplicate and quota checked again under the team's lock).

A step that refuses leaves nothing behind: no file, no row, no charge.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy.orm import Session

from runner.imagetar import ImageArchiveError, inspect_archive, remove_tags
from server.accounts import service as accounts
from server.agreements import service as agreements
from server.agreements.document import Agreement
from server.core.errors import DuplicateSubmission, InsufficientStorage, InvalidArchive
from server.core.principal import Principal
from server.core.settings import Settings
from server.core.state import AppState
from server.models import RunStatus, Submission, Team
from server.operations import budgets, pause
from server.phases import service as phases
from server.quota import service as quota
from server.runs import holds, lifecycle
from server.submissions import service
from server.submissions.upload import ReceivedArchive, discard, private_dir


@dataclass(frozen=True)
class Entry:
    """What the submitter says of the model (validated by the caller's schema)."""

    name: str
    description: str | None = None
    url: str | None = None
    method_card: dict[str, Any] | None = None


@dataclass(frozen=True)
class Image:
    """An inspected image: its id and where the worker finds it (an archive, a registry reference
    or both)."""

    digest: str
    image_ref: str | None = None
    archive_path: Path | None = None
    archive_sha256: str | None = None  # of the bytes uploaded (before the tags were removed)
    archive_bytes: int | None = None


def admit(state: AppState, user: Principal, agreement_url: str, *, archive: bool) -> None:
    """Step 1, before the body is read: 503 ``paused`` while intake is paused
    (`server.operations.pause`), 403 ``agreement_required`` without the current data-use
    agreement, 507 when the disk is short (archives), 403 ``phase_closed`` when no phase is open,
    429 ``compute_budget`` when the team has used its phase's compute budget
    (`server.operations.budgets`), the quota's refusal when the team has none left (archives; a
    registry reference is not checked here because reading its small body costs nothing)."""
    with state.db.session() as session:
        pause.require_intake_open(session)
        agreements.require_accepted(session, user, state.parts.find(Agreement), agreement_url)
        if archive:
            check_free_space(state.settings)
        phase = phases.require_open(session, state.settings)
        team_id = service.require_team(user)
        budgets.require_within_budget(session, team_id, phase.name)
        if archive:  # the binding checks are `create`'s, under the team's lock
            team = session.get(Team, team_id)
            assert team is not None
            quota.ensure_allowed(quota.compute_status(session, team, state.settings, phase=phase))


def check_free_space(settings: Settings) -> None:
    """507 before a byte is read when the data dir has less than ``CSAWM_MIN_FREE_BYTES`` free."""
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    free = shutil.disk_usage(settings.data_dir).free
    need = settings.effective_min_free_bytes
    if free < need:
        raise InsufficientStorage(
            f"the server is short of disk space ({free / 1024**3:.1f} GiB free, {need / 1024**3:.1f} GiB"
            " needed to accept an upload); nothing was charged — try again later"
        )


def store_archive(settings: Settings, user: Principal, received: ReceivedArchive) -> Image:
    """Step 2 for an upload: inspect, untag, keep under ``archives/`` and push. On any refusal the
    received file and every file made from it are removed."""
    archive = settings.data_dir / "archives" / f"{received.sha256}-{received.path.stem.split('-')[-1]}.tar"
    stored = received.path
    try:
        digest = _inspect(received.path, settings.max_upload_bytes)
        stored = _untag(received.path, settings.max_upload_bytes)
        private_dir(archive.parent)
        shutil.move(stored, archive)
        image_ref = service.publish_archive(settings, user, archive, digest)
    except BaseException:
        discard(received.path)
        discard(stored)
        discard(archive)
        raise
    return Image(
        digest=digest,
        image_ref=image_ref,
        archive_path=archive,
        archive_sha256=received.sha256,
        archive_bytes=received.size,
    )


def stored_baseline(settings: Settings, archive: Path, expected_digest: str) -> Image:
    """Step 2 for an archive the operators saved (``csawm seed-baselines``): inspected and untagged
    in place (it stays where it is, for the next seeding to reuse). It must hold the image
    `expected_digest`, the one the operators built. Not pushed: the worker loads it."""
    digest = _inspect(archive, settings.max_upload_bytes)
    if digest != expected_digest:
        raise InvalidArchive(f"archive refused: {archive} holds image {digest}, not {expected_digest}")
    _untag(archive, settings.max_upload_bytes)
    return Image(digest=digest, archive_path=archive.resolve())


def registry_image(settings: Settings, user: Principal, reference: str) -> Image:
    """Step 2 for a registry reference: pinned, in the configured registry, the caller's own
    repository inside the server's namespace, and a manifest that passes the image checks."""
    remote = service.check_registry_ref(settings, user, reference)
    return Image(digest=remote.image_id, image_ref=str(remote.reference))


def create(session: Session, settings: Settings, user: Principal, entry: Entry, image: Image) -> Submission:
    """Step 4: queue the run and charge its team in `session`, atomically: phase, duplicate, compute
    budget and quota checked again under the team's lock (see `server.quota.service`). When it is
    refused, the image's stored archive is removed (nothing was charged)."""
    try:
        team = accounts.lock_team(session, service.require_team(user))
        phase = phases.require_open(session, settings)
        earlier = service.team_duplicate(session, team.id, phase.name, image.digest)
        if earlier is not None:
            raise DuplicateSubmission(
                f"your team already submitted image {image.digest} as submission {earlier} in phase "
                f"{phase.name}; the same image may enter another phase",
                submission_id=earlier,
                phase=phase.name,
            )
        budgets.require_within_budget(session, team.id, phase.name)
        quota.ensure_allowed(quota.compute_status(session, team, settings, phase=phase))
        sub = Submission(
            team_id=team.id,
            user_id=user.user_id,
            name=entry.name,
            description=entry.description,
            url=entry.url,
            method_card=entry.method_card,
            phase=phase.name,
            image_digest=image.digest,
            image_ref=image.image_ref,
            archive_path=str(image.archive_path) if image.archive_path else None,
            archive_sha256=image.archive_sha256,
            archive_bytes=image.archive_bytes,
            status=RunStatus.QUEUED,
        )
        lifecycle.create(session, sub, note="submitted")
        holds.note_if_held(session, sub)
        quota.charge(session, team, sub, settings)
        return sub
    except BaseException:
        if image.archive_path is not None:
            discard(image.archive_path)
        raise


def create_baseline(
    session: Session, settings: Settings, entry: Entry, image: Image, *, actor: str
) -> Submission:
    """Step 4 for a baseline: queued for the system team, no quota (`service.create_baseline`)."""
    return service.create_baseline(
        session,
        settings,
        name=entry.name,
        description=entry.description,
        url=entry.url,
        method_card=entry.method_card,
        image_digest=image.digest,
        archive_path=image.archive_path,
        image_ref=image.image_ref,
        actor=actor,
    )


def _inspect(path: Path, max_bytes: int) -> str:
    """The image id of a one-image archive; a gzip archive may unpack to at most `max_bytes`."""
    try:
        return inspect_archive(path, max_total_bytes=max_bytes).digest
    except ImageArchiveError as exc:
        raise InvalidArchive(f"archive refused: {exc}") from None


def _untag(path: Path, max_bytes: int) -> Path:
    """The plain tar to store: the archive's tags removed, so loading it retags nothing (issue 12).
    ``archive_sha256`` stays the hash of the bytes uploaded."""
    try:
        return remove_tags(path, max_total_bytes=max_bytes)
    except ImageArchiveError as exc:
        raise InvalidArchive(f"archive refused: {exc}") from None
