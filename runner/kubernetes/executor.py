"""The Kubernetes runner: `runner.spec.Runner` on top of the official ``kubernetes`` client.

``start`` creates the Job built by `runner.kubernetes.manifest.build_job` (idempotent: a 409 for the
same run and image is the same run). ``wait`` follows the run list-then-watch, the way informers do:
it reads the Job, its Pods (by the ``batch.kubernetes.io/job-name`` label, then re-checked by
owner uid, because a label selector is a request, not a guarantee) and, while there is no Pod, the
Job's Events; classifies that observation with `runner.kubernetes.failures.classify`; then watches
the Pods until something changes or ``watch_timeout`` passes, and looks again. A watch that expires
(410 Gone) or drops simply leads to the next list. Layers of time limits:

1. the Job's ``activeDeadlineSeconds`` (timeout + startup allowance), enforced by the cluster;
2. the runner's own clock: the model's timeout while it is seen running (not the collector's
   time after it), plus
   ``runner_grace``; ``schedule_timeout`` for an unschedulable Pod and ``queue_timeout`` for a Job
   suspended by Kueue; and a hard cap of the Job deadline plus grace from when the Job is first
   seen unsuspended, in case the cluster never enforces it.

When ``wait`` decides a run is over while the Job still runs (a failed image pull, a timeout of
its own), it deletes the Job so the GPU is freed; ``cleanup`` is still required and idempotent.
Results come only from the trusted collector's log (a hashed frame) and, for the user, the tail of
the model's log. API calls are retried on 429 and 5xx with bounded exponential backoff
(honouring ``Retry-After``); a 404 on delete is success.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import urllib3
from kubernetes import client
from kubernetes import config as _kube_config_module
from kubernetes import watch as _watch_module
from kubernetes.client.exceptions import ApiException
from kubernetes.config import ConfigException

from runner.errors import ImageInvalidError, PermanentInfraError, TransientInfraError
from runner.kubernetes.config import KubernetesRunnerConfig
from runner.kubernetes.failures import Observation, Verdict, classify
from runner.kubernetes.framing import FrameError, parse_frame
from runner.kubernetes.manifest import (
    ANNOTATION_IMAGE,
    ANNOTATION_RUN_ID,
    COLLECTOR_CONTAINER,
    LABEL_CONTROLLER_UID,
    LABEL_JOB_NAME,
    LABEL_MANAGED_BY,
    MANAGED_BY,
    MODEL_CONTAINER,
    ManifestError,
    active_deadline_seconds,
    build_job,
    handle_for,
    job_name,
    parse_handle,
)
from runner.spec import ErrorCode, RunObject, RunResult, RunSpec, TerminalState

log = logging.getLogger(__name__)
# These two modules of the official client carry no type annotations.
kube_config: Any = _kube_config_module
kube_watch: Any = _watch_module

RETRYABLE_STATUSES = frozenset({429, 500, 502, 503, 504})


@dataclass(frozen=True)
class Progress:
    """What the runner last saw of a run, for the worker to show (e.g. "unschedulable: ...")."""

    handle: str
    kind: str
    message: str


def load_api_client() -> client.ApiClient:
    """An API client from the in-cluster service account, else from the kubeconfig.

    ``KUBECONFIG`` is read now, not when the client library was imported (its default is frozen
    at import time).
    """
    configuration = client.Configuration()
    try:
        kube_config.load_incluster_config(client_configuration=configuration)
    except ConfigException:
        kube_config.load_kube_config(
            config_file=os.environ.get("KUBECONFIG") or None, client_configuration=configuration
        )
    return client.ApiClient(configuration)


class KubernetesRunner:
    """Runs model images as Kubernetes Jobs (see the module docstring).

    Parameters
    ----------
    config
        Deployment settings; the Job is a pure function of (spec, config).
    api_client
        The official client's `ApiClient`; None loads in-cluster config, else the kubeconfig, on
        first use (so the runner can be built where no cluster is configured).
    on_progress
        Called with a `Progress` whenever what ``wait`` sees changes (queued with the scheduler's
        or Kueue's reason, starting, running, the end), so the worker can show it.
    """

    name = "kubernetes"
    accepts_archives = False  # a cluster pulls images by digest from a registry (issue 13)
    mounts_local_inputs = False  # the test images come from a volume the operator loads

    def __init__(
        self,
        config: KubernetesRunnerConfig | None = None,
        *,
        api_client: client.ApiClient | None = None,
        on_progress: Callable[[Progress], None] | None = None,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.config = config or KubernetesRunnerConfig()
        # The API client is built on first use, so a worker (or a test) can construct the runner
        # without a cluster or kubeconfig; a missing configuration surfaces on the first run.
        self._api: client.ApiClient | None = api_client
        self._apis: tuple[client.BatchV1Api, client.CoreV1Api] | None = None
        self.on_progress = on_progress  # public: the worker that owns the runner may set it
        self._clock = clock
        self._sleep = sleep
        self._cancelled: set[str] = set()
        self._lock = threading.Lock()

    # -- API clients -------------------------------------------------------------------------------

    def _clients(self) -> tuple[client.BatchV1Api, client.CoreV1Api]:
        """The Batch and Core APIs, built on first use.

        Raises
        ------
        PermanentInfraError
            Neither in-cluster config nor a kubeconfig is available (operators must fix it).
        """
        with self._lock:
            if self._apis is None:
                if self._api is None:
                    try:
                        self._api = load_api_client()
                    except (ConfigException, OSError) as exc:
                        raise PermanentInfraError(
                            f"no Kubernetes configuration (not in a cluster, no usable kubeconfig): {exc}"
                        ) from exc
                self._apis = (client.BatchV1Api(self._api), client.CoreV1Api(self._api))
            return self._apis

    @property
    def _batch(self) -> client.BatchV1Api:
        return self._clients()[0]

    @property
    def _core(self) -> client.CoreV1Api:
        return self._clients()[1]

    # -- Runner protocol ---------------------------------------------------------------------------

    def handle_for(self, spec: RunSpec) -> str:
        name = job_name(spec.run_id, spec.attempt, prefix=self.config.job_name_prefix)
        return handle_for(self.config.namespace, name)

    def load_archive(self, path: Path) -> str:
        raise PermanentInfraError(
            "the kubernetes runner cannot load image archives: a cluster pulls images from a registry "
            "(configure CSAWM_REGISTRY so accepted archives are pushed there)"
        )

    def image_for_reference(self, reference: str, image_id: str) -> str:
        return reference  # the kubelet pulls it by digest (imagePullSecrets from the config)

    def has_image(self, image: str) -> bool:
        return False  # nodes pull by digest; there is no image store to ask

    def remove_image(self, image: str) -> bool:
        return False  # images live in the registry and on nodes, garbage-collected by the kubelet

    def list_runs(self) -> list[RunObject]:
        """The Jobs of this runner in its namespace. Their deadline is the cluster's own
        (``activeDeadlineSeconds``, ``ttlSecondsAfterFinished``), so it is not repeated here."""
        try:
            jobs = self._call(
                self._batch.list_namespaced_job,
                self.config.namespace,
                label_selector=f"{LABEL_MANAGED_BY}={MANAGED_BY}",
            )
        except ApiException as exc:
            raise PermanentInfraError(f"cannot list Jobs in {self.config.namespace}: {_reason(exc)}") from exc
        return [
            RunObject(
                handle=handle_for(job.metadata.namespace, job.metadata.name),
                run_id=(job.metadata.annotations or {}).get(ANNOTATION_RUN_ID, ""),
                deadline=None,
            )
            for job in jobs.items or []
        ]

    def start(self, spec: RunSpec) -> str:
        """Create the Job; return ``k8s:<namespace>/<job>``.

        Raises
        ------
        ImageInvalidError
            The image reference is not pinned by digest.
        PermanentInfraError
            Another spec field or the cluster refused the Job (403, 422), or the name is taken by
            another run.
        TransientInfraError
            The API stayed unavailable through the retries.
        """
        try:
            manifest = build_job(spec, self.config)
        except ManifestError as exc:
            if exc.field == "image":
                raise ImageInvalidError(str(exc)) from exc
            raise PermanentInfraError(f"cannot build the Job: {exc}") from exc
        namespace = manifest["metadata"]["namespace"]
        name = manifest["metadata"]["name"]
        try:
            self._call(self._batch.create_namespaced_job, namespace, manifest, _preload_content=False)
        except ApiException as exc:
            if exc.status != 409:
                raise PermanentInfraError(f"cannot create Job {namespace}/{name}: {_reason(exc)}") from exc
            existing = self._read_json(self._batch.read_namespaced_job, name, namespace)
            annotations = ((existing or {}).get("metadata") or {}).get("annotations") or {}
            owner = (annotations.get(ANNOTATION_RUN_ID), annotations.get(ANNOTATION_IMAGE))
            if owner != (spec.run_id, spec.image):
                raise PermanentInfraError(
                    f"Job {namespace}/{name} already exists for another run or image "
                    f"(run {owner[0]!r}, image {owner[1]!r})"
                ) from exc
        return handle_for(namespace, name)

    def wait(self, handle: str, spec: RunSpec) -> RunResult:
        """Follow the run until it ends or a time limit passes, and collect its result."""
        namespace, name = parse_handle(handle)
        clock = _Clocks(
            timeout_s=spec.limits.timeout.total_seconds(),
            hard_cap_s=active_deadline_seconds(spec.limits.timeout, self.config)
            + self.config.runner_grace.total_seconds(),
        )
        last_report: tuple[str, str] | None = None
        while True:
            observation, pods_version = self._observe(namespace, name)
            observation = replace(observation, model_seen=clock.model_seen_at is not None)
            verdict = classify(observation)
            if observation.job is None and handle in self._cancelled:
                verdict = Verdict("failed", "the run was cancelled", ErrorCode.CANCELLED)
            if (verdict.kind, verdict.message) != last_report:
                self._report(handle, verdict)
                last_report = (verdict.kind, verdict.message)
            if verdict.kind in ("succeeded", "failed"):
                break
            stop = self._time_limit(verdict, clock.update(verdict, self._clock()))
            if stop is not None:
                verdict = stop
                self._report(handle, verdict)
                break
            self._watch_pods(namespace, name, observation, pods_version)
        if verdict.duration_s is None and clock.model_seen_at is not None:
            verdict = replace(verdict, duration_s=self._clock() - clock.model_seen_at)
        result = self._collect(handle, namespace, name, verdict, spec)
        if verdict.kind == "failed" and observation.job is not None and not _finished(observation.job):
            self._delete_job(namespace, name)  # stop it: the run is decided, free the node
        return result

    def cancel(self, handle: str) -> None:
        """Delete the Job (and, through the garbage collector, its Pod). Never raises for a gone run."""
        namespace, name = parse_handle(handle)
        with self._lock:
            self._cancelled.add(handle)
        self._delete_job(namespace, name)

    def cleanup(self, handle: str) -> None:
        """Delete the Job and its Pods; a Job that is already gone is fine."""
        self._delete_job(*parse_handle(handle))

    # -- observing ---------------------------------------------------------------------------------

    def _observe(self, namespace: str, name: str) -> tuple[Observation, str | None]:
        try:
            job = self._read_json(self._batch.read_namespaced_job, name, namespace)
            if job is None:
                return Observation(job_name=name, job=None), None
            uid = (job.get("metadata") or {}).get("uid")
            pod_list = self._call_json(
                self._core.list_namespaced_pod, namespace, label_selector=f"{LABEL_JOB_NAME}={name}"
            )
            pods = tuple(p for p in pod_list.get("items") or [] if _owned_by(p, name, uid))
            events: tuple[dict[str, Any], ...] = ()
            if not pods:
                event_list = self._call_json(
                    self._core.list_namespaced_event,
                    namespace,
                    field_selector=f"involvedObject.kind=Job,involvedObject.name={name}",
                )
                events = tuple(e for e in event_list.get("items") or [] if _about_job(e, name, uid))
            version = (pod_list.get("metadata") or {}).get("resourceVersion")
            return Observation(job_name=name, job=job, pods=pods, events=events), version
        except ApiException as exc:  # 401/403 and the like: the deployment is wrong
            raise PermanentInfraError(
                f"cannot read Job {namespace}/{name} and its Pods: {_reason(exc)}"
            ) from exc

    def _watch_pods(self, namespace: str, name: str, seen: Observation, version: str | None) -> None:
        """Block until one of the Job's Pods changes, the watch ends, or ``watch_timeout`` passes."""
        uid = ((seen.job or {}).get("metadata") or {}).get("uid")
        known = {(p.get("metadata") or {}).get("name"): _fingerprint(p) for p in seen.pods}
        timeout_s = max(1, math.ceil(self.config.watch_timeout.total_seconds()))
        watcher = kube_watch.Watch()
        kwargs: dict[str, Any] = {
            "label_selector": f"{LABEL_JOB_NAME}={name}",
            "timeout_seconds": timeout_s,
            # Servers end a watch at timeoutSeconds; the read timeout covers one that does not.
            "_request_timeout": (10, timeout_s + 5),
        }
        if version:
            kwargs["resource_version"] = version
        try:
            for event in watcher.stream(self._core.list_namespaced_pod, namespace, **kwargs):
                if not isinstance(event, dict) or event.get("type") == "BOOKMARK":
                    continue
                pod = event.get("raw_object")
                if not isinstance(pod, dict) or not _owned_by(pod, name, uid):
                    continue
                pod_name = (pod.get("metadata") or {}).get("name")
                if event.get("type") == "DELETED" or known.get(pod_name) != _fingerprint(pod):
                    return
        except ApiException as exc:
            if exc.status == 410:
                log.debug("watch on %s/%s expired (410); re-listing", namespace, name)
            elif exc.status in RETRYABLE_STATUSES:
                self._sleep(self._backoff(0, exc))
            else:
                raise PermanentInfraError(
                    f"cannot watch the Pods of {namespace}/{name}: {_reason(exc)}"
                ) from exc
        except (urllib3.exceptions.HTTPError, OSError) as exc:
            log.debug("watch on %s/%s ended (%s); re-listing", namespace, name, exc)
        finally:
            watcher.stop()

    def _time_limit(self, verdict: Verdict, clock: _Clocks) -> Verdict | None:
        """The runner's own limits (module docstring, layer 2), as a failed verdict or None."""
        grace_s = self.config.runner_grace.total_seconds()

        def failed(code: ErrorCode, message: str) -> Verdict:
            return replace(verdict, kind="failed", error_code=code, message=message)

        if clock.model_running_s is not None and clock.model_running_s > clock.timeout_s + grace_s:
            return failed(
                ErrorCode.TIMEOUT, f"the model ran longer than its time limit of {clock.timeout_s:g} s"
            )
        for since, limit in (
            (clock.unschedulable_since, self.config.schedule_timeout),
            (clock.queued_since, self.config.queue_timeout),
        ):
            if since is not None and clock.now - since > limit.total_seconds():
                return failed(
                    ErrorCode.INFRA_ERROR, f"the run could not start within {limit} ({verdict.message})"
                )
        if verdict.disruptions > self.config.max_disruptions:
            return failed(ErrorCode.INFRA_ERROR, f"the cluster disrupted the run {verdict.disruptions} times")
        if clock.active_since is not None and clock.now - clock.active_since > clock.hard_cap_s:
            code = ErrorCode.TIMEOUT if verdict.model_started else ErrorCode.INFRA_ERROR
            return failed(code, f"the Job did not finish within its deadline plus {grace_s:g} s")
        return None

    # -- results -----------------------------------------------------------------------------------

    def _collect(self, handle: str, namespace: str, name: str, verdict: Verdict, spec: RunSpec) -> RunResult:
        limits = spec.limits
        log_tail = self._model_log_tail(
            namespace, verdict.pod_name, limits.log_tail_lines, limits.log_tail_bytes
        )
        result = RunResult(
            state=TerminalState.FAILED,
            error_code=verdict.error_code,
            message=verdict.message,
            exit_code=verdict.exit_code,
            duration_s=verdict.duration_s or 0.0,
            peak_memory_bytes=None,  # not reported by the Kubernetes API without a metrics pipeline
            log_tail=log_tail,
            predictions=None,
            handle=handle,
        )

        def failed(code: ErrorCode, message: str) -> RunResult:
            return replace(result, error_code=code, message=message)

        if verdict.error_code == ErrorCode.CANCELLED:
            return replace(result, state=TerminalState.CANCELLED)
        if verdict.kind != "succeeded":
            return result
        if verdict.pod_name is None:
            return failed(
                ErrorCode.INFRA_ERROR, "the Job completed but its Pod (and the collector's log) is gone"
            )
        cap = min(limits.output_bytes, self.config.max_collect_bytes)
        # base64 (4/3), a newline every 76 characters, header and footer lines.
        log_cap = math.ceil(cap * 4 / 3) + cap // 57 + 4096
        try:
            raw = self._read_log(namespace, verdict.pod_name, COLLECTOR_CONTAINER, limit_bytes=log_cap)
        except ApiException as exc:
            if exc.status == 404:
                return failed(
                    ErrorCode.INFRA_ERROR,
                    "the Pod was deleted (TTL or garbage collection) before its logs were read; "
                    "the predictions are gone",
                )
            return failed(ErrorCode.INFRA_ERROR, f"the collector's log could not be read ({_reason(exc)})")
        try:
            frame = parse_frame(raw, max_bytes=cap)
        except FrameError as exc:
            return failed(ErrorCode.OUTPUT_INVALID, f"the predictions did not arrive intact: {exc}")
        if frame.status == "missing":
            return failed(ErrorCode.OUTPUT_MISSING, frame.message)
        if frame.status == "rejected":
            return failed(ErrorCode.OUTPUT_INVALID, frame.message)
        return replace(
            result,
            state=TerminalState.SUCCEEDED,
            error_code=None,
            message="the model finished and its predictions were collected",
            predictions=frame.data,
        )

    def _model_log_tail(self, namespace: str, pod: str | None, lines: int, max_bytes: int) -> str:
        if pod is None:
            return ""
        try:
            # limitBytes counts from the start of the tailed lines: read generously, keep the end.
            read_cap = max(max_bytes * 8, 1 << 20)
            raw = self._read_log(
                namespace, pod, MODEL_CONTAINER, tail_lines=max(1, lines), limit_bytes=read_cap
            )
        except ApiException as exc:
            return f"(the model's log is unavailable: {_reason(exc)})"
        return raw[-max_bytes:].decode("utf-8", errors="replace") if max_bytes > 0 else ""

    def _read_log(self, namespace: str, pod: str, container: str, **params: Any) -> bytes:
        read = self._core.read_namespaced_pod_log
        return bytes(
            self._call(read, pod, namespace, container=container, _preload_content=False, **params).data
        )

    def _report(self, handle: str, verdict: Verdict) -> None:
        if self.on_progress is not None:
            self.on_progress(Progress(handle=handle, kind=verdict.kind, message=verdict.message))

    # -- API plumbing ------------------------------------------------------------------------------

    def _delete_job(self, namespace: str, name: str) -> None:
        try:
            self._call(
                self._batch.delete_namespaced_job,
                name,
                namespace,
                propagation_policy="Background",
                _preload_content=False,
            )
        except ApiException as exc:
            if exc.status != 404:
                raise PermanentInfraError(f"cannot delete Job {namespace}/{name}: {_reason(exc)}") from exc

    def _read_json(self, method: Callable[..., Any], *args: Any, **kwargs: Any) -> dict[str, Any] | None:
        """GET one object as wire-form JSON; None on 404."""
        try:
            return self._call_json(method, *args, **kwargs)
        except ApiException as exc:
            if exc.status == 404:
                return None
            raise

    def _call_json(self, method: Callable[..., Any], *args: Any, **kwargs: Any) -> dict[str, Any]:
        data = json.loads(self._call(method, *args, _preload_content=False, **kwargs).data)
        if not isinstance(data, dict):
            raise PermanentInfraError(f"the API answered {method.__name__} with {type(data).__name__}")
        return data

    def _call(self, method: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        """Call the API, retrying 429/5xx and connection errors up to ``api_retries`` times.

        Other API errors are raised as `ApiException` for the caller to interpret (404, 409, 400);
        once the retries are spent, `TransientInfraError`.
        """
        what = getattr(method, "__name__", "API call")
        for attempt in range(self.config.api_retries + 1):
            try:
                return method(*args, **kwargs)
            except ApiException as exc:
                if exc.status not in RETRYABLE_STATUSES:
                    raise
                if attempt == self.config.api_retries:
                    raise TransientInfraError(
                        f"the Kubernetes API kept failing {what} ({_reason(exc)}) after {attempt + 1} tries"
                    ) from exc
                delay = self._backoff(attempt, exc)
            except urllib3.exceptions.HTTPError as exc:
                if attempt == self.config.api_retries:
                    raise TransientInfraError(f"the Kubernetes API is unreachable ({what}): {exc}") from exc
                delay = self._backoff(attempt, None)
            log.debug("retrying %s in %.2f s", what, delay)
            self._sleep(delay)
        raise AssertionError("unreachable")  # the loop returns or raises

    def _backoff(self, attempt: int, exc: ApiException | None) -> float:
        """Exponential backoff ``api_backoff * 2**attempt``, or the server's Retry-After, capped."""
        cap = self.config.api_backoff_max.total_seconds()
        retry_after = (exc.headers or {}).get("Retry-After") if exc is not None else None
        if retry_after is not None:
            with contextlib.suppress(ValueError):
                return min(cap, max(0.0, float(str(retry_after))))
        return min(cap, self.config.api_backoff.total_seconds() * float(2**attempt))


@dataclass
class _Clocks:
    """The runner's own timers for one ``wait``, on the monotonic clock.

    The model's timeout runs from when the runner first sees the model started until it sees it
    no longer running (it resumes if a replacement Pod's model runs again): the collector's image
    pull and run after a model that finished in time are not the model's time. The hard cap runs from
    when the Job is first seen not suspended (the Job deadline also stops while Kueue suspends it);
    the unschedulable and queued timers run while those states last.
    """

    timeout_s: float
    hard_cap_s: float
    model_seen_at: float | None = None
    model_done_at: float | None = None
    active_since: float | None = None
    unschedulable_since: float | None = None
    queued_since: float | None = None
    now: float = 0.0

    def update(self, verdict: Verdict, now: float) -> _Clocks:
        self.now = now
        if verdict.model_started and self.model_seen_at is None:
            self.model_seen_at = now
        if verdict.model_running:
            self.model_done_at = None
        elif self.model_seen_at is not None and self.model_done_at is None:
            self.model_done_at = now
        if not verdict.queued and self.active_since is None:
            self.active_since = now
        self.unschedulable_since = (self.unschedulable_since or now) if verdict.unschedulable else None
        self.queued_since = (self.queued_since or now) if verdict.queued else None
        return self

    @property
    def model_running_s(self) -> float | None:
        if self.model_seen_at is None:
            return None
        return (self.model_done_at or self.now) - self.model_seen_at


def _owned_by(pod: dict[str, Any], job_name: str, job_uid: str | None) -> bool:
    """Whether a Pod belongs to this Job: its job-name label, and its owner uid when both are known."""
    meta = pod.get("metadata") or {}
    if (meta.get("labels") or {}).get(LABEL_JOB_NAME) != job_name:
        return False
    if job_uid is None:
        return True
    owners = [o.get("uid") for o in meta.get("ownerReferences") or [] if o.get("kind") == "Job"]
    label_uid = (meta.get("labels") or {}).get(LABEL_CONTROLLER_UID)
    return job_uid in owners or label_uid == job_uid


def _about_job(event: dict[str, Any], job_name: str, job_uid: str | None) -> bool:
    involved = event.get("involvedObject") or {}
    if involved.get("kind") != "Job" or involved.get("name") != job_name:
        return False
    return job_uid is None or involved.get("uid") in (None, job_uid)


def _fingerprint(pod: dict[str, Any]) -> str:
    meta = pod.get("metadata") or {}
    return json.dumps(
        [meta.get("resourceVersion"), meta.get("deletionTimestamp"), pod.get("status")], sort_keys=True
    )


def _finished(job: dict[str, Any]) -> bool:
    conditions = (job.get("status") or {}).get("conditions") or []
    return any(c.get("type") in ("Complete", "Failed") and c.get("status") == "True" for c in conditions)


def _reason(exc: ApiException) -> str:
    if isinstance(exc.body, str | bytes):
        with contextlib.suppress(ValueError, AttributeError):
            if message := json.loads(exc.body).get("message"):
                return f"{exc.status} {message}"
    return f"{exc.status} {exc.reason}"
