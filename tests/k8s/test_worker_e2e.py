"""The Kubernetes path end to end (issue 13): upload → registry → preflight and hidden Jobs →
containers → collector → framed predictions → score.

Real here: the API (upload, inspection, quota), the push to a real registry (Debian's
``docker-registry`` on loopback, htpasswd auth, by ``skopeo``), the `Worker` with its phases and the
policy table, the real `KubernetesRunner` with the real official client, the Job manifests it
builds (`runner.kubernetes.manifest`), the model images (built here, pulled back from the registry by
digest), the containers (the Docker engine, with the Pod's security context as the sandbox), the
trusted collector (``python -m runner.kubernetes.collector`` in ``csawm-base/python:bookworm`` with
the repository's ``runner/`` mounted read-only: the server image is not built on this machine),
the framing, the scoring, and the operator's load step (`server.worker.test_set.load_volume`)
writing the test-images "volume" (a host folder) and its ``MANIFEST.sha256``.

Simulated: the API server (kmock + `fake_cluster.FakeApiServer`), the Job controller (Pod creation,
Job conditions), scheduling (every Pod is placed at once), and the kubelet's bookkeeping
(`docker_kubelet.DockerKubelet` turns engine states into Pod statuses and bind-mounts the PVC
folder). The fakes are our model of Kubernetes; only ``test_live.py`` may claim cluster behaviour.
"""

from __future__ import annotations

import hashlib
import io
import json
import tarfile
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, replace
from datetime import timedelta
from pathlib import Path
from typing import Any

import docker
import pytest
from kubernetes import client
from sqlalchemy import delete
from sqlalchemy.orm import undefer

from runner.kubernetes.executor import KubernetesRunner
from server.accounts import service as accounts
from server.app import create_app
from server.benchmark.dataset import Benchmark
from server.clock import utcnow
from server.core.db import Database
from server.core.k8s_settings import kubernetes_runner_config
from server.core.settings import Settings
from server.models import Phase, QuotaEntry, Submission
from server.phases import service as phases
from server.worker.loop import Worker
from server.worker.test_set import STAMP_FILE, load_volume
from tests.k8s.docker_kubelet import DockerKubelet
from tests.k8s.fake_cluster import FakeCluster
from tests.server.srvtest import factories as f
from tests.server.srvtest.app import Api, make_settings, open_api
from tests.server.srvtest.registry import RegistryServer, missing_binaries, registry_server

pytestmark = [
    pytest.mark.docker,
    pytest.mark.timeout(300),
    pytest.mark.skipif(bool(missing_binaries()), reason=f"needs {', '.join(missing_binaries())}"),
]

BASE_IMAGE = "csawm-base/python:bookworm"
MODEL_PY = Path(__file__).with_name("model_image") / "model.py"
# good_again: a second good image; survey, survey_dev: the attacker listing /input, twice (two digests)
BEHAVIOURS = ("good", "crash", "sleep", "oom", "symlink", "good_again", "survey", "survey_dev")
RUN_TIMEOUT = timedelta(seconds=8)  # the good model needs ~1 s; headroom for a loaded CI machine


@dataclass
class Stack:
    """Everything one module's tests share (built once: images, registry, app, fake cluster)."""

    api: Api
    settings: Settings
    cluster: FakeCluster
    kubelet: DockerKubelet
    runner: KubernetesRunner
    registry: RegistryServer
    archives: dict[str, Path]
    token: str
    volume: Path


def build_model_images(docker_client: docker.DockerClient, label: str) -> dict[str, str]:
    """One image per behaviour, FROM the offline base (no network); returns behaviour -> tag."""
    tags = {}
    for behaviour in BEHAVIOURS:
        tag = f"{label}/{behaviour}:1"
        dockerfile = (
            f"FROM {BASE_IMAGE}\nCOPY model.py /opt/model.py\nUSER 1000\n"
            f'CMD ["python3", "/opt/model.py", "{behaviour}"]\n'
        )
        buf = io.BytesIO()
        with tarfile.open(fileobj=buf, mode="w") as tar:
            for name, data in (("Dockerfile", dockerfile.encode()), ("model.py", MODEL_PY.read_bytes())):
                info = tarfile.TarInfo(name)
                info.size, info.mode = len(data), 0o644
                tar.addfile(info, io.BytesIO(data))
        buf.seek(0)
        docker_client.images.build(fileobj=buf, custom_context=True, tag=tag, network_mode="none", rm=True)
        tags[behaviour] = tag
    return tags


def save_and_forget(
    docker_client: docker.DockerClient, tags: dict[str, str], folder: Path
) -> dict[str, Path]:
    """``docker save`` each image, then remove it from the engine: the kubelet must pull it back."""
    archives = {}
    for behaviour, tag in tags.items():
        path = folder / f"{behaviour}.tar"
        with path.open("wb") as fh:
            for chunk in docker_client.images.get(tag).save(named=True):
                fh.write(chunk)
        archives[behaviour] = path
        docker_client.images.remove(tag, force=True)
    return archives


def fast_runner(settings: Settings, url: str) -> KubernetesRunner:
    """The worker's runner config (`kubernetes_runner_config`, as in production) with short timers."""
    config = replace(
        kubernetes_runner_config(settings.k8s),
        watch_timeout=timedelta(seconds=1),
        api_backoff=timedelta(milliseconds=5),
        api_backoff_max=timedelta(milliseconds=50),
        runner_grace=timedelta(milliseconds=500),
    )
    return KubernetesRunner(config, api_client=client.ApiClient(client.Configuration(host=url)))


def e2e_settings(tmp: Path, registry: RegistryServer, benchmark: Path, stamp: Path, **extra: Any) -> Settings:
    values: dict[str, Any] = {
        "runner": "kubernetes",
        "registry": registry.host,
        "registry_insecure": True,
        "registry_username": registry.username,
        "registry_password": registry.password,
        "benchmark_dir": benchmark,
        "k8s_test_set_digest_file": stamp,
        "k8s_collector_image": BASE_IMAGE,
        "k8s_image_pull_secrets": "csawm-registry-pull",
        "k8s_startup_allowance": "60s",
        "run_timeout": RUN_TIMEOUT,
        "preflight_timeout": timedelta(seconds=60),
        "run_memory": 256 * 1024**2,
        "run_cpus": 1.0,
        "bootstrap_resamples": 100,
        "max_upload_bytes": 1024**3,
    }
    values.update(extra)
    return make_settings(tmp, f"sqlite:///{tmp / 'state' / 'csawm.db'}", **values)


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory, synthetic_benchmark: Path) -> Iterator[Stack]:
    docker_client = docker.from_env()
    docker_client.ping()  # fails loudly (never skips) when the engine is not running
    label = f"csawm-k8s-e2e-{uuid.uuid4().hex[:8]}"
    tmp = tmp_path_factory.mktemp("k8s-e2e")
    tags = build_model_images(docker_client, label)
    archives = save_and_forget(docker_client, tags, tmp)
    volume = tmp / "csawm-test-images"
    with registry_server() as registry:
        settings = e2e_settings(tmp, registry, synthetic_benchmark, volume / STAMP_FILE)
        load_volume(synthetic_benchmark, volume, settings.run.preflight_images)  # the operator's load step
        kubelet = DockerKubelet(
            docker_client,
            volumes={settings.k8s.test_images_pvc: volume},
            collector_image=BASE_IMAGE,
            label=label,
            pull_auth={"username": registry.username, "password": registry.password},
        )
        cluster = FakeCluster(kubelet=kubelet, request_log_limit=200).start()
        runner = fast_runner(settings, cluster.url)
        try:
            for api in open_api(settings):
                f.team(api.db, "alpha")
                with api.db.transaction() as session:
                    accounts.set_quota(
                        session, "alpha", {"active": 2, "per_day": 50, "per_week": 50}, actor="t"
                    )
                token = f.user(api.db, "a@x.org", team="alpha")
                yield Stack(api, settings, cluster, kubelet, runner, registry, archives, token, volume)
        finally:
            cluster.stop()
            kubelet.remove_leftovers()
            for image in docker_client.images.list():
                if any(t.startswith(registry.host) for t in image.tags + image.attrs.get("RepoDigests", [])):
                    docker_client.images.remove(image.id, force=True)
            docker_client.close()


def upload(stack: Stack, behaviour: str) -> dict[str, Any]:
    response = stack.api.client.post(
        "/api/v1/submissions",
        params={"name": f"k8s-{behaviour}"},
        content=stack.archives[behaviour].read_bytes(),
        headers=f.auth(stack.token),
    )
    assert response.status_code == 201, response.text
    body: dict[str, Any] = response.json()
    assert body["image_ref"].startswith(f"{stack.registry.host}/csawm/alpha-")
    return body


def submission(db: Database, sub_id: int) -> Submission:
    with db.transaction(write=False) as session:
        sub = session.get(Submission, sub_id)
        assert sub is not None
        session.expunge(sub)
        return sub


def ledger(db: Database, sub_id: int) -> list[str]:
    with db.transaction(write=False) as session:
        rows = session.query(QuotaEntry).filter_by(submission_id=sub_id).order_by(QuotaEntry.id)
        return [row.kind.value for row in rows]


@pytest.mark.parametrize(
    ("behaviour", "status", "error_code", "failed_phase"),
    [
        ("good", "succeeded", None, None),
        ("crash", "failed", "nonzero_exit", "hidden"),
        ("sleep", "failed", "timeout", "hidden"),
        ("oom", "failed", "oom", "hidden"),
        ("symlink", "failed", "output_invalid", "hidden"),
    ],
)
def test_upload_to_score_through_kubernetes_jobs(
    stack: Stack, behaviour: str, status: str, error_code: str | None, failed_phase: str | None
) -> None:
    body = upload(stack, behaviour)
    sub_id, ref = body["id"], body["image_ref"]
    assert Worker(stack.settings, stack.api.db, stack.runner).run_once()

    got = stack.api.client.get(f"/api/v1/submissions/{sub_id}", headers=f.auth(stack.token)).json()
    assert (got["status"], got["error_code"], got["failed_phase"]) == (status, error_code, failed_phase), got[
        "error_message"
    ]
    ours = [r for r in stack.kubelet.runs if f"-{sub_id}-" in r.job]
    models = [(r.phase, r.image) for r in ours if r.container == "model"]
    # One preflight and exactly one hidden model container, both from the pushed reference.
    assert models == [("preflight", ref), ("hidden", ref)]
    assert stack.kubelet.pulled.count(ref) == 1  # pulled from the registry by digest, once
    collectors = [r.phase for r in ours if r.container == "collector"]
    assert collectors == (["preflight", "hidden"] if behaviour in ("good", "symlink") else ["preflight"])
    sub = submission(stack.api.db, sub_id)
    assert "sandbox broken" not in (sub.log_tail or "") and "uid 65532" in (sub.log_tail or "")
    if status == "succeeded":
        assert sub.reproducibility is not None
        assert got["metrics"]["n_images"] == 60
        assert sub.reproducibility["runner_backend"] == "kubernetes"
        assert (
            sub.reproducibility["test_set_manifest_sha256"]
            == stack.volume.joinpath(STAMP_FILE).read_text().split()[0]
        )
    assert ledger(stack.api.db, sub_id) == ["charge"]  # a model failure is the submitter's: charged
    assert stack.cluster.objects("jobs", stack.settings.k8s.namespace) == []  # every Job cleaned up


def test_a_volume_with_another_test_set_blocks_the_worker(
    stack: Stack, tmp_path: Path, synthetic_benchmark: Path
) -> None:
    """Issue 13 item 5: a stamp that does not match → no run leased, /readyz 503 naming test_set,
    the submission stays queued with only its submission charge (nothing run, nothing lost)."""
    stamp = tmp_path / STAMP_FILE
    lines = (stack.volume / STAMP_FILE).read_text().splitlines()
    lines[0] = "0" * 64 + "  test-set"  # the operator loaded another release
    stamp.write_text("\n".join(lines) + "\n")
    bad = e2e_settings(
        tmp_path, stack.registry, synthetic_benchmark, stamp, data_dir=stack.settings.data_dir,
        database_url=stack.settings.database_url,
    )  # fmt: skip
    body = upload(stack, "good_again")
    app = create_app(bad, runner=stack.runner, embedded_worker=True)
    from fastapi.testclient import TestClient

    runs_before = len(stack.kubelet.runs)
    with TestClient(app) as http:
        ready = http.get("/readyz")
        for _ in range(100):  # bounded: the embedded worker blocks on its first loop iteration
            if ready.status_code == 503 and "test_set" in ready.json()["error"]["checks"]:
                break
            time.sleep(0.1)
            ready = http.get("/readyz")
        assert ready.status_code == 503, ready.text
        assert ready.json()["error"]["checks"] == ["test_set"]
        assert "test-set differ" in ready.json()["error"]["details"]["test_set"]
    assert submission(stack.api.db, body["id"]).status.value == "queued"
    assert ledger(stack.api.db, body["id"]) == ["charge"]
    assert len(stack.kubelet.runs) == runs_before  # no Job ran
    # The same queued run goes through once a worker sees the right volume.
    assert Worker(stack.settings, stack.api.db, stack.runner).run_once()
    assert submission(stack.api.db, body["id"]).status.value == "succeeded"


def _survey(db: Database, sub_id: int) -> tuple[dict[str, str], dict[str, Any]]:
    """What the surveying model printed it saw in its hidden Pod, and the run's reproducibility record."""
    with db.transaction(write=False) as session:
        sub = session.get(Submission, sub_id, options=[undefer(Submission.hidden_log_tail)])
        assert sub is not None and sub.status.value == "succeeded", sub and sub.error_detail
        log, record = sub.hidden_log_tail or "", dict(sub.reproducibility or {})
    (line,) = [line for line in log.splitlines() if line.startswith("survey ")]
    return json.loads(line.removeprefix("survey ")), record


def test_a_development_phase_mounts_the_public_folder_only(stack: Stack, synthetic_benchmark: Path) -> None:
    """Issue 19 item 2 under Kubernetes: the hidden Pod of a development phase mounts ``public/`` of
    the test-images volume; the attacker that lists ``/input`` sees no private image (by name or by
    content), while a private phase's hidden Pod still sees ``hidden/`` (private + public)."""
    bench = Benchmark.open(synthetic_benchmark)
    public, private = bench.read_public(), bench.read_private()
    assert public is not None and bench.public_images is not None

    def files(folder: Path, names: tuple[str, ...]) -> dict[str, str]:
        return {f"images/{n}": hashlib.sha256((folder / n).read_bytes()).hexdigest()[:16] for n in names}

    public_files = files(bench.public_images, public.filenames)
    private_files = files(bench.private_images, private.filenames)
    private_run = upload(stack, "survey")["id"]  # the server's CSAWM_PHASE row: private
    assert Worker(stack.settings, stack.api.db, stack.runner).run_once()
    with stack.api.db.transaction() as session:
        dev = {"name": "dev", "opens_at": utcnow() - timedelta(hours=1), "test_set": "public"}
        phases.create(session, dev, actor="t")
    try:
        dev_run = upload(stack, "survey_dev")["id"]
        assert Worker(stack.settings, stack.api.db, stack.runner).run_once()
    finally:  # the module's other tests submit to the CSAWM_PHASE row, which "dev" closed
        with stack.api.db.transaction() as session:
            session.execute(delete(Phase).where(Phase.name == "dev"))
            phases.update(session, stack.settings.phase, {"closes_at": None}, actor="t")

    dev_seen, dev_record = _survey(stack.api.db, dev_run)
    assert {k: v for k, v in dev_seen.items() if k != "manifest.csv"} == public_files
    assert not set(dev_seen) & set(private_files) and not set(dev_seen.values()) & set(private_files.values())
    assert (dev_record["n_hidden_images"], dev_record["n_private_images"]) == (len(public_files), 0)
    private_seen, private_record = _survey(stack.api.db, private_run)
    assert {k: v for k, v in private_seen.items() if k != "manifest.csv"} == private_files | public_files
    assert private_record["n_private_images"] == len(private_files)
    assert stack.cluster.objects("jobs", stack.settings.k8s.namespace) == []
