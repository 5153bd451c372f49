"""The state one worker keeps about the run it is processing, and how a stage reports a stop.

A stage either returns (the run moved on to its next status) or raises:

* `StageFault` — the run stopped for a reason the policy table must judge (`server.runs.policy`);
* `server.runs.transitions.LeaseLost` — another worker owns the run now: touch nothing more.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from runner.errors import FaultKind
from runner.spec import ErrorCode
from server.clock import utcnow
from server.core.db import Database
from server.core.settings import Settings
from server.models import RunStatus, Submission
from server.runs.policy import Fault, Stage
from server.worker.queue import Lease

STAGE_OF_STATUS: dict[RunStatus, Stage] = {
    RunStatus.QUEUED: Stage.QUEUED,
    RunStatus.PREFLIGHT: Stage.PREFLIGHT,
    RunStatus.RUNNING: Stage.HIDDEN,
    RunStatus.SCORING: Stage.SCORING,
}


class StageFault(Exception):
    """A stage stopped; `fault` says where and why, `log_tail` is that stage's log (if any)."""

    def __init__(self, fault: Fault, log_tail: str = "") -> None:
        super().__init__(f"{fault.stage.value}: {fault.kind.value} {fault.code.value}: {fault.message}")
        self.fault = fault
        self.log_tail = log_tail


def fault(
    stage: Stage,
    kind: FaultKind,
    code: ErrorCode,
    message: str,
    *,
    exit_code: int | None = None,
    log_tail: str = "",
) -> StageFault:
    return StageFault(Fault(stage, kind, code, message, exit_code), log_tail)


@dataclass(frozen=True)
class StageEnv:
    """What the container stages use: the settings and this worker's names (no database: a remote
    worker runs them too, `server.remote_worker`)."""

    settings: Settings
    name: str  # the lease owner, e.g. host:pid:nonce
    instance: str  # a tag shared by every worker of one deployment (container names never collide)


@dataclass(frozen=True)
class WorkerEnv(StageEnv):
    """A database worker's env: the stages' env and the database it writes the run's rows to."""

    db: Database


@dataclass
class RunContext:
    """One run as this worker processes it, from lease to ending."""

    lease: Lease
    status: RunStatus
    cancel: threading.Event = field(default_factory=threading.Event)
    lost: threading.Event = field(default_factory=threading.Event)
    shutdown: threading.Event = field(default_factory=threading.Event)
    handle: str | None = None
    created_at: datetime = field(default_factory=utcnow)
    archive: Path | None = None
    image_ref: str | None = None
    image_digest: str = ""
    archive_bytes: int | None = None
    retries: int = 0
    baseline: bool = False  # a maintainer's reference model: its end is not held to the grid
    timings: dict[str, float] = field(default_factory=dict)
    runtime: dict[str, dict[str, float | int | None]] = field(default_factory=dict)

    @property
    def sub_id(self) -> int:
        return self.lease.submission_id

    @property
    def stage(self) -> Stage:
        return STAGE_OF_STATUS.get(self.status, Stage.PREFLIGHT)

    def load(self, sub: Submission) -> None:
        """The run's image, its progress so far and its creation time, from its row."""
        self.archive = None if sub.archive_path is None else Path(sub.archive_path)
        self.image_ref, self.image_digest, self.baseline = sub.image_ref, sub.image_digest, sub.baseline
        self.archive_bytes, self.created_at = sub.archive_bytes, sub.created_at
        self.timings.update(sub.timings or {})
        for stage, values in ((sub.runtime or {}).get("phases") or {}).items():
            self.runtime[stage] = dict(values)

    def attempt_dir(self, data_dir: Path) -> Path:
        return run_dir(data_dir, self.sub_id) / f"a{self.lease.attempt}"


def run_dir(data_dir: Path, submission_id: int) -> Path:
    """``DATA_DIR/runs/<id>``: the run's working folders, removed when the run ends."""
    return data_dir / "runs" / str(submission_id)
