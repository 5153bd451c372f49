"""The worker with the real Docker runner and engine: real models, a SIGKILLed worker, a server
restart, and the engine becoming unreachable mid-run (through a socket proxy, so the shared engine
itself is never restarted)."""

from __future__ import annotations

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
from srvtest import factories as f
from srvtest.app import make_settings, running_api
from srvtest.live import free_port, live_server
from srvtest.proxy import EngineProxy
from typer.testing import CliRunner

from runner.docker_backend import DockerRunner
from server.accounts import service as accounts
from server.app import create_app
from server.cli.main import app as cli
from server.core.db import Database
from server.models import QuotaEntry, Submission
from server.worker.loop import Worker

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
        sub = session.get(Submission, sub_id)
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
        assert "ValueError: boom on the hidden set" in logs.stdout
        assert _ledger(db, good_id) == ["charge"] and _ledger(db, crash_id) == [
            "charge"
        ]  # model fault: charged
    # The good run's own containers (preflight and hidden), by the name prefix of its handle.
    run_prefix = (good.runner_handle or "").removeprefix("docker:").rsplit("-", 2)[0] + "-"
    assert run_prefix.startswith("csawm-run-") and _containers(docker_client, run_prefix) == []


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
            _until(
                lambda: (_sub(api.db, sub_id).runner_handle or "").endswith("-hidden-a1"), what="hidden run"
            )
            first.send_signal(signal.SIGKILL)
            first.wait(30)
            orphan = (_sub(api.db, sub_id).runner_handle or "").removeprefix("docker:")
            assert orphan in _containers(docker_client, orphan)  # the dead worker's container lives on
        finally:
            if first.poll() is None:
                first.kill()
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
        body = api.client.get(f"/api/v1/submissions/{sub_id}", headers=f.auth(token)).json()
        notes = [e["note"] or "" for e in body["events"]]
        assert any("lease of doomed" in n and "taken over by rescuer" in n for n in notes)
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
        orphan = f"-{first}-hidden-a1"
        assert not [n for n in _containers(docker_client, orphan) if n.startswith("csawm-run-")], (
            "the cut-off container must be stopped and removed by the worker that took the run over"
        )
        db.dispose()
    finally:
        server.terminate()
        server.wait(60)
        log.close()


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
        assert any("will retry" in (e["note"] or "") for e in body["events"])
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
        assert "will retry" in notes, notes
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
