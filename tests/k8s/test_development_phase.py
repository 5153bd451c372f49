"""Issue 19 item 2 on the Kubernetes path, without containers: each hidden Job mounts the
test-images volume folder of its run's phase — ``public/`` (the public images only) for a
development phase, ``hidden/`` for a private one — and the run is scored on what it was given.

Real: the `Worker` and its phases, the `KubernetesRunner` with the official client, the Job
manifests, the collector's frame, the load step's volume and stamp, SQLite. Simulated: the API
server and Job controller (`fake_cluster`) and the kubelet (`input_kubelet.InputKubelet`, a "model"
that predicts the rows of the manifest its Pod mounts). The containers and an attacker listing
``/input`` are in ``test_worker_e2e.py``.
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

from server.benchmark.dataset import Benchmark
from server.clock import utcnow
from server.models import Submission
from server.phases import service as phases
from server.worker.loop import Worker
from server.worker.test_set import PUBLIC_DIR, STAMP_FILE, load_volume
from tests.k8s.fake_cluster import FakeCluster
from tests.k8s.input_kubelet import InputKubelet
from tests.k8s.test_worker_e2e import fast_runner
from tests.server.srvtest import factories as f
from tests.server.srvtest.app import make_settings, running_api

REGISTRY = "registry.example.org:5000"


def test_each_hidden_job_mounts_its_phases_input(tmp_path: Path, synthetic_benchmark: Path) -> None:
    volume = tmp_path / "csawm-test-images"
    settings = make_settings(
        tmp_path,
        f"sqlite:///{tmp_path / 'state' / 'csawm.db'}",
        runner="kubernetes",
        registry=REGISTRY,
        benchmark_dir=synthetic_benchmark,
        k8s_test_set_digest_file=volume / STAMP_FILE,
        bootstrap_resamples=100,
    )
    load_volume(synthetic_benchmark, volume, settings.run.preflight_images)
    bench = Benchmark.open(synthetic_benchmark)
    n_public = len(bench.read_public().filenames)  # type: ignore[union-attr]
    n_private = len(bench.read_private().filenames)
    kubelet = InputKubelet({settings.k8s.test_images_pvc: volume})
    cluster = FakeCluster(kubelet=kubelet).start()
    try:
        with running_api(settings) as api:
            with api.db.transaction() as session:
                now = utcnow()
                dev = {"name": "dev", "opens_at": now - timedelta(hours=2), "test_set": "public"}
                phases.create(session, {**dev, "closes_at": now - timedelta(hours=1)}, actor="test")
                phases.create(session, {"name": "final", "opens_at": now - timedelta(hours=1)}, actor="test")
            team_id = f.team(api.db, "alpha")
            with api.db.transaction() as session:
                subs = [
                    Submission(
                        team_id=team_id,
                        name=phase,
                        phase=phase,  # "final": a private live phase
                        image_digest=f"sha256:{i:064x}",
                        image_ref=f"{REGISTRY}/csawm/alpha-{team_id}@sha256:{i + 1:064x}",
                    )
                    for i, phase in enumerate(("dev", "final"))
                ]
                session.add_all(subs)
                session.flush()
                ids = {sub.phase: sub.id for sub in subs}
            worker = Worker(settings, api.db, fast_runner(settings, cluster.url))
            assert worker.run_once() and worker.run_once()
            with api.db.transaction(write=False) as session:
                records = {}
                for phase, sub_id in ids.items():
                    sub = session.get(Submission, sub_id)
                    assert sub is not None and sub.status.value == "succeeded", sub and sub.error_detail
                    records[phase] = sub.reproducibility or {}
        hidden = {
            job.split("-")[-3]: folder.relative_to(volume).as_posix()
            for job, folder in kubelet.mounted.items()
            if job.split("-")[-2] == "hidden"
        }
        assert hidden == {str(ids["dev"]): PUBLIC_DIR, str(ids["final"]): "hidden"}
        preflight = {folder.name for job, folder in kubelet.mounted.items() if "-preflight-" in job}
        assert preflight == {"preflight"}
        assert (records["dev"]["n_hidden_images"], records["dev"]["n_private_images"]) == (n_public, 0)
        assert (records["final"]["n_hidden_images"], records["final"]["n_private_images"]) == (
            n_public + n_private,
            n_private,
        )
    finally:
        cluster.stop()
