"""``csawm seed-baselines``: train, build and queue the two reference models as leaderboard baselines.

Steps, each reused when already done:

1. the offline base images exist (``scripts/build-base-images``; skipped for another ``--base-image``);
2. each reference image (one-hot, multi-hot) is built by `reference_models.build` — trained inside the
   torch base image from the training split of ``--train-data`` (default ``CSAWM_BENCHMARK_DIR``), or
   from given ``--weights``; the image tag hashes every input, so an unchanged re-run trains nothing.
   ``--jobs 2`` trains both at once (with ``--threads 1`` each on a 2-core machine: one training
   step of a ResNet-34 on a small batch scales poorly past one thread, so two single-thread
   trainings side by side finish sooner than two two-thread ones in a row);
3. each image is ``docker save``\\ d to ``DATA_DIR/archives/baseline-<kind>-<id>.tar`` and queued as a
   baseline of the system team through the intake pipeline (`server.submissions.intake`: inspected
   and untagged like an upload; no quota) and the normal run queue, unless a baseline with the same
   image digest already counts (re-runs reuse it).
   A seeded baseline is approved at once (`approve_seeded`, with an audit entry): it is the
   operators' own reference model and is on the leaderboard when scored, so its review state says
   so; a baseline a maintainer hid or disqualified keeps that decision;
   While this runs, each model's state (training with its step, building, queued with its run, or
   failed with the reason) is written to ``baseline_builds`` (`BuildRecorder`): the leaderboard
   lists the baselines on their way (`server.leaderboard.pending`) before they are scored;
4. with ``--wait`` (the default) an in-process worker (the same `server.worker.loop.Worker` as
   ``csawm worker``) runs the queue until both baselines are finished; with ``--no-wait`` a running
   ``csawm serve`` or ``csawm worker`` picks them up.

Exit codes: 0 ok, 1 a training, build or baseline run failed, 2 bad arguments or settings.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

import typer
from sqlalchemy import select
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import undefer

from reference_models.build import (
    DEFAULT_BASE_IMAGE,
    QUICK_BATCH,
    QUICK_RESOLUTION,
    QUICK_STEPS,
    BuildError,
    build_reference_image,
    image_id,
)
from reference_models.rules import ModelKind
from server.cli._server_common import cli_actor, fail, open_database, reported_errors, settings_or_exit
from server.clock import utcnow
from server.core import audit, migrate
from server.core.db import Database
from server.core.errors import InvalidArchive
from server.core.settings import Settings
from server.models import TERMINAL_STATUSES, BaselineBuild, BuildState, ReviewState, RunStatus, Submission
from server.runs import lifecycle
from server.scoring.results import Report
from server.submissions import intake

EXIT_FAILED = 1
REPO_ROOT = Path(__file__).resolve().parents[2]
BUILD_BASE_IMAGES = REPO_ROOT / "scripts" / "build-base-images"
KINDS = (ModelKind.ONE_HOT, ModelKind.MULTI_HOT)
BASELINE_NAMES = {ModelKind.ONE_HOT: "ResNet-34 one-hot", ModelKind.MULTI_HOT: "ResNet-34 multi-hot"}
APPROVAL_REASON = "reference baseline seeded by csawm seed-baselines"
STEP_LINE = re.compile(r"^step (\d+)/(\d+)\b")  # reference_models.train's progress line
INTERRUPTED = "seed-baselines stopped before this model was queued"


@dataclass(frozen=True)
class SeededBaseline:
    """One reference model on its way to the leaderboard: its image, digest and submission."""

    kind: ModelKind
    tag: str
    digest: str
    submission_id: int
    reused: bool


class BuildRecorder:
    """Each model's build state in ``baseline_builds``, for the leaderboard's "on its way" list.

    Best effort: a database that is busy or away costs a progress update, never a training.
    """

    def __init__(self, db: Database) -> None:
        self.db = db
        self.failures = 0

    def set(self, kind: ModelKind, **fields: Any) -> None:
        try:
            with self.db.transaction() as session:
                row = session.get(BaselineBuild, kind.value)
                if row is None:
                    row = BaselineBuild(kind=kind.value, name=BASELINE_NAMES[kind], step=0, steps=0)
                    session.add(row)
                for name, value in fields.items():
                    setattr(row, name, value)
        except SQLAlchemyError as exc:
            self.failures += 1
            if self.failures == 1:
                typer.echo(f"warning: build progress not recorded ({type(exc).__name__})", err=True)

    def start(self, kind: ModelKind, steps: int, *, training: bool) -> None:
        state = BuildState.TRAINING if training else BuildState.BUILDING
        self.set(
            kind, state=state, step=0, steps=steps, message=None, submission_id=None, started_at=utcnow()
        )

    def line(self, kind: ModelKind, line: str) -> None:
        """Follow the build's output: ``step n/N`` lines while training, ``building`` when it builds."""
        match = STEP_LINE.match(line)
        if match:
            self.set(kind, state=BuildState.TRAINING, step=int(match[1]), steps=int(match[2]))
        elif line.startswith(("building ", "reusing ")):
            self.set(kind, state=BuildState.BUILDING)

    def unfinished(self, message: str) -> None:
        """Mark every model not yet queued as failed with `message` (a failed or interrupted run)."""
        try:
            with self.db.transaction() as session:
                for row in session.scalars(select(BaselineBuild)):
                    if row.state in (BuildState.PREPARING, BuildState.TRAINING, BuildState.BUILDING):
                        row.state, row.message = BuildState.FAILED, message
        except SQLAlchemyError:
            pass


@dataclass(frozen=True)
class BuildPlan:
    """How both reference images are built: the training settings of ``csawm seed-baselines``."""

    data: Path
    steps: int
    size: tuple[int, int]
    lr: float | None
    weights: Path | None
    batch_size: int
    base_image: str
    jobs: int
    threads: int | None


def parse_resolution(text: str) -> tuple[int, int]:
    """``"96x78"`` -> ``(96, 78)`` (height, width)."""
    parts = text.lower().split("x")
    if len(parts) != 2 or not all(p.isdigit() for p in parts) or min(int(p) for p in parts) < 16:
        raise typer.BadParameter(f"expected HEIGHTxWIDTH with both at least 16, e.g. 96x78; got {text!r}")
    return int(parts[0]), int(parts[1])


def base_image_missing(base_image: str) -> bool:
    """Whether `base_image` must be built before training (only the default one can be)."""
    if image_id(base_image) is not None:
        return False
    if base_image != DEFAULT_BASE_IMAGE:
        raise BuildError(f"base image {base_image} is not in the local Docker engine")
    return True


def build_base_image() -> None:
    """Build the torch base image the models train in, and only it: the python and numpy images are
    for the tests and the offline starter kit, built when first needed (`make base-images`).
    ``scripts/build-base-images`` waits for a build of the same image already under way (``make
    demo`` starts one in the background while it installs the server) and then reuses it."""
    if not BUILD_BASE_IMAGES.is_file():
        raise BuildError(f"base image missing and {BUILD_BASE_IMAGES} not found (run from a source checkout)")
    typer.echo(
        f"building the torch base image {DEFAULT_BASE_IMAGE} (scripts/build-base-images torch; a few "
        "minutes, once; the python and numpy images are built when first needed)",
        err=True,
    )
    result = subprocess.run([str(BUILD_BASE_IMAGES), "torch"], check=False)
    if result.returncode != 0:
        raise BuildError(f"scripts/build-base-images failed with exit code {result.returncode}")


def existing_baseline(db: Database, digest: str) -> int | None:
    """The id of a baseline of this image that still counts (not cancelled, not lost to infra)."""
    with db.transaction(write=False) as session:
        return lifecycle.earlier_duplicate(session, digest, Submission.baseline.is_(True))


def save_archive(tag: str, digest: str, kind: ModelKind, archives: Path) -> Path:
    """``docker save`` `tag` to ``archives/baseline-<kind>-<digest12>.tar`` (kept when present)."""
    path = archives / f"baseline-{kind.value}-{digest.removeprefix('sha256:')[:12]}.tar"
    if path.is_file():
        return path
    archives.mkdir(parents=True, exist_ok=True)
    partial = path.with_suffix(".tar.part")
    with partial.open("wb") as out:
        result = subprocess.run(["docker", "save", tag], stdout=out, stderr=subprocess.PIPE, check=False)
    if result.returncode != 0:
        partial.unlink(missing_ok=True)
        raise BuildError(
            f"docker save {tag} failed: {result.stderr.decode(errors='replace').strip()[-1000:]}"
        )
    partial.rename(path)
    return path


def approve_seeded(db: Database, submission_id: int, actor: str) -> bool:
    """Approve a seeded baseline still ``pending``; True when it changed.

    The review console's approve action (`server.review.service.review`) is for scored runs; a
    baseline is approved when it is queued because the operators chose it, so the same state change
    and audit entry (``review_approve``, pending -> approved) are recorded here. A baseline that a
    maintainer hid or disqualified is left alone.
    """
    with db.transaction() as session:
        sub = session.get(Submission, submission_id)
        if sub is None or not sub.baseline or sub.review_state != ReviewState.PENDING:
            return False
        lifecycle.set_review(session, sub, ReviewState.APPROVED, reason=APPROVAL_REASON, seeded=True)
        audit.record(
            session,
            actor=actor,
            action="review_approve",
            target_type="submission",
            target_id=sub.id,
            reason=APPROVAL_REASON,
            detail={"from": ReviewState.PENDING.value, "to": ReviewState.APPROVED.value},
        )
    return True


def queue_baseline(
    db: Database, settings: Settings, kind: ModelKind, tag: str, description: str
) -> SeededBaseline:
    """Queue the image `tag` as an approved baseline unless one with the same digest already counts
    (which is then approved if it is still pending, e.g. seeded before baselines were approved)."""
    digest = image_id(tag)
    if digest is None:
        raise BuildError(f"image {tag} disappeared from the Docker engine")
    earlier = existing_baseline(db, digest)
    if earlier is not None:
        approve_seeded(db, earlier, cli_actor())
        return SeededBaseline(kind, tag, digest, earlier, reused=True)
    archive = save_archive(tag, digest, kind, settings.data_dir / "archives")
    try:
        image = intake.stored_baseline(settings, archive, digest)
    except InvalidArchive as exc:
        raise BuildError(f"{tag}: {exc.message}") from None
    entry = intake.Entry(name=BASELINE_NAMES[kind], description=description)
    with db.transaction() as session:
        sub_id = intake.create_baseline(session, settings, entry, image, actor=cli_actor()).id
    approve_seeded(db, sub_id, cli_actor())
    return SeededBaseline(kind, tag, digest, sub_id, reused=False)


def build_all(
    plan: BuildPlan, on_line: Callable[[ModelKind, str], None] | None = None
) -> dict[ModelKind, str]:
    """Build (train) both reference images, `jobs` at a time; their output lines carry the kind.

    A failure of either is raised once both have ended (a training is never left running).
    """

    def build(kind: ModelKind) -> str:
        def log(line: str) -> None:
            print(f"[{kind.value}] {line}", file=sys.stderr, flush=True)
            if on_line is not None:
                on_line(kind, line)

        return build_reference_image(
            kind,
            plan.data,
            plan.steps,
            plan.size,
            plan.lr,
            plan.weights,
            batch_size=plan.batch_size,
            base_image=plan.base_image,
            threads=plan.threads,
            log=log,
        )

    with ThreadPoolExecutor(max_workers=plan.jobs, thread_name_prefix="seed-build") as pool:
        futures = {kind: pool.submit(build, kind) for kind in KINDS}
        return {kind: future.result() for kind, future in futures.items()}


def wait_in_process(db: Database, settings: Settings, ids: list[int]) -> dict[int, Submission]:
    """Run queued work with an in-process worker until every submission in `ids` is finished.

    Another worker on the same database (``csawm serve``) may take some of the runs: leases keep a
    run from being executed twice, and this loop then just polls.
    """
    from server.worker.loop import Worker, build_runner

    worker = Worker(settings, db, build_runner(settings), name=None)
    worker.evaluation  # noqa: B018 (prepare the test set now: fail fast on a broken benchmark)
    poll = settings.poll_interval.total_seconds()
    while True:
        with db.transaction(write=False) as session:
            query = select(Submission).where(Submission.id.in_(ids)).options(undefer(Submission.metrics))
            subs = {s.id: s for s in session.scalars(query)}
            for sub in subs.values():
                session.expunge(sub)
        if all(sub.status in TERMINAL_STATUSES for sub in subs.values()):
            return subs
        if not worker.run_once():
            time.sleep(poll)


def _describe(
    steps: int, batch_size: int, resolution: tuple[int, int], lr: float | None, weights: Path | None
) -> str:
    if weights is not None:
        return f"CSAW-M reference ResNet-34 with the weights given from {weights}."
    schedule = f"lr {lr} (cosine)" if lr is not None else "lr 1e-3 cosine from random init"
    return (
        f"CSAW-M reference ResNet-34 trained by `csawm seed-baselines`: {steps} steps of batch "
        f"{batch_size} at {resolution[0]}x{resolution[1]}, {schedule}, on the benchmark's training split."
    )


def seed_baselines(
    steps: Annotated[int, typer.Option("--steps", min=1, help="Training steps per model.")] = QUICK_STEPS,
    resolution: Annotated[
        str, typer.Option("--resolution", help="Training and inference input HxW.")
    ] = f"{QUICK_RESOLUTION[0]}x{QUICK_RESOLUTION[1]}",
    batch_size: Annotated[
        int, typer.Option("--batch-size", min=1, help="Training batch size.")
    ] = QUICK_BATCH,
    lr: Annotated[
        float | None, typer.Option("--lr", help="Learning rate (default: train.py's schedule).")
    ] = None,
    weights: Annotated[
        Path | None,
        typer.Option("--weights", help="Trained weights (DIR/<kind>/model.pt+config.json): no training."),
    ] = None,
    train_data: Annotated[
        Path | None,
        typer.Option(
            "--train-data", help="Dataset root whose training split is used (default CSAWM_BENCHMARK_DIR)."
        ),
    ] = None,
    base_image: Annotated[
        str, typer.Option("--base-image", help="Image with python3 + torch to train in and build on.")
    ] = DEFAULT_BASE_IMAGE,
    wait: Annotated[
        bool, typer.Option("--wait/--no-wait", help="Run the baselines in-process until scored.")
    ] = True,
    jobs: Annotated[
        int, typer.Option("--jobs", min=1, max=len(KINDS), help="Models trained at the same time.")
    ] = 1,
    threads: Annotated[
        int | None,
        typer.Option("--threads", min=1, help="CPU threads per training container (default: all)."),
    ] = None,
) -> None:
    """Train (or take --weights), build and queue both reference models as leaderboard baselines."""
    size = parse_resolution(resolution)
    if lr is not None and not lr > 0:
        raise fail(f"--lr must be positive, got {lr}")
    settings = settings_or_exit()
    data = train_data or settings.benchmark_dir
    if data is None and weights is None:
        raise fail("no training data: set CSAWM_BENCHMARK_DIR or pass --train-data DIR (or --weights DIR)")
    if wait and settings.benchmark_dir is None:
        raise fail(
            "--wait needs CSAWM_BENCHMARK_DIR (the test set to run the baselines on); or use --no-wait"
        )
    if weights is not None and not weights.is_dir():
        raise fail(f"--weights {weights} is not a directory")
    if shutil.which("docker") is None:
        raise fail("the docker CLI is not installed (run scripts/ensure-docker)")
    description = _describe(steps, batch_size, size, lr, weights)
    with open_database(settings) as db:  # fail before training, not after, on a stale schema
        if not migrate.is_up_to_date(db.engine):
            raise fail("the database schema is not at the latest migration; run `csawm db upgrade`")
    with open_database(settings) as db, reported_errors():
        recorder = BuildRecorder(db)
        plan = BuildPlan(Path(data or "."), steps, size, lr, weights, batch_size, base_image, jobs, threads)
        seeded = _build_and_queue(db, settings, recorder, description, plan)
        for item in seeded:
            state = "already seeded as" if item.reused else "queued as"
            typer.echo(
                f"{item.kind.value}: {item.tag} ({item.digest[:19]}) {state} submission {item.submission_id}",
                err=True,
            )
        if not wait:
            for item in seeded:
                typer.echo(f"{item.submission_id}\t{BASELINE_NAMES[item.kind]}\tqueued")
            return
        subs = wait_in_process(db, settings, [item.submission_id for item in seeded])
    failed = False
    for item in seeded:
        sub = subs[item.submission_id]
        tau = _tau(sub)
        detail = f"tau-b {tau:.4f}" if tau is not None else (sub.error_message or "no tau-b")
        typer.echo(f"{sub.id}\t{sub.name}\t{sub.status.value}\t{detail}")
        failed |= sub.status != RunStatus.SUCCEEDED
    if failed:
        raise typer.Exit(EXIT_FAILED)


def _build_and_queue(
    db: Database, settings: Settings, recorder: BuildRecorder, description: str, plan: BuildPlan
) -> list[SeededBaseline]:
    """Train and build both images, then queue them, recording each model's state as it goes."""
    for kind in KINDS:
        recorder.start(kind, plan.steps, training=plan.weights is None)
    finished = False
    try:
        try:
            if base_image_missing(plan.base_image):
                for kind in KINDS:
                    recorder.set(kind, state=BuildState.PREPARING)
                build_base_image()
            tags = build_all(plan, on_line=recorder.line)
        except BuildError as exc:
            recorder.unfinished(str(exc))
            raise fail(str(exc), EXIT_FAILED) from None
        seeded: list[SeededBaseline] = []
        for kind in KINDS:
            try:
                item = queue_baseline(db, settings, kind, tags[kind], description)
            except BuildError as exc:
                recorder.unfinished(str(exc))
                raise fail(str(exc), EXIT_FAILED) from None
            recorder.set(kind, state=BuildState.QUEUED, submission_id=item.submission_id)
            seeded.append(item)
        finished = True
        return seeded
    finally:
        if not finished:
            recorder.unfinished(INTERRUPTED)


def _tau(sub: Submission) -> float | None:
    report = Report.read(sub.metrics)
    value = report.kendall_tau_b.value if report else None
    return float(value) if value is not None else None
