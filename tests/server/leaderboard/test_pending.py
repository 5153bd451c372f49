"""The baselines on their way to the board (issue 10): training with progress, building, queued or
running, failed with a public reason, gone once scored; recorded by `csawm seed-baselines`."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import typer
from srvtest.app import Api

from reference_models.build import BuildError
from reference_models.rules import ModelKind
from server.cli import seed
from server.leaderboard.pending import BUILD_FAILED, PREPARING
from server.models import BaselineBuild, BuildState, RunStatus, Submission, Team


def _pending(api: Api) -> list[dict[str, Any]]:
    response = api.client.get("/api/v1/leaderboard")
    assert response.status_code == 200
    body = response.json()
    assert set(body) == {"phase", "rows", "pending", "alpha", "stability", "reference", "groups"}
    return list(body["pending"])


def _baseline_run(api: Api, name: str, status: RunStatus, **fields: Any) -> int:
    with api.db.transaction() as session:
        team = Team(name=f"system-{name}")
        session.add(team)
        session.flush()
        sub = Submission(
            team_id=team.id,
            name=name,
            phase="p",
            image_digest=f"sha256:{name}",
            status=status,
            baseline=True,
            **fields,
        )
        session.add(sub)
        session.flush()
        return sub.id


def test_training_progress_then_queued_then_running_then_gone(api: Api) -> None:
    recorder = seed.BuildRecorder(api.db)
    assert _pending(api) == []
    recorder.start(ModelKind.ONE_HOT, 200, training=True)
    recorder.start(ModelKind.MULTI_HOT, 200, training=True)
    recorder.line(ModelKind.ONE_HOT, "step 75/200 loss 1.2345 lr 0.0009")
    recorder.line(ModelKind.MULTI_HOT, "training multi-hot in csawm-base/torch:bookworm (container x)")
    items = {item["name"]: item for item in _pending(api)}
    assert items["ResNet-34 one-hot"]["state"] == "training"
    assert items["ResNet-34 one-hot"]["progress"] == {"step": 75, "steps": 200}
    assert items["ResNet-34 multi-hot"]["progress"] == {"step": 0, "steps": 200}
    assert all(item["kind"] == "baseline" and item["submission_id"] is None for item in items.values())

    recorder.line(ModelKind.ONE_HOT, "building csawm-ref/one-hot:abc from csawm-base/torch:bookworm")
    assert {i["name"]: i["state"] for i in _pending(api)}["ResNet-34 one-hot"] == "building"

    run = _baseline_run(api, "ResNet-34 one-hot", RunStatus.QUEUED)
    recorder.set(ModelKind.ONE_HOT, state=BuildState.QUEUED, submission_id=run)
    entry = next(i for i in _pending(api) if i["name"] == "ResNet-34 one-hot")
    assert (entry["state"], entry["submission_id"], entry["progress"]) == ("queued", run, None)

    with api.db.transaction() as session:
        session.get_one(Submission, run).status = RunStatus.RUNNING
    assert next(i for i in _pending(api) if i["name"] == "ResNet-34 one-hot")["state"] == "running"

    with api.db.transaction() as session:
        session.get_one(Submission, run).status = RunStatus.SUCCEEDED
    assert [i["name"] for i in _pending(api)] == ["ResNet-34 multi-hot"]


def test_failures_show_a_public_reason_only(api: Api) -> None:
    recorder = seed.BuildRecorder(api.db)
    recorder.start(ModelKind.ONE_HOT, 10, training=True)
    recorder.start(ModelKind.MULTI_HOT, 10, training=True)
    run = _baseline_run(
        api,
        "ResNet-34 multi-hot",
        RunStatus.FAILED,
        error_code="infra_error",
        error_message="the run could not be completed (our side)",
        error_detail="worker host-17: /srv/secret/path exploded",
    )
    recorder.set(ModelKind.MULTI_HOT, state=BuildState.QUEUED, submission_id=run)
    recorder.unfinished("docker build failed: /home/operator/private/Dockerfile: no space left")
    items = {item["name"]: item for item in _pending(api)}
    assert items["ResNet-34 one-hot"]["state"] == "failed"
    assert items["ResNet-34 one-hot"]["message"] == BUILD_FAILED
    assert items["ResNet-34 multi-hot"]["state"] == "failed"
    assert items["ResNet-34 multi-hot"]["message"] == "the run could not be completed (our side)"
    body = api.client.get("/api/v1/leaderboard").text + api.client.get("/").text
    assert "/home/operator" not in body and "host-17" not in body and "/srv/secret" not in body
    with api.db.transaction(write=False) as session:  # the operator's reason is kept
        row = session.get_one(BaselineBuild, ModelKind.ONE_HOT.value)
        assert row.message is not None and "no space left" in row.message


def test_active_baseline_runs_without_a_build_row_are_listed(api: Api) -> None:
    run = _baseline_run(api, "an older baseline", RunStatus.SCORING)
    assert _pending(api) == [
        {
            "kind": "baseline",
            "name": "an older baseline",
            "state": "scoring",
            "progress": None,
            "submission_id": run,
            "message": None,
            "updated_at": _pending(api)[0]["updated_at"],
        }
    ]
    researcher = _baseline_run(api, "not a baseline", RunStatus.QUEUED)
    with api.db.transaction() as session:
        session.get_one(Submission, researcher).baseline = False
    assert [i["name"] for i in _pending(api)] == ["an older baseline"]  # researchers' runs are private


def test_page_shows_progress_escaped(api: Api) -> None:
    recorder = seed.BuildRecorder(api.db)
    recorder.start(ModelKind.ONE_HOT, 200, training=True)
    recorder.line(ModelKind.ONE_HOT, "step 50/200 loss 1.0")
    with api.db.transaction() as session:
        session.get_one(BaselineBuild, "one-hot").name = "<script>alert(1)</script>"
    page = api.client.get("/").text
    assert "On their way" in page and "step 50 of 200" in page
    assert '<progress max="200" value="50">' in page
    assert "<script>alert(1)</script>" not in page and "&lt;script&gt;" in page


def _seed_args(api: Api) -> dict[str, Any]:
    plan = seed.BuildPlan(Path("."), 20, (64, 52), None, None, 4, "x", 2, 1)
    return dict(
        db=api.db, settings=api.settings, recorder=seed.BuildRecorder(api.db), description="d", plan=plan
    )


def test_seed_marks_an_interrupted_or_failed_build(api: Api, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(seed, "base_image_missing", lambda base_image: False)

    def interrupted(*args: Any, **kwargs: Any) -> dict[ModelKind, str]:
        kwargs["on_line"](ModelKind.ONE_HOT, "step 5/20 loss 2.0")
        raise KeyboardInterrupt

    monkeypatch.setattr(seed, "build_all", interrupted)
    with pytest.raises(KeyboardInterrupt):
        seed._build_and_queue(**_seed_args(api))
    with api.db.transaction(write=False) as session:
        rows = {r.kind: r for r in session.query(BaselineBuild)}
    assert {r.state for r in rows.values()} == {BuildState.FAILED}
    assert rows["one-hot"].message == seed.INTERRUPTED and rows["one-hot"].step == 5

    def broken(*args: Any, **kwargs: Any) -> dict[ModelKind, str]:
        raise BuildError("training one-hot failed: loss became nan")

    monkeypatch.setattr(seed, "build_all", broken)
    with pytest.raises(typer.Exit):
        seed._build_and_queue(**_seed_args(api))
    with api.db.transaction(write=False) as session:
        messages = {r.message for r in session.query(BaselineBuild)}
    assert messages == {"training one-hot failed: loss became nan"}


def test_board_says_the_base_image_is_being_prepared_then_training(
    api: Api, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Issue 24 item 3: on a machine without the torch base image the server already answers, and
    its board says what is being prepared before the models train; only that image is built."""
    seen: dict[str, Any] = {}
    monkeypatch.setattr(seed, "base_image_missing", lambda base_image: True)

    def build_base_image() -> None:
        seen["during"] = {i["name"]: (i["state"], i["message"]) for i in _pending(api)}

    def build_all(plan: Any, on_line: Any) -> dict[ModelKind, str]:
        on_line(ModelKind.ONE_HOT, "step 1/20 loss 2.0")
        seen["after"] = {i["name"]: i["state"] for i in _pending(api)}
        raise BuildError("stop here")

    monkeypatch.setattr(seed, "build_base_image", build_base_image)
    monkeypatch.setattr(seed, "build_all", build_all)
    with pytest.raises(typer.Exit):
        seed._build_and_queue(**_seed_args(api))
    assert seen["during"] == {
        "ResNet-34 one-hot": ("preparing", PREPARING),
        "ResNet-34 multi-hot": ("preparing", PREPARING),
    }
    assert seen["after"]["ResNet-34 one-hot"] == "training"


def test_only_the_torch_base_image_is_built_before_training(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[list[str]] = []

    class Done:
        returncode = 0

    monkeypatch.setattr(seed.subprocess, "run", lambda args, check: calls.append(args) or Done())
    seed.build_base_image()
    assert calls == [[str(seed.BUILD_BASE_IMAGES), "torch"]]
    monkeypatch.setattr(seed, "image_id", lambda tag: None)
    assert seed.base_image_missing(seed.DEFAULT_BASE_IMAGE) is True
    with pytest.raises(BuildError, match="not in the local Docker engine"):
        seed.base_image_missing("my/torch:1")
