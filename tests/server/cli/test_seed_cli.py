"""`csawm seed-baselines` without Docker: argument and settings errors, and the reuse rule (a baseline
of the same image digest is not queued twice unless the earlier one was cancelled or lost to
infrastructure). The whole path with real training and runs: tests/e2e (issue 6)."""

from __future__ import annotations

import json
import shutil
import subprocess
import tarfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import func, select
from srvtest.archives import write_archive
from typer.testing import CliRunner

from reference_models.build import DEFAULT_BASE_IMAGE, BuildError, plan_reference_image
from reference_models.rules import ModelKind
from server.cli import seed
from server.cli.main import app
from server.cli.seed import (
    APPROVAL_REASON,
    approve_seeded,
    parse_resolution,
    queue_baseline,
)
from server.core import migrate
from server.core.db import Database
from server.core.settings import load_settings
from server.models import (
    AuditEntry,
    BaselineBuild,
    BaselineSeed,
    BuildState,
    ReviewState,
    RunStatus,
    Submission,
)
from server.runs import lifecycle
from server.submissions import service

DIGEST = "sha256:" + "ab" * 32


@pytest.fixture
def env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("CSAWM_DATA_DIR", str(tmp_path / "state"))
    monkeypatch.delenv("CSAWM_DATABASE_URL", raising=False)
    monkeypatch.delenv("CSAWM_BENCHMARK_DIR", raising=False)
    return tmp_path / "state"


@pytest.fixture
def db(tmp_path: Path) -> Iterator[Database]:
    (tmp_path / "state").mkdir()
    database = Database.connect(f"sqlite:///{tmp_path / 'state' / 'csawm.db'}")
    migrate.upgrade(database.engine)
    yield database
    database.dispose()


def _run(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(app, ["seed-baselines", *args])
    return result.exit_code, result.stderr


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ((), "no training data: set CSAWM_BENCHMARK_DIR or pass --train-data"),
        (("--no-wait", "--resolution", "96"), "expected HEIGHTxWIDTH"),
        (("--no-wait", "--resolution", "8x8"), "both at least 16"),
        (("--no-wait", "--lr", "0", "--train-data", "."), "--lr must be positive"),
        (("--train-data", "."), "--wait needs CSAWM_BENCHMARK_DIR"),
        (("--no-wait", "--weights", "/nonexistent/weights"), "is not a directory"),
        (("--steps", "0"), "Invalid value for '--steps'"),
        (("--no-wait", "--jobs", "3", "--train-data", "."), "Invalid value for '--jobs'"),
        (("--no-wait", "--threads", "0", "--train-data", "."), "Invalid value for '--threads'"),
    ],
)
def test_bad_arguments_exit_2_naming_the_problem(env: Path, args: tuple[str, ...], message: str) -> None:
    code, err = _run(*args)
    assert code == 2
    assert message in " ".join(err.split())


def test_resolution_is_height_by_width() -> None:
    assert parse_resolution("96x78") == (96, 78)
    assert parse_resolution("632X512") == (632, 512)


def _baseline(db: Database, tmp_path: Path, name: str) -> int:
    settings = load_settings(data_dir=tmp_path / "state")
    archive = tmp_path / f"{name}.tar"
    archive.write_bytes(b"not read here")
    with db.transaction() as session:
        return service.create_baseline(
            session, settings, name=name, image_digest=DIGEST, archive_path=archive, actor="test"
        ).id


def _finish(db: Database, sub_id: int, status: RunStatus, error_code: str | None) -> None:
    with db.transaction() as session:
        sub = session.get(Submission, sub_id)
        assert sub is not None
        sub.status, sub.error_code = status, error_code


def existing_baseline(db: Database, digest: str) -> int | None:
    """The id of a baseline of this image that still counts (what `seed.queue_baseline` reuses)."""
    with db.transaction(write=False) as session:
        return lifecycle.earlier_duplicate(session, digest, Submission.baseline.is_(True))


def test_a_baseline_of_the_same_digest_is_reused(db: Database, tmp_path: Path) -> None:
    assert existing_baseline(db, DIGEST) is None
    first = _baseline(db, tmp_path, "ResNet-34 one-hot")
    assert existing_baseline(db, DIGEST) == first
    _finish(db, first, RunStatus.FAILED, "nonzero_exit")  # a model failure still counts: not re-queued
    assert existing_baseline(db, DIGEST) == first
    assert existing_baseline(db, "sha256:" + "cd" * 32) is None


@pytest.mark.parametrize(
    ("status", "error_code"), [(RunStatus.CANCELLED, "cancelled"), (RunStatus.FAILED, "infra_error")]
)
def test_a_cancelled_or_infrastructure_failed_baseline_is_queued_again(
    db: Database, tmp_path: Path, status: RunStatus, error_code: str
) -> None:
    first = _baseline(db, tmp_path, "ResNet-34 one-hot")
    _finish(db, first, status, error_code)
    assert existing_baseline(db, DIGEST) is None


def test_a_seeded_baseline_is_approved_with_an_audit_entry_issue_10(db: Database, tmp_path: Path) -> None:
    """The board showed seeded baselines while /admin said "review: pending" (issue 10, 3b)."""
    sub_id = _baseline(db, tmp_path, "ResNet-34 one-hot")
    assert approve_seeded(db, sub_id, "cli:test") is True
    assert approve_seeded(db, sub_id, "cli:test") is False  # already approved: nothing more recorded
    with db.transaction(write=False) as session:
        sub = session.get(Submission, sub_id)
        assert sub is not None
        assert sub.review_state == ReviewState.APPROVED and sub.review_reason == APPROVAL_REASON
        assert sub.reviewed_at is not None
        entries = session.scalars(select(AuditEntry).where(AuditEntry.action == "review_approve")).all()
    assert [(e.actor, e.target_id, e.detail) for e in entries] == [
        ("cli:test", str(sub_id), {"from": "pending", "to": "approved"})
    ]


def test_a_hidden_baseline_stays_hidden_when_seeded_again(db: Database, tmp_path: Path) -> None:
    sub_id = _baseline(db, tmp_path, "ResNet-34 one-hot")
    with db.transaction() as session:
        sub = session.get(Submission, sub_id)
        assert sub is not None
        sub.review_state = ReviewState.HIDDEN
    assert approve_seeded(db, sub_id, "cli:test") is False
    with db.transaction(write=False) as session:
        sub = session.get(Submission, sub_id)
        assert sub is not None and sub.review_state == ReviewState.HIDDEN


def test_seed_no_wait_records_each_build_and_queues_both(
    env: Path, db: Database, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The command's whole path with the image builds replaced (no Docker): the training settings
    reach each build, the builds' progress lines land in ``baseline_builds``, both are queued."""
    weights = tmp_path / "weights"
    weights.mkdir()
    seen: dict[str, tuple[object, ...]] = {}

    def fake_build(kind, data, steps, size, lr, weights_dir, *, batch_size, seed, base_image, threads, log):  # type: ignore[no-untyped-def]
        seen[kind.value] = (data, steps, size, lr, weights_dir, batch_size, base_image, threads)
        log(f"step {steps}/{steps} loss 0.5")
        log(f"building csawm-reference/{kind.value}:t from {base_image}")
        return f"csawm-reference/{kind.value}:t"

    saved = {f"csawm-reference/{kind}:t": tmp_path / f"{kind}.tar" for kind in ("one-hot", "multi-hot")}
    digests = {tag: write_archive(path, seed=tag) for tag, path in saved.items()}

    def fake_save(tag: str, digest: str, kind: object, archives: Path) -> Path:
        archives.mkdir(parents=True, exist_ok=True)
        return Path(shutil.copy(saved[tag], archives / f"{tag.replace('/', '_')}.tar"))

    monkeypatch.setattr(seed.shutil, "which", lambda name: "/usr/bin/docker")
    monkeypatch.setattr(seed, "base_image_missing", lambda base_image: False)
    monkeypatch.setattr(seed, "build_reference_image", fake_build)
    monkeypatch.setattr(seed, "image_id", digests.get)
    monkeypatch.setattr(seed, "save_archive", fake_save)
    result = CliRunner().invoke(
        app,
        ["seed-baselines", "--no-wait", "--weights", str(weights), "--steps", "7", "--resolution", "48x40",
         "--batch-size", "3", "--base-image", "my/torch:1", "--jobs", "2", "--threads", "1"],
    )  # fmt: skip
    assert result.exit_code == 0, result.stderr
    assert seen == {
        kind: (Path("."), 7, (48, 40), None, weights, 3, "my/torch:1", 1) for kind in ("one-hot", "multi-hot")
    }
    queued = [line.split("\t") for line in result.stdout.splitlines()]
    assert [row[1:] for row in queued] == [["ResNet-34 one-hot", "queued"], ["ResNet-34 multi-hot", "queued"]]
    with db.transaction(write=False) as session:
        rows = {row.kind: row for row in session.scalars(select(BaselineBuild))}
    assert {kind: (row.state, row.step, row.steps) for kind, row in rows.items()} == {
        "one-hot": (BuildState.QUEUED, 7, 7),
        "multi-hot": (BuildState.QUEUED, 7, 7),
    }
    assert sorted(row.submission_id for row in rows.values()) == sorted(int(row[0]) for row in queued)


def _saved_as(monkeypatch: pytest.MonkeyPatch, archive: Path, digest: str) -> None:
    """`docker save` replaced by a copy of `archive`; the engine says the built image is `digest`."""

    def fake_save(tag: str, _digest: str, kind: ModelKind, archives: Path) -> Path:
        archives.mkdir(parents=True, exist_ok=True)
        return Path(shutil.copy(archive, archives / f"baseline-{kind.value}.tar"))

    monkeypatch.setattr(seed, "save_archive", fake_save)
    monkeypatch.setattr(seed, "image_id", lambda tag: digest)


def test_a_seeded_archive_goes_through_the_intake_and_is_stored_untagged(
    db: Database, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Like an upload (issue 12), the stored baseline archive names no image: loading it moves no tag."""
    archive = tmp_path / "saved.tar"
    digest = write_archive(archive, seed="one")
    _saved_as(monkeypatch, archive, digest)
    settings = load_settings(data_dir=tmp_path / "state")
    item = queue_baseline(db, settings, ModelKind.ONE_HOT, "csawm-reference/one-hot:t", "ref")
    with db.transaction(write=False) as session:
        sub = session.get(Submission, item.submission_id)
        assert sub is not None and sub.baseline and sub.image_digest == digest
        stored = Path(sub.archive_path or "")
    assert stored.parent == (tmp_path / "state" / "archives").resolve()
    with tarfile.open(stored) as tf:
        manifest = json.loads(tf.extractfile("manifest.json").read())  # type: ignore[union-attr]
    assert [entry.get("RepoTags") for entry in manifest] in ([None], [[]])


def test_a_saved_archive_of_another_image_is_refused_and_nothing_queued(
    db: Database, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The archive must hold the image that was built: a swapped one (another image under the tag's
    file name) fails the seeding and queues nothing."""
    archive = tmp_path / "saved.tar"
    write_archive(archive, seed="other")
    _saved_as(monkeypatch, archive, "sha256:" + "12" * 32)
    settings = load_settings(data_dir=tmp_path / "state")
    with pytest.raises(BuildError, match="holds image sha256:"):
        queue_baseline(db, settings, ModelKind.ONE_HOT, "csawm-reference/one-hot:t", "ref")
    with db.transaction(write=False) as session:
        assert session.scalar(select(func.count()).select_from(Submission)) == 0


def test_seed_runs_trains_each_seed_once_and_queues_each_run_with_its_seed(
    env: Path, db: Database, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``--runs 2``: seeds 1 and 2 of both models reach the training, each is its own image, approved
    run (its seed stored) and ``baseline_builds`` row; ``--runs 3`` later reuses the first two
    images' runs and queues only seed 3 (issue 21 item 7)."""
    trained: list[tuple[str, int]] = []
    tags = [f"csawm-reference/{kind}:s{s}" for kind in ("one-hot", "multi-hot") for s in (1, 2, 3)]
    saved = {tag: tmp_path / f"{tag.replace('/', '_')}.tar" for tag in tags}
    digests = {tag: write_archive(path, seed=tag) for tag, path in saved.items()}

    def fake_build(kind, data, steps, size, lr, weights_dir, *, batch_size, seed, base_image, threads, log):  # type: ignore[no-untyped-def]
        trained.append((kind.value, seed))
        log(f"step {steps}/{steps} loss 0.5")
        return f"csawm-reference/{kind.value}:s{seed}"

    def fake_save(tag: str, digest: str, kind: object, archives: Path) -> Path:
        archives.mkdir(parents=True, exist_ok=True)
        return Path(shutil.copy(saved[tag], archives / saved[tag].name))

    monkeypatch.setattr(seed.shutil, "which", lambda name: "/usr/bin/docker")
    monkeypatch.setattr(seed, "base_image_missing", lambda base_image: False)
    monkeypatch.setattr(seed, "build_reference_image", fake_build)
    monkeypatch.setattr(seed, "image_id", digests.get)
    monkeypatch.setattr(seed, "save_archive", fake_save)

    def seed_runs(runs: int) -> list[list[str]]:
        result = CliRunner().invoke(
            app,
            [
                "seed-baselines",
                "--no-wait",
                "--train-data",
                str(tmp_path),
                "--steps",
                "2",
                "--runs",
                str(runs),
            ],
        )
        assert result.exit_code == 0, result.stderr
        return [line.split("\t") for line in result.stdout.splitlines()]

    first = seed_runs(2)
    assert sorted(trained) == [("multi-hot", 1), ("multi-hot", 2), ("one-hot", 1), ("one-hot", 2)]
    one, multi = "ResNet-34 one-hot", "ResNet-34 multi-hot"
    assert [row[1] for row in first] == [one, multi, f"{one} (seed 2)", f"{multi} (seed 2)"]
    with db.transaction(write=False) as session:
        subs = session.scalars(select(Submission).order_by(Submission.id)).all()
        pairs = session.execute(select(BaselineSeed.submission_id, BaselineSeed.training_seed))
        seeds = {sub_id: seed for sub_id, seed in pairs}
        runs = [(s.name, seeds.get(s.id), s.review_state, s.image_digest) for s in subs]
        builds = {row.kind: (row.state, row.submission_id) for row in session.scalars(select(BaselineBuild))}
        descriptions = {s.description for s in subs}
    assert [(name, s, state) for name, s, state, _ in runs] == [
        ("ResNet-34 one-hot", 1, ReviewState.APPROVED),
        ("ResNet-34 multi-hot", 1, ReviewState.APPROVED),
        ("ResNet-34 one-hot", 2, ReviewState.APPROVED),
        ("ResNet-34 multi-hot", 2, ReviewState.APPROVED),
    ]
    assert len({digest for *_, digest in runs}) == 4 and len(descriptions) == 1  # one model: one schedule
    assert builds == {
        key: (BuildState.QUEUED, int(row[0]))
        for key, row in zip(("one-hot", "multi-hot", "one-hot#2", "multi-hot#2"), first, strict=True)
    }
    trained.clear()
    again = seed_runs(3)
    assert {("one-hot", 3), ("multi-hot", 3)} <= set(trained)
    assert [row[0] for row in again[:4]] == [row[0] for row in first]  # the same runs, not queued again
    with db.transaction(write=False) as session:
        query = select(Submission.name, BaselineSeed.training_seed).join(BaselineSeed).order_by(Submission.id)
        later = session.execute(query).all()
    assert [tuple(r) for r in later[4:]] == [("ResNet-34 one-hot", 3), ("ResNet-34 multi-hot", 3)]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("--runs", "0"), "Invalid value for '--runs'"),
        (("--runs", "2", "--weights", "."), "with --weights there is nothing to train"),
    ],
)
def test_bad_runs_exit_2_naming_the_problem(env: Path, args: tuple[str, ...], message: str) -> None:
    code, err = _run("--no-wait", "--train-data", ".", *args)
    assert code == 2
    assert message in " ".join(err.split())


@pytest.mark.docker
def test_runs_2_trains_two_seeds_of_each_model_in_the_engine(synthetic_benchmark: Path) -> None:
    """The real trainer (2 steps at 64x52): ``--runs 2`` builds four images, each trained with its own
    seed (the image's training config says which), seed 1's being the image a one-run seeding
    builds, so a re-run with more seeds reuses it."""
    plan = seed.BuildPlan(
        synthetic_benchmark, 2, (64, 52), None, None, 8, DEFAULT_BASE_IMAGE, jobs=2, threads=1, runs=2
    )
    planned = [
        plan_reference_image(b.kind, synthetic_benchmark, 2, (64, 52), batch_size=8, seed=b.seed)
        for b in seed.builds(2)
    ]
    fresh = [p.tag for p in planned if not p.exists()]
    try:
        tags = seed.build_all(plan)
        assert len(set(tags.values())) == 4
        for build, tag in tags.items():
            inspected = subprocess.run(["docker", "image", "inspect", tag], capture_output=True, text=True,
                                       check=True)  # fmt: skip
            labels = json.loads(inspected.stdout)[0]["Config"]["Labels"]
            assert labels["org.csawm.reference.kind"] == build.kind.value
            assert json.loads(labels["org.csawm.reference.config"])["seed"] == build.seed
        one_run = seed.BuildPlan(synthetic_benchmark, 2, (64, 52), None, None, 8, DEFAULT_BASE_IMAGE, 1, 1)
        assert seed.build_all(one_run) == {b: t for b, t in tags.items() if b.seed == 1}
    finally:
        for tag in fresh:
            subprocess.run(["docker", "rmi", tag], capture_output=True, check=False)
