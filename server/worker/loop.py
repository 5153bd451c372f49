"""The worker: lease a run, preflight it, run it on the hidden images, score it, store the result.

One worker handles one run at a time. While it works, a heartbeat thread renews the lease every
third of its TTL and watches for a cancel request; if the lease is lost (this worker stalled and
another took the run over) it stops the container and the run is left to the new owner. Every
status change goes through `server.worker.transitions.transition` with this worker's lease.

Who pays (DESIGN.md §5): a preflight failure never costs quota; infrastructure failures are retried
(up to ``CSAWM_MAX_ATTEMPTS`` leases) and refunded when retries are exhausted; model failures on the
hidden run are charged when ``CSAWM_CHARGE_USER_FAILURES`` is true; a cancel before the hidden run
started is refunded.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import socket
import threading
import time
import uuid
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, NoReturn, Protocol

import numpy as np
from sqlalchemy import update

from runner.errors import FaultKind, RunnerError
from runner.imagetar import ImageArchiveError
from runner.spec import ErrorCode, RunLimits, RunResult, RunSpec, TerminalState
from server.core.clock import utcnow
from server.core.db import Database
from server.core.settings import Settings
from server.models import FailedPhase, RunStatus, Submission
from server.quota import service as quota
from server.worker.backend import PREFLIGHT_LOG_BYTES, expected_handle, image_present, run_limits
from server.worker.evaluation import EvaluationSet
from server.worker.queue import Lease, lease_next, renew
from server.worker.transitions import LeaseLost, transition

log = logging.getLogger("csawm.worker")

PREDICTIONS_FILE = "predictions.csv"


class ImageLoader(Protocol):
    def load_archive(self, path: Path) -> str: ...


def build_runner(settings: Settings) -> Any:
    """The execution backend named by ``CSAWM_RUNNER``, configured from the settings.

    The Kubernetes runner gets its ``CSAWM_K8S_*`` settings through `kubernetes_runner_config`
    (the same mapping ``csawm k8s render-job`` uses). Both backends create their API clients on
    first use, so building a runner needs neither an engine nor a cluster.
    """
    if settings.runner == "docker":
        from runner.docker_backend import DockerRunner

        return DockerRunner(remove_containers=True)
    from runner.kubernetes.executor import KubernetesRunner
    from server.core.k8s_settings import kubernetes_runner_config

    return KubernetesRunner(kubernetes_runner_config(settings))


def worker_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"


@dataclass
class _Context:
    lease: Lease
    cancel: threading.Event = field(default_factory=threading.Event)
    lost: threading.Event = field(default_factory=threading.Event)
    handle: str | None = None
    created_at: datetime = field(default_factory=utcnow)
    archive: Path | None = None
    timings: dict[str, float] = field(default_factory=dict)
    peak_memory: dict[str, int | None] = field(default_factory=dict)

    @property
    def sub_id(self) -> int:
        return self.lease.submission_id


class _Stop(Exception):
    """The run has been finished (or handed back) already; unwind quietly."""


class Worker:
    """Leases and processes runs until stopped. `runner` implements `runner.spec.Runner`."""

    def __init__(self, settings: Settings, db: Database, runner: Any, *, name: str | None = None) -> None:
        self.settings = settings
        self.db = db
        self.runner = runner
        self.name = name or worker_id()
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None
        self._evaluation: EvaluationSet | None = None
        # Container / Job names must not collide between deployments sharing an engine (or test
        # databases whose ids all start at 1): every worker of one database derives the same tag.
        self.instance = hashlib.sha256(settings.effective_database_url.encode()).hexdigest()[:6]

    # -- lifecycle ---------------------------------------------------------------------------------

    def start_thread(self) -> None:
        self._thread = threading.Thread(target=self.run_forever, name="csawm-worker", daemon=True)
        self._thread.start()

    def request_stop(self) -> None:
        """Ask the loop to stop after the current run (safe from a signal handler)."""
        self._stop.set()
        self._wake.set()

    def wake(self) -> None:
        """Look at the queue now instead of at the next poll (a submission just arrived)."""
        self._wake.set()

    def stop(self, timeout: float = 5.0) -> None:
        """Stop taking runs. A run in progress is abandoned after `timeout`; its lease then expires
        and another worker (or this one after a restart) takes it over."""
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout)

    def run_forever(self) -> None:
        poll = self.settings.poll_interval.total_seconds()
        while not self._stop.is_set():
            if not self.run_once():
                self._wake.wait(poll)
                self._wake.clear()

    def run_once(self) -> bool:
        """Lease and process one run; False when the queue was empty."""
        lease = lease_next(self.db, self.name, self.settings.lease_ttl)
        if lease is None:
            return False
        self.process(lease)
        return True

    @property
    def evaluation(self) -> EvaluationSet:
        if self._evaluation is None:
            if self.settings.benchmark_dir is None:
                raise RunnerError("CSAWM_BENCHMARK_DIR is not set: the worker has no test set to run on")
            self._evaluation = EvaluationSet.prepare(
                self.settings.benchmark_dir, self.settings.data_dir, self.settings.preflight_images
            )
        return self._evaluation

    # -- one run -----------------------------------------------------------------------------------

    def process(self, lease: Lease) -> None:
        ctx = _Context(lease)
        done = threading.Event()
        beat = threading.Thread(
            target=self._heartbeat, args=(ctx, done), name=f"heartbeat-{lease.submission_id}", daemon=True
        )
        beat.start()
        try:
            self._process(ctx)
        except (_Stop, LeaseLost) as exc:
            log.info("run %s: %s", ctx.sub_id, exc)
        except Exception as exc:  # the loop must survive anything one run throws
            log.exception("run %s: unexpected worker error", ctx.sub_id)
            with contextlib.suppress(_Stop, LeaseLost):
                self._infra(ctx, self._phase_of(ctx), f"worker error: {exc.__class__.__name__}: {exc}")
        finally:
            done.set()
            beat.join()

    def _heartbeat(self, ctx: _Context, done: threading.Event) -> None:
        interval = self.settings.lease_ttl.total_seconds() / 3
        while not done.wait(interval):
            try:
                beat = renew(self.db, ctx.lease, self.settings.lease_ttl)
            except Exception:
                log.exception("run %s: heartbeat failed", ctx.sub_id)
                continue
            if not beat.held:
                ctx.lost.set()
            if beat.cancel_requested:
                ctx.cancel.set()
            if (ctx.lost.is_set() or ctx.cancel.is_set()) and ctx.handle:
                self._quietly(self.runner.cancel, ctx.handle)

    def _phase_of(self, ctx: _Context) -> FailedPhase:
        with self.db.transaction(write=False) as session:
            sub = session.get(Submission, ctx.sub_id)
            status = sub.status if sub else RunStatus.PREFLIGHT
        return {RunStatus.RUNNING: FailedPhase.HIDDEN, RunStatus.SCORING: FailedPhase.SCORING}.get(
            status, FailedPhase.PREFLIGHT
        )

    def _process(self, ctx: _Context) -> None:
        lease = ctx.lease
        with self.db.transaction(write=False) as session:
            sub = session.get(Submission, ctx.sub_id)
            assert sub is not None
            archive = Path(sub.archive_path) if sub.archive_path else None
            ctx.archive = archive
            image_ref, digest = sub.image_ref, sub.image_digest
            ctx.timings.update(sub.timings or {})
            ctx.created_at = sub.created_at
            if sub.cancel_requested:  # asked while the run's previous worker held it
                ctx.cancel.set()
            if sub.started_at is not None and "queue_s" not in ctx.timings:
                ctx.timings["queue_s"] = (sub.started_at - sub.created_at).total_seconds()
        if lease.previous_handle:
            log.info(
                "run %s: stopping %s left by %s", ctx.sub_id, lease.previous_handle, lease.recovered_from
            )
            self._quietly(self.runner.cancel, lease.previous_handle)
            self._quietly(self.runner.cleanup, lease.previous_handle)
        if lease.attempt > self.settings.max_attempts:
            self._fail(
                ctx,
                RunStatus.FAILED,
                ErrorCode.INFRA_ERROR,
                self._phase_of(ctx),
                f"gave up after {lease.attempt - 1} attempts (workers lost or infrastructure failing)",
                refund="attempts exhausted",
            )
        evaluation = self.evaluation
        if lease.status in (RunStatus.PREFLIGHT, RunStatus.RUNNING):
            self._check_signals(ctx, self._phase_of(ctx))
            image = self._image(ctx, archive, image_ref, digest)
            if lease.status == RunStatus.PREFLIGHT:
                self._preflight(ctx, image, evaluation)
            self._hidden(ctx, image, evaluation)
        self._score(ctx, evaluation, digest)

    def _image(self, ctx: _Context, archive: Path | None, image_ref: str | None, digest: str) -> str:
        if archive is None:
            if image_ref is None:
                self._fail(
                    ctx,
                    RunStatus.FAILED,
                    ErrorCode.IMAGE_INVALID,
                    FailedPhase.PREFLIGHT,
                    "submission has neither an archive nor an image reference",
                    refund="no image",
                )
            return str(image_ref)
        loader: ImageLoader | None = getattr(self.runner, "load_archive", None) and self.runner
        if loader is None:
            self._fail(
                ctx,
                RunStatus.FAILED,
                ErrorCode.INFRA_ERROR,
                FailedPhase.PREFLIGHT,
                f"the {self.runner.name} runner cannot load image archives",
                refund="runner cannot load",
            )
        started = time.monotonic()
        if image_present(self.runner, digest):
            ctx.timings["image_load_s"] = 0.0
            return digest
        try:
            loaded = loader.load_archive(archive)
            ctx.timings["image_load_s"] = round(time.monotonic() - started, 3)
        except ImageArchiveError as exc:
            self._fail(
                ctx,
                RunStatus.FAILED,
                ErrorCode.IMAGE_INVALID,
                FailedPhase.PREFLIGHT,
                f"image archive refused: {exc}",
                refund="image invalid before preflight",
            )
        except RunnerError as exc:
            self._infra(ctx, FailedPhase.PREFLIGHT, exc.message)
        except OSError as exc:
            self._infra(ctx, FailedPhase.PREFLIGHT, f"cannot read the stored archive: {exc}")
        if loaded != digest:
            self._fail(
                ctx,
                RunStatus.FAILED,
                ErrorCode.IMAGE_INVALID,
                FailedPhase.PREFLIGHT,
                f"the archive loaded as {loaded}, not the uploaded image {digest}",
                refund="digest mismatch",
            )
        return loaded

    def _limits(self, phase: str) -> RunLimits:
        return run_limits(self.settings, phase)

    def _run_dir(self, ctx: _Context) -> Path:
        return self.settings.data_dir / "runs" / str(ctx.sub_id) / f"a{ctx.lease.attempt}"

    def _execute(self, ctx: _Context, phase: FailedPhase, image: str, input_dir: Path) -> RunResult:
        """Run one container; return its result, or finish the run (infra / cancel) and raise `_Stop`."""
        spec = RunSpec(
            run_id=f"{self.instance}-{ctx.sub_id}-{phase.value}",
            image=image,
            input_dir=input_dir,
            output_dir=self._run_dir(ctx) / phase.value / "output",
            limits=self._limits(phase.value),
            attempt=ctx.lease.attempt,
            phase=phase.value,
        )
        spec.output_dir.parent.mkdir(parents=True, exist_ok=True)
        self._check_signals(ctx, phase)
        started = time.monotonic()
        handle: str | None = expected_handle(self.runner, spec)
        if handle is not None:
            self._record_handle(ctx, handle, started=False)
        try:
            handle = self.runner.start(spec)
            ctx.handle = handle
            ctx.timings[f"{phase.value}_started_after_s"] = round(
                (utcnow() - ctx.created_at).total_seconds(), 3
            )
            self._record_handle(ctx, handle, started=True)
            if ctx.cancel.is_set() or ctx.lost.is_set():
                self._quietly(self.runner.cancel, handle)
            result: RunResult = self.runner.wait(handle, spec)
        except RunnerError as exc:
            if exc.kind == FaultKind.MODEL:
                result = RunResult(
                    state=TerminalState.FAILED,
                    error_code=exc.code,
                    message=exc.message,
                    exit_code=None,
                    duration_s=time.monotonic() - started,
                    peak_memory_bytes=None,
                    log_tail="",
                    predictions=None,
                    handle=handle or "",
                )
            else:
                self._check_signals(ctx, phase)
                self._infra(ctx, phase, exc.message)
        finally:
            ctx.handle = None
            if handle:
                self._quietly(self.runner.cleanup, handle)
        ctx.timings[f"{phase.value}_s"] = round(time.monotonic() - started, 3)
        ctx.peak_memory[phase.value] = result.peak_memory_bytes
        self._check_signals(ctx, phase)
        if result.error_code == ErrorCode.INFRA_ERROR:
            self._infra(ctx, phase, result.message)
        if result.error_code == ErrorCode.CANCELLED:
            self._cancelled(ctx, phase)
        return result

    def _check_signals(self, ctx: _Context, phase: FailedPhase) -> None:
        if ctx.lost.is_set():
            raise _Stop("lease lost; another worker owns the run")
        if ctx.cancel.is_set():
            self._cancelled(ctx, phase)

    def _record_handle(self, ctx: _Context, handle: str, *, started: bool) -> None:
        """Write down the handle (before start: what to stop if this worker dies; after: the real one)."""
        now = utcnow()
        with self.db.transaction() as session:
            sub = session.get(Submission, ctx.sub_id)
            values: dict[str, Any] = {"runner_handle": handle}
            if started and sub is not None and sub.container_started_at is None:
                values["container_started_at"] = now
            result = session.execute(
                update(Submission)
                .where(
                    Submission.id == ctx.sub_id,
                    Submission.lease_owner == self.name,
                    Submission.attempt == ctx.lease.attempt,
                )
                .values(**values)
                .execution_options(synchronize_session=False)
            )
            if result.rowcount != 1:  # type: ignore[attr-defined]
                ctx.lost.set()

    def _preflight(self, ctx: _Context, image: str, evaluation: EvaluationSet) -> None:
        from server.scoring.predictions import PredictionsError, read_predictions

        result = self._execute(ctx, FailedPhase.PREFLIGHT, image, evaluation.preflight_input)
        if result.error_code is not None:
            self._fail(
                ctx,
                RunStatus.FAILED,
                result.error_code,
                FailedPhase.PREFLIGHT,
                f"preflight on {len(evaluation.preflight_filenames)} {evaluation.preflight_source} "
                f"sample images failed: {result.message}",
                refund="preflight failure costs no quota",
                log_tail=result.log_tail,
            )
        try:
            read_predictions(result.predictions or b"", expected=evaluation.preflight_filenames)
        except PredictionsError as exc:
            self._fail(
                ctx,
                RunStatus.FAILED,
                ErrorCode.OUTPUT_INVALID,
                FailedPhase.PREFLIGHT,
                f"preflight predictions.csv is invalid: {exc}",
                refund="preflight failure costs no quota",
                log_tail=result.log_tail,
            )
        with self.db.transaction() as session:
            transition(
                session,
                ctx.sub_id,
                RunStatus.RUNNING,
                note="preflight passed",
                owner=self.name,
                attempt=ctx.lease.attempt,
            )
            self._save_progress(session, ctx, log_tail=result.log_tail)

    def _hidden(self, ctx: _Context, image: str, evaluation: EvaluationSet) -> None:
        result = self._execute(ctx, FailedPhase.HIDDEN, image, evaluation.hidden_input)
        if result.error_code is not None:
            refund = None if self.settings.charge_user_failures else "model failures are not charged"
            self._fail(
                ctx,
                RunStatus.FAILED,
                result.error_code,
                FailedPhase.HIDDEN,
                result.message,
                refund=refund,
                log_tail=result.log_tail,
            )
        path = self._run_dir(ctx).parent / PREDICTIONS_FILE
        tmp = path.with_suffix(".tmp")
        tmp.write_bytes(result.predictions or b"")
        tmp.replace(path)
        with self.db.transaction() as session:
            transition(
                session,
                ctx.sub_id,
                RunStatus.SCORING,
                note="hidden run finished",
                owner=self.name,
                attempt=ctx.lease.attempt,
            )
            self._save_progress(session, ctx, log_tail=result.log_tail)

    def _score(self, ctx: _Context, evaluation: EvaluationSet, digest: str) -> None:
        from server.scoring.predictions import PredictionsError, read_predictions
        from server.scoring.report import SCORER_VERSION, score_report

        path = self._run_dir(ctx).parent / PREDICTIONS_FILE
        if not path.is_file():
            self._requeue(ctx, "the hidden run's predictions were not kept; running it again")
        started = time.monotonic()
        try:
            predictions = read_predictions(path.read_bytes(), expected=evaluation.hidden_filenames)
        except PredictionsError as exc:
            refund = None if self.settings.charge_user_failures else "model failures are not charged"
            self._fail(
                ctx,
                RunStatus.FAILED,
                ErrorCode.OUTPUT_INVALID,
                FailedPhase.SCORING,
                f"predictions.csv is invalid: {exc}",
                refund=refund,
            )
        s = self.settings
        try:
            report = score_report(
                predictions,
                evaluation.private,
                public_labels=evaluation.public,
                resamples=s.bootstrap_resamples,
                seed=s.bootstrap_seed,
            )
        except Exception as exc:  # a scorer crash is ours, never the submitter's
            log.exception("run %s: scoring failed", ctx.sub_id)
            self._infra(ctx, FailedPhase.SCORING, f"scoring failed: {exc.__class__.__name__}: {exc}")
        ctx.timings["scoring_s"] = round(time.monotonic() - started, 3)
        masking = report.data.get("masking", {})
        repro = {
            "image_digest": digest,
            "test_set_manifest_sha256": evaluation.manifest_digest,
            "public_manifest_sha256": evaluation.public_manifest_digest,
            "scorer_version": SCORER_VERSION,
            "runner_backend": getattr(self.runner, "name", type(self.runner).__name__),
            "host": socket.gethostname(),
            "worker": self.name,
            "attempt": ctx.lease.attempt,
            "durations_s": dict(ctx.timings),
            "peak_memory_bytes": dict(ctx.peak_memory),
            "bootstrap": {"resamples": s.bootstrap_resamples, "seed": s.bootstrap_seed},
            "preflight_source": evaluation.preflight_source,
            "n_hidden_images": len(evaluation.hidden_filenames),
        }
        with self.db.transaction() as session:
            sub = transition(
                session,
                ctx.sub_id,
                RunStatus.SUCCEEDED,
                note="scored",
                owner=self.name,
                attempt=ctx.lease.attempt,
            )
            sub.metrics = report.data
            sub.kendall_tau_b = _value(masking.get("kendall_tau_b"))
            sub.amae = _value(masking.get("amae"))
            sub.tau_replicates = _pack(report.replicates.get("kendall_tau_b"))
            sub.amae_replicates = _pack(report.replicates.get("amae"))
            sub.reproducibility = repro
            sub.timings = dict(ctx.timings)
        self._discard_archive(ctx)

    # -- endings -----------------------------------------------------------------------------------

    def _save_progress(self, session: Any, ctx: _Context, *, log_tail: str) -> None:
        sub = session.get(Submission, ctx.sub_id)
        sub.timings = dict(ctx.timings)
        sub.log_tail = log_tail[-PREFLIGHT_LOG_BYTES:] if log_tail else sub.log_tail

    def _fail(
        self,
        ctx: _Context,
        status: RunStatus,
        code: ErrorCode,
        phase: FailedPhase,
        message: str,
        *,
        refund: str | None,
        log_tail: str | None = None,
    ) -> NoReturn:
        """Finish the run as `status` with `code`; refund when `refund` (the ledger reason) is given."""
        with self.db.transaction() as session:
            transition(
                session,
                ctx.sub_id,
                status,
                note=f"{code.value}: {message}"[:2000],
                owner=self.name,
                attempt=ctx.lease.attempt,
                error_code=code.value,
                failed_phase=phase,
                error_message=message,
            )
            self._save_progress(session, ctx, log_tail=log_tail or "")
            if refund:
                quota.refund(session, ctx.sub_id, f"{refund} ({code.value})")
        self._discard_archive(ctx)
        raise _Stop(f"finished as {status.value} ({code.value})")

    def _discard_archive(self, ctx: _Context) -> None:
        """A finished run's uploaded archive is deleted unless ``CSAWM_KEEP_ARCHIVES``: its digest and
        sha256 stay on the row, and uploads of up to ``CSAWM_MAX_UPLOAD_BYTES`` would fill the disk."""
        if self.settings.keep_archives or ctx.archive is None:
            return
        ctx.archive.unlink(missing_ok=True)

    def _infra(self, ctx: _Context, phase: FailedPhase, message: str) -> NoReturn:
        """Retry on a later lease while attempts remain; then fail with infra_error and refund."""
        if ctx.lease.attempt < self.settings.max_attempts:
            self._requeue(ctx, f"infrastructure error, will retry: {message}")
        self._fail(
            ctx, RunStatus.FAILED, ErrorCode.INFRA_ERROR, phase, message, refund="infrastructure failure"
        )

    def _requeue(self, ctx: _Context, note: str) -> NoReturn:
        with self.db.transaction() as session:
            transition(
                session,
                ctx.sub_id,
                RunStatus.QUEUED,
                note=note[:2000],
                owner=self.name,
                attempt=ctx.lease.attempt,
            )
            self._save_progress(session, ctx, log_tail="")
        raise _Stop("requeued")

    def _cancelled(self, ctx: _Context, phase: FailedPhase) -> NoReturn:
        refund = "cancelled before the hidden run started" if phase == FailedPhase.PREFLIGHT else None
        self._fail(
            ctx, RunStatus.CANCELLED, ErrorCode.CANCELLED, phase, "cancelled on request", refund=refund
        )

    def _quietly(self, fn: Any, handle: str) -> None:
        try:
            fn(handle)
        except Exception:
            log.warning("%s(%s) failed", getattr(fn, "__name__", fn), handle, exc_info=True)


def _value(entry: Any) -> float | None:
    value = entry.get("value") if isinstance(entry, dict) else None
    return float(value) if isinstance(value, int | float) else None


def _pack(values: np.ndarray | None) -> bytes | None:
    return None if values is None else np.asarray(values, dtype=np.float64).tobytes()
