"""Layer 4: the opt-in live-cluster suite (marker ``k8s_live``; CI deselects it).

Only this suite may claim cluster behaviour: scheduling onto a GPU node and GPU allocation,
NetworkPolicy enforcement, Pod Security Admission, read-only mounts, no API token in the sandbox,
the Job deadline, and the real runner end to end. It needs a cluster with ``k8s/`` applied and
images in a registry the nodes can pull from:

=================================  ==========================================================
``CSAWM_K8S_LIVE=1``               run the suite; without it every test here is skipped
``KUBECONFIG``                     the cluster (or in-cluster config); unreachable = FAIL
``CSAWM_K8S_LIVE_COLLECTOR_IMAGE`` the server image (top-level Dockerfile), pinned by digest
``CSAWM_K8S_LIVE_PROBE_IMAGE``     a busybox image pinned by digest (sh, wget, nslookup)
``CSAWM_K8S_LIVE_MODEL_IMAGE``     a contract-v1 model image pinned by digest (a reference model)
``CSAWM_K8S_LIVE_NAMESPACE``       evaluation namespace (default ``csawm-eval``)
``CSAWM_K8S_LIVE_GPUS``            GPUs per run (default 1; 0 on a CPU-only test cluster)
``CSAWM_K8S_LIVE_RUNTIME_CLASS``   optional RuntimeClass (e.g. ``gvisor``) to prove it runs
=================================  ==========================================================

With ``CSAWM_K8S_LIVE=1`` a missing setting or an unreachable cluster fails the tests: a required
suite that silently skips would look green while proving nothing.
"""

from __future__ import annotations

import copy
import os
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client

from runner.kubernetes.config import KubernetesRunnerConfig
from runner.kubernetes.executor import KubernetesRunner, load_api_client
from runner.kubernetes.manifest import build_job, handle_for
from runner.spec import ErrorCode, RunLimits, RunResult, RunSpec, TerminalState

pytestmark = pytest.mark.k8s_live

REQUIRED = ("CSAWM_K8S_LIVE_COLLECTOR_IMAGE", "CSAWM_K8S_LIVE_PROBE_IMAGE", "CSAWM_K8S_LIVE_MODEL_IMAGE")


@dataclass(frozen=True)
class Live:
    runner: KubernetesRunner
    api: client.ApiClient
    probe_image: str
    model_image: str
    gpus: int


@pytest.fixture(scope="module")
def live() -> Iterator[Live]:
    if os.environ.get("CSAWM_K8S_LIVE") != "1":
        pytest.skip("live-cluster suite: set CSAWM_K8S_LIVE=1 and KUBECONFIG to run it")
    missing = [name for name in REQUIRED if not os.environ.get(name)]
    if missing:
        pytest.fail(f"CSAWM_K8S_LIVE=1 but {', '.join(missing)} not set (see tests/k8s/test_live.py)")
    try:
        api = load_api_client()
        version = client.VersionApi(api).get_code(_request_timeout=10)
    except Exception as exc:  # any failure to reach the cluster is the same answer: not proven
        pytest.fail(f"CSAWM_K8S_LIVE=1 but no cluster is reachable: {type(exc).__name__}: {exc}")
    print(f"live cluster: {version.git_version}")
    config = KubernetesRunnerConfig(
        namespace=os.environ.get("CSAWM_K8S_LIVE_NAMESPACE", "csawm-eval"),
        collector_image=os.environ["CSAWM_K8S_LIVE_COLLECTOR_IMAGE"],
        runtime_class_name=os.environ.get("CSAWM_K8S_LIVE_RUNTIME_CLASS") or None,
        startup_allowance=timedelta(minutes=5),
        schedule_timeout=timedelta(minutes=3),
        watch_timeout=timedelta(seconds=10),
    )
    yield Live(
        runner=KubernetesRunner(config, api_client=api),
        api=api,
        probe_image=os.environ["CSAWM_K8S_LIVE_PROBE_IMAGE"],
        model_image=os.environ["CSAWM_K8S_LIVE_MODEL_IMAGE"],
        gpus=int(os.environ.get("CSAWM_K8S_LIVE_GPUS", "1")),
    )
    api.close()  # type: ignore[no-untyped-call]


def _spec(
    live: Live, image: str, *, timeout: timedelta = timedelta(minutes=10), gpus: int | None = None
) -> RunSpec:
    return RunSpec(
        run_id=f"live-{uuid.uuid4().hex[:12]}",
        image=image,
        input_dir=Path("/unused"),
        output_dir=Path("/unused"),
        limits=RunLimits(timeout=timeout, gpus=live.gpus if gpus is None else gpus, memory_bytes=2 * 1024**3),
    )


def _run_probe(live: Live, script: str, *, mutate: Any = None, **spec_kwargs: Any) -> RunResult:
    """Run the builder's Job with the model container replaced by a busybox script."""
    spec = _spec(live, live.probe_image, **spec_kwargs)
    job = build_job(spec, live.runner.config)
    model = job["spec"]["template"]["spec"]["initContainers"][0]
    model["command"] = ["sh", "-c", script]
    if mutate is not None:
        mutate(job)
    namespace, name = job["metadata"]["namespace"], job["metadata"]["name"]
    client.BatchV1Api(live.api).create_namespaced_job(namespace, job)  # type: ignore[arg-type]
    handle = handle_for(namespace, name)
    try:
        return live.runner.wait(handle, spec)
    finally:
        live.runner.cleanup(handle)


def test_model_image_end_to_end_on_a_gpu_node(live: Live) -> None:
    spec = _spec(live, live.model_image)
    handle = live.runner.start(spec)
    try:
        result = live.runner.wait(handle, spec)
    finally:
        live.runner.cleanup(handle)
    assert result.state == TerminalState.SUCCEEDED, (result.message, result.log_tail)
    assert result.predictions is not None and result.predictions.startswith(b"Filename")


SANDBOX_PROBE = r"""
set -u
check() { if eval "$2" >/dev/null 2>&1; then echo "$1=yes"; else echo "$1=no"; fi; }
{
  check egress 'wget -q -T 5 -O- http://1.1.1.1/'
  check dns 'nslookup -timeout=3 kubernetes.default.svc'
  check api 'wget -q -T 5 -O- https://kubernetes.default.svc/'
  check write_input 'touch /input/.probe'
  check write_root 'touch /probe'
  check write_tmp 'touch /tmp/probe'
  check token 'test -e /var/run/secrets/kubernetes.io/serviceaccount/token'
  check root 'test "$(id -u)" = 0'
  check gpu 'ls /dev/nvidia0'
  check manifest 'test -r /input/manifest.csv'
} > /output/predictions.csv
"""


def test_sandbox_is_enforced_by_the_cluster(live: Live) -> None:
    result = _run_probe(live, SANDBOX_PROBE)
    assert result.state == TerminalState.SUCCEEDED, (result.message, result.log_tail)
    assert result.predictions is not None
    seen = dict(line.split("=", 1) for line in result.predictions.decode().split())
    assert seen == {
        "egress": "no",
        "dns": "no",
        "api": "no",  # deny-all NetworkPolicy is enforced by the CNI
        "write_input": "no",
        "write_root": "no",
        "write_tmp": "yes",
        "token": "no",
        "root": "no",
        "gpu": "yes" if live.gpus > 0 else "no",  # the device plugin allocated the GPU
        "manifest": "yes",  # the input PVC is populated and mounted
    }


def test_job_deadline_is_enforced_by_the_cluster(live: Live) -> None:
    """activeDeadlineSeconds kills the Pod: the runner's own clock is set far beyond it."""
    runner = live.runner
    slow = KubernetesRunner(
        KubernetesRunnerConfig(
            **{
                **runner.config.__dict__,
                "startup_allowance": timedelta(seconds=60),
                "runner_grace": timedelta(hours=1),
            }
        ),
        api_client=live.api,
    )
    spec = _spec(live, live.probe_image, timeout=timedelta(seconds=30))
    job = build_job(spec, slow.config)
    job["spec"]["template"]["spec"]["initContainers"][0]["command"] = ["sh", "-c", "sleep 3600"]
    client.BatchV1Api(live.api).create_namespaced_job(job["metadata"]["namespace"], job)  # type: ignore[arg-type]
    handle = handle_for(job["metadata"]["namespace"], job["metadata"]["name"])
    try:
        # The model's own limit (30 s + 1 h grace) is far away: only the Job deadline (90 s) can end it.
        result = slow.wait(handle, replace_timeout(spec, timedelta(hours=2)))
    finally:
        slow.cleanup(handle)
    assert result.error_code == ErrorCode.TIMEOUT and "deadline" in result.message


def replace_timeout(spec: RunSpec, timeout: timedelta) -> RunSpec:
    return RunSpec(**{**spec.__dict__, "limits": RunLimits(**{**spec.limits.__dict__, "timeout": timeout})})


def test_pod_security_admission_rejects_a_privileged_pod(live: Live) -> None:
    def privileged(job: dict[str, Any]) -> None:
        job["spec"]["template"]["spec"]["initContainers"][0]["securityContext"] = copy.deepcopy(
            {"privileged": True, "allowPrivilegeEscalation": True}
        )

    result = _run_probe(live, "true", mutate=privileged)
    assert result.error_code == ErrorCode.INFRA_ERROR
    assert "violates PodSecurity" in result.message


def test_unschedulable_request_is_reported_and_bounded(live: Live) -> None:
    spec = _spec(live, live.probe_image, gpus=max(live.gpus, 1) * 1000)
    handle = live.runner.start(spec)
    try:
        result = live.runner.wait(handle, spec)
    finally:
        live.runner.cleanup(handle)
    assert result.error_code == ErrorCode.INFRA_ERROR and "could not start within" in result.message
    assert "Insufficient" in result.message or "didn't match" in result.message


def test_image_pull_failure_fails_fast(live: Live) -> None:
    missing = live.probe_image.split("@")[0] + "-does-not-exist@sha256:" + "0" * 64
    spec = _spec(live, missing)
    handle = live.runner.start(spec)
    try:
        result = live.runner.wait(handle, spec)
    finally:
        live.runner.cleanup(handle)
    assert result.error_code == ErrorCode.IMAGE_INVALID


# -- the whole path: upload → registry → preflight and hidden Jobs → collector → score -------------

E2E_REQUIRED = (
    "CSAWM_K8S_LIVE_REGISTRY",
    "CSAWM_K8S_LIVE_REGISTRY_USERNAME",
    "CSAWM_K8S_LIVE_REGISTRY_PASSWORD",
    "CSAWM_K8S_LIVE_MODEL_ARCHIVE",
    "CSAWM_K8S_LIVE_BENCHMARK_DIR",
    "CSAWM_K8S_LIVE_TEST_SET_DIGEST_FILE",
)
"""For `test_upload_to_score_through_the_cluster`, on top of the variables above:

``CSAWM_K8S_LIVE_REGISTRY`` (host[:port], TLS; ``CSAWM_K8S_LIVE_REGISTRY_CA`` optional) and push
credentials; ``CSAWM_K8S_LIVE_PULL_SECRET`` (default ``csawm-registry-pull``) in the namespace;
``CSAWM_K8S_LIVE_MODEL_ARCHIVE``: a ``docker save`` of a contract-v1 model; the benchmark whose
model inputs were loaded onto ``csawm-test-images`` (``python -m server.worker.test_set load``) and
a copy of the ``MANIFEST.sha256`` that load wrote."""


@pytest.fixture(scope="module")
def live_e2e(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    if os.environ.get("CSAWM_K8S_LIVE") != "1":
        pytest.skip("live-cluster suite: set CSAWM_K8S_LIVE=1 and KUBECONFIG to run it")
    missing = [name for name in E2E_REQUIRED if not os.environ.get(name)]
    if missing:
        pytest.fail(f"CSAWM_K8S_LIVE=1 but {', '.join(missing)} not set (see tests/k8s/test_live.py)")
    cluster: Live = request.getfixturevalue("live")
    from tests.server.srvtest.app import make_settings, running_api

    env = os.environ
    tmp = tmp_path_factory.mktemp("live-e2e")
    settings = make_settings(
        tmp,
        f"sqlite:///{tmp / 'state' / 'csawm.db'}",
        runner="kubernetes",
        registry=env["CSAWM_K8S_LIVE_REGISTRY"],
        registry_username=env["CSAWM_K8S_LIVE_REGISTRY_USERNAME"],
        registry_password=env["CSAWM_K8S_LIVE_REGISTRY_PASSWORD"],
        registry_ca=env.get("CSAWM_K8S_LIVE_REGISTRY_CA") or None,
        benchmark_dir=env["CSAWM_K8S_LIVE_BENCHMARK_DIR"],
        k8s_test_set_digest_file=env["CSAWM_K8S_LIVE_TEST_SET_DIGEST_FILE"],
        k8s_namespace=cluster.runner.config.namespace,
        k8s_collector_image=cluster.runner.config.collector_image,
        k8s_runtime_class=cluster.runner.config.runtime_class_name,
        k8s_image_pull_secrets=env.get("CSAWM_K8S_LIVE_PULL_SECRET", "csawm-registry-pull"),
        run_gpus=cluster.gpus,
        max_upload_bytes=16 * 1024**3,
    )
    with running_api(settings) as api:
        yield api, cluster


def test_upload_to_score_through_the_cluster(live_e2e: Any) -> None:
    """The scenario of ``test_worker_e2e.py`` on a real cluster and registry: the archive is pushed,
    the worker verifies the volume's stamp, runs the preflight and the hidden Job (the kubelet pulls
    the model by digest with the pull Secret), reads the collector's frame and scores it."""
    from server.accounts import service as accounts
    from server.models import Submission
    from server.worker.loop import Worker
    from tests.server.srvtest import factories as f

    api, cluster = live_e2e
    f.team(api.db, "live")
    with api.db.transaction() as session:
        accounts.set_quota(session, "live", {"active": 1}, actor="live-test")
    token = f.user(api.db, "live@example.org", team="live")
    archive = Path(os.environ["CSAWM_K8S_LIVE_MODEL_ARCHIVE"])
    with archive.open("rb") as body:
        response = api.client.post(
            "/api/v1/submissions", params={"name": "live-e2e"}, content=body.read(), headers=f.auth(token)
        )
    assert response.status_code == 201, response.text
    sub_id, ref = response.json()["id"], response.json()["image_ref"]
    assert ref.startswith(os.environ["CSAWM_K8S_LIVE_REGISTRY"] + "/")
    worker = Worker(
        api.settings, api.db, KubernetesRunner(cluster.runner.config, api_client=load_api_client())
    )
    worker.prepare_test_set()  # raises TestSetMismatch when the volume holds another test set
    assert worker.run_once()
    got = api.client.get(f"/api/v1/submissions/{sub_id}", headers=f.auth(token)).json()
    assert (got["status"], got["error_code"]) == ("succeeded", None), got["error_message"]
    with api.db.transaction(write=False) as session:
        sub = session.get(Submission, sub_id)
        assert sub is not None and sub.reproducibility["runner_backend"] == "kubernetes"
    batch = client.BatchV1Api(cluster.api)
    leftovers = batch.list_namespaced_job(cluster.runner.config.namespace, label_selector="csawm.io/run-id")
    assert not [j for j in leftovers.items if f"-{sub_id}-" in j.metadata.name]
