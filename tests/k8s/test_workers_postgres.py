"""Three workers with the Kubernetes runner on one PostgreSQL database: 30 runs, each finished
exactly once (issue 13).

Real: PostgreSQL (a cluster this test starts, ``FOR UPDATE SKIP LOCKED`` leasing), three `Worker`
instances in threads, each with its own real `KubernetesRunner` and official client, the Job
manifests, the collector's frame, the worker's validation and scoring. Simulated: the API server
and Job controller (`fake_cluster`) and the kubelet: `input_kubelet.InputKubelet` predicts the
rows of the mounted manifest without starting containers — the containers are covered by
``test_worker_e2e.py``; here real ones would only make the test slow. The submissions are inserted
directly as pushed registry references (the upload and push are covered there too).
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest

from server.core.db import Database
from server.models import RunStatus, Submission
from server.worker.loop import Worker
from server.worker.test_set import STAMP_FILE, load_volume
from tests.k8s.fake_cluster import FakeCluster
from tests.k8s.input_kubelet import InputKubelet
from tests.k8s.test_worker_e2e import fast_runner
from tests.server.srvtest import factories as f
from tests.server.srvtest.app import make_settings, running_api
from tests.server.srvtest.pg import create_database, postgres_cluster

pytestmark = [pytest.mark.postgres, pytest.mark.timeout(300)]

RUNS = int(__import__("os").environ.get("K8S_PG_RUNS", "30"))
WORKERS = int(__import__("os").environ.get("K8S_PG_WORKERS", "3"))
REGISTRY = "registry.example.org:5000"


@pytest.fixture(scope="module")
def pg_admin() -> Iterator[str]:
    with postgres_cluster() as url:
        yield url


def test_three_workers_finish_thirty_runs_exactly_once(
    tmp_path: Path, pg_admin: str, synthetic_benchmark: Path
) -> None:
    volume = tmp_path / "csawm-test-images"
    settings = make_settings(
        tmp_path,
        create_database(pg_admin),
        runner="kubernetes",
        registry=REGISTRY,
        benchmark_dir=synthetic_benchmark,
        k8s_test_set_digest_file=volume / STAMP_FILE,
        bootstrap_resamples=100,
    )
    load_volume(synthetic_benchmark, volume, settings.run.preflight_images)
    kubelet = InputKubelet({settings.k8s.test_images_pvc: volume})
    cluster = FakeCluster(kubelet=kubelet, request_log_limit=200).start()
    try:
        with running_api(settings) as api:
            ids = _queue_runs(api.db, RUNS)
            workers = [
                Worker(settings, api.db, fast_runner(settings, cluster.url), name=f"w{i}")
                for i in range(WORKERS)
            ]
            for worker in workers:  # the test set once per worker, before the race starts
                worker.prepare_test_set()
            threads = [threading.Thread(target=_drain, args=(w,)) for w in workers]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join(240)
            assert not any(t.is_alive() for t in threads)
            with api.db.transaction(write=False) as session:
                subs = {s.id: (s.status, s.attempt, s.error_detail) for s in session.query(Submission)}
        assert subs == {i: (RunStatus.SUCCEEDED, 1, None) for i in ids}
        jobs = Counter(r.job for r in kubelet.runs)
        assert len(jobs) == 2 * RUNS and set(jobs.values()) == {1}  # one preflight + one hidden Job each
        hidden = Counter(r.job.split("-")[-3] for r in kubelet.runs if r.phase == "hidden")
        assert sorted(int(k) for k in hidden) == sorted(ids) and set(hidden.values()) == {1}
        assert cluster.objects("jobs", settings.k8s.namespace) == []
    finally:
        cluster.stop()


def _queue_runs(db: Database, n: int) -> list[int]:
    team_id = f.team(db, "alpha")
    with db.transaction() as session:
        subs = [
            Submission(
                team_id=team_id,
                name=f"r{i}",
                phase="private-1",
                image_digest=f"sha256:{i:064x}",
                image_ref=f"{REGISTRY}/csawm/alpha-{team_id}@sha256:{i + 1:064x}",
            )
            for i in range(n)
        ]
        session.add_all(subs)
        session.flush()
        return [s.id for s in subs]


def _drain(worker: Worker) -> None:
    """Process runs until the queue is empty (bounded: never more runs than exist, plus retries)."""
    for _ in range(3 * RUNS):
        if not worker.run_once():
            return
