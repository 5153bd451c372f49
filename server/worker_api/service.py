"""The server's side of each worker API call: the run lifecycle under the remote worker's lease.

A remote worker runs containers; the server keeps every decision. Each call below is the database
half of what the embedded worker does for itself (`server.worker.loop` and `server.worker.stages`),
done with the same functions: `queue.lease_next` and `queue.renew` (the same expiring lease and
takeover rules), `leases.record_handle`, `lifecycle.advance` (preflight passed), `stages.score`
(the one scoring step, on the server's labels), `endings.end` (the policy table's
decision, applied, at every stop).
The lease owner is ``<account>/<instance>``, so a worker can only ever act on its own leases, and
every write is conditional on owner and attempt (`LeaseLost`, 409, otherwise).

Hidden predictions arrive in two calls: `store_predictions` (the streamed upload: size-capped,
hashed against the sha256 the worker declares, stored content-addressed and bound to the run's
attempt on the server's disk) and `hidden_done`, which advances the run with the bound predictions
and scores them at once. A worker can therefore never name another run's predictions.
"""

from __future__ import annotations

import hashlib
import logging
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from runner.errors import FaultKind
from runner.spec import ErrorCode
from server.clock import utcnow
from server.core.db import Database
from server.core.errors import BadRequest, Conflict
from server.core.settings import Settings
from server.models import RunStatus, Submission, WorkerAccount
from server.phases.service import by_name as competition_phase
from server.runs import leases, store
from server.runs.policy import Stage
from server.runs.transitions import LeaseLost
from server.worker import endings, presence, stages
from server.worker.backend import run_limits
from server.worker.context import RunContext, StageFault, WorkerEnv, fault
from server.worker.evaluation import EvaluationSet
from server.worker.images_digest import ImagesDigest, images_digest
from server.worker.queue import Lease, lease_next, renew
from server.worker_api.schemas import FaultIn, LeaseIn, ProgressIn, RunFacts

log = logging.getLogger("csawm.worker_api")

POLL_S = 0.2  # how often a long-polling lease looks at the queue
BOUND_FILE = "predictions.sha256"  # in the attempt's folder: the predictions uploaded under it


class TestSetMismatch(Conflict):
    code = "test_set_mismatch"


# -- the server's test set --------------------------------------------------------------------------


@lru_cache(maxsize=4)
def _digest_of(benchmark_dir: Path) -> ImagesDigest:
    return images_digest(benchmark_dir)


@lru_cache(maxsize=4)
def _evaluation_of(benchmark_dir: Path, data_dir: Path, n_preflight: int) -> EvaluationSet:
    return EvaluationSet.prepare(benchmark_dir, data_dir, n_preflight)


def _benchmark_dir(settings: Settings) -> Path:
    if settings.benchmark_dir is None:
        raise Conflict("the server has no CSAWM_BENCHMARK_DIR: it cannot score remote runs")
    return settings.benchmark_dir


def evaluation(settings: Settings) -> EvaluationSet:
    """The test set the server scores against (with its labels), prepared once."""
    return _evaluation_of(_benchmark_dir(settings), settings.data_dir, settings.run.preflight_images)


def check_test_set(settings: Settings, body: LeaseIn) -> str:
    """Refuse (409 ``test_set_mismatch``) a worker whose images differ from the server's."""
    ours = _digest_of(_benchmark_dir(settings))
    if body.images_digest != ours.images or body.public_digest != ours.public:
        raise TestSetMismatch(
            "the worker's test images differ from the test set this server scores against "
            f"(server images digest {ours.images[:12]}, worker {body.images_digest[:12]})"
        )
    return ours.images


# -- leasing ----------------------------------------------------------------------------------------


class LongPolls:
    """How many lease calls are waiting for a run now: each holds a server thread, so at most
    ``CSAWM_WORKER_LONG_POLLS`` wait at once; a call beyond them looks at the queue once."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.waiting = 0

    @contextmanager
    def slot(self, limit: int) -> Iterator[bool]:
        """True when the caller may wait (and counts as waiting until it leaves)."""
        with self._lock:
            granted = self.waiting < limit
            self.waiting += granted
        try:
            yield granted
        finally:
            with self._lock:
                self.waiting -= granted


LONG_POLLS = LongPolls()


def lease(db: Database, settings: Settings, owner: str, wait_s: float) -> RunFacts | None:
    """Lease the next run for `owner`, waiting up to `wait_s` for one (long poll, within
    `LONG_POLLS`' bound). A run leased at ``scoring`` (its worker died after the upload) is scored
    here at once, never handed out."""
    with LONG_POLLS.slot(settings.worker_long_polls) as may_wait:
        deadline = time.monotonic() + (wait_s if may_wait else 0.0)
        while True:
            taken = lease_next(db, owner, settings.lease_ttl)
            if taken is not None and (taken.recovered_from is None or _take_over(db, settings, taken)):
                if taken.status is RunStatus.SCORING:  # nothing to run: its predictions are stored here
                    score(leased(db, settings, taken.submission_id, owner, taken.attempt))
                    continue
                presence.beat(db, owner, state="busy", submission_id=taken.submission_id)
                return _facts(db, settings, taken)
            presence.beat(db, owner, state="idle")
            if time.monotonic() >= deadline:
                return None
            time.sleep(min(POLL_S, max(0.0, deadline - time.monotonic())))


def _take_over(db: Database, settings: Settings, taken: Lease) -> bool:
    """The run's previous worker stopped renewing: count a failed try, as the worker loop does
    (`server.worker.endings.take_over`); False when the policy table ends the run instead."""
    run = leased(db, settings, taken.submission_id, taken.owner, taken.attempt)
    pf = endings.take_over(run.env, run.ctx, taken.recovered_from)
    if pf is not None:
        end(run, pf)
    return pf is None


def _facts(db: Database, settings: Settings, taken: Lease) -> RunFacts:
    with db.transaction(write=False) as session:
        sub = session.get(Submission, taken.submission_id)
        assert sub is not None
        record_test_set = (sub.reproducibility or {}).get("test_set")
        test_set = record_test_set or competition_phase(session, settings, sub.phase).test_set
        archive = sub.archive_path is not None and Path(sub.archive_path).is_file()
        return RunFacts(
            submission_id=sub.id,
            owner=taken.owner,
            attempt=taken.attempt,
            status=taken.status.value,
            retries=sub.retries,
            recovered_from=taken.recovered_from,
            previous_handle=taken.previous_handle,
            test_set=test_set,
            image_digest=sub.image_digest,
            image_ref=sub.image_ref,
            archive=archive,
            archive_bytes=sub.archive_bytes if archive else None,
            baseline=sub.baseline,
            cancel_requested=sub.cancel_requested,
            created_at=sub.created_at.isoformat(),
            timings=dict(sub.timings or {}),
            runtime=dict(sub.runtime or {}),
            lease_ttl_s=settings.lease_ttl.total_seconds(),
        )


def heartbeat(db: Database, settings: Settings, sub_id: int, owner: str, attempt: int) -> tuple[bool, bool]:
    """Renew the lease: (still held, cancel requested)."""
    lease_ = Lease(sub_id, owner, attempt, RunStatus.RUNNING, None, None)
    beat = renew(db, lease_, settings.lease_ttl)
    presence.beat(
        db, owner, state="busy" if beat.held else "idle", submission_id=sub_id if beat.held else None
    )
    return beat.held, beat.cancel_requested


def record_handle(db: Database, sub_id: int, owner: str, attempt: int, handle: str, started: bool) -> bool:
    with db.transaction() as session:
        return leases.record_handle(
            session, sub_id, owner=owner, attempt=attempt, handle=handle, started=started
        )


# -- the run under its lease ------------------------------------------------------------------------


@dataclass
class Leased:
    """The run as the server sees it under a remote worker's lease: the stages' env and context."""

    env: WorkerEnv
    ctx: RunContext


def leased(db: Database, settings: Settings, sub_id: int, owner: str, attempt: int) -> Leased:
    """The run `sub_id` if `owner` holds its lease at `attempt`; else `LeaseLost` (409)."""
    with db.transaction(write=False) as session:
        sub = session.get(Submission, sub_id)
        if sub is None or sub.lease_owner != owner or sub.attempt != attempt:
            raise LeaseLost(f"run {sub_id}: this worker does not hold its lease (attempt {attempt})")
        lease_ = Lease(sub.id, owner, attempt, sub.status, None, sub.runner_handle, sub.retries)
        ctx = RunContext(lease=lease_, status=sub.status, retries=sub.retries)
        ctx.load(sub)
    return Leased(env=WorkerEnv(settings=settings, db=db, name=owner, instance="remote"), ctx=ctx)


def _merge(ctx: RunContext, body: ProgressIn) -> None:
    ctx.timings.update(body.timings)
    for stage, values in (body.runtime.get("phases") or {}).items():
        if stage in ("preflight", "hidden") and isinstance(values, dict):
            ctx.runtime[stage] = dict(values)


def preflight_passed(run: Leased, body: ProgressIn) -> None:
    """preflight → running, with the preflight log tail (the submitter's, by `stage_logs`)."""
    _merge(run.ctx, body)
    stages.DatabaseStore(run.env).preflight_passed(run.ctx, body.log_tail)


def predictions_cap(settings: Settings) -> int:
    """The most bytes of hidden predictions taken: the hidden stage's own output cap."""
    return run_limits(settings, "hidden").output_bytes


def store_predictions(run: Leased, declared_sha256: str, data: bytes) -> str:
    """Store the uploaded hidden predictions of the run's attempt (the router has capped them and
    refused a cut-off upload); refused (nothing stored) when they do not match `declared_sha256`."""
    env, ctx = run.env, run.ctx
    if ctx.status is not RunStatus.RUNNING:
        raise Conflict(f"run {ctx.sub_id} is {ctx.status.value}: it takes no hidden predictions now")
    sha = hashlib.sha256(data).hexdigest()
    if sha != declared_sha256:
        raise BadRequest(f"the predictions' sha256 is {sha}, not the declared {declared_sha256}")
    store.save(env.settings.data_dir, data)
    folder = ctx.attempt_dir(env.settings.data_dir)
    folder.mkdir(parents=True, exist_ok=True, mode=0o700)
    (folder / BOUND_FILE).write_text(sha)
    return sha


def hidden_done(run: Leased, body: ProgressIn, test_set: str) -> RunStatus:
    """running → scoring with the predictions uploaded under this attempt, then scoring → succeeded
    (or the ending the policy table decides) on the server's labels."""
    env, ctx = run.env, run.ctx
    if test_set not in ("private", "public"):
        raise BadRequest(f"unknown test set {test_set!r}")
    bound = ctx.attempt_dir(env.settings.data_dir) / BOUND_FILE
    if ctx.status is not RunStatus.RUNNING or not bound.is_file():
        raise Conflict(f"run {ctx.sub_id}: no hidden predictions were uploaded under this lease")
    _merge(ctx, body)
    stages.hidden_stored(env, ctx, bound.read_text().strip(), test_set, body.log_tail)
    return score(run)


def score(run: Leased) -> RunStatus:
    """The one scoring step (`stages.score`) on the server; its faults go through the policy table."""
    env, ctx = run.env, run.ctx
    try:
        stages.score(env, "remote", ctx, evaluation(env.settings), stages.scorer_for(env.settings))
    except StageFault as pf:
        return end(run, pf)
    endings.finish(env, ctx)
    return RunStatus.SUCCEEDED


def reported_fault(body: FaultIn) -> StageFault:
    """A stop the worker reports. The scorer runs here only: a worker cannot claim its fault."""
    if body.kind is FaultKind.SCORER or body.stage is Stage.SCORING:
        raise BadRequest("scoring happens on the server: a worker reports no scoring fault")
    return fault(
        body.stage, body.kind, body.code, body.message, exit_code=body.exit_code, log_tail=body.log_tail
    )


def hand_back_fault(stage: Stage) -> StageFault:
    return fault(stage, FaultKind.SHUTDOWN, ErrorCode.CANCELLED, "the remote worker handed the run back")


def end(run: Leased, pf: StageFault, body: ProgressIn | None = None) -> RunStatus:
    """Apply the policy table's decision for the stop `pf` (`endings.apply`), as the worker loop does."""
    env, ctx = run.env, run.ctx
    if body is not None:
        _merge(ctx, body)
    endings.end(env, ctx, pf)
    with env.db.transaction(write=False) as session:
        status = session.get(Submission, ctx.sub_id)
        return status.status if status is not None else RunStatus.FAILED


def seen(db: Database, account_id: int, version: str, digest: str) -> None:
    """What the worker last said of itself, for operators (`/admin`, `/metrics`)."""
    with db.transaction() as session:
        row = session.get(WorkerAccount, account_id)
        if row is not None:
            row.seen_at, row.version, row.test_set_digest = utcnow(), version, digest
