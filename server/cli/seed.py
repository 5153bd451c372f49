"""``csawm seed-baselines``: train, build and queue the two reference models as leaderboard baselines.

Steps, each reused when already done:

1. the offline base images exist (``scripts/build-base-images``; skipped for another ``--base-image``);
2. each reference image (one-hot, multi-hot) is built by `reference_models.build` — trained inside the
   torch base image from the training split of ``--train-data`` (default ``CSAWM_BENCHMARK_DIR``), or
   from given ``--weights``; the image tag hashes every input, so an unchanged re-run trains nothing.
   ``--runs N`` trains each model N times, with training seeds 1..N (seed 1 is the one-run image, so
   a later ``--runs 5`` reuses it); each seed is its own image, run and board entry, its seed
   stored with the run (``baseline_seeds``), and the board shows a model's runs as one row
   with their mean ± SD (`server.leaderboard.baseline_runs`);
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
from server.cli import fail
from server.cli._server_common import cli_actor, open_database, reported_errors, settings_or_exit
from server.clock import utcnow
from server.core import audit, migrate
from server.core.db import Database
from server.core.errors import InvalidArchive
from server.core.settings import Settings
from server.models import (
    TERMINAL_STATUSES,
    BaselineBuild,
    BaselineSeed,
    BuildState,
    ReviewState,
    RunStatus,
    Submission,
)
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
MAX_RUNS = 20  # seeds per model: the paper reports five; more is a typo, not a study


@dataclass(frozen=True)
class Build:
    """One training of one reference model: its kind and training seed (``--runs N``: seeds 1..N)."""

    kind: ModelKind
    seed: int = 1

    @property
    def key(self) -> str:
        """Its ``baseline_builds`` row: the kind for seed 1 (as before ``--runs``), ``kind#seed`` else."""
        return self.kind.value if self.seed == 1 else f"{self.kind.value}#{self.seed}"

    @property
    def label(self) -> str:
        """How progress lines and the "on its way" list name it."""
        name = BASELINE_NAMES[self.kind]
        return name if self.seed == 1 else f"{name} (seed {self.seed})"


def as_build(item: ModelKind | Build) -> Build:
    """A model kind alone is its first run (seed 1)."""
    return item if isinstance(item, Build) else Build(item)


def builds(runs: int) -> list[Build]:
    """Every model's seeds 1..`runs`, seed by seed (a model's first run first)."""
    return [Build(kind, seed) for seed in range(1, runs + 1) for kind in KINDS]


@dataclass(frozen=True)
class SeededBaseline:
    """One reference model run on its way to the leaderboard: its image, digest and submission."""

    build: Build
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

    def set(self, item: ModelKind | Build, **fields: Any) -> None:
        build = as_build(item)
        try:
            with self.db.transaction() as session:
                row = session.get(BaselineBuild, build.key)
                if row is None:
                    row = BaselineBuild(kind=build.key, name=build.label, step=0, steps=0)
                    session.add(row)
                for name, value in fields.items():
                    setattr(row, name, value)
        except SQLAlchemyError as exc:
            self.failures += 1
            if self.failures == 1:
                typer.echo(f"warning: build progress not recorded ({type(exc).__name__})", err=True)

    def start(self, build: ModelKind | Build, steps: int, *, training: bool) -> None:
        state = BuildState.TRAINING if training else BuildState.BUILDING
        self.set(
            build, state=state, step=0, steps=steps, message=None, submission_id=None, started_at=utcnow()
        )

    def line(self, build: ModelKind | Build, line: str) -> None:
        """Follow the build's output: ``step n/N`` lines while training, ``building`` when it builds."""
        match = STEP_LINE.match(line)
        if match:
            self.set(build, state=BuildState.TRAINING, step=int(match[1]), steps=int(match[2]))
        elif line.startswith(("building ", "reusing ")):
            self.set(build, state=BuildState.BUILDING)

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
    """How the reference images are built: the training settings of ``csawm seed-baselines``."""

    data: Path
    steps: int
    size: tuple[int, int]
    lr: float | None
    weights: Path | None
    batch_size: int
    base_image: str
    jobs: int
    threads: int | None
    runs: int = 1


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


def record_seed(db: Database, submission_id: int, seed: int | None) -> None:
    """Store the training seed on the baseline's run, where it is not stored yet (a run seeded before
    ``--runs`` was trained with seed 1, the default)."""
    if seed is None:
        return
    with db.transaction() as session:
        if session.get(BaselineSeed, submission_id) is None:
            session.add(BaselineSeed(submission_id=submission_id, training_seed=seed))


def queue_baseline(
    db: Database,
    settings: Settings,
    kind: ModelKind | Build,
    tag: str,
    description: str,
    *,
    trained: bool = True,
) -> SeededBaseline:
    """Queue the image `tag` as an approved baseline unless one with the same digest already counts
    (which is then approved if it is still pending, e.g. seeded before baselines were approved).
    Every run of one model has the same name and description: the board groups them by these.
    `trained`: the image was trained here, so its seed is recorded (not for given ``--weights``)."""
    build = as_build(kind)
    seed = build.seed if trained else None
    digest = image_id(tag)
    if digest is None:
        raise BuildError(f"image {tag} disappeared from the Docker engine")
    with db.transaction(write=False) as session:  # a baseline of this image that still counts
        earlier = lifecycle.earlier_duplicate(session, digest, Submission.baseline.is_(True))
    if earlier is not None:
        approve_seeded(db, earlier, cli_actor())
        record_seed(db, earlier, seed)
        return SeededBaseline(build, tag, digest, earlier, reused=True)
    archive = save_archive(tag, digest, build.kind, settings.data_dir / "archives")
    try:
        image = intake.stored_baseline(settings, archive, digest)
    except InvalidArchive as exc:
        raise BuildError(f"{tag}: {exc.message}") from None
    entry = intake.Entry(name=BASELINE_NAMES[build.kind], description=description)
    with db.transaction() as session:
        sub_id = intake.create_baseline(session, settings, entry, image, actor=cli_actor()).id
    record_seed(db, sub_id, seed)
    approve_seeded(db, sub_id, cli_actor())
    return SeededBaseline(build, tag, digest, sub_id, reused=False)


def build_all(plan: BuildPlan, on_line: Callable[[Build, str], None] | None = None) -> dict[Build, str]:
    """Build (train) every reference image of the plan (`builds`), `jobs` at a time; their output
    lines carry the build's key.

    A failure of any is raised once all have ended (a training is never left running).
    """

    def build(item: Build) -> str:
        def log(line: str) -> None:
            print(f"[{item.key}] {line}", file=sys.stderr, flush=True)
            if on_line is not None:
                on_line(item, line)

        return build_reference_image(
            item.kind,
            plan.data,
            plan.steps,
            plan.size,
            plan.lr,
            plan.weights,
            batch_size=plan.batch_size,
            seed=item.seed,
            base_image=plan.base_image,
            threads=plan.threads,
            log=log,
        )

    with ThreadPoolExecutor(max_workers=plan.jobs, thread_name_prefix="seed-build") as pool:
        futures = {item: pool.submit(build, item) for item in builds(plan.runs)}
        return {item: future.result() for item, future in futures.items()}


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
    runs: Annotated[
        int,
        typer.Option(
            "--runs",
            min=1,
            max=MAX_RUNS,
            help="Runs (training seeds 1..N) of each model; the board shows their mean ± SD.",
        ),
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
    if runs > 1 and weights is not None:
        raise fail("--runs trains each model with seeds 1..N; with --weights there is nothing to train")
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
    with open_database(settings) as db, reported_errors():
        if not migrate.is_up_to_date(db.engine):  # fail before training, not after, on a stale schema
            raise fail("the database schema is not at the latest migration; run `csawm db upgrade`")
        recorder = BuildRecorder(db)
        plan = BuildPlan(
            Path(data or "."), steps, size, lr, weights, batch_size, base_image, jobs, threads, runs
        )
        seeded = _build_and_queue(db, settings, recorder, description, plan)
        for item in seeded:
            state = "already seeded as" if item.reused else "queued as"
            typer.echo(
                f"{item.build.key}: {item.tag} ({item.digest[:19]}) {state} submission {item.submission_id}",
                err=True,
            )
        if not wait:
            for item in seeded:
                typer.echo(f"{item.submission_id}\t{item.build.label}\tqueued")
            return
        subs = wait_in_process(db, settings, [item.submission_id for item in seeded])
    failed = False
    for item in seeded:
        sub = subs[item.submission_id]
        report = Report.read(sub.metrics)
        tau = report.kendall_tau_b.value if report else None
        detail = f"tau-b {tau:.4f}" if tau is not None else (sub.error_message or "no tau-b")
        typer.echo(f"{sub.id}\t{item.build.label}\t{sub.status.value}\t{detail}")
        failed |= sub.status != RunStatus.SUCCEEDED
    if failed:
        raise typer.Exit(EXIT_FAILED)


def _build_and_queue(
    db: Database, settings: Settings, recorder: BuildRecorder, description: str, plan: BuildPlan
) -> list[SeededBaseline]:
    """Train and build every image, then queue them, recording each build's state as it goes."""
    for build in builds(plan.runs):
        recorder.start(build, plan.steps, training=plan.weights is None)
    try:
        if base_image_missing(plan.base_image):
            for kind in KINDS:
                recorder.set(kind, state=BuildState.PREPARING)
            build_base_image()
        tags = build_all(plan, on_line=recorder.line)
        seeded: list[SeededBaseline] = []
        for build in builds(plan.runs):
            item = queue_baseline(db, settings, build, tags[build], description, trained=plan.weights is None)
            recorder.set(build, state=BuildState.QUEUED, submission_id=item.submission_id)
            seeded.append(item)
        return seeded
    except BuildError as exc:
        recorder.unfinished(str(exc))
        raise fail(str(exc), EXIT_FAILED) from None
    except BaseException:
        recorder.unfinished(INTERRUPTED)
        raise
