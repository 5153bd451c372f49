"""Our own checks for what kubernetes-validate (a JSON-schema check) does not catch.

kubernetes-validate 1.37 accepts upper-case or underscore names, ``restartPolicy: Always`` in a Job,
malformed quantities ("16GB"), negative counts, unknown enum values and ``drop: ["all"]``: those are
the API server's validation and Pod Security Admission's rules. Each function returns a list of
problems (empty = fine), each naming the object path, so a failing test says what is wrong.

Sources: DNS-1123 names and label syntax (https://kubernetes.io/docs/concepts/overview/working-with-objects/names/,
.../labels/#syntax-and-character-set); quantities (``kubernetes.utils.parse_quantity``, the client's
port of resource.Quantity); the restricted profile (https://kubernetes.io/docs/concepts/security/pod-security-standards/#restricted);
Job fields (https://kubernetes.io/docs/concepts/workloads/controllers/job/).
"""

from __future__ import annotations

import re
from decimal import Decimal
from typing import Any

from kubernetes import utils

parse_quantity: Any = utils.parse_quantity  # untyped in the client

DNS1123_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
DNS1123_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
LABEL_NAME = re.compile(r"^[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$")
DIGEST_REF = re.compile(r"@sha256:[0-9a-f]{64}$")
RESTRICTED_VOLUME_TYPES = {
    "configMap",
    "csi",
    "downwardAPI",
    "emptyDir",
    "ephemeral",
    "persistentVolumeClaim",
    "projected",
    "secret",
}
SECCOMP_TYPES = {"RuntimeDefault", "Localhost"}
PULL_POLICIES = {"Always", "IfNotPresent", "Never"}
POD_FAILURE_ACTIONS = {"FailJob", "Ignore", "Count", "FailIndex"}


def check_names(obj: dict[str, Any]) -> list[str]:
    """Object name (DNS-1123 subdomain, or label where the kind needs one), namespace, labels, annotations."""
    problems: list[str] = []
    meta = obj.get("metadata") or {}
    name = meta.get("name", "")
    kind = obj.get("kind", "")
    # Namespaces, Services and Jobs (whose name becomes a label value) need a DNS-1123 label.
    if kind in ("Namespace", "Service", "Job"):
        if not (DNS1123_LABEL.fullmatch(name) and len(name) <= 63):
            problems.append(f"{kind} name {name!r} is not a DNS-1123 label (<= 63)")
    elif not (DNS1123_SUBDOMAIN.fullmatch(name) and len(name) <= 253):
        problems.append(f"{kind} name {name!r} is not a DNS-1123 subdomain")
    namespace = meta.get("namespace")
    if namespace is not None and not (DNS1123_LABEL.fullmatch(namespace) and len(namespace) <= 63):
        problems.append(f"namespace {namespace!r} is not a DNS-1123 label")
    problems += check_labels(meta.get("labels") or {}, "metadata.labels")
    problems += [
        p for p in (_key_problem(k, "metadata.annotations") for k in meta.get("annotations") or {}) if p
    ]
    template = ((obj.get("spec") or {}).get("template") or {}).get("metadata") or {}
    problems += check_labels(template.get("labels") or {}, "spec.template.metadata.labels")
    return problems


def check_labels(labels: dict[str, Any], where: str) -> list[str]:
    problems = [p for p in (_key_problem(k, where) for k in labels) if p]
    for key, value in labels.items():
        if not isinstance(value, str) or len(value) > 63 or (value and not LABEL_NAME.fullmatch(value)):
            problems.append(f"{where}[{key}] value {value!r} is not a valid label value")
    return problems


def _key_problem(key: str, where: str) -> str | None:
    prefix, _, name = key.rpartition("/")
    if prefix and not (DNS1123_SUBDOMAIN.fullmatch(prefix) and len(prefix) <= 253):
        return f"{where} key {key!r} has an invalid prefix"
    if not (LABEL_NAME.fullmatch(name) and len(name) <= 63):
        return f"{where} key {key!r} has an invalid name part"
    return None


def check_quantities(pod_spec: dict[str, Any], where: str) -> list[str]:
    """Every resource quantity and emptyDir sizeLimit parses; requests equal limits when both set."""
    problems: list[str] = []
    for container in _containers(pod_spec):
        resources = container.get("resources") or {}
        parsed: dict[str, dict[str, Decimal]] = {}
        for section in ("requests", "limits"):
            for resource, value in (resources.get(section) or {}).items():
                try:
                    parsed.setdefault(section, {})[resource] = parse_quantity(value)
                except ValueError:
                    problems.append(
                        f"{where} container {container.get('name')} {section}.{resource} "
                        f"{value!r} is not a quantity"
                    )
    for volume in pod_spec.get("volumes") or []:
        size = (volume.get("emptyDir") or {}).get("sizeLimit")
        if size is not None:
            try:
                parse_quantity(size)
            except ValueError:
                problems.append(f"{where} volume {volume.get('name')} sizeLimit {size!r} is not a quantity")
    return problems


def check_restricted(pod_spec: dict[str, Any], where: str) -> list[str]:
    """The Pod Security Standard "restricted" profile (v1.29+ rules), plus a read-only root."""
    problems: list[str] = []
    pod_ctx = pod_spec.get("securityContext") or {}
    for field in ("hostNetwork", "hostPID", "hostIPC"):
        if pod_spec.get(field):
            problems.append(f"{where}.{field} must not be true")
    for volume in pod_spec.get("volumes") or []:
        kinds = set(volume) - {"name"}
        if not kinds <= RESTRICTED_VOLUME_TYPES:
            problems.append(
                f"{where} volume {volume.get('name')} uses {sorted(kinds)}, not allowed by restricted"
            )
    if pod_ctx.get("runAsUser") == 0:
        problems.append(f"{where}.securityContext.runAsUser must not be 0")
    if pod_ctx.get("sysctls"):
        problems.append(f"{where}.securityContext.sysctls must be empty")
    pod_seccomp = (pod_ctx.get("seccompProfile") or {}).get("type")
    if pod_seccomp is not None and pod_seccomp not in SECCOMP_TYPES:
        problems.append(f"{where}.securityContext.seccompProfile.type {pod_seccomp!r} is not allowed")
    for container in _containers(pod_spec):
        name = f"{where} container {container.get('name')}"
        ctx = container.get("securityContext") or {}
        if ctx.get("privileged"):
            problems.append(f"{name}: privileged")
        if ctx.get("allowPrivilegeEscalation") is not False:
            problems.append(f"{name}: allowPrivilegeEscalation must be false")
        caps = ctx.get("capabilities") or {}
        if "ALL" not in (caps.get("drop") or []):
            problems.append(f"{name}: capabilities.drop must contain 'ALL' (case-sensitive)")
        if set(caps.get("add") or []) - {"NET_BIND_SERVICE"}:
            problems.append(f"{name}: capabilities.add may only hold NET_BIND_SERVICE")
        if not (
            ctx.get("runAsNonRoot") is True
            or (pod_ctx.get("runAsNonRoot") is True and ctx.get("runAsNonRoot") is not False)
        ):
            problems.append(f"{name}: runAsNonRoot must be true (pod or container)")
        if ctx.get("runAsUser") == 0:
            problems.append(f"{name}: runAsUser must not be 0")
        seccomp = (ctx.get("seccompProfile") or {}).get("type", pod_seccomp)
        if seccomp not in SECCOMP_TYPES:
            problems.append(
                f"{name}: seccompProfile.type must be RuntimeDefault or Localhost (pod or container)"
            )
        if ctx.get("readOnlyRootFilesystem") is not True:
            problems.append(f"{name}: readOnlyRootFilesystem must be true")
        if any(port.get("hostPort") for port in container.get("ports") or []):
            problems.append(f"{name}: hostPort is not allowed")
        if container.get("imagePullPolicy", "IfNotPresent") not in PULL_POLICIES:
            problems.append(f"{name}: imagePullPolicy {container.get('imagePullPolicy')!r} is not valid")
    return problems


def check_model_job(job: dict[str, Any], *, gpus: int, gpu_resource: str = "nvidia.com/gpu") -> list[str]:
    """Everything the issue asks of a model Job, beyond the schema."""
    problems = check_names(job)
    spec = job.get("spec") or {}
    pod = (spec.get("template") or {}).get("spec") or {}
    if spec.get("backoffLimit") != 0:
        problems.append(f"spec.backoffLimit must be 0, got {spec.get('backoffLimit')!r}")
    deadline = spec.get("activeDeadlineSeconds")
    if not isinstance(deadline, int) or deadline <= 0:
        problems.append(f"spec.activeDeadlineSeconds must be a positive integer, got {deadline!r}")
    ttl = spec.get("ttlSecondsAfterFinished")
    if not isinstance(ttl, int) or ttl < 0:
        problems.append(f"spec.ttlSecondsAfterFinished must be set, got {ttl!r}")
    rules = (spec.get("podFailurePolicy") or {}).get("rules") or []
    if not any(
        r.get("action") == "Ignore"
        and {"type": "DisruptionTarget", "status": "True"} in (r.get("onPodConditions") or [])
        for r in rules
    ):
        problems.append("spec.podFailurePolicy must ignore DisruptionTarget")
    problems += [
        f"podFailurePolicy action {r.get('action')!r} is not valid"
        for r in rules
        if r.get("action") not in POD_FAILURE_ACTIONS
    ]
    if pod.get("restartPolicy") != "Never":
        problems.append(f"restartPolicy must be Never, got {pod.get('restartPolicy')!r}")
    if pod.get("automountServiceAccountToken") is not False:
        problems.append("automountServiceAccountToken must be false (no API token in the sandbox)")
    if pod.get("enableServiceLinks") is not False:
        problems.append("enableServiceLinks must be false")
    problems += check_restricted(pod, "pod")
    problems += check_quantities(pod, "pod")
    for volume in pod.get("volumes") or []:
        if "emptyDir" in volume and not volume["emptyDir"].get("sizeLimit"):
            problems.append(f"emptyDir {volume.get('name')} has no sizeLimit")
        if "secret" in volume or "projected" in volume or "configMap" in volume:
            problems.append(f"volume {volume.get('name')} mounts secrets or config into the sandbox")
        claim = volume.get("persistentVolumeClaim")
        if claim is not None and claim.get("readOnly") is not True:
            problems.append(f"PVC volume {volume.get('name')} must be readOnly")
    containers = {c.get("name"): c for c in _containers(pod)}
    model = containers.get("model")
    if model is None or [c.get("name") for c in pod.get("initContainers") or []] != ["model"]:
        problems.append("the model must be the only init container")
        return problems
    if not DIGEST_REF.search(model.get("image", "")):
        problems.append(f"model image {model.get('image')!r} is not pinned by digest")
    for mount in model.get("volumeMounts") or []:
        if mount.get("mountPath") == "/input" and mount.get("readOnly") is not True:
            problems.append("/input must be mounted read-only")
    if any("valueFrom" in env for c in containers.values() for env in c.get("env") or []):
        problems.append("no container may read secrets or fields into its environment")
    resources = model.get("resources") or {}
    requests, limits = resources.get("requests") or {}, resources.get("limits") or {}
    for resource in ("cpu", "memory", "ephemeral-storage"):
        if resource not in limits or requests.get(resource) != limits.get(resource):
            problems.append(
                f"model {resource}: request must equal limit, got {requests.get(resource)!r} "
                f"/ {limits.get(resource)!r}"
            )
    if gpus > 0:
        value = limits.get(gpu_resource)
        if value != str(gpus) or requests.get(gpu_resource, value) != value:
            problems.append(
                f"model {gpu_resource} limit must be {gpus} (and equal any request), got {value!r}"
            )
    elif gpu_resource in limits:
        problems.append(f"model asks for {gpu_resource} although gpus=0")
    return problems


def check_role(role: dict[str, Any]) -> list[str]:
    """The runner's Role: no wildcards, no secrets, no exec/attach/port-forward, no escalation verbs."""
    problems: list[str] = []
    forbidden_resources = {
        "secrets",
        "pods/exec",
        "pods/attach",
        "pods/portforward",
        "serviceaccounts",
        "roles",
        "rolebindings",
        "networkpolicies",
    }
    for rule in role.get("rules") or []:
        resources, verbs = set(rule.get("resources") or []), set(rule.get("verbs") or [])
        if "*" in resources or "*" in verbs or "*" in (rule.get("apiGroups") or []):
            problems.append(f"Role {role['metadata']['name']} uses a wildcard: {rule}")
        if resources & forbidden_resources:
            problems.append(
                f"Role {role['metadata']['name']} grants {sorted(resources & forbidden_resources)}"
            )
        if verbs & {"escalate", "bind", "impersonate"}:
            problems.append(f"Role {role['metadata']['name']} grants {sorted(verbs)}")
    return problems


def check_deny_all(policy: dict[str, Any]) -> list[str]:
    spec = policy.get("spec") or {}
    problems = []
    if spec.get("podSelector") != {}:
        problems.append("deny-all NetworkPolicy must select every Pod (podSelector: {})")
    if sorted(spec.get("policyTypes") or []) != ["Egress", "Ingress"]:
        problems.append("deny-all NetworkPolicy must cover Ingress and Egress")
    if spec.get("ingress") or spec.get("egress"):
        problems.append("deny-all NetworkPolicy must have no allow rules")
    return problems


def _containers(pod_spec: dict[str, Any]) -> list[dict[str, Any]]:
    return [*(pod_spec.get("initContainers") or []), *(pod_spec.get("containers") or [])]
