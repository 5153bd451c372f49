"""The stages of a run, each a function that moves the run one status on or raises `StageFault`.

==================  ===================  ====================================================
stage               status before/after  what it does
==================  ===================  ====================================================
`ensure_image`      (any container one)  the image is in the runner (loaded from the archive
                                         once; a retry or takeover finds it by id)
`run_preflight`     preflight → running  the image on a few public/synthetic images; checks
                                         its predictions.csv
`run_hidden`        running → scoring    the image on the hidden images; its predictions are
                                         stored content-addressed (`server.runs.store`)
`score`             scoring → succeeded  the stored predictions read (any problem with them is
                                         ``output_invalid``: the reader raises nothing else)
                                         and scored; the report saved
==================  ===================  ====================================================

A stage never decides what a failure costs or who is told: it raises `StageFault` and the worker
asks `server.runs.policy`. Because a requeued run resumes at the status it had, a passed preflight
is not run again and stored hidden predictions are scored, never re-run.

The container stages write what they produce through a `RunStore`: `DatabaseStore` (the database
worker writes the run's rows itself) or `server.remote_worker.client.HttpStore` (a remote worker
reports to the worker API, and the server writes the same rows with this module's functions). The
stages themselves are the same code for both; `score` runs where the labels are, on the server.
"""

from __future__ import annotations

import functools
import logging
import math
import socket
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any, Protocol, TypeVar

from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session

from runner.errors import FaultKind, RunnerError, fault_kind
from runner.imagetar import ImageArchiveError
from runner.spec import ErrorCode, Runner, RunResult, RunSpec, TerminalState
from server.clock import utcnow
from server.core.settings import Settings
from server.models import RunStatus, Submission
from server.phases.service import by_name as competition_phase
from server.runs import leases, lifecycle, reports, scoring, store
from server.runs.disclosure import stage_logs
from server.runs.lifecycle import Progress
from server.runs.policy import Stage
from server.runs.scoring import Scorer
from server.runs.transitions import LeaseLost
from server.scoring.results import RunRecord
from server.worker.backend import PREFLIGHT_LOG_BYTES, run_limits
from server.worker.context import RunContext, StageEnv, StageFault, WorkerEnv, fault
from server.worker.evaluation import EvaluationSet, NoPublicTestSet

log = logging.getLogger("csawm.worker")

T = TypeVar("T")


def score_report(
    predictions: Any, evaluation: EvaluationSet, resamples: int, seed: int, *, min_stratum: int | None = None
) -> Any:
    """The scorer the worker uses: `server.scoring.report.score_report` on the evaluation set
    (`min_stratum` None: the scorer's default, ``DEFAULT_MIN_STRATUM``)."""
    from server.scoring.report import score_report as report
    from server.scoring.strata import DEFAULT_MIN_STRATUM

    return report(
        predictions, evaluation.private, public_labels=evaluation.public, resamples=resamples, seed=seed,
        min_stratum=DEFAULT_MIN_STRATUM if min_stratum is None else min_stratum,
    )  # fmt: skip


def scorer_for(settings: Settings) -> Scorer:
    """`score_report` under the settings' ``CSAWM_MIN_STRATUM`` (the worker's and rescore's scorer)."""
    return functools.partial(score_report, min_stratum=settings.min_stratum)


# A database that blinks (a restart, a lock held too long) must not lose a run that is otherwise fine:
# writes are retried for up to this long before the stage gives up (the lease TTL is longer).
DB_RETRY_S = 20.0


def transact(env: WorkerEnv, fn: Callable[[Session], T], *, write: bool = True) -> T:
    """Run `fn` in a transaction, retrying operational errors (DB away) for `DB_RETRY_S`."""
    deadline = time.monotonic() + DB_RETRY_S
    delay = 0.2
    while True:
        try:
            with env.db.transaction(write=write) as session:
                return fn(session)
        except OperationalError:
            if time.monotonic() + delay > deadline:
                raise
            log.warning("database unavailable; retrying in %.1f s", delay, exc_info=True)
            time.sleep(delay)
            delay = min(delay * 2, 5.0)


def _move(
    env: WorkerEnv,
    ctx: RunContext,
    to: RunStatus,
    note: str,
    progress: Progress,
    *,
    also: Callable[[Session, Submission], None] | None = None,
) -> None:
    """Advance the run (under this worker's lease) with what the stage produced and the progress kept."""
    progress = replace(progress, timings=dict(ctx.timings), runtime=runtime_of(ctx))

    def write(session: Session) -> None:
        sub = lifecycle.advance(
            session, ctx.sub_id, to, owner=env.name, attempt=ctx.lease.attempt, note=note, progress=progress
        )
        if also is not None:
            also(session, sub)

    transact(env, write)
    ctx.status = to


class StageInputs(Protocol):
    """What the container stages mount: `EvaluationSet` (with labels) or, on a remote worker,
    `server.worker.inputs.ImagesOnly` (images alone)."""

    @property
    def preflight_filenames(self) -> tuple[str, ...]: ...

    @property
    def preflight_input(self) -> Path: ...

    @property
    def preflight_source(self) -> str: ...

    def hidden_input_for(self, test_set: str) -> tuple[Path, str]:
        """The hidden stage's input folder and its name on the Kubernetes volume for `test_set`;
        raises `NoPublicTestSet` for ``public`` without a public set."""
        ...


class RunStore(Protocol):
    """Where the container stages record the run, under the worker's lease. Each write is
    conditional on the lease: one that finds it lost raises `LeaseLost` (or, for a handle,
    answers False)."""

    def record_handle(self, ctx: RunContext, handle: str, *, started: bool) -> bool:
        """Write down the container's handle; False when the lease is no longer this worker's."""
        ...

    def test_set(self, ctx: RunContext) -> str:
        """The test set of the run's competition phase: ``private`` or ``public``."""
        ...

    def preflight_passed(self, ctx: RunContext, log_tail: str) -> None:
        """preflight → running, with the preflight's log tail; sets ``ctx.status``."""
        ...

    def hidden_done(self, ctx: RunContext, predictions: bytes, test_set: str, log_tail: str) -> None:
        """The hidden predictions stored and the run moved on (→ scoring); sets ``ctx.status``."""
        ...


class DatabaseStore:
    """The database worker's `RunStore`: it writes the run's rows itself."""

    def __init__(self, env: WorkerEnv) -> None:
        self.env = env

    def record_handle(self, ctx: RunContext, handle: str, *, started: bool) -> bool:
        env = self.env

        def write(session: Session) -> bool:
            return leases.record_handle(
                session, ctx.sub_id, owner=env.name, attempt=ctx.lease.attempt, handle=handle, started=started
            )

        return transact(env, write)

    def test_set(self, ctx: RunContext) -> str:
        return transact(self.env, lambda session: _test_set(self.env, session, ctx), write=False)

    def preflight_passed(self, ctx: RunContext, log_tail: str) -> None:
        logs = stage_logs(self.env.settings.hidden_logs, Stage.PREFLIGHT, log_tail[-PREFLIGHT_LOG_BYTES:])
        _move(self.env, ctx, RunStatus.RUNNING, "preflight passed", Progress(logs=logs))

    def hidden_done(self, ctx: RunContext, predictions: bytes, test_set: str, log_tail: str) -> None:
        hidden_stored(self.env, ctx, store.save(self.env.settings.data_dir, predictions), test_set, log_tail)


def hidden_stored(env: WorkerEnv, ctx: RunContext, sha: str, test_set: str, log_tail: str) -> None:
    """running → scoring with the stored predictions `sha`, for the database and the remote worker."""
    # The test set whose input was mounted: `score` reads the predictions against it, whatever the
    # phase says by then (a maintainer may change a phase's test set meanwhile).
    progress = Progress(
        predictions_sha256=sha,
        reproducibility=RunRecord.read(None).rescored(test_set=test_set),
        logs=stage_logs(env.settings.hidden_logs, Stage.HIDDEN, log_tail),
    )
    _move(env, ctx, RunStatus.SCORING, "hidden run finished", progress)


def runtime_of(ctx: RunContext) -> dict[str, Any]:
    """The submission's ``runtime`` JSON: per stage wall/CPU/GPU seconds and peak memory, image size."""
    return {
        "phases": {name: dict(values) for name, values in ctx.runtime.items()},
        "image_bytes": ctx.archive_bytes,
        "image_load_s": ctx.timings.get("image_load_s"),
    }


# -- the image -------------------------------------------------------------------------------------


def ensure_image(env: StageEnv, runner: Runner, ctx: RunContext) -> str:
    """The image to run: the uploaded archive loaded into the runner, or — for a registry submission,
    or an accepted archive pushed to the registry when the runner cannot load archives (Kubernetes) —
    what the runner makes of the registry reference (pulled and verified by Docker).

    An image already present (same image id) is not loaded again. The loaded id must be the id the
    upload was inspected as; anything else is the submitter's image being inconsistent.
    """
    stage = ctx.stage
    if ctx.image_ref is not None and (ctx.archive is None or not runner.accepts_archives):
        started = time.monotonic()
        try:
            image = runner.image_for_reference(ctx.image_ref, ctx.image_digest)
        except RunnerError as exc:
            raise fault(stage, exc.kind, exc.code, exc.message) from None
        ctx.timings.setdefault("image_load_s", round(time.monotonic() - started, 3))
        return image
    if ctx.archive is None:
        raise fault(stage, FaultKind.MODEL, ErrorCode.IMAGE_INVALID, "the submission has no image")
    digest = ctx.image_digest
    started = time.monotonic()
    try:
        if runner.has_image(digest):
            ctx.timings.setdefault("image_load_s", 0.0)
            return digest
        if not runner.accepts_archives:
            raise fault(
                stage,
                FaultKind.PERMANENT_INFRA,
                ErrorCode.INFRA_ERROR,
                f"the {runner.name} runner cannot run an uploaded archive without a registry reference",
            )
        loaded = runner.load_archive(ctx.archive)
    except ImageArchiveError as exc:
        raise fault(
            stage, FaultKind.MODEL, ErrorCode.IMAGE_INVALID, f"image archive refused: {exc}"
        ) from None
    except RunnerError as exc:
        raise fault(stage, exc.kind, exc.code, exc.message) from None
    except OSError as exc:
        raise fault(
            stage, FaultKind.TRANSIENT_INFRA, ErrorCode.INFRA_ERROR, f"cannot read the stored archive: {exc}"
        ) from None
    ctx.timings["image_load_s"] = round(time.monotonic() - started, 3)
    if loaded != digest:
        raise fault(
            stage,
            FaultKind.MODEL,
            ErrorCode.IMAGE_INVALID,
            f"the archive loaded as {loaded}, not the uploaded image {digest}",
        )
    return loaded


# -- running a container -----------------------------------------------------------------------------


def check_signals(ctx: RunContext) -> None:
    """Raise for a lost lease, a worker shutdown or a cancel request, in that order."""
    if ctx.lost.is_set():
        raise LeaseLost(f"run {ctx.sub_id}: lease lost; another worker owns the run")
    if ctx.shutdown.is_set():
        raise fault(ctx.stage, FaultKind.SHUTDOWN, ErrorCode.CANCELLED, "the worker is stopping")
    if ctx.cancel.is_set():
        raise fault(ctx.stage, FaultKind.CANCELLED, ErrorCode.CANCELLED, "cancelled on request")


def _record_handle(store: RunStore, ctx: RunContext, handle: str, *, started: bool) -> None:
    """Write down the handle: before start (what to stop if this worker dies), after (the real one)."""
    if not store.record_handle(ctx, handle, started=started):
        ctx.lost.set()


def execute(
    env: StageEnv,
    store: RunStore,
    runner: Runner,
    ctx: RunContext,
    stage: Stage,
    image: str,
    input_dir: Path,
    input_name: str | None = None,
) -> RunResult:
    """Run one container to its end; model outcomes come back as the result, the rest is raised."""
    spec = RunSpec(
        run_id=f"{env.instance}-{ctx.sub_id}-{stage.value}",
        image=image,
        input_dir=input_dir,
        input_name=input_name,
        output_dir=ctx.attempt_dir(env.settings.data_dir) / stage.value / "output",
        limits=run_limits(env.settings, stage.value),
        attempt=ctx.lease.attempt,
        phase=stage.value,
    )
    spec.output_dir.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    check_signals(ctx)
    started = time.monotonic()
    handle = runner.handle_for(spec)
    _record_handle(store, ctx, handle, started=False)
    try:
        handle = runner.start(spec)
        ctx.handle = handle
        ctx.timings[f"{stage.value}_started_after_s"] = round((utcnow() - ctx.created_at).total_seconds(), 3)
        _record_handle(store, ctx, handle, started=True)
        if ctx.cancel.is_set() or ctx.lost.is_set() or ctx.shutdown.is_set():
            quietly(runner.cancel, handle)
        result = runner.wait(handle, spec)
    except RunnerError as exc:
        if exc.kind is not FaultKind.MODEL:
            check_signals(ctx)
            raise fault(stage, exc.kind, exc.code, exc.message) from None
        result = RunResult(
            state=TerminalState.FAILED,
            error_code=exc.code,
            message=exc.message,
            exit_code=None,
            duration_s=time.monotonic() - started,
            peak_memory_bytes=None,
            log_tail="",
            predictions=None,
            handle=handle,
        )
    finally:
        ctx.handle = None
        quietly(runner.cleanup, handle)
    wall = round(time.monotonic() - started, 3)
    ctx.timings[f"{stage.value}_s"] = wall
    gpus = spec.limits.gpus
    ctx.runtime[stage.value] = {
        "wall_s": wall,
        "container_s": round(result.duration_s, 3),
        "cpu_s": None if result.cpu_seconds is None else round(result.cpu_seconds, 3),
        "gpu_s": round(result.duration_s * gpus, 3) if gpus else None,
        "peak_memory_bytes": result.peak_memory_bytes,
    }
    check_signals(ctx)
    if result.error_code is ErrorCode.INFRA_ERROR:
        raise fault(stage, FaultKind.TRANSIENT_INFRA, ErrorCode.INFRA_ERROR, result.message)
    if result.error_code is ErrorCode.CANCELLED:  # stopped by nobody we know of: the engine, an operator
        raise fault(stage, FaultKind.TRANSIENT_INFRA, ErrorCode.INFRA_ERROR, "the container was stopped")
    return result


def _model_failure(stage: Stage, result: RunResult, message: str) -> StageFault:
    code = result.error_code
    assert code is not None
    return fault(stage, fault_kind(code), code, message, exit_code=result.exit_code, log_tail=result.log_tail)


# -- the stages ---------------------------------------------------------------------------------------


def run_preflight(
    env: StageEnv, store: RunStore, runner: Runner, ctx: RunContext, evaluation: StageInputs, image: str
) -> None:
    """preflight → running: the image on a few sample images, in the same sandbox."""
    from server.scoring.predictions import PredictionsError, read_predictions

    result = execute(env, store, runner, ctx, Stage.PREFLIGHT, image, evaluation.preflight_input)
    what = f"{len(evaluation.preflight_filenames)} {evaluation.preflight_source} sample images"
    if result.error_code is not None:
        raise _model_failure(Stage.PREFLIGHT, result, f"preflight on {what} failed: {result.message}")
    try:
        read_predictions(result.predictions or b"", expected=evaluation.preflight_filenames)
    except PredictionsError as exc:
        message = f"preflight predictions.csv is invalid: {exc}"
        raise fault(
            Stage.PREFLIGHT, FaultKind.MODEL, ErrorCode.OUTPUT_INVALID, message, log_tail=result.log_tail
        ) from None
    store.preflight_passed(ctx, result.log_tail)


def run_hidden(
    env: StageEnv, store: RunStore, runner: Runner, ctx: RunContext, evaluation: StageInputs, image: str
) -> None:
    """running → scoring: the image on the hidden input of its competition phase's test set; its
    predictions stored for scoring.

    A private phase mounts every private image (and the public ones); a development phase
    (``test_set: public``) the public images only (`EvaluationSet.scored_on`). A benchmark without
    a public set ends a development run here, before its model sees any image of the hidden set.
    """
    test_set = store.test_set(ctx)
    try:
        hidden_input, hidden_name = evaluation.hidden_input_for(test_set)
    except NoPublicTestSet as exc:
        raise fault(Stage.HIDDEN, FaultKind.PERMANENT_INFRA, ErrorCode.INFRA_ERROR, str(exc)) from None
    began = time.monotonic()
    result = execute(env, store, runner, ctx, Stage.HIDDEN, image, hidden_input, hidden_name)
    hold_to_grid(env, ctx, began)
    if result.error_code is not None:
        raise _model_failure(Stage.HIDDEN, result, result.message)
    store.hidden_done(ctx, result.predictions or b"", test_set, result.log_tail)


def grid_wait(elapsed: float, grid: float) -> float:
    """Seconds to wait so that a stage that took `elapsed` ends on a multiple of `grid` after it began:
    ``ceil(elapsed / grid) * grid - elapsed`` (0 when `grid` is 0)."""
    if grid <= 0:
        return 0.0
    return math.ceil(elapsed / grid) * grid - elapsed


def hold_to_grid(env: StageEnv, ctx: RunContext, began: float) -> None:
    """Hold the hidden stage's end, success or failure, to the next multiple of
    ``CSAWM_HIDDEN_END_GRID`` after it began (issue 19 item 3).

    The moment a run's status leaves ``running`` is visible to a team that polls the API or waits for
    a webhook, and the model chooses it: without the grid it tells the team the hidden run's time to a
    fraction of a second (about 12 bits a run). On the grid (a minute by default) it tells no more than
    the minute the stored timestamps already round to. Not held with ``CSAWM_HIDDEN_RUNTIME=submitters``
    (the exact figures are shown anyway) or for baselines (maintainers' own models). The wait ends
    early for a cancel, a shutdown or a lost lease, which `check_signals` then raises.
    """
    settings = env.settings
    if ctx.baseline or settings.hidden_runtime == "submitters":
        return
    wait = grid_wait(time.monotonic() - began, settings.hidden_end_grid.total_seconds())
    deadline = time.monotonic() + wait
    while not (ctx.cancel.is_set() or ctx.shutdown.is_set() or ctx.lost.is_set()):
        left = deadline - time.monotonic()
        if left <= 0:
            break
        ctx.shutdown.wait(min(left, 0.25))
    check_signals(ctx)


def _test_set(env: WorkerEnv, session: Session, ctx: RunContext) -> str:
    """The test set of the run's competition phase: ``private`` or ``public``."""
    sub = session.get(Submission, ctx.sub_id)
    return "private" if sub is None else competition_phase(session, env.settings, sub.phase).test_set


def score(
    env: WorkerEnv, runner_name: str, ctx: RunContext, evaluation: EvaluationSet, scorer: Scorer
) -> None:
    """scoring → succeeded: the stored hidden predictions scored against the labels of the run's
    competition phase's test set (private, or public for a development phase): `server.runs.scoring`."""
    from server.scoring.predictions import PredictionsError

    def stored(session: Session) -> tuple[str | None, str, RunRecord]:
        sub = session.get(Submission, ctx.sub_id)
        if sub is None:
            return None, "private", RunRecord()
        record = RunRecord.read(sub.reproducibility)  # its test set written by run_hidden
        return (
            sub.predictions_sha256,
            record.test_set or competition_phase(session, env.settings, sub.phase).test_set,
            record,
        )

    sha, test_set, record = transact(env, stored, write=False)
    s = env.settings
    try:
        scored = scoring.score_stored(
            s.data_dir, evaluation, scorer, predictions_sha256=sha, test_set=test_set, record=record,
            resamples=s.bootstrap_resamples, seed=s.bootstrap_seed,
        )  # fmt: skip
    except NoPublicTestSet as exc:
        raise fault(Stage.SCORING, FaultKind.PERMANENT_INFRA, ErrorCode.INFRA_ERROR, str(exc)) from None
    except store.PredictionsMissing as exc:
        ctx.status = RunStatus.RUNNING  # resume by running the hidden stage again: nothing else to score
        raise fault(Stage.SCORING, FaultKind.TRANSIENT_INFRA, ErrorCode.INFRA_ERROR, str(exc)) from None
    except PredictionsError as exc:
        raise fault(
            Stage.SCORING, FaultKind.MODEL, ErrorCode.OUTPUT_INVALID, f"predictions.csv is invalid: {exc}"
        ) from None
    except scoring.ScorerFailed as exc:
        # Ours, but on predictions the reader accepted, after a hidden run: not retried (a re-run
        # could make crashes a channel), charged, the maintainers alerted, the team held (policy).
        log.exception("run %s: the scorer failed on the stored predictions", ctx.sub_id)
        raise fault(Stage.SCORING, FaultKind.SCORER, ErrorCode.INFRA_ERROR, str(exc)) from None
    ctx.timings["scoring_s"] = scored.wall_s
    ctx.runtime["scoring"] = {"wall_s": ctx.timings["scoring_s"]}
    repro = scored.record(
        RunRecord(
            image_digest=ctx.image_digest, predictions_sha256=sha, runner_backend=runner_name,
            host=socket.gethostname(), worker=env.name, attempt=ctx.lease.attempt, retries=ctx.retries,
            durations_s=dict(ctx.timings),
            peak_memory_bytes={
                k: v.get("peak_memory_bytes") for k, v in ctx.runtime.items() if k in ("preflight", "hidden")
            },
            preflight_source=scored.evaluation.preflight_source,
            n_hidden_images=len(scored.evaluation.hidden_filenames),
            n_private_images=scored.evaluation.hidden_private_images,
        )
    )  # fmt: skip

    def store_report(session: Session, sub: Submission) -> None:
        reports.record(session, sub, scored.report, reason=reports.SCORED, run_record=repro)

    # The record is written by `reports.record` (its one writer), in this same transaction.
    _move(env, ctx, RunStatus.SUCCEEDED, "scored", Progress(), also=store_report)


def quietly(fn: Callable[[str], None], handle: str | None) -> None:
    """Call ``fn(handle)`` (a runner's cancel/cleanup), logging instead of raising: best effort."""
    if not handle:
        return
    try:
        fn(handle)
    except Exception:
        log.warning("%s(%s) failed", getattr(fn, "__name__", fn), handle, exc_info=True)
