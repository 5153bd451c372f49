"""The worker API against ``csawm serve`` in its own process, through the remote worker's transport
(`server.remote_worker.transport`): the CLI's worker token, who reaches what, the operators' view,
and a server restarted while a worker holds a run."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import httpx
import pytest
from srvtest import factories as f
from srvtest.app import METRICS_TOKEN
from srvtest.archives import write_archive
from srvtest.live import free_port
from srvtest.remote import create_worker
from srvtest.served import served

from server.core.db import Database
from server.remote_worker.transport import (
    ApiError,
    TlsConfig,
    Transport,
    TransportError,
    check_url,
    ssl_context,
)
from server.worker.images_digest import images_digest


def _env(bench: Path) -> dict[str, str]:
    return {"CSAWM_BENCHMARK_DIR": str(bench), "CSAWM_METRICS_TOKEN": METRICS_TOKEN}


def _post(transport: Transport, path: str, body: dict[str, Any]) -> dict[str, Any]:
    """A POST through the transport and its JSON answer."""
    return dict(transport.call("POST", path, json=body).json())


def _lease_body(bench: Path, instance: str) -> dict[str, object]:
    digest = images_digest(bench)
    body = {"instance": instance, "version": "test", "images_digest": digest.images}
    return body | {"public_digest": digest.public, "wait_s": 2}


def test_worker_api_over_a_real_server_process(tmp_path: Path, synthetic_benchmark: Path) -> None:
    port = free_port()
    with served(tmp_path, _env(synthetic_benchmark), port=port) as srv:
        token = create_worker(srv.db_url, tmp_path, "gpu-1")
        assert token.startswith("csawm_") and "\n" not in token  # the token alone on stdout
        db = Database.connect(srv.db_url)
        try:
            researcher = f.member_token(db)
        finally:
            db.dispose()
        # a worker token reaches nothing else; a researcher's token does not reach the worker API
        assert httpx.get(f"{srv.url}/api/v1/submissions", headers=f.auth(token)).status_code == 403
        with Transport(srv.url, researcher) as wrong, pytest.raises(ApiError) as refused:
            _post(wrong, "/lease", _lease_body(synthetic_benchmark, "n:1:a"))
        assert refused.value.status == 401
        archive = tmp_path / "a.tar"
        write_archive(archive, seed="a")
        answer = httpx.post(
            f"{srv.url}/api/v1/submissions", params={"name": "a"}, content=archive.read_bytes(),
            headers=f.auth(researcher),
        )  # fmt: skip
        assert answer.status_code == 201, answer.text
        sub_id = answer.json()["id"]
        with Transport(srv.url, token, retry_for_s=60) as worker:
            lease = _post(worker, "/lease", _lease_body(synthetic_benchmark, "n:1:a"))["lease"]
            assert lease["submission_id"] == sub_id
            # the operators see the remote worker; /readyz does not depend on it
            metrics = httpx.get(f"{srv.url}/metrics", headers=f.auth(METRICS_TOKEN)).text
            assert 'worker="gpu-1/n:1:a"' in metrics and "csawm_workers_up 1.0" in metrics
            assert httpx.get(f"{srv.url}/readyz").status_code == 200
            at = {"owner": lease["owner"], "attempt": lease["attempt"]}
            db_url = srv.db_url
    # the server is down: a renewal waits (retrying) until it is back on the same address
    renewed: dict[str, object] = {}

    def renew() -> None:
        renewed.update(_post(worker, f"/runs/{sub_id}/renew", at))

    with Transport(f"http://127.0.0.1:{port}", token, retry_for_s=60) as worker:
        thread = threading.Thread(target=renew)
        thread.start()
        thread.join(1.5)
        assert thread.is_alive()  # still retrying
        with served(tmp_path, _env(synthetic_benchmark), port=port) as again:
            assert again.db_url == db_url
            thread.join(60)
    assert renewed == {"held": True, "cancel_requested": False}


def test_transport_refuses_clear_text_off_loopback_and_half_a_client_cert(tmp_path: Path) -> None:
    for url in ("http://10.0.0.5:8000", "http://example.org", "ftp://127.0.0.1", "https://"):
        with pytest.raises(TransportError):
            check_url(url)
    for url in ("http://127.0.0.1:8000/", "http://localhost:1", "http://[::1]:2", "https://csawm.example"):
        assert check_url(url) == url.rstrip("/")
    with pytest.raises(TransportError, match="go together"):
        ssl_context(TlsConfig(cert=tmp_path / "c.pem"))
    with pytest.raises(FileNotFoundError):
        ssl_context(TlsConfig(ca=tmp_path / "missing-ca.pem"))


def test_transport_gives_up_after_its_retry_window() -> None:
    url = f"http://127.0.0.1:{free_port()}"
    with (
        Transport(url, "csawm_x", retry_for_s=1.0) as worker,
        pytest.raises(TransportError, match="unreachable"),
    ):
        _post(worker, "/lease", {})
