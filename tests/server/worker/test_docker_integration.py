"""The worker with the real Docker runner and engine: real models, a SIGKILLed worker, a server
restart, and the engine becoming unreachable mid-run (through a socket proxy, so the shared engine
itself is never restarted)."""

from __future__ import annotations

import contextlib
import hashlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import docker
import httpx
import pytest
from sqlalchemy.orm import undefer
from srvtest import factories as f
from srvtest.app import make_settings, running_api
from srvtest.live import free_port, live_server
from srvtest.proxy import EngineProxy
from typer.testing import CliRunner

from runner.docker_backend import DockerRunner
from server.accounts import service as accounts
from server.app import create_app
from server.cli.main import app as cli
from server.clock import utcnow
from server.core.db import Database
from server.models import QuotaEntry, Role, Submission
from server.worker.loop import Worker
from server.worker.stages import score_report

pytestmark = [pytest.mark.docker, pytest.mark.timeout(400)]
CSAWM = str(Path(sys.executable).with_name("csawm"))


def _until(predicate: Callable[[], Any], timeout: float = 120.0, what: str = "condition") -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.2)


def _sub(db: Database, sub_id: int) -> Submission:
    with db.transaction(write=False) as session:
        sub = session.get(Submission, sub_id, options=[undefer(Submission.hidden_log_tail)])
        assert sub is not None
        session.expunge(sub)
        return sub


def _ledger(db: Database, sub_id: int) -> list[str]:
    with db.transaction(write=False) as session:
        return [
            r.kind.value
            for r in session.query(QuotaEntry).filter_by(submission_id=sub_id).order_by(QuotaEntry.id)
        ]


def _env(settings_env: dict[str, str]) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CSAWM_")}
    env.update(settings_env)
    return env


def _containers(client: docker.DockerClient, needle: str) -> list[str]:
    return [c.name for c in client.containers.list(all=True) if needle in c.name]


def _team(db: Database, active: int = 1) -> str:
    f.team(db, "alpha")
    with db.transaction() as session:
        accounts.set_quota(session, "alpha", {"active": active, "per_day": 10, "per_week": 10}, actor="test")
    return f.user(db, "a@x.org", team="alpha")


def _upload(api_or_url: Any, token: str, archive: Path, name: str) -> int:
    body = archive.read_bytes()
    if isinstance(api_or_url, str):
        r = httpx.post(
            f"{api_or_url}/api/v1/submissions",
            params={"name": name},
            content=body,
            headers=f.auth(token),
            timeout=120,
        )
    else:
        r = api_or_url.client.post(
            "/api/v1/submissions", params={"name": name}, content=body, headers=f.auth(token)
        )
    assert r.status_code == 201, r.text
    return int(r.json()["id"])


def test_real_models_succeed_and_fail_with_their_codes(
    tmp_path: Path,
    sqlite_url: str,
    synthetic_benchmark: Path,
    model_images: dict[str, str],
    model_archives: dict[str, Path],
    docker_client: docker.DockerClient,
) -> None:
    settings = make_settings(
        tmp_path,
        sqlite_url,
        benchmark_dir=synthetic_benchmark,
        bootstrap_resamples=200,
        poll_interval=0.2,
        max_upload_bytes=1024**3,
    )
    app = create_app(settings, runner=DockerRunner(), embedded_worker=True, migrate_on_start=True)
    with live_server(app) as url:
        db = app.state.csawm.db
        token = _team(db)
        env = {"CSAWM_SERVER_URL": url, "CSAWM_TOKEN": token}
        # by image name: the client runs `docker save` itself and streams it
        result = CliRunner().invoke(
            cli, ["submit", model_images["good"], "--name", "good", "--wait"], env=env
        )
        assert result.exit_code == 0, result.stderr
        good_id = int(result.stdout.split()[1])
        good = _sub(db, good_id)
        assert good.status.value == "succeeded" and good.kendall_tau_b is not None
        repro = good.reproducibility or {}
        assert repro["runner_backend"] == "docker" and repro["image_digest"] == good.image_digest
        assert repro["peak_memory_bytes"]["hidden"] is None or repro["peak_memory_bytes"]["hidden"] > 0
        assert good.container_started_at is not None and good.started_at is not None

        result = CliRunner().invoke(
            cli, ["submit", str(model_archives["crash_hidden"]), "--name", "crash", "--wait"], env=env
        )
        assert result.exit_code == 1
        crash_id = int(result.stdout.split()[1])
        crash = _sub(db, crash_id)
        assert (
            crash.status.value,
            crash.error_code,
            crash.failed_phase.value if crash.failed_phase else None,
        ) == ("failed", "nonzero_exit", "hidden")
        logs = CliRunner().invoke(cli, ["logs", str(crash_id)], env=env)
        # the submitter gets the preflight log; the hidden traceback is the maintainers' (issue 11)
        assert "boom on the hidden set" not in logs.stdout and "4 images" in logs.stdout
        assert "ValueError: boom on the hidden set" in (crash.hidden_log_tail or "")
        assert _ledger(db, good_id) == ["charge"] and _ledger(db, crash_id) == [
            "charge"
        ]  # model fault: charged
    # The good run's own containers (preflight and hidden), by the name prefix of its handle.
    run_prefix = (good.runner_handle or "").removeprefix("docker:").rsplit("-", 2)[0] + "-"
    assert run_prefix.startswith("csawm-run-") and _containers(docker_client, run_prefix) == []


def test_the_attackers_garbage_predictions_are_charged_and_resubmitting_is_counted(
    tmp_path: Path,
    sqlite_url: str,
    synthetic_benchmark: Path,
    model_archives: dict[str, Path],
    docker_client: docker.DockerClient,
) -> None:
    """Issue 19 item 1, the attacker's own model: valid predictions in preflight, ``";\\n"`` on the
    hidden images. The reader crashed on it, the worker took that for an infrastructure fault and
    refunded the run, and the same image could be sent again at once: hidden runs for free. Now the
    run is the model's fault (``output_invalid`` at scoring), charged even with
    ``CSAWM_CHARGE_USER_FAILURES=false``; the same image is a duplicate, and the image with one more
    layer is charged again."""
    from srvtest import images

    settings = make_settings(
        tmp_path,
        sqlite_url,
        benchmark_dir=synthetic_benchmark,
        bootstrap_resamples=100,
        max_upload_bytes=1024**3,
        charge_user_failures=False,
    )
    with running_api(settings) as api:
        token = _team(api.db)
        worker = Worker(settings, api.db, DockerRunner(remove_containers=True))

        def used() -> int:
            return int(api.client.get("/api/v1/quota", headers=f.auth(token)).json()["used"]["per_day"])

        def run(archive: Path, name: str) -> Submission:
            sub_id = _upload(api, token, archive, name)
            assert worker.run_once()
            sub = _sub(api.db, sub_id)
            where = sub.failed_phase.value if sub.failed_phase else None
            assert (sub.status.value, sub.error_code, where) == ("failed", "output_invalid", "scoring")
            assert sub.retries == 0 and _ledger(api.db, sub_id) == ["charge"]
            return sub

        first = run(model_archives["garbage_hidden"], "free-1")
        assert "no header row" in (first.error_detail or "")  # the maintainers see the reader's reason
        shown = api.client.get(f"/api/v1/submissions/{first.id}", headers=f.auth(token)).json()
        assert shown["error_message"].startswith(
            "The predictions.csv written for the hidden images is invalid"
        )
        assert used() == 1
        again = api.client.post(
            "/api/v1/submissions",
            params={"name": "free-2"},
            content=model_archives["garbage_hidden"].read_bytes(),
            headers=f.auth(token),
        )
        assert again.status_code == 409 and again.json()["error"]["code"] == "duplicate_submission"
        assert used() == 1
        layered = images.save(
            images.build(docker_client, "garbage_hidden", "one-more-layer"), tmp_path / "l.tar"
        )
        run(layered, "free-3")
        assert used() == 2


def test_sigkilled_worker_run_is_finished_once_by_another(
    tmp_path: Path,
    db_url: str,
    synthetic_benchmark: Path,
    model_archives: dict[str, Path],
    docker_client: docker.DockerClient,
) -> None:
    settings = make_settings(tmp_path, db_url, benchmark_dir=synthetic_benchmark, max_upload_bytes=1024**3)
    env = _env(
        {
            "CSAWM_DATA_DIR": str(settings.data_dir),
            "CSAWM_DATABASE_URL": db_url,
            "CSAWM_BENCHMARK_DIR": str(synthetic_benchmark),
            "CSAWM_LEASE_TTL": "3",
            "CSAWM_POLL_INTERVAL": "0.2",
            "CSAWM_BOOTSTRAP_RESAMPLES": "200",
        }
    )
    with running_api(settings) as api:
        token = _team(api.db)
        sub_id = _upload(api, token, model_archives["slow"], "slow")
        logs = tmp_path / "logs"
        logs.mkdir()
        first = subprocess.Popen(
            [CSAWM, "worker", "--name", "doomed"],
            env=env,
            stdout=(logs / "a.log").open("w"),
            stderr=subprocess.STDOUT,
        )
        try:
            # The handle is written before the container exists (so a rescuer knows what to stop):
            # wait for the container itself to run, not only for its name (issue 11 item 8: a race).
            def hidden_running() -> bool:
                handle = _sub(api.db, sub_id).runner_handle or ""
                if not handle.endswith("-hidden-a1"):
                    return False
                name = handle.removeprefix("docker:")
                return any(
                    c.status == "running" for c in docker_client.containers.list(filters={"name": name})
                )

            _until(hidden_running, what="the hidden run's container running")
            first.send_signal(signal.SIGKILL)
            first.wait(30)
            orphan = (_sub(api.db, sub_id).runner_handle or "").removeprefix("docker:")
            assert orphan in _containers(docker_client, orphan)  # the dead worker's container lives on
        finally:
            if first.poll() is None:
                first.kill()
        # `--once` takes what is runnable now: wait until the dead worker's lease has run out.
        _until(
            lambda: (_sub(api.db, sub_id).lease_expires_at or utcnow()) < utcnow(),
            timeout=30,
            what="the dead worker's lease to expire",
        )
        second = subprocess.run(
            [CSAWM, "worker", "--once", "--name", "rescuer"],
            env=env,
            timeout=300,
            stdout=(logs / "b.log").open("w"),
            stderr=subprocess.STDOUT,
        )
        assert second.returncode == 0, (logs / "b.log").read_text()[-3000:]
        sub = _sub(api.db, sub_id)
        assert sub.status.value == "succeeded", (logs / "b.log").read_text()[-3000:]
        assert sub.attempt == 2
        staff = f.user(api.db, "m@x.org", role=Role.MAINTAINER)
        body = api.client.get(f"/api/v1/submissions/{sub_id}", headers=f.auth(staff)).json()
        details = [e["detail"] or "" for e in body["events"]]
        assert any("lease of doomed" in n and "taken over by rescuer" in n for n in details)
        assert [e["status"] for e in body["events"]].count("succeeded") == 1
        assert _ledger(api.db, sub_id) == ["charge"]
        assert _containers(docker_client, orphan) == []  # stopped and removed before the rerun


def test_server_restart_finishes_queued_and_running_runs(
    tmp_path: Path,
    sqlite_url: str,
    synthetic_benchmark: Path,
    model_archives: dict[str, Path],
    docker_client: docker.DockerClient,
) -> None:
    settings = make_settings(
        tmp_path, sqlite_url, benchmark_dir=synthetic_benchmark, max_upload_bytes=1024**3
    )
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    env = _env(
        {
            "CSAWM_DATA_DIR": str(settings.data_dir),
            "CSAWM_DATABASE_URL": sqlite_url,
            "CSAWM_PORT": str(port),
            "CSAWM_BENCHMARK_DIR": str(synthetic_benchmark),
            "CSAWM_LEASE_TTL": "3",
            "CSAWM_POLL_INTERVAL": "0.2",
            "CSAWM_BOOTSTRAP_RESAMPLES": "200",
            "CSAWM_MAX_UPLOAD_BYTES": str(1024**3),
        }
    )
    log = (tmp_path / "serve.log").open("w")

    def start() -> subprocess.Popen[bytes]:
        proc = subprocess.Popen([CSAWM, "serve"], env=env, stdout=log, stderr=subprocess.STDOUT)
        _until(lambda: _ready(url), timeout=60, what="server start")
        return proc

    server = start()
    try:
        db = Database.connect(sqlite_url)
        token = _team(db, active=2)
        slow = model_archives["slow"]
        first = _upload(url, token, slow, "first")
        second = _upload(url, token, model_archives["good"], "second")
        _until(lambda: _sub(db, first).status.value == "running", what="first run running")
        assert _sub(db, second).status.value == "queued"
        server.send_signal(signal.SIGKILL)  # a crash: the running run is cut off mid-container
        server.wait(60)
        server = start()
        _until(
            lambda: all(_sub(db, s).status.value == "succeeded" for s in (first, second)),
            timeout=240,
            what="both runs to finish after the restart",
        )
        assert _sub(db, first).attempt == 2 and _sub(db, second).attempt == 1
        assert _ledger(db, first) == ["charge"] and _ledger(db, second) == ["charge"]
        # this run's own container name (another test's leftover of run 1 must not count)
        orphan = f"csawm-run-{_instance(sqlite_url)}-{first}-hidden-a1"
        assert not _containers(docker_client, orphan), (
            "the cut-off container must be stopped and removed by the worker that took the run over"
        )
        db.dispose()
    finally:
        server.terminate()
        server.wait(60)
        log.close()


def _instance(db_url: str) -> str:
    """The container-name tag every worker of this database uses (`Worker.instance`)."""
    url = db_url.replace("postgresql://", "postgresql+psycopg://")
    return hashlib.sha256(url.encode()).hexdigest()[:6]


def _ready(url: str) -> bool:
    try:
        return httpx.get(f"{url}/readyz", timeout=2).status_code == 200
    except httpx.TransportError:
        return False


def _retry_settings(tmp_path: Path, db_url: str, benchmark: Path, *, lease_ttl_s: float) -> Any:
    """Settings of the engine-failure tests: two attempts, short leases, fast polling."""
    return make_settings(
        tmp_path,
        db_url,
        benchmark_dir=benchmark,
        bootstrap_resamples=200,
        max_upload_bytes=1024**3,
        max_attempts=2,
        lease_ttl=timedelta(seconds=lease_ttl_s),
        poll_interval=0.2,
    )


def test_engine_unreachable_mid_run_is_retried_once_then_refunded(
    tmp_path: Path,
    sqlite_url: str,
    synthetic_benchmark: Path,
    model_archives: dict[str, Path],
    docker_client: docker.DockerClient,
) -> None:
    proxy = EngineProxy(tmp_path / "engine.sock")
    proxy.start()
    settings = _retry_settings(tmp_path, sqlite_url, synthetic_benchmark, lease_ttl_s=3)
    with running_api(settings) as api:
        token = _team(api.db)
        sub_id = _upload(api, token, model_archives["slow"], "slow")
        runner = DockerRunner(client=docker.DockerClient(base_url=proxy.url, timeout=30))
        worker = Worker(settings, api.db, runner, name="w")
        worker.start_thread()
        try:
            _until(
                lambda: (_sub(api.db, sub_id).runner_handle or "").endswith("-hidden-a1"), what="hidden run"
            )
            proxy.stop()  # the engine goes away mid-run
            _until(lambda: _sub(api.db, sub_id).status.value == "failed", timeout=120, what="the run to fail")
        finally:
            worker.stop()
            proxy.stop()
        sub = _sub(api.db, sub_id)
        assert (sub.error_code, sub.attempt) == ("infra_error", 2)
        body = api.client.get(f"/api/v1/submissions/{sub_id}", headers=f.auth(token)).json()
        # retried at the hidden phase (issue 11: preflight is not run again), then given up
        assert any("resume where it stopped" in (e["note"] or "") for e in body["events"])
        assert [e["status"] for e in body["events"]].count("preflight") == 1
        assert "engine" in (sub.error_detail or "") and "engine" not in (sub.error_message or "")
        assert _ledger(api.db, sub_id) == ["charge", "refund"]
        handle = (sub.runner_handle or "").removeprefix("docker:")
        for name in _containers(docker_client, handle.rsplit("-a", 1)[0]):
            docker_client.containers.get(name).remove(force=True)


REPO = Path(__file__).resolve().parents[3]


def _restart_dockerd(timeout: float = 90.0) -> None:
    """Stop the real engine (SIGTERM, as an operator's restart does) and start it again with
    scripts/ensure-docker. Without live-restore the engine kills every running container."""
    pid = int(Path("/var/run/docker.pid").read_text().strip())
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while Path(f"/proc/{pid}").exists():
        if time.monotonic() > deadline:
            raise AssertionError("dockerd did not stop")
        time.sleep(0.2)
    subprocess.run([str(REPO / "scripts" / "ensure-docker")], check=True, timeout=timeout)


@pytest.mark.skipif(not Path("/var/run/docker.pid").exists(), reason="needs a dockerd this machine controls")
def test_real_dockerd_restart_mid_run_is_infra_error_then_retried_or_refunded(
    tmp_path: Path,
    sqlite_url: str,
    synthetic_benchmark: Path,
    model_archives: dict[str, Path],
    docker_client: docker.DockerClient,
) -> None:
    """Issue 4: `dockerd` restarted mid-run. The first attempt ends as an infrastructure failure
    (never charged to the team); the worker retries once. Whatever the retry gives, the run ends
    exactly once and the ledger is consistent: succeeded -> one charge; failed -> infra_error,
    charge + refund."""
    settings = _retry_settings(tmp_path, sqlite_url, synthetic_benchmark, lease_ttl_s=5)
    with running_api(settings) as api:
        token = _team(api.db)
        sub_id = _upload(api, token, model_archives["slow"], "slow")
        worker = Worker(settings, api.db, DockerRunner(), name="w")
        worker.start_thread()
        try:
            _until(
                lambda: (_sub(api.db, sub_id).runner_handle or "").endswith("-hidden-a1"), what="hidden run"
            )
            first_handle = _sub(api.db, sub_id).runner_handle or ""
            _restart_dockerd()
            _until(
                lambda: _sub(api.db, sub_id).status.value in ("succeeded", "failed"),
                timeout=240,
                what="the run to end",
            )
        finally:
            worker.stop()
        sub = _sub(api.db, sub_id)
        body = api.client.get(f"/api/v1/submissions/{sub_id}", headers=f.auth(token)).json()
        notes = " ".join(e["note"] or "" for e in body["events"])
        assert "resume where it stopped" in notes, notes
        assert sub.attempt == 2
        if sub.status.value == "succeeded":
            assert _ledger(api.db, sub_id) == ["charge"]
        else:
            assert sub.error_code == "infra_error"
            assert _ledger(api.db, sub_id) == ["charge", "refund"]
        # The engine killed attempt 1's container while it was down, so nobody could remove it;
        # remove it here so later tests on the same engine see no leftovers.
        first = first_handle.removeprefix("docker:")
        assert first.endswith("-hidden-a1")
        _until(lambda: docker_client.ping(), timeout=60, what="the engine")
        for name in _containers(docker_client, first):
            docker_client.containers.get(name).remove(force=True)
    assert _containers(docker_client, first) == []


class _CountingRunner(DockerRunner):
    """The real Docker runner, counting the containers it starts per phase."""

    def __init__(self) -> None:
        super().__init__()
        self.starts: list[str] = []

    def start(self, spec: Any) -> str:
        self.starts.append(spec.phase)
        return super().start(spec)


def test_scorer_crash_after_the_hidden_run_holds_the_team_until_released(
    tmp_path: Path,
    db_url: str,
    synthetic_benchmark: Path,
    model_archives: dict[str, Path],
    docker_client: docker.DockerClient,
) -> None:
    """Issue 19 item 1 (was issue 11 item 2), by fault injection on the real engine: the scorer raises
    after the hidden run. The hidden container started exactly once and the run is not re-scored: it
    ends infra_error, charged (a hidden run happened), the team held; the team's next run waits
    queued until a maintainer releases the team, then runs."""
    from server.runs import holds

    calls: list[int] = []

    def flaky(*args: Any) -> Any:
        calls.append(1)
        if len(calls) == 1:
            raise RuntimeError("injected scorer crash")
        return score_report(*args)

    settings = make_settings(
        tmp_path, db_url, benchmark_dir=synthetic_benchmark, max_upload_bytes=1024**3, bootstrap_resamples=200
    )
    with running_api(settings) as api:
        token = _team(api.db, active=2)
        sub_id = _upload(api, token, model_archives["good"], "good")
        waiting = _upload(api, token, model_archives["slow"], "slow")
        runner = _CountingRunner()
        worker = Worker(settings, api.db, runner, name="w", scorer=flaky)
        assert worker.run_once()
        sub = _sub(api.db, sub_id)
        assert (sub.status.value, sub.error_code, sub.retries) == ("failed", "infra_error", 0)
        assert runner.starts == ["preflight", "hidden"] and len(calls) == 1
        assert _ledger(api.db, sub_id) == ["charge"]
        assert _containers(docker_client, f"csawm-run-{worker.instance}-{sub_id}-") == []
        assert not worker.run_once() and _sub(api.db, waiting).status.value == "queued"
        with api.db.transaction() as session:
            holds.release(session, _sub(api.db, sub_id).team_id, actor="test")
        assert worker.run_once()
        assert _sub(api.db, waiting).status.value == "succeeded" and len(calls) == 2


def test_sigterm_mid_run_hands_the_run_back_and_a_restart_finishes_it(
    tmp_path: Path,
    db_url: str,
    synthetic_benchmark: Path,
    model_archives: dict[str, Path],
    docker_client: docker.DockerClient,
) -> None:
    """Issue 11 item 5: SIGTERM on `csawm worker` mid-run stops the container, hands the run back (no
    attempt burned, no charge) and exits within 15 s; a restarted worker finishes it exactly once."""
    settings = make_settings(tmp_path, db_url, benchmark_dir=synthetic_benchmark, max_upload_bytes=1024**3)
    env = _env(
        {
            "CSAWM_DATA_DIR": str(settings.data_dir),
            "CSAWM_DATABASE_URL": db_url,
            "CSAWM_BENCHMARK_DIR": str(synthetic_benchmark),
            "CSAWM_POLL_INTERVAL": "0.2",
            "CSAWM_BOOTSTRAP_RESAMPLES": "200",
        }
    )
    with running_api(settings) as api:
        token = _team(api.db)
        sub_id = _upload(api, token, model_archives["slow"], "slow")
        log = tmp_path / "worker.log"
        proc = subprocess.Popen(
            [CSAWM, "worker", "--name", "stopping"], env=env, stdout=log.open("w"), stderr=subprocess.STDOUT
        )
        try:

            def hidden_running() -> str | None:
                handle = (_sub(api.db, sub_id).runner_handle or "").removeprefix("docker:")
                running = handle.endswith("-hidden-a1") and docker_client.containers.list(
                    filters={"name": handle}
                )
                return handle if running else None

            container = _until(hidden_running, what="the hidden container running")
            sent = time.monotonic()
            proc.send_signal(signal.SIGTERM)
            proc.wait(30)
            took = time.monotonic() - sent
        finally:
            if proc.poll() is None:
                proc.kill()
        assert proc.returncode == 0, log.read_text()[-3000:]
        assert took < 15, f"exit took {took:.1f} s"
        sub = _sub(api.db, sub_id)
        assert (sub.status.value, sub.resume_status, sub.retries, sub.lease_owner) == (
            "queued",
            "running",
            0,
            None,
        )
        assert _containers(docker_client, container) == []
        assert _ledger(api.db, sub_id) == ["charge"]
        done = subprocess.run(
            [CSAWM, "worker", "--once", "--name", "again"],
            env=env,
            timeout=300,
            capture_output=True,
            text=True,
        )
        assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
        sub = _sub(api.db, sub_id)
        assert sub.status.value == "succeeded" and sub.retries == 0
        body = api.client.get(f"/api/v1/submissions/{sub_id}", headers=f.auth(token)).json()
        assert [e["status"] for e in body["events"]].count("succeeded") == 1
        assert _ledger(api.db, sub_id) == ["charge"]


def test_janitor_removes_containers_of_ended_runs_and_past_their_deadline(
    tmp_path: Path, sqlite_url: str, synthetic_benchmark: Path, docker_client: docker.DockerClient
) -> None:
    """Issue 11 item 5: what a killed process left behind is removed at the next start."""
    from runner.docker_backend import DEADLINE_LABEL
    from server.worker import janitor

    settings = make_settings(tmp_path, sqlite_url, benchmark_dir=synthetic_benchmark)
    image = "csawm-base/python:bookworm"
    with running_api(settings) as api:
        worker = Worker(settings, api.db, DockerRunner(), name="janitor-test")
        tag = f"{worker.instance}-jt{os.getpid()}"
        made = []
        for run_id, deadline in (
            (f"{tag}-expired", "2000-01-01T00:00:00Z"),
            (f"{tag}-future", "2999-01-01T00:00:00Z"),
            (f"check-jt{os.getpid()}", "2000-01-01T00:00:00Z"),
        ):
            c = docker_client.containers.create(
                image,
                ["sleep", "600"],
                name=f"csawm-run-{run_id}-a1",
                labels={"csawm.run_id": run_id, DEADLINE_LABEL: deadline},
                network_mode="none",
            )
            c.start()
            made.append(c.name)
        try:
            swept = janitor.sweep(settings, api.db, worker.runner, worker.instance)
            assert f"docker:{made[0]}" in swept.containers and f"docker:{made[2]}" in swept.containers
            assert _containers(docker_client, made[0]) == [] and _containers(docker_client, made[2]) == []
            assert _containers(docker_client, made[1]) == [made[1]]  # not expired, not ours to judge
        finally:
            for name in made:
                with contextlib.suppress(docker.errors.NotFound):
                    docker_client.containers.get(name).remove(force=True)
