"""Baselines on their way to the board: training, building, queued or running (issue 10).

The board lists scored runs; a newcomer who just started ``make demo`` would see no model rows for
minutes. This list says what is coming: each reference model ``csawm seed-baselines`` is training
(with its step), building, or whose run is queued or running (before training: preparing the
base image the models train in, on a machine that does not have it yet), and one that failed with the public
reason. It holds only baselines, the operators' own models: a researcher's queued run is not public.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from server.models import ACTIVE_STATUSES, BaselineBuild, BuildState, RunStatus, Submission

# What the public list says of a build that did not finish; the reason (paths, engine output) stays
# in ``baseline_builds.message`` and in the operator's seed-baselines output.
BUILD_FAILED = "training or building the image did not finish; the operators have the reason"
PREPARING = "building the base image the models train in (a few minutes, once per machine)"


def _entry(name: str, state: str, updated_at: datetime | None, **extra: Any) -> dict[str, Any]:
    return {
        "kind": "baseline",
        "name": name,
        "state": state,
        "progress": extra.get("progress"),
        "submission_id": extra.get("submission_id"),
        "message": extra.get("message"),
        "updated_at": updated_at.isoformat() if updated_at is not None else None,
    }


# Built once: they run on every leaderboard request (the leaderboard benchmark's profile).
_BUILDS = select(BaselineBuild).order_by(BaselineBuild.kind)
_RUNS = (
    select(Submission)
    .where(Submission.baseline.is_(True), Submission.status.in_(ACTIVE_STATUSES))
    .order_by(Submission.id)
)


def pending_baselines(session: Session) -> list[dict[str, Any]]:
    """Baselines not yet scored, in a stable order (builds by kind, then runs by id).

    A build whose run succeeded is on the board and left out; one whose run failed or was cancelled
    shows ``failed`` with the run's public message (`server.runs.disclosure`), never its detail.
    """
    out: list[dict[str, Any]] = []
    shown: set[int] = set()
    for build in session.scalars(_BUILDS).all():
        sub = session.get(Submission, build.submission_id) if build.submission_id is not None else None
        if build.state == BuildState.QUEUED and sub is not None:
            shown.add(sub.id)
            if sub.status == RunStatus.SUCCEEDED:
                continue
            if sub.status in ACTIVE_STATUSES:
                out.append(_entry(build.name, sub.status.value, sub.updated_at, submission_id=sub.id))
            else:
                text = sub.error_message or f"the run ended {sub.status.value}"
                out.append(_entry(build.name, "failed", sub.updated_at, submission_id=sub.id, message=text))
            continue
        if build.state == BuildState.QUEUED:
            continue  # its run was deleted: nothing is coming
        progress = {"step": build.step, "steps": build.steps} if build.state == BuildState.TRAINING else None
        reason = {BuildState.FAILED: BUILD_FAILED, BuildState.PREPARING: PREPARING}.get(build.state)
        out.append(_entry(build.name, build.state.value, build.updated_at, progress=progress, message=reason))
    for sub in session.scalars(_RUNS).all():
        if sub.id not in shown:
            out.append(_entry(sub.name, sub.status.value, sub.updated_at, submission_id=sub.id))
    return out
