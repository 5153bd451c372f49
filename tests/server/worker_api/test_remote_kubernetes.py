"""A remote worker with the Kubernetes runner (issue 25 items 2 and 5): the custodian's deployment.

Real: the server (the app served on loopback over HTTP, SQLite), the worker API, the `RemoteWorker`
loop with its images-only test set (a copy of the images without any label), the real
`KubernetesRunner` with the official client, the Job manifests, the collector's frame, the load
step's volume and its stamp, which the worker checks by its images-only lines before leasing
(as ``csawm worker --server`` does), and the scoring on the server. Each hidden Job mounts its
phase's folder of the volume: ``hidden/`` for a private phase, ``public/`` for a development one.
Simulated: the API server and
Job controller (`tests.k8s.fake_cluster`) and the kubelet (`tests.k8s.input_kubelet`, a "model"
predicting the rows of the manifest its Pod mounts). Containers on this path: tests/k8s.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import threading
from datetime import timedelta
from pathlib import Path

from srvtest import factories as f
from srvtest.app import make_settings
from srvtest.live import live_server
from srvtest.remote import cli_env, scored_once, until
from srvtest.served import REPO

from server.app import create_app
from server.clock import utcnow
from server.core.db import Database
from server.models import TERMINAL_STATUSES, RunStatus, Submission
from server.phases import service as phases
from server.remote_worker.client import WorkerApi
from server.remote_worker.transport import Transport
from server.remote_worker.worker import RemoteWorker
from server.worker.inputs import ImagesOnly
from server.worker.test_set import STAMP_FILE, load_volume, verify_images_stamp
from server.worker_api import accounts
from tests.k8s.fake_cluster import FakeCluster
from tests.k8s.input_kubelet import InputKubelet
from tests.k8s.test_worker_e2e import fast_runner

REGISTRY = "registry.example.org:5000"


def test_a_remote_worker_runs_a_run_with_the_kubernetes_runner_scored_once_on_the_server(
    tmp_path: Path, synthetic_benchmark: Path
) -> None:
    db_url = f"sqlite:///{tmp_path / 'server.db'}"
    server = make_settings(
        tmp_path / "srv", db_url, runner="kubernetes", registry=REGISTRY, benchmark_dir=synthetic_benchmark,
        bootstrap_resamples=100,
    )  # fmt: skip
    volume = tmp_path / "csawm-test-images"
    load_volume(synthetic_benchmark, volume, server.run.preflight_images)  # the custodian's load step
    images = tmp_path / "custodian"  # the remote worker's copy: images, no label file
    shutil.copytree(synthetic_benchmark / "images", images / "images")
    wsettings = make_settings(
        tmp_path / "w", "sqlite:///unused.db", runner="kubernetes", registry=REGISTRY, benchmark_dir=images,
        k8s_test_set_digest_file=volume / STAMP_FILE,
    )  # fmt: skip
    inputs = ImagesOnly.prepare(images, wsettings.data_dir, wsettings.run.preflight_images)
    verify_images_stamp(wsettings.k8s.test_set_digest_file, inputs)
    kubelet = InputKubelet({wsettings.k8s.test_images_pvc: volume})
    cluster = FakeCluster(kubelet=kubelet).start()
    db = Database.connect(db_url)
    try:
        with live_server(create_app(server, migrate_on_start=True)) as url:
            team_id = f.team(db, "alpha")
            with db.transaction() as session:
                token = accounts.create_worker(session, "custodian-1", actor="test")[1]
                opened = utcnow() - timedelta(hours=1)
                phases.create(
                    session, {"name": "dev", "opens_at": opened, "test_set": "public"}, actor="test"
                )  # a development phase: the public images only
                subs = [
                    Submission(
                        team_id=team_id,
                        name=phase,
                        phase=phase,
                        image_digest=f"sha256:{i:064x}",
                        image_ref=f"{REGISTRY}/csawm/alpha-{team_id}@sha256:{i + 1:064x}",
                    )
                    for i, phase in enumerate(("private-1", "dev"))
                ]
                session.add_all(subs)
                session.flush()
                ids = {sub.phase: sub.id for sub in subs}
            with Transport(url, token, retry_for_s=10) as transport:
                api = WorkerApi(transport, "node:1:a", "test", inputs.digest)
                worker = RemoteWorker(wsettings, api, fast_runner(wsettings, cluster.url), inputs)
                thread = threading.Thread(target=worker.run_forever, daemon=True)
                thread.start()
                try:
                    until(lambda: _ended(db, list(ids.values())), 120, "the runs to end")
                finally:
                    worker.request_stop()
                    thread.join(30)
            for sub_id in ids.values():
                with db.transaction(write=False) as session:
                    row = session.get(Submission, sub_id)
                    assert row is not None and row.status is RunStatus.SUCCEEDED, row and row.error_detail
                assert scored_once(db_url, sub_id) == (1, 1)
        mounted = {tuple(job.split("-")[-3:-1]): folder for job, folder in kubelet.mounted.items()}
        private, dev = str(ids["private-1"]), str(ids["dev"])
        assert mounted == {
            (private, "preflight"): volume / "preflight", (private, "hidden"): volume / "hidden",
            (dev, "preflight"): volume / "preflight", (dev, "hidden"): volume / "public",
        }  # fmt: skip
    finally:
        db.dispose()
        cluster.stop()


def _ended(db: Database, sub_ids: list[int]) -> bool:
    with db.transaction(write=False) as session:
        rows = [session.get(Submission, sub_id) for sub_id in sub_ids]
        return all(row is not None and row.status in TERMINAL_STATUSES for row in rows)


def test_csawm_worker_with_kubernetes_refuses_an_old_stamp_saying_to_reload(
    tmp_path: Path, synthetic_benchmark: Path
) -> None:
    """The process exits before it leases anything: a volume it cannot verify is not trusted."""
    volume = tmp_path / "v"
    load_volume(synthetic_benchmark, volume, 4)
    old = tmp_path / STAMP_FILE  # the labelled lines only, as written before issue 25
    old.write_text("".join(line + "\n" for line in (volume / STAMP_FILE).read_text().splitlines()[:5]))
    env = cli_env(
        CSAWM_WORKER_TOKEN="not-checked-before-the-volume", CSAWM_DATA_DIR=str(tmp_path / "w"),
        CSAWM_BENCHMARK_DIR=str(synthetic_benchmark), CSAWM_RUNNER="kubernetes", CSAWM_REGISTRY=REGISTRY,
        CSAWM_K8S_TEST_SET_DIGEST_FILE=str(old), CSAWM_PREFLIGHT_IMAGES="4",
    )  # fmt: skip
    done = subprocess.run(
        [sys.executable, "-m", "server.cli.main", "worker", "--server", "http://127.0.0.1:9"],
        env=env, cwd=REPO, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert done.returncode == 2, done.stderr
    assert "has no images line" in done.stderr and "reload the volume" in done.stderr
    assert "docker only" not in done.stderr
