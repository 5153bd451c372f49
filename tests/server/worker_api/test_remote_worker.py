"""``csawm worker --server URL`` as a real process against ``csawm serve`` on loopback, with the real
Docker engine (issue 25 item 2): a run scored once on the server, a worker with other images that
leases nothing, SIGTERM handing a run back, a SIGKILLed worker's run taken over after its lease
expired, a server restarted mid-run, a token revoked mid-run, and a database worker and remote
workers serving one queue."""

from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path

import docker
import pytest
from srvtest import factories as f
from srvtest.remote import (
    cli_env,
    create_worker,
    run_row,
    scored_once,
    start_worker,
    submit,
    until,
    worker_log,
)
from srvtest.served import REPO, served

from server.core.db import Database

pytestmark = [pytest.mark.docker, pytest.mark.slow, pytest.mark.timeout(300)]


def _server_env(bench: Path, lease_ttl: str = "3") -> dict[str, str]:
    return {
        "CSAWM_BENCHMARK_DIR": str(bench), "CSAWM_LEASE_TTL": lease_ttl, "CSAWM_RETRY_BACKOFF": "0",
        "CSAWM_BOOTSTRAP_RESAMPLES": "200", "CSAWM_MAX_UPLOAD_BYTES": str(1024**3),
    }  # fmt: skip


def _researcher(db_url: str, runs: int = 10) -> str:
    db = Database.connect(db_url)
    try:
        return f.member_token(db, runs=runs)
    finally:
        db.dispose()


def _ledger(db_url: str, sub_id: int) -> list[str]:
    db = Database.connect(db_url)
    try:
        return f.ledger(db, sub_id)
    finally:
        db.dispose()


def _hidden_running(client: docker.DockerClient, db_url: str, sub_id: int, attempt: int = 1) -> str:
    """The hidden stage's container name once it runs (the handle is written before it starts)."""
    handle = run_row(db_url, sub_id).runner_handle or ""
    if not handle.endswith(f"-hidden-a{attempt}"):
        return ""
    name = handle.removeprefix("docker:")
    running = any(c.status == "running" for c in client.containers.list(filters={"name": name}))
    return name if running else ""


def _status(db_url: str, sub_id: int) -> str:
    return run_row(db_url, sub_id).status.value


def _stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.kill()
        proc.wait(30)


def test_remote_worker_proves_its_images_hands_back_on_sigterm_and_the_server_scores_once(
    tmp_path: Path,
    synthetic_benchmark: Path,
    private_only_benchmark: Path,
    model_archives: dict[str, Path],
    docker_client: docker.DockerClient,
) -> None:
    with served(tmp_path / "srv", _server_env(synthetic_benchmark)) as srv:
        token = create_worker(srv.db_url, tmp_path / "srv", "gpu-1")
        sub_id = submit(srv.url, _researcher(srv.db_url), model_archives["slow"], "slow")
        # other images (no public set): refused before leasing, exit 2 saying so; the run waits
        other = start_worker(srv.url, token, private_only_benchmark, tmp_path, "other")
        assert other.wait(60) == 2, worker_log(tmp_path, "other")
        assert "the test set differs" in worker_log(tmp_path, "other")
        assert _status(srv.db_url, sub_id) == "queued" and run_row(srv.db_url, sub_id).attempt == 0
        # SIGTERM mid-run: the container stopped, the run handed back (charged once), exit 0
        first = start_worker(srv.url, token, synthetic_benchmark, tmp_path, "first")
        try:
            name = until(lambda: _hidden_running(docker_client, srv.db_url, sub_id), what="hidden run")
            first.send_signal(signal.SIGTERM)
            assert first.wait(60) == 0, worker_log(tmp_path, "first")
        finally:
            _stop(first)
        assert _status(srv.db_url, sub_id) == "queued"
        assert not docker_client.containers.list(all=True, filters={"name": name})
        # a worker with the right images finishes it: scored once on the server
        second = start_worker(srv.url, token, synthetic_benchmark, tmp_path, "second")
        try:
            until(lambda: _status(srv.db_url, sub_id) == "succeeded", what="the run scored")
        finally:
            second.send_signal(signal.SIGTERM)
            assert second.wait(60) == 0, worker_log(tmp_path, "second")
        assert scored_once(srv.db_url, sub_id) == (1, 1)
        assert _ledger(srv.db_url, sub_id) == ["charge"]
        assert (run_row(srv.db_url, sub_id).reproducibility or {}).get("worker") == "gpu-1/second"
        # the worker's data dir holds no label file, and no run folder is left behind
        assert not any(p.suffix == ".csv" and "label" in p.name for p in (tmp_path / "second").rglob("*"))
        assert not list((tmp_path / "second" / "runs").glob("*"))


def test_sigkilled_remote_worker_run_is_taken_over_after_its_lease_expires_and_scored_once(
    tmp_path: Path,
    synthetic_benchmark: Path,
    model_archives: dict[str, Path],
    docker_client: docker.DockerClient,
) -> None:
    with served(tmp_path / "srv", _server_env(synthetic_benchmark)) as srv:
        token = create_worker(srv.db_url, tmp_path / "srv", "gpu-1")
        sub_id = submit(srv.url, _researcher(srv.db_url), model_archives["slow"], "slow")
        doomed = start_worker(srv.url, token, synthetic_benchmark, tmp_path, "doomed")
        try:
            orphan = until(lambda: _hidden_running(docker_client, srv.db_url, sub_id), what="hidden run")
            doomed.send_signal(signal.SIGKILL)
            doomed.wait(30)
        finally:
            _stop(doomed)
        rescuer = start_worker(srv.url, token, synthetic_benchmark, tmp_path, "rescuer")
        try:
            until(lambda: _status(srv.db_url, sub_id) == "succeeded", what="the run taken over and scored")
        finally:
            _stop(rescuer)
        assert run_row(srv.db_url, sub_id).attempt == 2
        assert scored_once(srv.db_url, sub_id) == (1, 1)
        assert _ledger(srv.db_url, sub_id) == ["charge"]
        assert not docker_client.containers.list(all=True, filters={"name": orphan})  # stopped by the rescuer


def test_server_restarted_mid_run_the_remote_worker_reconnects_and_the_run_finishes_once(
    tmp_path: Path,
    synthetic_benchmark: Path,
    model_archives: dict[str, Path],
    docker_client: docker.DockerClient,
) -> None:
    from srvtest.live import free_port

    port = free_port()
    env = _server_env(synthetic_benchmark, lease_ttl="30")
    with served(tmp_path / "srv", env, port=port) as srv:
        token = create_worker(srv.db_url, tmp_path / "srv", "gpu-1")
        sub_id = submit(srv.url, _researcher(srv.db_url), model_archives["slow"], "slow")
        worker = start_worker(srv.url, token, synthetic_benchmark, tmp_path, "w")
        until(lambda: _hidden_running(docker_client, srv.db_url, sub_id), what="hidden run")
        db_url = srv.db_url
    try:  # the server is down while the model runs; the worker retries until it is back
        with served(tmp_path / "srv", env, port=port):
            until(lambda: _status(db_url, sub_id) == "succeeded", what="the run scored after the restart")
        assert worker.poll() is None, worker_log(tmp_path, "w")  # it rode the outage out
    finally:
        _stop(worker)
    assert scored_once(db_url, sub_id) == (1, 1)
    assert run_row(db_url, sub_id).attempt == 1
    assert _ledger(db_url, sub_id) == ["charge"]


def test_revoked_worker_token_mid_run_stops_the_container_and_the_run_is_taken_over(
    tmp_path: Path,
    synthetic_benchmark: Path,
    model_archives: dict[str, Path],
    docker_client: docker.DockerClient,
) -> None:
    with served(tmp_path / "srv", _server_env(synthetic_benchmark)) as srv:
        revoked = create_worker(srv.db_url, tmp_path / "srv", "gpu-1")
        spare = create_worker(srv.db_url, tmp_path / "srv", "gpu-2")
        sub_id = submit(srv.url, _researcher(srv.db_url), model_archives["slow"], "slow")
        worker = start_worker(srv.url, revoked, synthetic_benchmark, tmp_path, "w")
        try:
            name = until(lambda: _hidden_running(docker_client, srv.db_url, sub_id), what="hidden run")
            env = cli_env(CSAWM_DATABASE_URL=srv.db_url, CSAWM_DATA_DIR=str(tmp_path / "srv" / "state"))
            subprocess.run(
                [sys.executable, "-m", "server.cli.main", "admin", "revoke-worker", "gpu-1"],
                env=env, cwd=REPO, check=True, capture_output=True,
            )  # fmt: skip
            assert worker.wait(60) == 3, worker_log(tmp_path, "w")
            assert "refused the worker token" in worker_log(tmp_path, "w")
        finally:
            _stop(worker)
        until(lambda: not docker_client.containers.list(filters={"name": name}), 30, "the container stopped")
        rescuer = start_worker(srv.url, spare, synthetic_benchmark, tmp_path, "rescuer")
        try:
            until(lambda: _status(srv.db_url, sub_id) == "succeeded", what="the run taken over and scored")
        finally:
            _stop(rescuer)
        assert scored_once(srv.db_url, sub_id) == (1, 1)
        assert _ledger(srv.db_url, sub_id) == ["charge"]


def test_database_worker_and_remote_worker_serve_one_queue_each_run_scored_once(
    tmp_path: Path, synthetic_benchmark: Path, model_archives: dict[str, Path]
) -> None:
    with served(tmp_path / "srv", _server_env(synthetic_benchmark)) as srv:
        token = create_worker(srv.db_url, tmp_path / "srv", "gpu-1")
        db = Database.connect(srv.db_url)
        try:  # a team submits an image once: two teams, two images
            teams = [f.member_token(db, f"team{i}", f"{i}@x.org") for i in range(2)]
        finally:
            db.dispose()
        ids = [
            submit(srv.url, token_, model_archives[model], f"{model}{i}")
            for i, token_ in enumerate(teams)
            for model in ("slow", "good")
        ]
        remote = start_worker(srv.url, token, synthetic_benchmark, tmp_path, "remote")
        env = cli_env(
            CSAWM_DATABASE_URL=srv.db_url, CSAWM_DATA_DIR=str(tmp_path / "srv" / "state"),
            CSAWM_BENCHMARK_DIR=str(synthetic_benchmark), CSAWM_HIDDEN_END_GRID="0",
            CSAWM_POLL_INTERVAL="0.2", CSAWM_LEASE_TTL="3", CSAWM_BOOTSTRAP_RESAMPLES="200",
            CSAWM_EMBEDDED_DISPATCHER="false",
        )  # fmt: skip
        with (tmp_path / "db.log").open("w") as out:
            local = subprocess.Popen(
                [sys.executable, "-m", "server.cli.main", "worker", "--name", "db-worker"],
                env=env, cwd=REPO, stdout=out, stderr=subprocess.STDOUT,
            )  # fmt: skip
        try:
            until(lambda: all(_status(srv.db_url, i) == "succeeded" for i in ids), 240, "every run scored")
        finally:
            _stop(remote)
            _stop(local)
        workers = {(run_row(srv.db_url, i).reproducibility or {}).get("worker") for i in ids}
        assert all(scored_once(srv.db_url, i) == (1, 1) for i in ids)
        assert workers == {"db-worker", "gpu-1/remote"}, workers  # both took runs off the queue
