"""The worker API's wire format: what a remote worker sends and what it is told."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from runner.errors import FaultKind
from runner.spec import ErrorCode
from server.runs.policy import Stage

#: A worker process's own name (host:pid:nonce): the lease owner is ``<account>/<instance>``.
INSTANCE_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9:._-]{0,99}$"


class _In(BaseModel):
    model_config = ConfigDict(extra="forbid")


class LeaseIn(_In):
    instance: str = Field(pattern=INSTANCE_PATTERN)
    version: str = Field(max_length=64)
    images_digest: str = Field(pattern=r"^[0-9a-f]{64}$")
    public_digest: str | None = Field(default=None, pattern=r"^[0-9a-f]{64}$")
    wait_s: float = Field(default=10.0, ge=0, le=30)


class RunFacts(BaseModel):
    """A run just leased: what the worker needs to carry it through its stages."""

    submission_id: int
    owner: str
    attempt: int
    status: str
    retries: int
    recovered_from: str | None
    previous_handle: str | None
    test_set: str  # the hidden stage's input: private (all images) or public (development phase)
    image_digest: str
    image_ref: str | None  # pull this when set and no archive is offered
    archive: bool  # else fetch GET .../archive (its sha256 in X-Archive-SHA256) and check it
    archive_bytes: int | None
    baseline: bool
    cancel_requested: bool
    created_at: str
    timings: dict[str, Any]
    runtime: dict[str, Any]
    lease_ttl_s: float = 60.0  # the server's lease TTL: renew well within it


class LeaseOut(BaseModel):
    lease: RunFacts | None


class AttemptIn(_In):
    owner: str = Field(max_length=200)
    attempt: int = Field(ge=1)


class HeldOut(BaseModel):
    held: bool
    cancel_requested: bool = False


class HandleIn(AttemptIn):
    handle: str = Field(min_length=1, max_length=300)
    started: bool


class ProgressIn(AttemptIn):
    timings: dict[str, float] = Field(default_factory=dict)
    runtime: dict[str, Any] = Field(default_factory=dict)
    log_tail: str = Field(default="", max_length=64 * 1024)


class FaultIn(ProgressIn):
    stage: Stage
    kind: FaultKind
    code: ErrorCode
    message: str = Field(max_length=4000)
    exit_code: int | None = None


class RunStatusOut(BaseModel):
    status: str
