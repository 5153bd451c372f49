"""Pure builder of the Kubernetes Job that runs one model image once (docs/contract.md, docs/design.md).

`build_job(spec, config)` returns the Job as plain JSON-ready data in the API's camelCase wire form,
so the same dict is created by the executor, printed by ``csawm k8s render-job`` and checked by
kubernetes-validate in the tests. Nothing here talks to a cluster.

Shape of the Pod: the untrusted model is the only **init container**; it sees the test inputs
read-only at ``/input`` (a PVC) and writes ``/output`` (an emptyDir with a size limit). Only when it
exits 0 does the main container start: the trusted **collector** from the server's own image, which
mounts ``/output`` read-only and prints ``predictions.csv`` framed and hashed to its log. All
hardening lives in `_security_context` and `_pod_security_context`; there is no opt-out.
"""

from __future__ import annotations

import hashlib
import math
import re
from datetime import timedelta
from typing import Any

from runner.hardening import contract_env
from runner.kubernetes.config import KubernetesRunnerConfig
from runner.spec import RunSpec

MODEL_CONTAINER = "model"
COLLECTOR_CONTAINER = "collector"
INPUT_MOUNT = "/input"
OUTPUT_MOUNT = "/output"
TMP_MOUNT = "/tmp"

LABEL_NAME = "app.kubernetes.io/name"
LABEL_MANAGED_BY = "app.kubernetes.io/managed-by"
LABEL_PART_OF = "app.kubernetes.io/part-of"
LABEL_RUN_ID = "csawm.io/run-id"
LABEL_ATTEMPT = "csawm.io/attempt"
LABEL_PHASE = "csawm.io/phase"
LABEL_KUEUE_QUEUE = "kueue.x-k8s.io/queue-name"
ANNOTATION_RUN_ID = "csawm.io/run-id"
ANNOTATION_IMAGE = "csawm.io/image"
# Set on Pods by the Job controller (Kubernetes >= 1.27); the runner selects Pods by it.
LABEL_JOB_NAME = "batch.kubernetes.io/job-name"
LABEL_CONTROLLER_UID = "batch.kubernetes.io/controller-uid"

APP_NAME = "csawm-model-run"
MANAGED_BY = "csawm-runner"
PHASES = ("preflight", "hidden")
# The folders of the test-images volume a run may mount (server.worker.test_set writes them):
# ``public`` holds the public images only, the hidden input of a development phase.
INPUTS = ("preflight", "hidden", "public")

_DIGEST_REF = re.compile(r"^[a-z0-9][a-z0-9._:/-]*@sha256:[0-9a-f]{64}$")
_LABEL_VALUE = re.compile(r"^([A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?)?$")
_MAX_NAME = 63


class ManifestError(ValueError):
    """The spec cannot become a valid Job; `field` and the message name the offending field."""

    def __init__(self, message: str, *, field: str = "spec") -> None:
        super().__init__(message)
        self.field = field


def job_name(run_id: str, attempt: int, *, prefix: str = "csawm") -> str:
    """The Job's name: ``<prefix>-<run slug>-a<attempt>``, a DNS-1123 label of at most 63 characters.

    The Job name is also the value of the ``batch.kubernetes.io/job-name`` label, hence the label
    limit of 63. When the run id is not already a lowercase DNS label (or is too long), the slug is
    its sanitised prefix plus 10 hex digits of its sha256, so distinct run ids never share a name.
    """
    _check_run_id(run_id)
    if attempt < 1:
        raise ManifestError(f"attempt must be >= 1, got {attempt}")
    suffix = f"-a{attempt}"
    room = _MAX_NAME - len(prefix) - 1 - len(suffix)
    slug = re.sub(r"-+", "-", re.sub(r"[^a-z0-9-]", "-", run_id.lower())).strip("-")
    if slug != run_id or len(slug) > room:
        digest = hashlib.sha256(run_id.encode()).hexdigest()[:10]
        slug = f"{slug[: room - len(digest) - 1].rstrip('-')}-{digest}".lstrip("-")
    return f"{prefix}-{slug}{suffix}"


def run_label_value(run_id: str) -> str:
    """The run id as a label value (at most 63 of ``[A-Za-z0-9_.-]``), hashed when it does not fit."""
    _check_run_id(run_id)
    if len(run_id) <= _MAX_NAME and _LABEL_VALUE.fullmatch(run_id):
        return run_id
    digest = hashlib.sha256(run_id.encode()).hexdigest()[:10]
    clean = re.sub(r"[^A-Za-z0-9_.-]", "-", run_id)[: _MAX_NAME - 11].strip("-_.")
    return f"{clean}-{digest}" if clean else digest


def handle_for(namespace: str, name: str) -> str:
    """The opaque run handle ``k8s:<namespace>/<job>`` (runner.spec)."""
    return f"k8s:{namespace}/{name}"


def parse_handle(handle: str) -> tuple[str, str]:
    """Split ``k8s:<namespace>/<job>``; ValueError naming the handle when it is not one."""
    namespace, _, name = handle.removeprefix("k8s:").partition("/")
    if not handle.startswith("k8s:") or not namespace or not name or "/" in name:
        raise ValueError(f"not a Kubernetes run handle: {handle!r} (expected 'k8s:<namespace>/<job>')")
    return namespace, name


def format_bytes(n: int) -> str:
    """A byte count as a Kubernetes quantity, in the largest binary unit that divides it exactly."""
    if n <= 0:
        raise ManifestError(f"byte quantity must be positive, got {n}")
    for unit, size in (("Ti", 1024**4), ("Gi", 1024**3), ("Mi", 1024**2), ("Ki", 1024)):
        if n % size == 0:
            return f"{n // size}{unit}"
    return str(n)


def format_cpus(cpus: float) -> str:
    """CPUs as a Kubernetes quantity: whole cores as ``"2"``, otherwise millicores (``"1500m"``)."""
    if not math.isfinite(cpus) or cpus <= 0:
        raise ManifestError(f"cpus must be a positive number, got {cpus}")
    millis = round(cpus * 1000)
    if millis < 1:
        raise ManifestError(f"cpus must be at least 0.001, got {cpus}")
    return str(millis // 1000) if millis % 1000 == 0 else f"{millis}m"


def active_deadline_seconds(timeout: timedelta, config: KubernetesRunnerConfig) -> int:
    """``activeDeadlineSeconds`` = ceil(run timeout + startup allowance).

    The Job deadline counts from the Job's start, Pending time (image pull, waiting for a GPU)
    included, so it gets the allowance on top; the runner enforces the model's own timeout from the
    moment it sees the model running.
    """
    if timeout <= timedelta(0):
        raise ManifestError(f"limits.timeout must be positive, got {timeout}")
    return math.ceil((timeout + config.startup_allowance).total_seconds())


def build_job(spec: RunSpec, config: KubernetesRunnerConfig) -> dict[str, Any]:
    """The ``batch/v1`` Job for one run, as wire-form JSON data.

    Raises
    ------
    ManifestError
        When the image is not pinned by digest, the phase is unknown, or a limit is not positive.
    """
    if not _DIGEST_REF.fullmatch(spec.image):
        raise ManifestError(
            f"image {spec.image!r} must be a registry reference pinned by digest "
            "('registry/repo@sha256:<64 hex digits>')",
            field="image",
        )
    if spec.phase not in PHASES:
        raise ManifestError(f"phase must be one of {', '.join(PHASES)}, got {spec.phase!r}")
    if spec.input_folder not in INPUTS:
        raise ManifestError(f"input must be one of {', '.join(INPUTS)}, got {spec.input_folder!r}")
    limits = spec.limits
    for field_name, value in (
        ("memory_bytes", limits.memory_bytes),
        ("tmp_bytes", limits.tmp_bytes),
        ("output_bytes", limits.output_bytes),
        ("output_dir_bytes", limits.output_dir_bytes),
    ):
        if value <= 0:
            raise ManifestError(f"limits.{field_name} must be positive, got {value}")
    if limits.gpus < 0:
        raise ManifestError(f"limits.gpus must be >= 0, got {limits.gpus}")

    name = job_name(spec.run_id, spec.attempt, prefix=config.job_name_prefix)
    labels = run_labels(spec, config)
    job_labels = labels | ({LABEL_KUEUE_QUEUE: config.kueue_queue} if config.kueue_queue else {})
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {
            "name": name,
            "namespace": config.namespace,
            "labels": job_labels,
            "annotations": {ANNOTATION_RUN_ID: spec.run_id, ANNOTATION_IMAGE: spec.image},
        },
        "spec": {
            "backoffLimit": 0,
            "completions": 1,
            "parallelism": 1,
            "activeDeadlineSeconds": active_deadline_seconds(limits.timeout, config),
            "ttlSecondsAfterFinished": math.ceil(config.ttl_after_finished.total_seconds()),
            # Preemption, node drain and API eviction are the cluster's doing, not the model's:
            # such a Pod failure does not count against backoffLimit and the Pod is replaced.
            "podFailurePolicy": {
                "rules": [
                    {
                        "action": "Ignore",
                        "onPodConditions": [{"type": "DisruptionTarget", "status": "True"}],
                    }
                ]
            },
            "template": {
                "metadata": {
                    "labels": labels,
                    "annotations": {"kubectl.kubernetes.io/default-container": MODEL_CONTAINER},
                },
                "spec": _pod_spec(spec, config),
            },
        },
    }


def run_labels(spec: RunSpec, config: KubernetesRunnerConfig) -> dict[str, str]:
    """Labels naming the run, on the Job and on its Pod template."""
    labels = {
        LABEL_NAME: APP_NAME,
        LABEL_MANAGED_BY: MANAGED_BY,
        LABEL_PART_OF: "csawm-leaderboard",
        LABEL_RUN_ID: run_label_value(spec.run_id),
        LABEL_ATTEMPT: str(spec.attempt),
        LABEL_PHASE: spec.phase,
    }
    for key, value in config.extra_labels:
        labels.setdefault(key, value)
    return labels


def _pod_spec(spec: RunSpec, config: KubernetesRunnerConfig) -> dict[str, Any]:
    limits = spec.limits
    model_resources: dict[str, str] = {
        "cpu": format_cpus(limits.cpus),
        "memory": format_bytes(limits.memory_bytes),
        # Counts the on-disk output emptyDir, container logs and the (read-only) writable layer.
        "ephemeral-storage": format_bytes(limits.output_dir_bytes + config.ephemeral_storage_extra_bytes),
    }
    if limits.gpus > 0:
        model_resources[config.gpu_resource_name] = str(limits.gpus)
    collector_resources = {
        "cpu": config.collector_cpu,
        "memory": config.collector_memory,
        "ephemeral-storage": format_bytes(64 * 1024**2),
    }
    input_mount: dict[str, Any] = {"name": "input", "mountPath": INPUT_MOUNT, "readOnly": True}
    if config.recursive_read_only:
        input_mount["recursiveReadOnly"] = "Enabled"
    pod: dict[str, Any] = {
        "restartPolicy": "Never",
        "serviceAccountName": config.service_account,
        "automountServiceAccountToken": False,
        "enableServiceLinks": False,
        "terminationGracePeriodSeconds": math.ceil(config.termination_grace_period.total_seconds()),
        "securityContext": _pod_security_context(config),
        "initContainers": [
            {
                "name": MODEL_CONTAINER,
                "image": spec.image,
                "imagePullPolicy": config.image_pull_policy,
                "env": [{"name": key, "value": value} for key, value in contract_env().items()],
                "resources": {"requests": dict(model_resources), "limits": dict(model_resources)},
                "securityContext": _security_context(),
                "volumeMounts": [
                    input_mount,
                    {"name": "output", "mountPath": OUTPUT_MOUNT},
                    {"name": "tmp", "mountPath": TMP_MOUNT},
                ],
                "terminationMessagePolicy": "FallbackToLogsOnError",
            }
        ],
        "containers": [
            {
                "name": COLLECTOR_CONTAINER,
                "image": config.collector_image,
                "imagePullPolicy": "IfNotPresent",
                "command": list(config.collector_command),
                "args": [
                    "--output-dir",
                    OUTPUT_MOUNT,
                    "--max-bytes",
                    str(min(limits.output_bytes, config.max_collect_bytes)),
                ],
                "env": [
                    {"name": "PYTHONDONTWRITEBYTECODE", "value": "1"},
                    {"name": "PYTHONUNBUFFERED", "value": "1"},
                ],
                "resources": {"requests": dict(collector_resources), "limits": dict(collector_resources)},
                "securityContext": _security_context(),
                "volumeMounts": [{"name": "output", "mountPath": OUTPUT_MOUNT, "readOnly": True}],
            }
        ],
        "volumes": [
            {
                "name": "input",
                "persistentVolumeClaim": {"claimName": config.input_pvc, "readOnly": True},
            },
            # Everything under /output; predictions.csv itself is capped by the collector.
            {"name": "output", "emptyDir": {"sizeLimit": format_bytes(limits.output_dir_bytes)}},
            # A tmpfs like the Docker backend's /tmp; its usage counts against the memory limit.
            {"name": "tmp", "emptyDir": {"medium": "Memory", "sizeLimit": format_bytes(limits.tmp_bytes)}},
        ],
    }
    input_mount["subPath"] = config.input_sub_path.format(phase=spec.input_folder)
    if config.runtime_class_name:
        pod["runtimeClassName"] = config.runtime_class_name
    if config.node_selector:
        pod["nodeSelector"] = dict(config.node_selector)
    if config.tolerations:
        pod["tolerations"] = [t.to_manifest() for t in config.tolerations]
    if config.image_pull_secrets:
        pod["imagePullSecrets"] = [{"name": s} for s in config.image_pull_secrets]
    return pod


def _pod_security_context(config: KubernetesRunnerConfig) -> dict[str, Any]:
    """Pod-level part of the Pod Security Standard ``restricted`` profile, with an explicit uid so
    images whose USER is root still start (as a non-root uid) instead of failing admission."""
    return {
        "runAsNonRoot": True,
        "runAsUser": config.run_as_user,
        "runAsGroup": config.run_as_group,
        "fsGroup": config.run_as_group,
        "seccompProfile": {"type": "RuntimeDefault"},
    }


def _security_context() -> dict[str, Any]:
    """Container-level part of the ``restricted`` profile, plus a read-only root filesystem."""
    return {
        "allowPrivilegeEscalation": False,
        "privileged": False,
        "readOnlyRootFilesystem": True,
        "runAsNonRoot": True,
        "capabilities": {"drop": ["ALL"]},
        "seccompProfile": {"type": "RuntimeDefault"},
    }


def _check_run_id(run_id: str) -> None:
    if not run_id or len(run_id) > 200 or not run_id.isprintable() or run_id != run_id.strip():
        raise ManifestError(
            f"run_id must be 1-200 printable characters without surrounding spaces, got {run_id!r}"
        )
