"""The remote worker's loop: lease runs over the worker API and carry them through the same stages.

`RemoteWorker` is the database worker's loop (`server.worker.loop.Worker`) without the database:
the container stages (`server.worker.stages`: `ensure_image`, `run_preflight`, `run_hidden`) are
the same code, writing through `HttpStore`; every decision stays on the server (the lease and its
takeover, the policy table's judgement of a stop, the scoring). The rules:

* Before leasing, each lease call proves the worker's test set (the images-only digest); a 409
  ``test_set_mismatch`` ends the loop (`TestSetDiffers`): it leases nothing.
* A lost connection: the transport retries each call with jittered backoff; a lease poll that
  still fails is retried by the loop with a capped, jittered backoff, forever.
* While a run is processed a heartbeat thread renews its lease every third of the server's lease
  TTL, retrying through outages. ``held: false`` (another worker took the run over after the lease
  expired) or a cancel request stops the container; the stages then raise and the run is left to
  its owner.
* `request_stop` (SIGTERM) stops the container and hands the run back (nothing charged).
* A refused token (revoked mid-run): the container is stopped, the run is left to expire and be
  taken over, and the loop ends (`TokenRefused`).
"""

from __future__ import annotations

import hashlib
import logging
import shutil
import threading
import time
from datetime import datetime

from runner.errors import FaultKind, RunnerError
from runner.spec import ErrorCode, Runner
from server.core.settings import Settings
from server.models import RunStatus
from server.runs.transitions import LeaseLost
from server.worker.context import RunContext, StageEnv, StageFault, fault, run_dir
from server.worker.inputs import ImagesOnly
from server.worker.queue import Lease
from server.worker.stages import check_signals, ensure_image, quietly, run_hidden, run_preflight
from server.worker_api.schemas import RunFacts

from .client import HttpStore, TokenRefused, WorkerApi
from .transport import ApiError, TransportError, jittered

log = logging.getLogger("csawm.remote_worker")

MAX_BACKOFF_S = 30.0
LEASE_WAIT_S = 10.0  # a lease call's long poll; the server may answer sooner (its long-poll bound)


def context_of(facts: RunFacts) -> RunContext:
    """The run as the lease describes it."""
    lease = Lease(
        facts.submission_id, facts.owner, facts.attempt, RunStatus(facts.status),
        facts.recovered_from, facts.previous_handle, facts.retries,
    )  # fmt: skip
    ctx = RunContext(lease=lease, status=lease.status, retries=facts.retries)
    ctx.image_ref, ctx.image_digest, ctx.baseline = facts.image_ref, facts.image_digest, facts.baseline
    ctx.archive_bytes, ctx.created_at = facts.archive_bytes, datetime.fromisoformat(facts.created_at)
    ctx.timings.update({k: v for k, v in facts.timings.items() if isinstance(v, int | float)})
    phases = facts.runtime.get("phases") or {}
    ctx.runtime.update({stage: dict(values) for stage, values in phases.items() if isinstance(values, dict)})
    if facts.cancel_requested:
        ctx.cancel.set()
    return ctx


class RemoteWorker:
    """Leases and processes runs through the worker API until stopped (module docstring)."""

    def __init__(self, settings: Settings, api: WorkerApi, runner: Runner, inputs: ImagesOnly) -> None:
        # Container names: one tag per server, so two remote workers on one engine never collide.
        instance = hashlib.sha256(api.transport.url.encode()).hexdigest()[:6]
        self.env = StageEnv(settings=settings, name=api.instance, instance=instance)
        self.api, self.runner, self.inputs = api, runner, inputs
        self.refused: TokenRefused | None = None
        self._stop = threading.Event()
        self._current: RunContext | None = None

    def request_stop(self) -> None:
        """Stop: the run in progress is handed back (its container stopped), no new run leased.
        Safe from a signal handler (the engine call happens in a thread)."""
        self._stop.set()
        ctx = self._current
        if ctx is not None:
            ctx.shutdown.set()
            if ctx.handle:
                threading.Thread(target=quietly, args=(self.runner.cancel, ctx.handle), daemon=True).start()

    def run_forever(self) -> None:
        """Lease and process runs until stopped. Raises `TestSetDiffers` and `TokenRefused`."""
        backoff = 1.0
        poll = self.env.settings.poll_interval.total_seconds()
        while not self._stop.is_set():
            asked = time.monotonic()
            try:
                facts = self.api.lease(LEASE_WAIT_S)
            except TransportError as exc:
                wait = jittered(backoff)
                log.warning("lease: %s; trying again in %.1f s", exc, wait)
                self._stop.wait(wait)
                backoff = min(backoff * 2, MAX_BACKOFF_S)
                continue
            backoff = 1.0
            if facts is not None:
                self.process(facts)
            elif time.monotonic() - asked < LEASE_WAIT_S / 2:  # answered at once: no long-poll slot
                self._stop.wait(jittered(poll * 2))
            if self.refused is not None:
                raise self.refused

    # -- one run -------------------------------------------------------------------------------------

    def process(self, facts: RunFacts) -> None:
        ctx = context_of(facts)
        self._current = ctx
        if self._stop.is_set():
            ctx.shutdown.set()
        done = threading.Event()
        beat = threading.Thread(
            target=self._heartbeat, args=(ctx, facts.lease_ttl_s / 3, done), name="heartbeat", daemon=True
        )
        beat.start()
        try:
            try:
                self._stages(ctx, HttpStore(self.api, facts), facts)
            except StageFault as pf:
                self._report(ctx, pf)
            except Exception as exc:
                if isinstance(exc, LeaseLost | TokenRefused):
                    raise
                log.exception("run %s: unexpected worker error", ctx.sub_id)
                message = f"remote worker error: {exc.__class__.__name__}: {exc}"[:2000]
                self._report(ctx, fault(ctx.stage, FaultKind.TRANSIENT_INFRA, ErrorCode.INFRA_ERROR, message))
        except LeaseLost as exc:
            log.info("run %s: %s", ctx.sub_id, exc)
        except TokenRefused as exc:
            log.error("run %s: %s; the run is left to be taken over", ctx.sub_id, exc)
            self.refused = exc
        except (ApiError, TransportError) as exc:  # the server refused or could not take a report
            log.error("run %s: %s; the run is left to its lease's expiry", ctx.sub_id, exc)
        finally:
            done.set()
            beat.join()
            self._current = None
            shutil.rmtree(run_dir(self.env.settings.data_dir, ctx.sub_id), ignore_errors=True)

    def _stages(self, ctx: RunContext, store: HttpStore, facts: RunFacts) -> None:
        if facts.recovered_from is not None and facts.previous_handle:
            # the server counted the takeover; what the dead worker started may be on this engine
            quietly(self.runner.cancel, facts.previous_handle)
            quietly(self.runner.cleanup, facts.previous_handle)
        check_signals(ctx)
        image: str | None = None
        if ctx.status is RunStatus.PREFLIGHT:
            image = self._image(ctx, facts)
            run_preflight(self.env, store, self.runner, ctx, self.inputs, image)
        if ctx.status is RunStatus.RUNNING:
            image = image or self._image(ctx, facts)
            run_hidden(self.env, store, self.runner, ctx, self.inputs, image)
        log.info("run %s: %s", ctx.sub_id, ctx.status.value)

    def _image(self, ctx: RunContext, facts: RunFacts) -> str:
        """The run's image in the runner: the archive downloaded (unless the runner already has
        the image, or runs the registry reference), then `ensure_image` as for any worker."""
        if facts.archive:
            target = ctx.attempt_dir(self.env.settings.data_dir) / "image.tar"
            ctx.archive = target
            registry_instead = facts.image_ref is not None and not self.runner.accepts_archives
            try:
                present = self.runner.has_image(ctx.image_digest)
            except RunnerError as exc:
                raise fault(ctx.stage, exc.kind, exc.code, exc.message) from None
            if not (present or registry_instead):
                started = time.monotonic()
                self.api.download_archive(ctx, target)
                ctx.timings["archive_download_s"] = round(time.monotonic() - started, 3)
        return ensure_image(self.env, self.runner, ctx)

    def _report(self, ctx: RunContext, pf: StageFault) -> None:
        """The server decides what the stop means; a shutdown is a hand-back (nothing charged)."""
        shutdown = pf.fault.kind is FaultKind.SHUTDOWN
        status = self.api.hand_back(ctx) if shutdown else self.api.report_fault(ctx, pf)
        log.info("run %s: %s -> %s", ctx.sub_id, pf, status)

    def _heartbeat(self, ctx: RunContext, interval: float, done: threading.Event) -> None:
        while not done.wait(interval):
            try:
                held, cancel = self.api.renew(ctx)
            except TransportError:
                log.warning("run %s: lease renewal failed (server away?); trying again", ctx.sub_id)
                continue
            except TokenRefused as exc:
                log.error("run %s: %s: stopping the container", ctx.sub_id, exc)
                self.refused = exc
                held, cancel = False, False
            if not held:
                ctx.lost.set()
            if cancel:
                ctx.cancel.set()
            if ctx.lost.is_set() or ctx.cancel.is_set():
                quietly(self.runner.cancel, ctx.handle)
