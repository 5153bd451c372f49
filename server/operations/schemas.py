"""Bodies of `/api/v1/status`, `/api/v1/admin/pause` and the queue place on a submission."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field


class QueueOut(BaseModel):
    """A queued run's place (null once it has left the queue)."""

    position: int = Field(description="1 = the next run to be leased")
    ahead: int = Field(description="queued runs leased before this one")
    eta_s: int | None = Field(
        description="seconds until it has finished, in whole minutes, from recent runs' durations and"
        " the workers alive; null before any run succeeded or while no worker is alive"
    )


class PausedOut(BaseModel):
    intake: bool
    runs: bool
    message: str


class StatusQueueOut(BaseModel):
    queued: int
    running: int | None = Field(default=None, description="maintainers only")


class WorkerOut(BaseModel):
    name: str
    state: str
    beat_at: datetime
    age_s: float


class StatusWorkersOut(BaseModel):
    alive: int = Field(description="workers with a heartbeat younger than three lease TTLs")
    oldest_heartbeat_age_s: float | None = Field(default=None, description="maintainers only")
    each: list[WorkerOut] | None = Field(
        default=None, description="maintainers only: each worker's last heartbeat"
    )


class StatusOut(BaseModel):
    paused: PausedOut
    queue: StatusQueueOut
    workers: StatusWorkersOut
    wait_s_median_24h: int | None = Field(
        description="median wait from submission to start of the runs started in the last 24 h, whole minutes"
    )


class PauseIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    intake: bool = True
    runs: bool = False
    message: str = Field(default="", max_length=500)


class PauseOut(PausedOut):
    set_by: str | None
    set_at: datetime | None
