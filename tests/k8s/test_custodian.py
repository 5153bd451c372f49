"""The custodian overlay (`k8s/custodian/`, issue 25 item 5): what runs at the site that holds the
private images, rendered by kustomize and checked like the base (`test_validation`).

What it must hold: the remote worker and the evaluation namespace only (no server, no database
worker); no database or labels Secret anywhere; the worker runs `csawm worker --server URL` with a
worker token; its NetworkPolicy accepts no connection and lets it reach only the addresses listed
(server, registry, Kubernetes API, cluster DNS); the model namespace and the runner's Role are the
base's own. What it cannot prove: that a CNI enforces the policy (the live suite's job).
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from tests.k8s import rules
from tests.k8s.test_validation import VERSIONS

ROOT = Path(__file__).resolve().parents[2]
CENTRAL_ONLY_SECRETS = {"csawm-database", "csawm-labels", "csawm-registry", "csawm-web"}


def _render(folder: str) -> list[dict[str, Any]]:
    kubectl = shutil.which("kubectl")
    assert kubectl, "kubectl (client) is required to render k8s/ (docs/design.md)"
    out = subprocess.run(
        [kubectl, "kustomize", str(ROOT / folder)], check=True, capture_output=True, text=True, timeout=120
    ).stdout
    return [doc for doc in yaml.safe_load_all(out) if doc]


@pytest.fixture(scope="module")
def custodian() -> list[dict[str, Any]]:
    return _render("k8s/custodian")


def _one(docs: list[dict[str, Any]], kind: str, name: str) -> dict[str, Any]:
    matches = [d for d in docs if d["kind"] == kind and d["metadata"]["name"] == name]
    assert len(matches) == 1, f"expected one {kind}/{name}, found {len(matches)}"
    return matches[0]


def _worker_pod(docs: list[dict[str, Any]]) -> dict[str, Any]:
    pod: dict[str, Any] = _one(docs, "Deployment", "csawm-remote-worker")["spec"]["template"]["spec"]
    return pod


def _secret_names(pod: dict[str, Any]) -> set[str]:
    names = {(v.get("secret") or {}).get("secretName") for v in pod.get("volumes") or []}
    for container in pod["containers"]:
        for env in container.get("env") or []:
            names.add(((env.get("valueFrom") or {}).get("secretKeyRef") or {}).get("name"))
        for source in container.get("envFrom") or []:
            names.add((source.get("secretRef") or {}).get("name"))
    return {n for n in names if n}


def test_only_the_remote_worker_and_the_evaluation_side_run_there(custodian: list[dict[str, Any]]) -> None:
    workloads = {
        (d["kind"], d["metadata"]["name"]) for d in custodian if d["kind"] in ("Deployment", "Service")
    }
    assert workloads == {("Deployment", "csawm-remote-worker")}
    central = {(d["kind"], d["metadata"]["name"]) for d in _render("k8s")}
    # The evaluation side is the base's, object for object.
    for kind, name in [
        ("Namespace", "csawm-eval"),
        ("NetworkPolicy", "deny-all"),
        ("ServiceAccount", "csawm-model"),
        ("Role", "csawm-runner"),
        ("RoleBinding", "csawm-runner"),
        ("PersistentVolumeClaim", "csawm-test-images"),
    ]:
        assert (kind, name) in central
        _one(custodian, kind, name)


@pytest.mark.parametrize("version", VERSIONS)
def test_custodian_objects_validate_strictly(custodian: list[dict[str, Any]], version: str) -> None:
    for doc in custodian:
        assert kubernetes_validate.validate(doc, version, strict=True), doc["metadata"]["name"]


def test_custodian_objects_pass_our_own_checks(custodian: list[dict[str, Any]]) -> None:
    problems: list[str] = []
    for doc in custodian:
        problems += rules.check_names(doc)
        pod = ((doc.get("spec") or {}).get("template") or {}).get("spec")
        if pod is not None:
            problems += rules.check_restricted(pod, f"{doc['kind']}/{doc['metadata']['name']}")
            problems += rules.check_quantities(pod, doc["metadata"]["name"])
    assert rules.check_role(_one(custodian, "Role", "csawm-runner")) == []
    assert rules.check_deny_all(_one(custodian, "NetworkPolicy", "deny-all")) == []
    assert problems == []


def test_the_worker_holds_no_database_or_labels_and_reaches_the_server_with_a_worker_token(
    custodian: list[dict[str, Any]],
) -> None:
    assert not [d for d in custodian if d["kind"] == "Secret"]
    pod = _worker_pod(custodian)
    assert _secret_names(pod) == {"csawm-worker-token", "csawm-server-ca"}
    assert not _secret_names(pod) & CENTRAL_ONLY_SECRETS
    (container,) = pod["containers"]
    assert container["args"] == ["worker", "--server", "$(CSAWM_SERVER_URL)"]
    settings = _one(custodian, "ConfigMap", "csawm-remote-worker")["data"]
    assert settings["CSAWM_SERVER_URL"].startswith("https://")
    assert settings["CSAWM_RUNNER"] == "kubernetes" and settings["CSAWM_REGISTRY"]
    assert not [key for key in settings if key.startswith("CSAWM_DATABASE")]
    env_names = {e["name"] for e in container.get("env") or []}
    assert "CSAWM_DATABASE_URL" not in env_names and "CSAWM_WORKER_TOKEN" in env_names
    mounts = {m["mountPath"]: m for m in container["volumeMounts"]}
    assert mounts["/benchmark/images"]["readOnly"] is True
    assert not [path for path in mounts if path.startswith("/benchmark/labels")]
    # The runner's identity is the ServiceAccount the Role is bound to.
    binding = _one(custodian, "RoleBinding", "csawm-runner")
    assert binding["subjects"] == [
        {"kind": "ServiceAccount", "name": pod["serviceAccountName"], "namespace": "csawm"}
    ]
    assert not [d for d in custodian if d["kind"] in ("ClusterRole", "ClusterRoleBinding")]


def test_the_worker_accepts_no_connection_and_reaches_only_the_listed_addresses(
    custodian: list[dict[str, Any]],
) -> None:
    policy = _one(custodian, "NetworkPolicy", "csawm-remote-worker-egress")
    spec = policy["spec"]
    assert spec["podSelector"]["matchLabels"] == {"app.kubernetes.io/name": "csawm-remote-worker"}
    assert set(spec["policyTypes"]) == {"Ingress", "Egress"} and not spec.get("ingress")
    for rule in spec["egress"]:
        assert rule.get("ports"), "every egress rule names its ports"
        for peer in rule["to"]:
            if "ipBlock" in peer:
                assert peer["ipBlock"]["cidr"].endswith("/32") and not peer["ipBlock"].get("except")
            else:  # only the cluster DNS, on port 53
                selector = peer["namespaceSelector"]["matchLabels"]
                assert selector == {"kubernetes.io/metadata.name": "kube-system"}
                assert {p["port"] for p in rule["ports"]} == {53}
    assert len(spec["egress"]) == 4  # server, registry, Kubernetes API, DNS
