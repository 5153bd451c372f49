"""Layer 1: every Job the builder makes and every object in ``k8s/`` is valid for Kubernetes 1.29
(the oldest supported) and for the newest minor kubernetes-validate ships, in strict mode (unknown
fields rejected), and passes our own checks (`tests.k8s.rules`) for what the schema cannot see.

What this proves: the manifests are well-formed for those API versions and meet our rules. What it
cannot prove: that a cluster admits, schedules and enforces them (the live suite's job).
"""

from __future__ import annotations

import copy
import shutil
import subprocess
from datetime import timedelta
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from runner.kubernetes.config import KubernetesRunnerConfig, Toleration
from runner.kubernetes.manifest import build_job
from runner.spec import RunLimits, RunSpec
from tests.k8s import rules

ROOT = Path(__file__).resolve().parents[2]
OLDEST = "1.29"
NEWEST = kubernetes_validate.latest_version()
VERSIONS = [OLDEST, NEWEST]
IMAGE = "registry.example.org:5000/team/model@sha256:" + "0123456789abcdef" * 4


def _spec(run_id: str = "run-1", phase: str = "hidden", **limits: Any) -> RunSpec:
    return RunSpec(
        run_id=run_id,
        image=IMAGE,
        input_dir=Path("/in"),
        output_dir=Path("/out"),
        limits=RunLimits(**limits),
        phase=phase,
    )


VARIANTS: dict[str, tuple[RunSpec, KubernetesRunnerConfig]] = {
    "default-gpu": (_spec(gpus=1), KubernetesRunnerConfig()),
    "cpu-only": (_spec(gpus=0), KubernetesRunnerConfig(tolerations=())),
    "everything": (
        _spec(
            "Run_42 / weird ID with spaces and a very long tail" * 3,
            phase="preflight",
            gpus=2,
            cpus=1.5,
            memory_bytes=3 * 1024**3 + 5,
            timeout=timedelta(seconds=90.5),
        ),
        KubernetesRunnerConfig(
            namespace="eval-gpu",
            runtime_class_name="gvisor",
            node_selector=(("nvidia.com/gpu.product", "NVIDIA-A100-SXM4-40GB"),),
            tolerations=(Toleration("nvidia.com/gpu"), Toleration("sandbox", "Equal", "true", "NoExecute")),
            image_pull_secrets=("submissions-pull",),
            kueue_queue="csawm-team-queue",
            collector_image="registry.example.org/csawm@sha256:" + "f" * 64,
            extra_labels=(("example.org/cost-centre", "research"),),
        ),
    ),
}


def _job(variant: str) -> tuple[dict[str, Any], int]:
    spec, config = VARIANTS[variant]
    return build_job(spec, config), spec.limits.gpus


@pytest.mark.parametrize("version", VERSIONS)
@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_built_jobs_validate_strictly(variant: str, version: str) -> None:
    job, _ = _job(variant)
    assert kubernetes_validate.validate(job, version, strict=True)


@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_built_jobs_pass_our_own_checks(variant: str) -> None:
    job, gpus = _job(variant)
    assert rules.check_model_job(job, gpus=gpus) == []


def test_recursive_read_only_needs_a_newer_cluster() -> None:
    """Strict mode catches fields newer than the target version: recursiveReadOnly is 1.30+, so it
    stays off by default, and enabling it is only valid for newer clusters."""
    job = build_job(_spec(), KubernetesRunnerConfig(recursive_read_only=True))
    with pytest.raises(kubernetes_validate.ValidationError, match="recursiveReadOnly"):
        kubernetes_validate.validate(job, OLDEST, strict=True)
    assert kubernetes_validate.validate(job, NEWEST, strict=True)


# -- our checks catch what the schema does not ------------------------------------------------------


def _mutate(path: tuple[str | int, ...], value: Any) -> dict[str, Any]:
    job = copy.deepcopy(_job("default-gpu")[0])
    target: Any = job
    *parents, last = path
    for part in parents:
        target = target[part]
    if value is _DELETE:
        del target[last]
    else:
        target[last] = value
    return job


_DELETE = object()
POD: tuple[str | int, ...] = ("spec", "template", "spec")
MODEL = (*POD, "initContainers", 0)
PLANTED: dict[str, tuple[tuple[str | int, ...], Any, str]] = {
    "uppercase-name": (("metadata", "name"), "Csawm_Run", "DNS-1123"),
    "bad-label-value": (("metadata", "labels", "csawm.io/run-id"), "has spaces", "label value"),
    "restart-always": ((*POD, "restartPolicy"), "Always", "restartPolicy"),
    "backoff-6": (("spec", "backoffLimit"), 6, "backoffLimit"),
    "no-deadline": (("spec", "activeDeadlineSeconds"), _DELETE, "activeDeadlineSeconds"),
    "no-ttl": (("spec", "ttlSecondsAfterFinished"), _DELETE, "ttlSecondsAfterFinished"),
    "bad-quantity": ((*MODEL, "resources", "limits", "memory"), "16GB", "not a quantity"),
    "request-ne-limit": ((*MODEL, "resources", "requests", "cpu"), "1", "request must equal limit"),
    "no-gpu": ((*MODEL, "resources", "limits", "nvidia.com/gpu"), _DELETE, "nvidia.com/gpu"),
    "lowercase-drop": ((*MODEL, "securityContext", "capabilities", "drop"), ["all"], "'ALL'"),
    "escalation": ((*MODEL, "securityContext", "allowPrivilegeEscalation"), True, "allowPrivilegeEscalation"),
    "writable-root": ((*MODEL, "securityContext", "readOnlyRootFilesystem"), False, "readOnlyRootFilesystem"),
    "bogus-seccomp": ((*POD, "securityContext", "seccompProfile", "type"), "Unconfined", "seccomp"),
    "root-user": ((*POD, "securityContext", "runAsUser"), 0, "runAsUser"),
    "token": ((*POD, "automountServiceAccountToken"), True, "automountServiceAccountToken"),
    "service-links": ((*POD, "enableServiceLinks"), True, "enableServiceLinks"),
    "unbounded-emptydir": ((*POD, "volumes", 1, "emptyDir"), {}, "sizeLimit"),
    "writable-input": ((*MODEL, "volumeMounts", 0, "readOnly"), False, "read-only"),
    "tag-not-digest": ((*MODEL, "image"), "registry.example.org/team/model:latest", "digest"),
    "host-network": ((*POD, "hostNetwork"), True, "hostNetwork"),
}


@pytest.mark.parametrize("case", sorted(PLANTED))
def test_own_checks_catch_planted_violations(case: str) -> None:
    path, value, expected = PLANTED[case]
    job = _mutate(path, value)
    problems = rules.check_model_job(job, gpus=1)
    assert any(expected in p for p in problems), problems


@pytest.mark.parametrize(
    "case",
    ["uppercase-name", "restart-always", "bad-quantity", "lowercase-drop", "bogus-seccomp", "backoff-6"],
)
def test_schema_alone_misses_these(case: str) -> None:
    """Why our checks exist: kubernetes-validate strict accepts each of these broken Jobs."""
    path, value, _ = PLANTED[case]
    assert kubernetes_validate.validate(_mutate(path, value), NEWEST, strict=True)


# -- k8s/ (kustomize) -------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def rendered() -> list[dict[str, Any]]:
    kubectl = shutil.which("kubectl")
    assert kubectl, "kubectl (client) is required to render k8s/ (docs/design.md)"
    out = subprocess.run(
        [kubectl, "kustomize", str(ROOT / "k8s")], check=True, capture_output=True, text=True, timeout=120
    ).stdout
    return [doc for doc in yaml.safe_load_all(out) if doc]


def _find(docs: list[dict[str, Any]], kind: str, name: str) -> dict[str, Any]:
    matches = [d for d in docs if d["kind"] == kind and d["metadata"]["name"] == name]
    assert len(matches) == 1, f"expected one {kind}/{name}, found {len(matches)}"
    return matches[0]


def test_kustomization_renders_every_piece(rendered: list[dict[str, Any]]) -> None:
    kinds = {(d["kind"], d["metadata"]["name"]) for d in rendered}
    assert kinds >= {
        ("Namespace", "csawm"),
        ("Namespace", "csawm-eval"),
        ("ConfigMap", "csawm-settings"),
        ("Deployment", "csawm-server"),
        ("Service", "csawm-server"),
        ("PersistentVolumeClaim", "csawm-data"),
        ("Deployment", "csawm-worker"),
        ("ServiceAccount", "csawm-worker"),
        ("Role", "csawm-runner"),
        ("RoleBinding", "csawm-runner"),
        ("NetworkPolicy", "deny-all"),
        ("PersistentVolumeClaim", "csawm-test-images"),
        ("ServiceAccount", "csawm-model"),
    }


@pytest.mark.parametrize("version", VERSIONS)
def test_k8s_objects_validate_strictly(rendered: list[dict[str, Any]], version: str) -> None:
    for doc in rendered:
        assert kubernetes_validate.validate(doc, version, strict=True), doc["metadata"]["name"]


def test_k8s_objects_pass_our_own_checks(rendered: list[dict[str, Any]]) -> None:
    problems: list[str] = []
    for doc in rendered:
        problems += rules.check_names(doc)
        pod = ((doc.get("spec") or {}).get("template") or {}).get("spec")
        if pod is not None:
            problems += rules.check_restricted(pod, f"{doc['kind']}/{doc['metadata']['name']}")
            problems += rules.check_quantities(pod, doc["metadata"]["name"])
    assert problems == []


def test_evaluation_namespace_is_locked_down(rendered: list[dict[str, Any]]) -> None:
    namespace = _find(rendered, "Namespace", "csawm-eval")
    assert namespace["metadata"]["labels"]["pod-security.kubernetes.io/enforce"] == "restricted"
    policy = _find(rendered, "NetworkPolicy", "deny-all")
    assert policy["metadata"]["namespace"] == "csawm-eval" and rules.check_deny_all(policy) == []
    model_sa = _find(rendered, "ServiceAccount", "csawm-model")
    assert model_sa["automountServiceAccountToken"] is False
    assert not [
        d for d in rendered if d["metadata"].get("namespace") == "csawm-eval" and d["kind"] == "Secret"
    ]
    images = _find(rendered, "PersistentVolumeClaim", "csawm-test-images")
    assert images["spec"]["accessModes"] == ["ReadOnlyMany"]


def test_runner_rbac_is_minimal_and_bound_to_the_worker(rendered: list[dict[str, Any]]) -> None:
    role = _find(rendered, "Role", "csawm-runner")
    assert role["metadata"]["namespace"] == "csawm-eval" and rules.check_role(role) == []
    granted = {
        (g, r): set(rule["verbs"])
        for rule in role["rules"]
        for g in rule["apiGroups"]
        for r in rule["resources"]
    }
    assert granted == {
        ("batch", "jobs"): {"create", "get", "list", "watch", "delete"},
        ("", "pods"): {"get", "list", "watch"},
        ("", "pods/log"): {"get"},
        ("", "events"): {"get", "list", "watch"},
    }
    binding = _find(rendered, "RoleBinding", "csawm-runner")
    assert binding["subjects"] == [{"kind": "ServiceAccount", "name": "csawm-worker", "namespace": "csawm"}]
    assert not [d for d in rendered if d["kind"] in ("ClusterRole", "ClusterRoleBinding")]


def test_labels_secret_is_mounted_only_into_server_and_worker(rendered: list[dict[str, Any]]) -> None:
    users = set()
    for doc in rendered:
        pod = ((doc.get("spec") or {}).get("template") or {}).get("spec") or {}
        for volume in pod.get("volumes") or []:
            if (volume.get("secret") or {}).get("secretName") == "csawm-labels":
                users.add((doc["metadata"]["namespace"], doc["metadata"]["name"]))
    assert users == {("csawm", "csawm-server"), ("csawm", "csawm-worker")}
    for name in ("csawm-server", "csawm-worker"):
        pod = _find(rendered, "Deployment", name)["spec"]["template"]["spec"]
        (container,) = pod["containers"]
        mounts = {m["name"]: m for m in container["volumeMounts"]}
        assert mounts["labels"]["readOnly"] is True
        env = {e["name"]: e for e in container.get("env") or []}
        assert env["CSAWM_DATABASE_URL"]["valueFrom"]["secretKeyRef"]["name"] == "csawm-database"


def test_runner_defaults_match_the_shipped_manifests(rendered: list[dict[str, Any]]) -> None:
    """The builder's default namespace, ServiceAccount and input PVC are the ones k8s/ creates."""
    config = KubernetesRunnerConfig()
    _find(rendered, "Namespace", config.namespace)
    assert (
        _find(rendered, "ServiceAccount", config.service_account)["metadata"]["namespace"] == config.namespace
    )
    pvc = _find(rendered, "PersistentVolumeClaim", config.input_pvc)
    assert pvc["metadata"]["namespace"] == config.namespace
    settings = _find(rendered, "ConfigMap", "csawm-settings")["data"]
    assert settings["CSAWM_RUNNER"] == "kubernetes"


# -- k8s/registry (kustomize component, issue 13) ---------------------------------------------------


@pytest.fixture(scope="module")
def rendered_with_registry(tmp_path_factory: pytest.TempPathFactory) -> list[dict[str, Any]]:
    """The base plus the registry component, rendered from a copy of ``k8s/`` with the example
    credential files in place (as an operator's overlay would use it)."""
    kubectl = shutil.which("kubectl")
    assert kubectl, "kubectl (client) is required to render k8s/ (docs/design.md)"
    root = tmp_path_factory.mktemp("overlay")
    shutil.copytree(ROOT / "k8s", root / "k8s")
    for name in ("push.env", "pull.dockerconfigjson"):
        shutil.copyfile(root / "k8s" / "registry" / f"{name}.example", root / "k8s" / "registry" / name)
    (root / "overlay").mkdir()
    (root / "overlay" / "kustomization.yaml").write_text(
        "resources: [../k8s]\ncomponents: [../k8s/registry]\n"
    )
    out = subprocess.run(
        [kubectl, "kustomize", str(root / "overlay")], check=True, capture_output=True, text=True, timeout=120
    ).stdout
    return [doc for doc in yaml.safe_load_all(out) if doc]


@pytest.mark.parametrize("version", VERSIONS)
def test_registry_component_validates_strictly(
    rendered_with_registry: list[dict[str, Any]], version: str
) -> None:
    for doc in rendered_with_registry:
        assert kubernetes_validate.validate(doc, version, strict=True), doc["metadata"]["name"]


def test_registry_secrets_reach_only_the_server_and_the_nodes(
    rendered_with_registry: list[dict[str, Any]],
) -> None:
    """The push credentials live in csawm and only the server reads them; the only Secret in
    csawm-eval is the pull Secret, which is the one the runner's Jobs name (CSAWM_K8S_IMAGE_PULL_SECRETS)."""
    push = _find(rendered_with_registry, "Secret", "csawm-registry")
    assert push["metadata"]["namespace"] == "csawm" and set(push["data"]) == {"username", "password"}
    pull = _find(rendered_with_registry, "Secret", "csawm-registry-pull")
    assert pull["metadata"]["namespace"] == "csawm-eval" and pull["type"] == "kubernetes.io/dockerconfigjson"
    eval_secrets = [
        d["metadata"]["name"]
        for d in rendered_with_registry
        if d["kind"] == "Secret" and d["metadata"].get("namespace") == "csawm-eval"
    ]
    assert eval_secrets == ["csawm-registry-pull"]
    readers = set()
    for doc in rendered_with_registry:
        pod = ((doc.get("spec") or {}).get("template") or {}).get("spec") or {}
        for container in pod.get("containers") or []:
            for env in container.get("env") or []:
                if ((env.get("valueFrom") or {}).get("secretKeyRef") or {}).get("name") == "csawm-registry":
                    readers.add((doc["metadata"]["name"], env["name"]))
        for volume in pod.get("volumes") or []:
            if (volume.get("secret") or {}).get("secretName") == "csawm-registry":
                readers.add((doc["metadata"]["name"], volume["name"]))
    assert readers == {
        ("csawm-server", "CSAWM_REGISTRY_USERNAME"),
        ("csawm-server", "CSAWM_REGISTRY_PASSWORD"),
        ("csawm-server", "registry"),
    }
    settings = _find(rendered_with_registry, "ConfigMap", "csawm-settings")["data"]
    assert settings["CSAWM_K8S_IMAGE_PULL_SECRETS"] == "csawm-registry-pull"
    spec = RunSpec(run_id="r", image=IMAGE, input_dir=Path("/in"), output_dir=Path("/out"))
    job = build_job(spec, KubernetesRunnerConfig(image_pull_secrets=("csawm-registry-pull",)))
    assert job["spec"]["template"]["spec"]["imagePullSecrets"] == [{"name": "csawm-registry-pull"}]
