"""The worker with a scripted runner: every outcome, who pays for it, retries, cancels, takeovers."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import numpy as np
import pytest
from srvtest import factories as f
from srvtest.app import Api, make_settings, open_api, operator_metrics, running_api
from srvtest.archives import write_archive
from srvtest.fakes import FakeRunner

from server.clock import utcnow
from server.models import Role, RunStatus, Submission
from server.worker.loop import Worker
from server.worker.queue import lease_next


@pytest.fixture
def wapi(tmp_path: Path, sqlite_url: str, synthetic_benchmark: Path) -> Iterator[Api]:
    settings = make_settings(tmp_path, sqlite_url, benchmark_dir=synthetic_benchmark, bootstrap_resamples=200)
    yield from open_api(settings)


@pytest.fixture
def wapi_any(tmp_path: Path, db_url: str, synthetic_benchmark: Path) -> Iterator[Api]:
    settings = make_settings(tmp_path, db_url, benchmark_dir=synthetic_benchmark, bootstrap_resamples=200)
    yield from open_api(settings)


def _team_token(api: Api) -> str:
    return f.member_token(api.db)


def _submit(api: Api, token: str, tmp_path: Path, seed: str) -> tuple[int, str]:
    path = tmp_path / f"{seed}.tar"
    digest = write_archive(path, seed=seed)
    response = api.client.post(
        "/api/v1/submissions", params={"name": seed}, content=path.read_bytes(), headers=f.auth(token)
    )
    assert response.status_code == 201, response.text
    return response.json()["id"], digest


def _ledger(api: Api, sub_id: int) -> list[str]:
    return f.ledger(api.db, sub_id)


def _get(api: Api, token: str, sub_id: int) -> dict:
    response = api.client.get(f"/api/v1/submissions/{sub_id}", headers=f.auth(token))
    assert response.status_code == 200
    return response.json()


def test_good_run_is_scored_and_recorded(wapi_any: Api, tmp_path: Path) -> None:
    api = wapi_any
    token = _team_token(api)
    sub_id, digest = _submit(api, token, tmp_path, "good")
    runner = FakeRunner()
    worker = Worker(api.settings, api.db, runner, name="w1")
    assert worker.run_once()
    assert not worker.run_once()
    body = _get(api, token, sub_id)
    assert body["status"] == "succeeded", body
    assert [e["status"] for e in body["events"]] == ["queued", "preflight", "running", "scoring", "succeeded"]
    assert body["error_code"] is None and body["failed_phase"] is None
    assert body["metrics"]["n_images"] == 60 and body["metrics"]["clinical"]["population"] == "pooled"
    assert body["kendall_tau_b"] == body["metrics"]["masking"]["kendall_tau_b"]["value"]
    repro = body["reproducibility"]
    assert repro["image_digest"] == digest and repro["runner_backend"] == "fake" and repro["attempt"] == 1
    assert len(repro["test_set_manifest_sha256"]) == 64 and repro["scorer_version"] == "3"
    assert set(repro["durations_s"]) == {"image_load_s", "preflight_s"}  # the team's view (issue 19)
    assert repro["peak_memory_bytes"] == {"preflight": 1234}
    recorded = _get(api, f.user(api.db, "m@x.org", role=Role.MAINTAINER), sub_id)["reproducibility"]
    assert set(recorded["durations_s"]) >= {"preflight_s", "hidden_s", "scoring_s", "queue_s"}
    assert recorded["peak_memory_bytes"] == {"preflight": 1234, "hidden": 1234}
    assert [s.phase for s in runner.started] == ["preflight", "hidden"]
    assert len(list((runner.started[1].input_dir / "images").iterdir())) == 60 + 64  # private + public
    assert sorted(runner.cleaned) == sorted(f"fake:{s.run_id}-a1" for s in runner.started)
    with api.db.transaction(write=False) as session:
        sub = session.get(Submission, sub_id)
        assert sub is not None and sub.tau_replicates is not None
        assert np.frombuffer(sub.tau_replicates).shape == (200,)
        assert sub.archive_path is not None and not Path(sub.archive_path).exists()  # pruned once finished
    assert _ledger(api, sub_id) == ["charge"]
    assert 'csawm_runs{status="succeeded"} 1.0' in operator_metrics(api)


def test_preflight_failure_returns_logs_and_costs_nothing(wapi: Api, tmp_path: Path) -> None:
    token = _team_token(wapi)
    sub_id, digest = _submit(wapi, token, tmp_path, "pf")
    Worker(wapi.settings, wapi.db, FakeRunner({digest: "preflight_crash"})).run_once()
    body = _get(wapi, token, sub_id)
    assert (body["status"], body["error_code"], body["failed_phase"]) == (
        "failed",
        "nonzero_exit",
        "preflight",
    )
    assert "preflight on 4 public sample images failed" in body["error_message"]
    logs = wapi.client.get(f"/api/v1/submissions/{sub_id}/logs", headers=f.auth(token)).json()
    assert "ValueError: boom" in logs["log_tail"]
    assert _ledger(wapi, sub_id) == ["charge", "refund"]


@pytest.mark.parametrize("charge_user_failures", [True, False])
def test_model_failure_on_hidden_is_charged_whatever_the_setting(
    tmp_path: Path, sqlite_url: str, synthetic_benchmark: Path, charge_user_failures: bool
) -> None:
    settings = make_settings(
        tmp_path,
        sqlite_url,
        benchmark_dir=synthetic_benchmark,
        bootstrap_resamples=200,
        charge_user_failures=charge_user_failures,
    )
    with running_api(settings) as api:
        token = _team_token(api)
        sub_id, digest = _submit(api, token, tmp_path, "crash")
        Worker(settings, api.db, _HiddenOnly(FakeRunner({digest: "crash"}), digest)).run_once()
        body = _get(api, token, sub_id)
        assert (body["status"], body["error_code"], body["failed_phase"]) == (
            "failed",
            "nonzero_exit",
            "hidden",
        )
        # issue 19: CSAWM_CHARGE_USER_FAILURES=false no longer makes hidden runs free
        assert _ledger(api, sub_id) == ["charge"]


class _HiddenOnly(FakeRunner):
    """Runs preflight as `good`, the hidden phase with the wrapped behaviour."""

    def __init__(self, inner: FakeRunner, digest: str) -> None:
        super().__init__(dict(inner.behaviours))
        self.digest = digest

    def wait(self, handle, spec):  # type: ignore[no-untyped-def]
        if spec.phase == "preflight":
            saved = self.behaviours.pop(self.digest)
            try:
                return super().wait(handle, spec)
            finally:
                self.behaviours[self.digest] = saved
        return super().wait(handle, spec)


def test_invalid_predictions_fail_in_scoring(wapi: Api, tmp_path: Path) -> None:
    token = _team_token(wapi)
    sub_id, digest = _submit(wapi, token, tmp_path, "bad")
    Worker(wapi.settings, wapi.db, FakeRunner({digest: "bad_output"})).run_once()
    body = _get(wapi, token, sub_id)
    assert (body["status"], body["error_code"], body["failed_phase"]) == (
        "failed",
        "output_invalid",
        "scoring",
    )
    # What the model wrote for the hidden images is not quoted to the submitter (issue 11); the
    # maintainers get the parser's message.
    assert "no row for test image" not in body["error_message"]
    assert "withheld" in body["error_message"] and body["error_detail"] is None
    admin = f.user(wapi.db, "m@x.org", role=Role.MAINTAINER)
    assert "no row for test image" in _get(wapi, admin, sub_id)["error_detail"]
    assert body["metrics"] is None
    assert _ledger(wapi, sub_id) == ["charge"]


def test_transient_infra_error_is_retried_then_succeeds(wapi: Api, tmp_path: Path) -> None:
    token = _team_token(wapi)
    sub_id, digest = _submit(wapi, token, tmp_path, "flaky")
    worker = Worker(wapi.settings, wapi.db, FakeRunner({digest: "infra_once"}))
    assert worker.run_once()
    assert _get(wapi, token, sub_id)["status"] == "queued"
    assert worker.run_once()
    body = _get(wapi, token, sub_id)
    assert body["status"] == "succeeded" and body["attempt"] == 2
    assert any("resume where it stopped" in (e["note"] or "") for e in body["events"])
    assert _ledger(wapi, sub_id) == ["charge"]


def test_persistent_infra_error_fails_and_refunds(wapi: Api, tmp_path: Path) -> None:
    token = _team_token(wapi)
    sub_id, digest = _submit(wapi, token, tmp_path, "broken")
    worker = Worker(wapi.settings, wapi.db, FakeRunner({digest: "infra"}))
    for _ in range(wapi.settings.max_attempts):
        assert worker.run_once()
    assert not worker.run_once()
    body = _get(wapi, token, sub_id)
    assert (body["status"], body["error_code"], body["failed_phase"]) == (
        "failed",
        "infra_error",
        "preflight",
    )
    assert _ledger(wapi, sub_id) == ["charge", "refund"]


def test_cancel_queued_is_refunded_and_cancel_running_is_charged(wapi: Api, tmp_path: Path) -> None:
    token = _team_token(wapi)
    first, _ = _submit(wapi, token, tmp_path, "c1")
    with wapi.db.transaction(write=False) as session:
        archive = Path(session.get(Submission, first).archive_path)  # type: ignore[arg-type,union-attr]
    assert archive.is_file()
    response = wapi.client.post(f"/api/v1/submissions/{first}/cancel", headers=f.auth(token))
    assert response.json()["status"] == "cancelled"
    assert not archive.exists()
    assert _ledger(wapi, first) == ["charge", "refund"]
    again = wapi.client.post(f"/api/v1/submissions/{first}/cancel", headers=f.auth(token))
    assert again.status_code == 409

    second, digest = _submit(wapi, token, tmp_path, "c2")
    runner = _HiddenOnly(FakeRunner({digest: "hang"}), digest)
    settings = wapi.settings.model_copy(update={"lease_ttl": timedelta(seconds=3)})
    worker = Worker(settings, wapi.db, runner)
    worker.start_thread()
    try:
        _wait_for(lambda: _get(wapi, token, second)["status"] == "running")
        assert (
            wapi.client.post(f"/api/v1/submissions/{second}/cancel", headers=f.auth(token)).status_code == 200
        )
        _wait_for(lambda: _get(wapi, token, second)["status"] == "cancelled")
    finally:
        worker.stop()
    body = _get(wapi, token, second)
    assert (body["error_code"], body["failed_phase"]) == ("cancelled", "hidden")
    assert _ledger(wapi, second) == ["charge"]
    assert any(h.endswith(f"-{second}-hidden-a1") for h in runner.cancelled)


def _wait_for(predicate, timeout: float = 30.0) -> None:  # type: ignore[no-untyped-def]
    import time

    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached")
        time.sleep(0.05)


def test_dead_workers_run_is_taken_over_once(wapi_any: Api, tmp_path: Path) -> None:
    api = wapi_any
    token = _team_token(api)
    sub_id, _ = _submit(api, token, tmp_path, "orphan")
    dead = lease_next(api.db, "dead-worker", timedelta(seconds=60))
    assert dead is not None and dead.attempt == 1
    with api.db.transaction() as session:  # it had started a container, then died
        sub = session.get(Submission, sub_id)
        assert sub is not None
        sub.runner_handle = "fake:orphan-container"
    assert lease_next(api.db, "other", timedelta(seconds=60)) is None  # lease still valid
    with api.db.transaction() as session:
        session.get(Submission, sub_id).lease_expires_at = utcnow() - timedelta(seconds=1)  # type: ignore[union-attr]
    runner = FakeRunner()
    assert Worker(api.settings, api.db, runner, name="rescuer").run_once()
    body = _get(api, token, sub_id)
    assert body["status"] == "succeeded" and body["attempt"] == 2
    # worker names are for maintainers only (issue 11): the submitter's note is generic
    assert not any("rescuer" in (e["note"] or "") or e["detail"] for e in body["events"])
    staff = _get(api, f.user(api.db, "m@x.org", role=Role.MAINTAINER), sub_id)
    assert any("taken over by rescuer" in (e["detail"] or "") for e in staff["events"])
    assert runner.cancelled[:1] == ["fake:orphan-container"]
    assert _ledger(api, sub_id) == ["charge"]
    # the dead worker cannot write any more
    from server.runs.transitions import LeaseLost, transition

    with pytest.raises(LeaseLost), api.db.transaction() as session:
        transition(session, sub_id, RunStatus.FAILED, owner="dead-worker", attempt=1)


def test_transitions_are_guarded(wapi: Api, tmp_path: Path) -> None:
    from server.runs.transitions import TransitionError, transition

    token = _team_token(wapi)
    sub_id, _ = _submit(wapi, token, tmp_path, "g")
    with (
        pytest.raises(TransitionError, match="cannot go from queued to succeeded"),
        wapi.db.transaction() as s,
    ):
        transition(s, sub_id, RunStatus.SUCCEEDED)
    with wapi.db.transaction() as s:
        transition(s, sub_id, RunStatus.CANCELLED)
    with pytest.raises(TransitionError), wapi.db.transaction() as s:
        transition(s, sub_id, RunStatus.QUEUED)


def test_concurrent_leasing_never_hands_a_run_out_twice(wapi_any: Api, tmp_path: Path) -> None:
    from concurrent.futures import ThreadPoolExecutor

    api = wapi_any
    team_id = f.team(api.db, "alpha")
    with api.db.transaction() as session:
        for i in range(12):
            session.add(Submission(team_id=team_id, name=f"r{i}", phase="p", image_digest=f"sha256:{i}"))

    def drain(name: str) -> list[int]:
        got = []
        while (lease := lease_next(api.db, name, timedelta(seconds=60))) is not None:
            got.append(lease.submission_id)
        return got

    with ThreadPoolExecutor(4) as pool:
        results = list(pool.map(drain, [f"w{i}" for i in range(4)]))
    leased = [sid for r in results for sid in r]
    assert sorted(leased) == sorted(set(leased)) and len(leased) == 12
    with api.db.transaction(write=False) as session:
        assert {s.status for s in session.query(Submission)} == {RunStatus.PREFLIGHT}


def test_baseline_runs_without_quota_and_shows_on_the_leaderboard(wapi: Api, tmp_path: Path) -> None:
    from server.submissions import service as submissions

    digest = write_archive(tmp_path / "base.tar", seed="baseline")
    with wapi.db.transaction() as session:
        sub_id = submissions.create_baseline(
            session,
            wapi.settings,
            name="ResNet-34 one-hot",
            image_digest=digest,
            archive_path=tmp_path / "base.tar",
            actor="cli:test",
        ).id
    assert Worker(wapi.settings, wapi.db, FakeRunner()).run_once()
    assert _ledger(wapi, sub_id) == []
    rows = wapi.client.get("/api/v1/leaderboard").json()["rows"]
    baseline = next(r for r in rows if r["kind"] == "baseline")
    assert (baseline["name"], baseline["team"], baseline["submission_id"]) == (
        "ResNet-34 one-hot",
        "CSAW-M baselines",
        sub_id,
    )
