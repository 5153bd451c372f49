"""Issue 11 with the scripted runner: resume at the failed phase, hand back on stop, hidden output
kept from submitters, a supervised worker, /readyz and /metrics, disk rules."""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from srvtest import factories as f
from srvtest.app import Api, make_settings, open_api, operator_metrics, running_api
from srvtest.archives import write_archive
from srvtest.fakes import FakeRunner, predictions_for
from srvtest.web import web_login

from runner.spec import ErrorCode, RunResult, RunSpec, TerminalState
from server.models import FailedPhase, QuotaEntry, Role, RunStatus, Submission
from server.runs import store
from server.worker.loop import Worker
from server.worker.stages import score_report

MARKER = "HIDDEN-SET-MARKER-7f3a"


@pytest.fixture
def wapi(tmp_path: Path, sqlite_url: str, synthetic_benchmark: Path) -> Iterator[Api]:
    settings = make_settings(tmp_path, sqlite_url, benchmark_dir=synthetic_benchmark, bootstrap_resamples=100)
    yield from open_api(settings)


def _token(api: Api) -> str:
    return f.member_token(api.db)


def _submit(api: Api, token: str, tmp_path: Path, seed: str) -> tuple[int, str]:
    path = tmp_path / f"{seed}.tar"
    digest = write_archive(path, seed=seed)
    r = api.client.post(
        "/api/v1/submissions", params={"name": seed}, content=path.read_bytes(), headers=f.auth(token)
    )
    assert r.status_code == 201, r.text
    return r.json()["id"], digest


def _ledger(api: Api, sub_id: int) -> list[str]:
    return f.ledger(api.db, sub_id)


def _sub(api: Api, sub_id: int) -> Submission:
    with api.db.transaction(write=False) as session:
        sub = session.get(Submission, sub_id)
        assert sub is not None
        session.expunge(sub)
        return sub


def _phases(runner: FakeRunner) -> list[str]:
    return [s.phase for s in runner.started]


class _FlakyScorer:
    """Raises on its first call (the issue's fault injection), then scores normally."""

    def __init__(self) -> None:
        self.calls = 0

    def __call__(self, *args: Any) -> Any:
        self.calls += 1
        if self.calls == 1:
            raise RuntimeError("scorer crashed (injected) at /srv/csawm/scoring.py")
        return score_report(*args)


def _events(api: Api, token: str, sub_id: int) -> list[dict[str, Any]]:
    body = api.client.get(f"/api/v1/submissions/{sub_id}", headers=f.auth(token)).json()
    return list(body["events"])


def test_a_scorer_crash_is_charged_alerts_and_holds_the_team_until_released(
    wapi: Api, tmp_path: Path
) -> None:
    """Issue 19: the scorer failing on a model's predictions is ours, but a hidden run happened: the
    run ends infra_error, charged, not re-run nor re-scored; the maintainers are alerted; the team's
    further runs wait queued (shown as held) until a maintainer releases the team."""
    from server.runs.holds import HELD_NOTE, RELEASED_NOTE

    token = _token(wapi)
    crashed, _ = _submit(wapi, token, tmp_path, "m")
    waiting, _ = _submit(wapi, token, tmp_path, "m2")
    runner, scorer = FakeRunner(), _FlakyScorer()
    worker = Worker(wapi.settings, wapi.db, runner, scorer=scorer)
    assert worker.run_once()
    sub = _sub(wapi, crashed)
    assert (sub.status, sub.error_code, sub.failed_phase, sub.retries) == (
        RunStatus.FAILED, "infra_error", FailedPhase.SCORING, 0
    )  # fmt: skip
    assert _ledger(wapi, crashed) == ["charge"]  # a hidden run happened: never free
    assert _phases(runner) == ["preflight", "hidden"] and scorer.calls == 1  # not retried
    body = wapi.client.get(f"/api/v1/submissions/{crashed}", headers=f.auth(token)).json()
    assert "keeps its quota slot" in body["error_message"] and "refunded" not in body["error_message"]
    assert "RuntimeError" not in str(body) and "/srv/csawm" not in str(body)  # the maintainers' text
    assert sub.error_detail and "RuntimeError: scorer crashed" in sub.error_detail
    # the predictions stay stored, for the maintainers to look at and re-score once the scorer is fixed
    assert sub.predictions_sha256 and store.load(wapi.settings.data_dir, sub.predictions_sha256)

    maud = f.user(wapi.db, "maud@x.org", role=Role.MAINTAINER)
    alerts = wapi.client.get("/api/v1/admin/audit", params={"action": "alert"}, headers=f.auth(maud)).json()
    assert [(a["target_type"], a["target_id"]) for a in alerts] == [("submission", str(crashed))]
    held = wapi.client.get("/api/v1/admin/holds", headers=f.auth(maud)).json()
    assert [(h["team"], h["submission_id"], h["queued_runs"]) for h in held] == [("alpha", crashed, 1)]
    assert held[0]["held_by"].startswith("worker:")

    # held: the queued run is not leased, and its team sees why in a fixed note (nothing of the cause)
    assert not worker.run_once()
    assert _sub(wapi, waiting).status is RunStatus.QUEUED
    later, _ = _submit(wapi, token, tmp_path, "m3")  # submitted while held: noted at once
    for sub_id in (waiting, later):
        notes = [e["note"] for e in _events(wapi, token, sub_id)]
        assert HELD_NOTE in notes
        assert all(e["detail"] is None for e in _events(wapi, token, sub_id))
    assert not worker.run_once()
    # another team is not held
    other = f.member_token(wapi.db, "beta", "b@x.org")
    beta_run, _ = _submit(wapi, other, tmp_path, "b1")
    assert worker.run_once() and _sub(wapi, beta_run).status is RunStatus.SUCCEEDED

    # a researcher cannot release their own team; a maintainer can (audited)
    assert wapi.client.delete("/api/v1/admin/teams/alpha/hold", headers=f.auth(token)).status_code == 403
    released = wapi.client.delete("/api/v1/admin/teams/alpha/hold", headers=f.auth(maud))
    assert released.status_code == 200, released.text
    assert released.json()["queued_runs"] == 2
    assert wapi.client.delete("/api/v1/admin/teams/alpha/hold", headers=f.auth(maud)).status_code == 409
    actions = [a["action"] for a in wapi.client.get("/api/v1/admin/audit", headers=f.auth(maud)).json()]
    assert "hold_team" in actions and "release_team" in actions
    assert RELEASED_NOTE in [e["note"] for e in _events(wapi, token, waiting)]
    assert worker.run_once() and worker.run_once()
    assert (
        _sub(wapi, waiting).status is RunStatus.SUCCEEDED and _sub(wapi, later).status is RunStatus.SUCCEEDED
    )


def test_a_maintainer_holds_and_releases_a_team_through_the_api(
    tmp_path: Path, db_url: str, synthetic_benchmark: Path
) -> None:
    """On SQLite and PostgreSQL: the lease query skips a held team's queued runs, and only those."""
    settings = make_settings(tmp_path, db_url, benchmark_dir=synthetic_benchmark, bootstrap_resamples=100)
    with running_api(settings) as wapi:
        _hold_and_release(wapi, tmp_path)


def _hold_and_release(wapi: Api, tmp_path: Path) -> None:
    token = _token(wapi)
    sub_id, _ = _submit(wapi, token, tmp_path, "m")
    maud = f.user(wapi.db, "maud@x.org", role=Role.MAINTAINER)
    r = wapi.client.put("/api/v1/admin/teams/alpha/hold", json={"reason": "look first"}, headers=f.auth(maud))
    assert r.status_code == 200 and r.json()["reason"] == "look first" and r.json()["held_by"] == "maud@x.org"
    assert (
        wapi.client.put(
            "/api/v1/admin/teams/alpha/hold", json={"reason": ""}, headers=f.auth(maud)
        ).status_code
        == 422
    )
    assert (
        wapi.client.put(
            "/api/v1/admin/teams/ghost/hold", json={"reason": "x"}, headers=f.auth(maud)
        ).status_code
        == 404
    )
    worker = Worker(wapi.settings, wapi.db, FakeRunner())
    assert not worker.run_once()
    assert wapi.client.delete("/api/v1/admin/teams/alpha/hold", headers=f.auth(maud)).status_code == 200
    assert worker.run_once() and _sub(wapi, sub_id).status is RunStatus.SUCCEEDED


class _HiddenInfraOnce(FakeRunner):
    def __init__(self) -> None:
        super().__init__()
        self.failed = False

    def start(self, spec: RunSpec) -> str:
        if spec.phase == "hidden" and not self.failed:
            self.failed = True
            from runner.errors import TransientInfraError

            raise TransientInfraError("engine went away at /var/run/docker.sock on host-7")
        return super().start(spec)


def test_a_retry_after_a_passed_preflight_resumes_at_the_hidden_run(wapi: Api, tmp_path: Path) -> None:
    token = _token(wapi)
    sub_id, _ = _submit(wapi, token, tmp_path, "m")
    runner = _HiddenInfraOnce()
    worker = Worker(wapi.settings, wapi.db, runner)
    assert worker.run_once() and worker.run_once()
    body = wapi.client.get(f"/api/v1/submissions/{sub_id}", headers=f.auth(token)).json()
    assert body["status"] == "succeeded" and body["retries"] == 1
    assert _phases(runner) == ["preflight", "hidden"]  # preflight not run again
    text = str(body)
    assert "docker.sock" not in text and "host-7" not in text  # infra details are the maintainers'


def test_stop_hands_the_run_back_without_burning_an_attempt(wapi: Api, tmp_path: Path) -> None:
    token = _token(wapi)
    sub_id, digest = _submit(wapi, token, tmp_path, "m")
    runner = _HiddenHangs(digest)
    worker = Worker(wapi.settings, wapi.db, runner)
    thread = threading.Thread(target=worker.run_once)
    thread.start()
    _until(lambda: any(s.phase == "hidden" for s in runner.started))
    worker.request_stop()
    thread.join(10)
    assert not thread.is_alive()
    sub = _sub(wapi, sub_id)
    assert (sub.status, sub.resume_status, sub.retries, sub.lease_owner) == (
        RunStatus.QUEUED,
        "running",
        0,
        None,
    )
    assert runner.cancelled and _ledger(wapi, sub_id) == ["charge"]
    again = FakeRunner()
    assert Worker(wapi.settings, wapi.db, again).run_once()
    assert _sub(wapi, sub_id).status is RunStatus.SUCCEEDED and _phases(again) == ["hidden"]
    assert _ledger(wapi, sub_id) == ["charge"]


class _HiddenHangs(FakeRunner):
    def __init__(self, digest: str) -> None:
        super().__init__({})
        self.digest = digest

    def wait(self, handle: str, spec: RunSpec) -> RunResult:
        if spec.phase == "hidden":
            self.behaviours[self.digest] = "hang"
        try:
            return super().wait(handle, spec)
        finally:
            self.behaviours.pop(self.digest, None)


def _until(predicate: Any, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)


class _Leaky(FakeRunner):
    """Prints a marker only on the hidden images, then writes invalid predictions that quote it."""

    def wait(self, handle: str, spec: RunSpec) -> RunResult:
        if spec.phase != "hidden":
            return super().wait(handle, spec)
        good = predictions_for(spec.input_dir).decode().splitlines()
        good[1] = good[1].split(";")[0] + f";{MARKER}"
        return RunResult(
            state=TerminalState.SUCCEEDED,
            error_code=None,
            message="",
            exit_code=0,
            duration_s=0.1,
            peak_memory_bytes=1,
            log_tail=f"label of the first hidden image: {MARKER}\n",
            predictions=("\n".join(good) + "\n").encode(),
            handle=handle,
        )


@pytest.mark.parametrize("hidden_logs", ["maintainers", "none"])
def test_hidden_output_reaches_no_submitter(
    tmp_path: Path, sqlite_url: str, synthetic_benchmark: Path, hidden_logs: str
) -> None:
    settings = make_settings(
        tmp_path,
        sqlite_url,
        benchmark_dir=synthetic_benchmark,
        bootstrap_resamples=100,
        hidden_logs=hidden_logs,
    )
    with running_api(settings) as api:
        token = _token(api)
        sub_id, _ = _submit(api, token, tmp_path, "leak")
        assert Worker(settings, api.db, _Leaky()).run_once()
        assert _sub(api, sub_id).error_code == ErrorCode.OUTPUT_INVALID.value
        researcher = [
            api.client.get(f"/api/v1/submissions/{sub_id}", headers=f.auth(token)).text,
            api.client.get(f"/api/v1/submissions/{sub_id}/logs", headers=f.auth(token)).text,
            api.client.get("/api/v1/submissions", headers=f.auth(token)).text,
        ]
        staff = f.user(api.db, "m@x.org", role=Role.MAINTAINER)
        _web_login(api, token)
        researcher.append(api.client.get(f"/submissions/{sub_id}").text)
        for text in researcher:
            assert MARKER not in text
        _web_login(api, staff)
        staff_page = api.client.get(f"/submissions/{sub_id}").text
        assert MARKER in staff_page  # the error detail (and, unless "none", the hidden log tail)
        detail = api.client.get(f"/api/v1/submissions/{sub_id}", headers=f.auth(staff)).json()
        logs = api.client.get(f"/api/v1/submissions/{sub_id}/logs", headers=f.auth(staff)).json()
        assert MARKER in detail["error_detail"]  # the parser's message names the bad value
        assert (MARKER in (logs["hidden_log_tail"] or "")) is (hidden_logs == "maintainers")


def _web_login(api: Api, token: str) -> None:
    api.client.cookies.clear()
    web_login(api.client, token)


def test_submitters_opt_in_sees_the_hidden_log(
    tmp_path: Path, sqlite_url: str, synthetic_benchmark: Path
) -> None:
    settings = make_settings(
        tmp_path,
        sqlite_url,
        benchmark_dir=synthetic_benchmark,
        bootstrap_resamples=100,
        hidden_logs="submitters",
    )
    with running_api(settings) as api:
        token = _token(api)
        sub_id, _ = _submit(api, token, tmp_path, "leak")
        assert Worker(settings, api.db, _Leaky()).run_once()
        logs = api.client.get(f"/api/v1/submissions/{sub_id}/logs", headers=f.auth(token)).json()
        assert MARKER in logs["log_tail"]


def test_missing_test_set_leases_nothing_and_readyz_names_it(
    tmp_path: Path, sqlite_url: str, synthetic_benchmark: Path
) -> None:
    settings = make_settings(tmp_path, sqlite_url, benchmark_dir=tmp_path / "gone", poll_interval=0.05)
    with running_api(settings, embedded_worker=True, runner=FakeRunner()) as api:
        token = _token(api)
        sub_id, _ = _submit(api, token, tmp_path, "m")
        _until(lambda: api.client.get("/readyz").status_code == 503)
        body = api.client.get("/readyz").json()["error"]
        assert body["checks"] == ["test_set"] and "gone" in body["details"]["test_set"]
        assert _sub(api, sub_id).status is RunStatus.QUEUED and _ledger(api, sub_id) == ["charge"]


def test_readyz_names_a_dead_worker(tmp_path: Path, sqlite_url: str, synthetic_benchmark: Path) -> None:
    settings = make_settings(tmp_path, sqlite_url, benchmark_dir=synthetic_benchmark)
    with running_api(settings, embedded_worker=True, runner=FakeRunner()) as api:
        _until(lambda: api.client.get("/readyz").status_code == 200)
        api.client.app.state.csawm.parts.get(Worker).stop()  # type: ignore[attr-defined]
        response = api.client.get("/readyz")
        assert response.status_code == 503 and response.json()["error"]["checks"] == ["worker"]


def test_worker_survives_a_locked_database_while_idle_and_mid_run(
    tmp_path: Path, sqlite_url: str, synthetic_benchmark: Path
) -> None:
    """The database away for a while (SQLite: another process holds the write lock): the worker logs,
    backs off, and then finishes the run exactly once."""
    settings = make_settings(tmp_path, sqlite_url, benchmark_dir=synthetic_benchmark, bootstrap_resamples=100,
                             poll_interval=0.05)  # fmt: skip
    with running_api(settings) as api:
        token = _token(api)
        runner = _SlowHidden(hold=1.5)
        worker = Worker(settings, api.db, runner)
        worker.start_thread()
        try:
            _until(lambda: worker._evaluation is not None, timeout=60)
            path = sqlite_url.removeprefix("sqlite:///")
            _hold_write_lock(path, seconds=3.0)  # idle worker: polls fail, it keeps going
            sub_id, _ = _submit(api, token, tmp_path, "m")
            _until(lambda: any(s.phase == "hidden" for s in runner.started), timeout=30)
            _hold_write_lock(path, seconds=3.0)  # mid-run: the hidden run ends while the lock is held
            _until(lambda: _sub(api, sub_id).status is RunStatus.SUCCEEDED, timeout=60)
        finally:
            worker.stop()
        assert _phases(runner) == ["preflight", "hidden"] and _ledger(api, sub_id) == ["charge"]
        assert worker.alive is False


class _SlowHidden(FakeRunner):
    def __init__(self, hold: float) -> None:
        super().__init__()
        self.hold = hold

    def wait(self, handle: str, spec: RunSpec) -> RunResult:
        if spec.phase == "hidden":
            time.sleep(self.hold)
        return super().wait(handle, spec)


def _hold_write_lock(path: str, *, seconds: float) -> None:
    conn = sqlite3.connect(path, timeout=30, isolation_level=None)
    try:
        conn.execute("BEGIN EXCLUSIVE")
        time.sleep(seconds)
        conn.execute("COMMIT")
    finally:
        conn.close()


def test_metrics_export_queue_errors_phases_and_heartbeats(wapi: Api, tmp_path: Path) -> None:
    token = _token(wapi)
    _submit(wapi, token, tmp_path, "ok")
    _, bad = _submit(wapi, token, tmp_path, "bad")
    worker = Worker(wapi.settings, wapi.db, FakeRunner({bad: "crash"}), name="w-metrics")
    from server.worker import presence

    presence.beat(wapi.db, worker.name, state="idle")
    while worker.run_once():
        pass
    body = operator_metrics(wapi)
    assert 'csawm_runs_by_error{error_code="nonzero_exit",status="failed"} 1.0' in body
    assert "csawm_phase_hidden_seconds_count 1.0" in body and "csawm_queue_depth 0.0" in body
    assert 'csawm_worker_heartbeat_age_seconds{state="idle",worker="w-metrics"}' in body


def test_uploads_are_refused_with_507_when_the_disk_is_short(
    tmp_path: Path, sqlite_url: str, synthetic_benchmark: Path
) -> None:
    settings = make_settings(tmp_path, sqlite_url, min_free_bytes="1000t")
    with running_api(settings) as api:
        token = _token(api)
        path = tmp_path / "m.tar"
        write_archive(path, seed="m")
        r = api.client.post(
            "/api/v1/submissions", params={"name": "m"}, content=path.read_bytes(), headers=f.auth(token)
        )
        assert r.status_code == 507 and r.json()["error"]["code"] == "insufficient_storage"
        with api.db.transaction(write=False) as session:
            assert session.query(QuotaEntry).count() == 0 and session.query(Submission).count() == 0
        uploads = settings.data_dir / "uploads"
        assert not uploads.exists() or not any(uploads.iterdir())  # refused before a byte was read


def test_runtime_metrics_per_run(wapi: Api, tmp_path: Path) -> None:
    token = _token(wapi)
    sub_id, _ = _submit(wapi, token, tmp_path, "m")
    assert Worker(wapi.settings, wapi.db, FakeRunner()).run_once()
    staff = f.user(wapi.db, "m@x.org", role=Role.MAINTAINER)
    runtime = wapi.client.get(f"/api/v1/submissions/{sub_id}", headers=f.auth(staff)).json()["runtime"]
    assert set(runtime["phases"]) == {"preflight", "hidden", "scoring"}
    assert runtime["phases"]["hidden"]["peak_memory_bytes"] == 1234 and runtime["image_bytes"] > 0
    assert runtime["phases"]["hidden"]["gpu_s"] is None and runtime["image_load_s"] is not None
    # the submitter: the preflight's figures only (CSAWM_HIDDEN_RUNTIME=maintainers, issue 19)
    own = wapi.client.get(f"/api/v1/submissions/{sub_id}", headers=f.auth(token)).json()["runtime"]
    assert own["phases"] == {"preflight": runtime["phases"]["preflight"]}
    # the report page shows it (logged in as the submitter through the web form)
    web_login(wapi.client, token)
    page = wapi.client.get(f"/submissions/{sub_id}")
    assert page.status_code == 200 and 'id="runtime-heading"' in page.text
    assert "Hidden run (maintainers only)" not in page.text


def test_janitor_removes_images_of_runs_ended_longer_than_the_ttl(wapi: Api, tmp_path: Path) -> None:
    from datetime import timedelta

    from server.clock import utcnow
    from server.worker import janitor

    token = _token(wapi)
    old_id, old = _submit(wapi, token, tmp_path, "old")
    new_id, new = _submit(wapi, token, tmp_path, "new")
    runner = FakeRunner()
    worker = Worker(wapi.settings, wapi.db, runner)
    assert worker.run_once() and worker.run_once()
    assert {old, new} <= runner.loaded
    with wapi.db.transaction() as session:
        for sub_id in (old_id, new_id):
            session.get(Submission, sub_id).archive_path = "/gone.tar"  # type: ignore[union-attr]
        session.get(Submission, old_id).finished_at = utcnow() - wapi.settings.image_ttl - timedelta(hours=1)  # type: ignore[union-attr]
    swept = janitor.sweep(wapi.settings, wapi.db, runner, worker.instance)
    assert swept.images == [old] and runner.loaded == {new}


@pytest.mark.postgres
def test_worker_survives_postgres_going_away_while_idle_and_mid_run(
    tmp_path: Path, pg_admin_url: str, synthetic_benchmark: Path
) -> None:
    """PostgreSQL unreachable for a while (a proxy in front of it drops every connection and refuses
    new ones): idle, the loop backs off; mid-run, the run's writes are retried; it finishes once."""
    from urllib.parse import urlsplit

    from srvtest.pg import create_database
    from srvtest.proxy import TcpProxy

    direct = create_database(pg_admin_url)
    parts = urlsplit(direct)
    proxy = TcpProxy(target_port=int(parts.port or 5432))
    proxy.start()
    through = direct.replace(f":{parts.port}/", f":{proxy.port}/")
    settings = make_settings(tmp_path, through, benchmark_dir=synthetic_benchmark, bootstrap_resamples=100,
                             poll_interval=0.05)  # fmt: skip
    try:
        with running_api(settings) as api:
            token = _token(api)
            runner = _SlowHidden(hold=4.0)
            worker = Worker(settings, api.db, runner)
            worker.start_thread()
            try:
                _until(lambda: worker._evaluation is not None, timeout=60)
                proxy.stop()  # idle: every poll fails, the loop must go on
                _until(lambda: worker.loop_errors > 0, timeout=30)
                time.sleep(1.0)
                proxy.start()
                assert worker.alive
                sub_id, _ = _submit(api, token, tmp_path, "m")
                _until(lambda: any(s.phase == "hidden" for s in runner.started), timeout=60)
                proxy.stop()  # mid-run: the hidden run ends while the database is away
                time.sleep(5.0)
                proxy.start()
                _until(lambda: _sub(api, sub_id).status is RunStatus.SUCCEEDED, timeout=90)
            finally:
                worker.stop()
            assert _phases(runner) == ["preflight", "hidden"] and _ledger(api, sub_id) == ["charge"]
    finally:
        proxy.stop()
