"""Deployment settings of the Kubernetes runner (docs/design.md, Runners).

Everything the manifest builder and the executor need beyond the per-run `RunSpec` lives in one
frozen `KubernetesRunnerConfig`, so a Job is a pure function of (spec, config). The server maps its
``CSAWM_*`` settings onto this dataclass; the defaults match the manifests shipped in ``k8s/``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Literal

_DNS1123_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
_DNS1123_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")


class KubernetesConfigError(ValueError):
    """A setting of the Kubernetes runner is invalid; the message names the setting."""


@dataclass(frozen=True)
class Toleration:
    """One Pod toleration (``key``/``operator``/``value``/``effect`` as in the Kubernetes API)."""

    key: str
    operator: Literal["Exists", "Equal"] = "Exists"
    value: str | None = None
    effect: Literal["NoSchedule", "PreferNoSchedule", "NoExecute"] | None = "NoSchedule"

    def to_manifest(self) -> dict[str, str]:
        fields = {"key": self.key, "operator": self.operator, "value": self.value, "effect": self.effect}
        return {k: v for k, v in fields.items() if v is not None}


@dataclass(frozen=True)
class KubernetesRunnerConfig:
    """Settings of the Kubernetes runner.

    Attributes
    ----------
    namespace
        The evaluation namespace (PSA ``restricted``, deny-all NetworkPolicy; see ``k8s/``).
    service_account
        A permissionless ServiceAccount for the model Pods; its token is never mounted anyway.
    node_selector, tolerations
        Placement on the GPU node pool. The default tolerates the usual ``nvidia.com/gpu`` taint.
    runtime_class_name
        Optional sandbox runtime (``gvisor``, a Kata class); None uses the node's default.
    gpu_resource_name
        Extended resource the device plugin advertises.
    input_pvc, input_sub_path
        The read-only PVC holding the prepared model inputs; ``input_sub_path`` is formatted with
        ``{phase}`` replaced by the run's input folder (`RunSpec.input_folder`: ``preflight``,
        ``hidden``, or ``public`` for the hidden run of a development phase, which must never see
        the private images) and must contain ``images/`` and ``manifest.csv``.
    collector_image, collector_command
        The server's own image and how to start the trusted collector inside it.
    image_pull_secrets
        Names of ``kubernetes.io/dockerconfigjson`` Secrets in ``namespace`` for submitted images.
    kueue_queue
        Optional Kueue LocalQueue; adds the ``kueue.x-k8s.io/queue-name`` label.
    ttl_after_finished
        Backstop for cleanup; the runner reads the logs and deletes the Job first.
    startup_allowance
        Added to the run timeout for ``activeDeadlineSeconds``, which also counts Pending time
        (image pull, waiting for a GPU).
    schedule_timeout
        How long a Pod may stay unschedulable before the run fails with ``infra_error``. Keep it
        below ``startup_allowance``, which the Job deadline spends on the same wait.
    queue_timeout
        How long a Job may stay suspended by Kueue (waiting for quota) before the run fails with
        ``infra_error``; the Job deadline does not run while it is suspended.
    max_collect_bytes
        Cap on ``predictions.csv`` for this backend: the bytes travel base64-encoded through the
        collector's log, and kubelet rotates container logs at 10 MiB by default.
    """

    namespace: str = "csawm-eval"
    service_account: str = "csawm-model"
    node_selector: tuple[tuple[str, str], ...] = ()
    tolerations: tuple[Toleration, ...] = (Toleration(key="nvidia.com/gpu"),)
    runtime_class_name: str | None = None
    gpu_resource_name: str = "nvidia.com/gpu"
    input_pvc: str = "csawm-test-images"
    input_sub_path: str = "{phase}"
    recursive_read_only: bool = False  # KEP-3857: needs Kubernetes >= 1.30 and runtime support
    collector_image: str = "csawm-leaderboard:latest"
    collector_command: tuple[str, ...] = ("python3", "-m", "runner.kubernetes.collector")
    collector_cpu: str = "100m"
    collector_memory: str = "256Mi"
    image_pull_secrets: tuple[str, ...] = ()
    image_pull_policy: Literal["IfNotPresent", "Always"] = "IfNotPresent"
    kueue_queue: str | None = None
    ttl_after_finished: timedelta = timedelta(hours=1)
    startup_allowance: timedelta = timedelta(minutes=15)
    schedule_timeout: timedelta = timedelta(minutes=10)
    queue_timeout: timedelta = timedelta(hours=24)
    termination_grace_period: timedelta = timedelta(seconds=15)
    run_as_user: int = 65532
    run_as_group: int = 65532
    ephemeral_storage_extra_bytes: int = 256 * 1024**2
    max_collect_bytes: int = 4 * 1024**2
    job_name_prefix: str = "csawm"
    watch_timeout: timedelta = timedelta(seconds=30)
    api_retries: int = 5
    api_backoff: timedelta = timedelta(milliseconds=500)
    api_backoff_max: timedelta = timedelta(seconds=8)
    max_disruptions: int = 3
    runner_grace: timedelta = timedelta(seconds=60)
    extra_labels: tuple[tuple[str, str], ...] = field(default=())

    def __post_init__(self) -> None:
        if not _DNS1123_LABEL.fullmatch(self.namespace) or len(self.namespace) > 63:
            raise KubernetesConfigError(f"namespace {self.namespace!r} is not a DNS-1123 label")
        for setting, value in (
            ("service_account", self.service_account),
            ("input_pvc", self.input_pvc),
            *(("image_pull_secrets", s) for s in self.image_pull_secrets),
            *(("runtime_class_name", s) for s in [self.runtime_class_name] if s is not None),
        ):
            if not _DNS1123_SUBDOMAIN.fullmatch(value) or len(value) > 253:
                raise KubernetesConfigError(f"{setting} {value!r} is not a DNS-1123 subdomain")
        if not _DNS1123_LABEL.fullmatch(self.job_name_prefix) or len(self.job_name_prefix) > 20:
            raise KubernetesConfigError(
                f"job_name_prefix {self.job_name_prefix!r} must be a DNS-1123 label of at most 20 characters"
            )
        if self.run_as_user <= 0 or self.run_as_group <= 0:
            raise KubernetesConfigError("run_as_user and run_as_group must be positive (non-root) ids")
        if not self.collector_image or not self.collector_command:
            raise KubernetesConfigError("collector_image and collector_command must be set")
        for setting, duration in (
            ("ttl_after_finished", self.ttl_after_finished),
            ("startup_allowance", self.startup_allowance),
            ("schedule_timeout", self.schedule_timeout),
            ("queue_timeout", self.queue_timeout),
            ("watch_timeout", self.watch_timeout),
            ("api_backoff_max", self.api_backoff_max),
        ):
            if duration <= timedelta(0):
                raise KubernetesConfigError(f"{setting} must be positive, got {duration}")
        if self.api_retries < 0 or self.max_disruptions < 0:
            raise KubernetesConfigError("api_retries and max_disruptions must be >= 0")
        if self.max_collect_bytes <= 0:
            raise KubernetesConfigError("max_collect_bytes must be positive")
        parts = self.input_sub_path.split("/")
        if self.input_sub_path.startswith("/") or ".." in parts:
            raise KubernetesConfigError(
                f"input_sub_path {self.input_sub_path!r} must be a relative path without '..'"
            )
        try:
            probe = self.input_sub_path.format(phase="\0")
        except (KeyError, IndexError, ValueError):
            probe = ""
        if "\0" not in probe:
            # Without it every run would mount one folder (or the whole volume): the preflight and a
            # development phase's hidden run would see the private images.
            raise KubernetesConfigError(
                f"input_sub_path {self.input_sub_path!r} must contain {{phase}} (each run mounts its "
                "own input folder) and no other placeholder"
            )
