"""The remote worker's loop (`server.remote_worker.worker.RemoteWorker`) in process, against the real
app served on loopback, with the scripted runner (srvtest.fakes): a run whose lease another
worker took over is stopped locally (its container cancelled) when the renewal says so, and the
worker goes on leasing."""

from __future__ import annotations

import threading
import time
from datetime import timedelta
from pathlib import Path

import httpx
from srvtest import factories as f
from srvtest.app import make_settings
from srvtest.archives import write_archive
from srvtest.fakes import FakeRunner
from srvtest.live import live_server
from srvtest.remote import until

from server.app import create_app
from server.clock import utcnow
from server.core.db import Database
from server.models import Submission
from server.remote_worker.client import WorkerApi
from server.remote_worker.transport import Transport
from server.remote_worker.worker import RemoteWorker
from server.worker.inputs import ImagesOnly
from server.worker_api import accounts


def test_a_lease_taken_over_is_stopped_locally_and_the_worker_goes_on(
    tmp_path: Path, sqlite_url: str, synthetic_benchmark: Path
) -> None:
    settings = make_settings(
        tmp_path / "srv", sqlite_url, benchmark_dir=synthetic_benchmark, lease_ttl=timedelta(seconds=3)
    )
    app = create_app(settings, migrate_on_start=True)
    with live_server(app) as url:
        db = Database.connect(sqlite_url)
        try:
            researcher = f.member_token(db)
            with db.transaction() as session:
                token = accounts.create_worker(session, "gpu-1", actor="test")[1]
            archive = tmp_path / "a.tar"
            write_archive(archive, seed="a")
            answer = httpx.post(
                f"{url}/api/v1/submissions", params={"name": "a"}, content=archive.read_bytes(),
                headers=f.auth(researcher), timeout=60,
            )  # fmt: skip
            assert answer.status_code == 201, answer.text
            sub_id = int(answer.json()["id"])
            with db.transaction(write=False) as session:
                sub = session.get(Submission, sub_id)
                assert sub is not None
                runner = FakeRunner(behaviours={sub.image_digest: "hang"})  # runs until cancelled
            wsettings = make_settings(tmp_path / "w", sqlite_url, benchmark_dir=synthetic_benchmark)
            inputs = ImagesOnly.prepare(synthetic_benchmark, wsettings.data_dir, 4)
            with Transport(url, token, retry_for_s=10) as transport:
                api = WorkerApi(transport, "node:1:a", "test", inputs.digest)
                worker = RemoteWorker(wsettings, api, runner, inputs)
                thread = threading.Thread(target=worker.run_forever, daemon=True)
                thread.start()
                until(lambda: runner.started, 30, "the preflight container started")
                handle = runner.handle_for(runner.started[0])
                # the worker stalls past its lease (here: the lease is made to expire) and another
                # worker takes the run over
                with db.transaction() as session:
                    row = session.get(Submission, sub_id)
                    assert row is not None
                    row.lease_expires_at = utcnow() - timedelta(seconds=1)
                with Transport(url, token) as other:
                    other_api = WorkerApi(other, "node:2:b", "test", inputs.digest)
                    taken = other_api.lease(0)
                assert taken is not None and taken.recovered_from == "gpu-1/node:1:a"
                started = time.monotonic()
                until(lambda: handle in runner.cancelled, 10, "the first worker to stop its container")
                assert time.monotonic() - started < 3  # at its next renewal (every third of the TTL)
                assert thread.is_alive()  # it goes on leasing
                with db.transaction(write=False) as session:
                    row = session.get(Submission, sub_id)
                    assert row is not None and row.lease_owner == "gpu-1/node:2:b"
                    assert row.attempt == 2  # the first worker wrote nothing after losing the lease
                worker.request_stop()
                thread.join(20)
                assert not thread.is_alive()
        finally:
            db.dispose()
