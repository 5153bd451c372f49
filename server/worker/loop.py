"""The worker: lease a run, carry it through its stages, and ask the policy table at every ending.

One worker handles one run at a time (`process`): the stages (`server.worker.stages`) move it
``preflight → running → scoring → succeeded``, resuming at the status it had; whatever stops it is
a `StageFault` judged by `server.runs.policy.decide` and applied by `server.worker.endings`.

While a run is processed, a heartbeat thread renews the lease every third of its TTL, writes the
worker's heartbeat row, and watches for a cancel request; if the lease is lost (this worker stalled
and another took the run over) it stops the container and leaves the run to the new owner.

`run_forever` is supervised: any exception (database or engine away) is logged, written to the
heartbeat row and followed by a capped exponential backoff, never the end of the thread. The worker
does not lease while its test set cannot be prepared (state ``blocked``: ``/readyz`` says
``test_set``). `request_stop` — SIGTERM, Ctrl-C — stops the current container and hands the run
back at once (no attempt burned, nothing charged); `csawm serve`'s shutdown and `csawm worker` use it.
"""

from __future__ import annotations

import hashlib
import logging
import os
import socket
import threading
import time
import uuid
from typing import Any

from runner.errors import FaultKind, RunnerError
from runner.spec import ErrorCode, Runner
from server.clock import utcnow
from server.core.db import Database
from server.core.settings import Settings
from server.models import RunStatus, Submission
from server.runs import leases
from server.runs.policy import Action
from server.runs.scoring import Scorer
from server.runs.transitions import LeaseLost
from server.worker import endings, janitor, presence, test_set
from server.worker.context import RunContext, StageFault, WorkerEnv, fault
from server.worker.evaluation import EvaluationSet
from server.worker.queue import Lease, lease_next, renew
from server.worker.stages import (
    DatabaseStore,
    check_signals,
    ensure_image,
    quietly,
    run_hidden,
    run_preflight,
    score,
    scorer_for,
)

log = logging.getLogger("csawm.worker")

MAX_BACKOFF_S = 30.0


def build_runner(settings: Settings) -> Runner:
    """The execution backend named by ``CSAWM_RUNNER``, configured from the settings.

    The Kubernetes runner gets its ``CSAWM_K8S_*`` settings through `kubernetes_runner_config`
    (the same mapping ``csawm k8s render-job`` uses). Both backends create their API clients on
    first use, so building a runner needs neither an engine nor a cluster.
    """
    if settings.runner == "docker":
        from runner.docker_backend import DockerRunner
        from runner.registry_pull import RegistryAuth

        auth = None
        if settings.registry.username and settings.registry.password is not None:
            auth = RegistryAuth(settings.registry.username, settings.registry.password.get_secret_value())
        return DockerRunner(remove_containers=True, registry_auth=auth, runtime=settings.run.runtime)
    from runner.kubernetes.executor import KubernetesRunner
    from server.core.k8s_settings import kubernetes_runner_config

    return KubernetesRunner(kubernetes_runner_config(settings.k8s))


def worker_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"


class Worker:
    """Leases and processes runs until stopped."""

    def __init__(
        self,
        settings: Settings,
        db: Database,
        runner: Runner,
        *,
        name: str | None = None,
        scorer: Scorer | None = None,
    ) -> None:
        # Container / Job names must not collide between deployments sharing an engine (or test
        # databases whose ids all start at 1): every worker of one database derives the same tag.
        instance = hashlib.sha256(settings.effective_database_url.encode()).hexdigest()[:6]
        self.env = WorkerEnv(settings=settings, db=db, name=name or worker_id(), instance=instance)
        self.settings, self.db, self.name, self.instance = settings, db, self.env.name, instance
        self.runner = runner
        self.scorer = scorer or scorer_for(settings)
        self.blocked: str | None = None  # why no run is leased (test set missing), for /readyz
        self.loop_errors = 0  # exceptions the supervised loop survived
        self._evaluation: EvaluationSet | None = None
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None
        self._current: RunContext | None = None
        self._started_at = utcnow()
        self._next_sweep = 0.0
        if hasattr(runner, "on_progress") and runner.on_progress is None:  # the Kubernetes runner
            runner.on_progress = self._runner_progress

    def _runner_progress(self, progress: Any) -> None:
        """What the runner saw of the current run (a `runner.kubernetes.executor.Progress`).

        A Pod that waits for a node with a free GPU (``unschedulable:``) or for admission by Kueue
        (``queued:``; runner/kubernetes/failures.py) keeps its status (the lease holds), but its
        timeline gets one event, "waiting for GPU capacity" (or cluster capacity where no GPU is
        asked for), so the report page, ``csawm status`` and ``csawm submit --wait`` show why
        nothing happens (issue 22 item 2); the runner's own message goes in the maintainers'
        ``detail``. Not again while the latest event says the same, and only while this worker
        holds the lease (`server.runs.leases.note_under_lease`).
        """
        ctx = self._current
        if ctx is None or progress.handle != ctx.handle or progress.kind != "pending":
            return
        if not progress.message.startswith(("unschedulable:", "queued:")):
            return
        note = "waiting for GPU capacity" if self.settings.run.gpus > 0 else "waiting for cluster capacity"
        detail = progress.message[:2000]
        with self.db.transaction() as session:
            leases.note_under_lease(
                session, ctx.sub_id, owner=self.name, attempt=ctx.lease.attempt, note=note, detail=detail
            )

    # -- lifecycle ---------------------------------------------------------------------------------

    def start_thread(self) -> None:
        self._thread = threading.Thread(target=self.run_forever, name="csawm-worker", daemon=True)
        self._thread.start()

    @property
    def alive(self) -> bool:
        """The embedded worker's thread is running (``/readyz``)."""
        return self._thread is not None and self._thread.is_alive()

    def request_stop(self) -> None:
        """Stop: the run in progress is handed back at once (its container stopped), no new run is
        leased. Safe to call from a signal handler (the engine call happens in a thread)."""
        self._stop.set()
        self._wake.set()
        ctx = self._current
        if ctx is not None:
            ctx.shutdown.set()
            handle = ctx.handle
            if handle:
                threading.Thread(target=self.runner.cancel, args=(handle,), daemon=True).start()

    def wake(self) -> None:
        """Look at the queue now instead of at the next poll (a submission just arrived)."""
        self._wake.set()

    def stop(self, timeout: float = 12.0) -> None:
        """`request_stop`, then wait up to `timeout` for the loop to hand its run back and exit."""
        self.request_stop()
        if self._thread is not None:
            self._thread.join(timeout)

    def run_forever(self) -> None:
        """Lease and process runs until stopped; survive anything with a capped backoff."""
        poll = self.settings.poll_interval.total_seconds()
        backoff = 1.0
        presence.beat(self.db, self.name, state="idle", started_at=self._started_at)
        try:
            while not self._stop.is_set():
                try:
                    worked = self.run_once()
                    backoff = 1.0
                except Exception as exc:
                    self.loop_errors += 1
                    log.exception("worker %s: loop error; retrying in %.0f s", self.name, backoff)
                    presence.beat(self.db, self.name, state="backoff", error=_describe(exc))
                    self._stop.wait(backoff)
                    backoff = min(backoff * 2, MAX_BACKOFF_S)
                    continue
                if not worked:
                    state = "blocked" if self.blocked else "idle"
                    presence.beat(self.db, self.name, state=state, error=self.blocked)
                    self._wake.wait(poll if not self.blocked else max(poll, 5.0))
                    self._wake.clear()
        finally:
            presence.forget(self.db, self.name)

    def run_once(self) -> bool:
        """Sweep if due, then lease and process one run; False when nothing was leased."""
        if time.monotonic() >= self._next_sweep:
            janitor.sweep(self.settings, self.db, self.runner, self.instance)
            self._next_sweep = time.monotonic() + janitor.INTERVAL.total_seconds()
        if self._stop.is_set() or self.evaluation_or_none() is None:
            return False
        lease = lease_next(self.db, self.name, self.settings.lease_ttl)
        if lease is None:
            return False
        self.process(lease)
        return True

    def evaluation_or_none(self) -> EvaluationSet | None:
        """The test set, prepared once; None (and `blocked` says why) while it cannot be."""
        if self._evaluation is None:
            try:
                return self.prepare_test_set()
            except Exception as exc:
                reason = f"the test set cannot be prepared: {_describe(exc)}"
                if reason != self.blocked:
                    log.error("worker %s: %s; no run is leased until it can", self.name, reason)
                self.blocked = reason
                return None
        return self._evaluation

    @property
    def evaluation(self) -> EvaluationSet:
        evaluation = self.evaluation_or_none()
        if evaluation is None:
            raise RunnerError(self.blocked or "no test set")
        return evaluation

    def prepare_test_set(self) -> EvaluationSet:
        """Prepare the test set now, raising what went wrong (``csawm worker`` fails fast on it)."""
        s = self.settings
        if s.benchmark_dir is None:
            raise RunnerError("CSAWM_BENCHMARK_DIR is not set: the worker has no test set to run on")
        evaluation = EvaluationSet.prepare(s.benchmark_dir, s.data_dir, s.run.preflight_images)
        # The models' input must be this test set (issue 13 item 5): else lease nothing, charge nothing.
        # The folder the worker materialised, or the operator's stamp on the volume (test_set).
        if self.runner.mounts_local_inputs:
            test_set.verify_materialised(s.benchmark_dir, evaluation)
        else:
            test_set.verify_stamp(s.k8s.test_set_digest_file, evaluation)
        # The report parts of the test set alone (expert rows, density comparators) are computed once
        # per test set and memoised (server.scoring.memo): pay for them here, not in the first run.
        from server.scoring.report import references_of_test_set

        references_of_test_set(
            evaluation.private,
            public_labels=evaluation.public,
            resamples=s.bootstrap_resamples,
            seed=s.bootstrap_seed,
        )
        self._evaluation, self.blocked = evaluation, None
        return evaluation

    # -- one run -----------------------------------------------------------------------------------

    def process(self, lease: Lease) -> None:
        ctx = self._context(lease)
        self._current = ctx
        if self._stop.is_set():
            ctx.shutdown.set()
        done = threading.Event()
        beat = threading.Thread(
            target=self._heartbeat, args=(ctx, done), name=f"heartbeat-{lease.submission_id}", daemon=True
        )
        beat.start()
        try:
            self._resume(ctx)
        except StageFault as pf:
            self._end(ctx, pf)
        except LeaseLost as exc:
            log.info("run %s: %s", ctx.sub_id, exc)
        except Exception as exc:  # our bug or an outage mid-stage: retried at the same stage
            log.exception("run %s: unexpected worker error", ctx.sub_id)
            unexpected = fault(
                ctx.stage, FaultKind.TRANSIENT_INFRA, ErrorCode.INFRA_ERROR, f"worker error: {_describe(exc)}"
            )
            try:
                self._end(ctx, unexpected)
            except LeaseLost as lost:
                log.info("run %s: %s", ctx.sub_id, lost)
        finally:
            done.set()
            beat.join()
            self._current = None

    def _context(self, lease: Lease) -> RunContext:
        ctx = RunContext(lease=lease, status=lease.status, retries=lease.retries)
        with self.db.transaction(write=False) as session:
            sub = session.get(Submission, ctx.sub_id)
            assert sub is not None
            ctx.load(sub)
            if sub.cancel_requested:  # asked while the run was queued or held by its previous worker
                ctx.cancel.set()
            if sub.started_at is not None and "queue_s" not in ctx.timings:
                ctx.timings["queue_s"] = round((sub.started_at - sub.created_at).total_seconds(), 3)
        return ctx

    def _resume(self, ctx: RunContext) -> None:
        old, left = ctx.lease.recovered_from, ctx.lease.previous_handle
        if old is not None:  # its previous worker died: stop what it started
            if left:
                log.info("run %s: stopping %s left by %s", ctx.sub_id, left, old)
                self._quietly_cancel(left)
            pf = endings.take_over(self.env, ctx, old)
            if pf is not None:
                raise pf
        check_signals(ctx)
        evaluation = self.evaluation_or_none()
        if evaluation is None:
            raise fault(
                ctx.stage, FaultKind.PERMANENT_INFRA, ErrorCode.INFRA_ERROR, self.blocked or "no test set"
            )
        image: str | None = None
        store = DatabaseStore(self.env)
        if ctx.status is RunStatus.PREFLIGHT:
            image = ensure_image(self.env, self.runner, ctx)
            run_preflight(self.env, store, self.runner, ctx, evaluation, image)
        if ctx.status is RunStatus.RUNNING:
            image = image or ensure_image(self.env, self.runner, ctx)
            run_hidden(self.env, store, self.runner, ctx, evaluation, image)
        if ctx.status is RunStatus.SCORING:
            score(self.env, self.runner.name, ctx, evaluation, self.scorer)
        endings.finish(self.env, ctx)

    def _end(self, ctx: RunContext, pf: StageFault) -> None:
        if endings.end(self.env, ctx, pf).action is Action.RETRY:
            self._wake.set()

    def _heartbeat(self, ctx: RunContext, done: threading.Event) -> None:
        interval = self.settings.lease_ttl.total_seconds() / 3
        while not done.wait(interval):
            try:
                beat = renew(self.db, ctx.lease, self.settings.lease_ttl)
            except Exception:
                log.warning("run %s: lease renewal failed (database away?)", ctx.sub_id, exc_info=True)
                continue
            presence.beat(self.db, self.name, state="busy", submission_id=ctx.sub_id)
            if not beat.held:
                ctx.lost.set()
            if beat.cancel_requested:
                ctx.cancel.set()
            if (ctx.lost.is_set() or ctx.cancel.is_set()) and ctx.handle:
                self._quietly_cancel(ctx.handle)

    def _quietly_cancel(self, handle: str) -> None:
        quietly(self.runner.cancel, handle)
        quietly(self.runner.cleanup, handle)


def _describe(exc: BaseException) -> str:
    text = exc.message if isinstance(exc, RunnerError) else str(exc)
    return f"{exc.__class__.__name__}: {text}"[:2000]
