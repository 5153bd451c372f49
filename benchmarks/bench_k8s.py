"""Queued → model container started under the Kubernetes runner, with the fake cluster (issue 13).

    PYTHONPATH=. .venv/bin/python benchmarks/bench_k8s.py [--runs N]

The setup of ``tests/k8s/test_worker_e2e.py``: the real loopback registry, the API (upload + push
with skopeo), a `Worker` with the real `KubernetesRunner` and official client against kmock + the
fake Job controller, and `DockerKubelet` running the Pods' containers with the Docker engine. Each
run uploads a distinct small model image (the base layers are shared, so after the first only the
top layer is new), then calls ``Worker.run_once`` at once (as the embedded worker woken by the
upload would; a separate ``csawm worker`` adds up to ``CSAWM_POLL_INTERVAL``). Printed per run,
from the submission's ``created_at`` (queued, after the push):

* ``preflight_model_s``: until the engine started the preflight Job's model container (this
  includes the lease, writing the handle, creating the Job, the fake controller's Pod, and the
  image pull from the registry when the image is not yet on the "node");
* ``hidden_model_s``: until the hidden Job's model container started (after the whole preflight);

then the medians. The fake's own pacing (20 ms between status updates, `fake_cluster._STEP`) and
the runner's watch cycle are part of the figure; a real cluster adds scheduling and node-side
image pulls that this cannot show.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import uuid
from pathlib import Path

import docker

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))

from server.accounts import service as accounts  # noqa: E402
from server.benchmark.synth import generate  # noqa: E402
from server.models import Submission  # noqa: E402
from server.worker.loop import Worker  # noqa: E402
from server.worker.test_set import STAMP_FILE, load_volume  # noqa: E402
from tests.k8s import test_worker_e2e as e2e  # noqa: E402
from tests.k8s.docker_kubelet import DockerKubelet  # noqa: E402
from tests.k8s.fake_cluster import FakeCluster  # noqa: E402
from tests.server.srvtest import factories as f  # noqa: E402
from tests.server.srvtest.app import open_api  # noqa: E402
from tests.server.srvtest.registry import registry_server  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    docker_client = docker.from_env()
    label = f"csawm-bench-k8s-{uuid.uuid4().hex[:8]}"
    rows: list[tuple[float, float]] = []
    with tempfile.TemporaryDirectory(prefix="csawm-bench-k8s-") as scratch:
        tmp = Path(scratch)
        benchmark = tmp / "bench"
        generate(benchmark, seed=7, n_train=8, n_public=64, n_private=60, resolution=(64, 52), workers=1)
        e2e.BEHAVIOURS = tuple(f"good_{i}" for i in range(args.runs))  # distinct images, all "good"
        tags = e2e.build_model_images(docker_client, label)
        archives = e2e.save_and_forget(docker_client, tags, tmp)
        volume = tmp / "csawm-test-images"
        with registry_server() as registry:
            settings = e2e.e2e_settings(tmp, registry, benchmark, volume / STAMP_FILE)
            load_volume(benchmark, volume, settings.run.preflight_images)
            kubelet = DockerKubelet(
                docker_client,
                volumes={settings.k8s.test_images_pvc: volume},
                collector_image=e2e.BASE_IMAGE,
                label=label,
                pull_auth={"username": registry.username, "password": registry.password},
            )
            cluster = FakeCluster(kubelet=kubelet, request_log_limit=200).start()
            try:
                for api in open_api(settings):
                    f.team(api.db, "alpha")
                    with api.db.transaction() as session:
                        accounts.set_quota(
                            session, "alpha", {"active": 2, "per_day": 99, "per_week": 99}, actor="b"
                        )
                    token = f.user(api.db, "a@x.org", team="alpha")
                    worker = Worker(settings, api.db, e2e.fast_runner(settings, cluster.url))
                    worker.prepare_test_set()
                    for behaviour, archive in archives.items():
                        response = api.client.post(
                            "/api/v1/submissions",
                            params={"name": behaviour},
                            content=archive.read_bytes(),
                            headers=f.auth(token),
                        )
                        response.raise_for_status()
                        sub_id = response.json()["id"]
                        assert worker.run_once()
                        with api.db.transaction(write=False) as session:
                            sub = session.get(Submission, sub_id)
                            assert sub is not None and sub.status.value == "succeeded", (
                                sub and sub.error_detail
                            )
                            queued = sub.created_at.timestamp()
                        starts = {
                            r.phase: r.started_at
                            for r in kubelet.runs
                            if r.container == "model" and f"-{sub_id}-" in r.job
                        }
                        row = (starts["preflight"] - queued, starts["hidden"] - queued)
                        rows.append(row)
                        print(f"run {sub_id}: preflight_model_s={row[0]:.3f} hidden_model_s={row[1]:.3f}")
            finally:
                cluster.stop()
                kubelet.remove_leftovers()
                for image in docker_client.images.list():
                    if any(
                        t.startswith(registry.host) for t in image.tags + image.attrs.get("RepoDigests", [])
                    ):
                        docker_client.images.remove(image.id, force=True)
    print(
        f"median over {len(rows)} runs: preflight_model_s={statistics.median(r[0] for r in rows):.3f} "
        f"hidden_model_s={statistics.median(r[1] for r in rows):.3f}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
