"""The janitor: what finished runs and killed processes leave behind, removed at every worker start
and then every `INTERVAL`.

* **Run containers / Jobs** (`Runner.list_runs`): removed when their run is terminal, or when their
  deadline label has passed (a process SIGKILLed mid-run must not leave a model running forever).
  Objects of another deployment sharing the engine (another database: another instance tag) are
  judged by their deadline only. ``csawm check`` calls `sweep_expired` (`runner.expiry`) for the same reason.
* **Working folders** ``DATA_DIR/runs/<id>`` of terminal runs (a worker killed before it cleaned).
* **Engine images** of runs that ended more than ``CSAWM_IMAGE_TTL`` ago and that no active run
  uses (never an operator's image: `Runner.remove_image` refuses protected names).
"""

from __future__ import annotations

import logging
import re
import shutil
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from sqlalchemy import ColumnElement, select

from runner.expiry import remove_run
from runner.spec import Runner
from server.clock import utcnow
from server.core.db import Database
from server.core.settings import Settings
from server.models import ACTIVE_STATUSES, TERMINAL_STATUSES, RunStatus, Submission

log = logging.getLogger("csawm.janitor")

INTERVAL = timedelta(minutes=10)
IMAGE_WINDOW = timedelta(days=30)  # runs that ended longer ago than ttl + this are not looked at again


@dataclass
class Swept:
    containers: list[str] = field(default_factory=list)
    folders: list[str] = field(default_factory=list)
    images: list[str] = field(default_factory=list)


def sweep(settings: Settings, db: Database, runner: Runner, instance: str) -> Swept:
    """One pass of everything above; each part logs and carries on when it fails."""
    swept = Swept()
    for part in (_containers, _folders, _images):
        try:
            part(settings, db, runner, instance, swept)
        except Exception:
            log.warning("janitor: %s failed", part.__name__.strip("_"), exc_info=True)
    if swept.containers or swept.folders or swept.images:
        counts = len(swept.containers), len(swept.folders), len(swept.images)
        log.info("janitor removed %d run objects, %d folders, %d images", *counts)
    return swept


def _with_status(db: Database, ids: set[int], statuses: Iterable[RunStatus]) -> set[int]:
    """Those of the runs `ids` whose status is one of `statuses`."""
    with db.transaction(write=False) as session:
        query = select(Submission.id).where(Submission.id.in_(ids), Submission.status.in_(statuses))
        return set(session.scalars(query))


def _containers(settings: Settings, db: Database, runner: Runner, instance: str, swept: Swept) -> None:
    own = re.compile(rf"^{re.escape(instance)}-(\d+)-")
    now = datetime.now(UTC)
    objects = runner.list_runs()
    ids = {int(m.group(1)) for o in objects if (m := own.match(o.run_id))}
    terminal = _with_status(db, ids, TERMINAL_STATUSES) if ids else set()
    for obj in objects:
        m = own.match(obj.run_id)
        expired = obj.deadline is not None and obj.deadline < now
        if expired or (m is not None and int(m.group(1)) in terminal):
            remove_run(runner, obj.handle)
            swept.containers.append(obj.handle)


def _folders(settings: Settings, db: Database, runner: Runner, instance: str, swept: Swept) -> None:
    root = settings.data_dir / "runs"
    if not root.is_dir():
        return
    ids = {int(p.name) for p in root.iterdir() if p.name.isdigit()}
    if not ids:
        return
    for sub_id in sorted(ids - _with_status(db, ids, ACTIVE_STATUSES)):
        shutil.rmtree(root / str(sub_id), ignore_errors=True)
        swept.folders.append(str(sub_id))


def _images(settings: Settings, db: Database, runner: Runner, instance: str, swept: Swept) -> None:
    cutoff = utcnow() - settings.image_ttl
    with db.transaction(write=False) as session:

        def digests(*where: ColumnElement[bool]) -> set[str]:
            return set(session.scalars(select(Submission.image_digest).where(*where)))

        in_use = digests(Submission.status.in_(ACTIVE_STATUSES))
        recent = digests(Submission.status.in_(TERMINAL_STATUSES), Submission.finished_at >= cutoff)
        baselines = digests(Submission.baseline.is_(True))
        stale = digests(
            Submission.status.in_(TERMINAL_STATUSES),
            Submission.finished_at < cutoff,
            Submission.finished_at >= cutoff - IMAGE_WINDOW,
            Submission.archive_path.is_not(None),
        )
    for digest in sorted(stale - in_use - recent - baselines):
        if digest.startswith("sha256:") and runner.remove_image(digest):
            swept.images.append(digest)
