"""A fake Kubernetes control plane for the runner's contract tests.

kmock 0.8's ``KubernetesEmulator`` is a real HTTP server on 127.0.0.1 that stores objects and serves
create/get/list/watch/patch/delete to the *unmodified* official client, but it runs no controller,
no kubelet and no garbage collector, and it ignores selectors. `FakeApiServer` adds the API-server
behaviours the runner relies on; `FakeCluster` plays the Job controller, the kubelet and the garbage
collector *through the same HTTP API* (so watch events fire exactly as for real changes). This is
our model of Kubernetes; where it differs from a real cluster, the live suite (``test_live.py``) is
the judge. Every simulated behaviour, and the documentation it follows:

API server (`FakeApiServer`)
  A1  ``metadata.uid``, ``creationTimestamp`` and a monotonically increasing ``resourceVersion`` are
      set on create; ``resourceVersion`` changes on every update, and lists carry the current one.
      https://kubernetes.io/docs/reference/using-api/api-concepts/#resource-versions
  A2  Label selectors (``k=v``, ``k==v``, ``k!=v``, ``k``, ``!k``) on list and watch; set-based
      selectors (``in``, ``notin``) are refused with 400 here (a real server supports them; the
      runner does not use them). https://kubernetes.io/docs/concepts/overview/working-with-objects/labels/
  A3  Field selectors ``metadata.name``, ``metadata.namespace``, ``involvedObject.kind`` and
      ``involvedObject.name`` (``=``/``==``); any other field is refused with 400, as a real server
      refuses unsupported field labels.
      https://kubernetes.io/docs/concepts/overview/working-with-objects/field-selectors/
  A4  A watch ends after ``timeoutSeconds``; an expired watch answers with an ``ERROR`` event whose
      Status has code 410 (Gone) when a test arms `FakeCluster.expire_watches`.
      https://kubernetes.io/docs/reference/using-api/api-concepts/#efficient-detection-of-changes
  A5  ``GET pods/{name}/log?container=`` serves the container's log as ``text/plain``, applying
      ``tailLines`` then ``limitBytes``; 404 when the Pod is gone; 400 "is waiting to start" before
      the container ran. https://kubernetes.io/docs/reference/kubernetes-api/workload-resources/pod-v1/#read-log-of-the-specified-pod
  A6  Injected faults (`FakeCluster.fail_next`): a Status error (429, 5xx, ...) for the next N runner
      requests matching a method and path. https://kubernetes.io/docs/reference/using-api/api-concepts/#retrying-requests
  A7  Create of an existing name is 409 Conflict; read after delete is 404 (kmock's own behaviour).

Job controller (`FakeCluster._run_job`)
  J1  One Pod per Job named ``<job>-<5 chars>``, with the template's labels plus
      ``batch.kubernetes.io/job-name``, ``batch.kubernetes.io/controller-uid`` (and the legacy
      ``job-name``, ``controller-uid``) and an ``ownerReference`` to the Job (controller: true).
      https://kubernetes.io/docs/concepts/workloads/controllers/job/#job-labels
  J2  Pod creation refused by admission or quota: no Pod, a ``Warning``/``FailedCreate`` Event on the
      Job, the Job stays active. https://kubernetes.io/docs/concepts/workloads/controllers/job/#pod-backoff-failure-policy
      and https://kubernetes.io/docs/concepts/security/pod-security-admission/ (enforce rejects Pods)
  J3  With ``backoffLimit: 0`` a failed Pod fails the Job: ``FailureTarget`` then ``Failed``, reason
      ``BackoffLimitExceeded``; success adds ``SuccessCriteriaMet`` then ``Complete``
      (the 1.31+ ordering). https://kubernetes.io/docs/concepts/workloads/controllers/job/#terminal-job-conditions
  J4  ``activeDeadlineSeconds`` reached: ``FailureTarget``/``Failed`` with reason
      ``DeadlineExceeded``, and the running Pod is deleted. The fake keeps no clock: the
      ``deadline`` script plays this end state once the model runs.
      https://kubernetes.io/docs/concepts/workloads/controllers/job/#job-termination-and-cleanup
  J5  A Pod failed with condition ``DisruptionTarget`` is ignored by the podFailurePolicy and
      replaced by a new Pod. https://kubernetes.io/docs/concepts/workloads/controllers/job/#pod-failure-policy
  J6  Suspended Jobs get no Pod until resumed (``spec.suspend: false``); Kueue's webhook creates
      Jobs that carry ``kueue.x-k8s.io/queue-name`` suspended and resumes them on admission
      (`FakeCluster.admit`). https://kubernetes.io/docs/concepts/workloads/controllers/job/#suspending-a-job
      and https://kueue.sigs.k8s.io/docs/tasks/run/jobs/

Scheduler and kubelet
  K1  No node fits: ``PodScheduled=False``, reason ``Unschedulable``, phase Pending.
      https://kubernetes.io/docs/concepts/scheduling-eviction/pod-scheduling-readiness/ and
      https://kubernetes.io/docs/tasks/manage-gpus/scheduling-gpus/
  K2  Init container first: the main (collector) container waits in ``PodInitializing`` until the
      model exits 0; a non-zero exit fails the Pod (``restartPolicy: Never``) and the collector never
      runs. https://kubernetes.io/docs/concepts/workloads/pods/init-containers/
  K3  Image pull failure: the model waits with ``ErrImagePull`` then ``ImagePullBackOff`` (forever).
      https://kubernetes.io/docs/concepts/containers/images/#imagepullbackoff
  K4  ``OOMKilled``: terminated with reason ``OOMKilled`` and exit code 137.
      https://kubernetes.io/docs/tasks/configure-pod-container/assign-memory-resource/#exceed-a-container-s-memory-limit
  K5  Evicted for exceeding an emptyDir ``sizeLimit``: phase Failed, reason ``Evicted``, the kubelet's
      message, and ``DisruptionTarget`` (reason ``TerminationByKubelet``).
      https://kubernetes.io/docs/concepts/scheduling-eviction/node-pressure-eviction/ and
      https://kubernetes.io/docs/concepts/workloads/pods/disruptions/#pod-disruption-conditions
  K6  The collector is run for real: the model's ``/output`` is a temporary directory and the
      collector's log is what `runner.kubernetes.collector.collect` prints for it.
  K7  Logs vanish with the Pod (TTL controller or GC deleting it before the runner reads).
      https://kubernetes.io/docs/concepts/workloads/controllers/ttlafterfinished/
  K8  Optionally (``FakeCluster(kubelet=...)``) a real container engine runs the Pod instead of a
      script: `tests.k8s.docker_kubelet.DockerKubelet` pulls the images and runs the init container
      and the collector with the Docker engine (its docstring lists what it maps and how).

Garbage collector
  G1  Deleting a Job with ``propagationPolicy`` Background or Foreground deletes its Pods; with no
      policy the API's default for ``batch/v1`` Jobs is to orphan them, and the fake does so too.
      https://kubernetes.io/docs/concepts/architecture/garbage-collection/#cascading-deletion

Not simulated (only the live suite can show them): scheduling onto GPU nodes, GPU allocation,
NetworkPolicy, Pod Security Admission, RuntimeClass, read-only mounts, real deadlines and TTLs,
graceful deletion (``deletionTimestamp`` before removal), real image pulls.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import itertools
import json
import re
import secrets
import tempfile
import threading
import uuid
from collections.abc import AsyncIterator, Callable, Coroutine
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol, TypeVar

import aiohttp.web
import kmock
from kmock._internal import rendering

from runner.kubernetes.collector import collect

T = TypeVar("T")
PREDICTIONS = b"Filename;Final_score\nA.png;0.5\nB.png;1.5\n"
_STEP = 0.02  # seconds between state transitions, so each shows up as its own watch event


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def write_predictions(data: bytes = PREDICTIONS) -> Callable[[Path], None]:
    def write(output: Path) -> None:
        (output / "predictions.csv").write_bytes(data)

    return write


@dataclass
class PodScript:
    """What the fake kubelet and Job controller do with one Job (see the module docstring)."""

    model_exit: int = 0
    model_reason: str | None = None  # "OOMKilled"; None = "Completed"/"Error" from the exit code
    model_log: str = "loading model\npredicting 2 images\ndone\n"
    output: Callable[[Path], None] = field(default_factory=write_predictions)
    pull_error: str | None = None  # K3: "ErrImagePull" -> then "ImagePullBackOff"
    waiting_reason: str | None = None  # other waiting reasons, e.g. "CreateContainerConfigError"
    unschedulable: str | None = None  # K1 message
    failed_create: str | None = None  # J2 event message
    deadline: bool = False  # J4
    hang: bool = False  # the model runs and never ends (the runner's own clock must stop it)
    evicted: str | None = None  # K5 message
    disruptions: int = 0  # J5: Pods lost to preemption before one runs to the end
    corrupt_collector_log: bool = False  # flip one character of the frame body
    vanish_after_finish: bool = False  # K7: the Job completes and its Pod is deleted at once
    collector_seconds: float = 0.0  # the collector runs this long after the model (e.g. its image pull)


@dataclass
class _Fault:
    method: str
    path: re.Pattern[str]
    status: int
    times: int


def _is_runner(request: rendering.Request) -> bool:
    """Requests of the code under test, not the fake controllers' own (kmock's aiohttp client)."""
    return not str(request.headers.get("User-Agent", "")).startswith("kmock/")


def _res(request: rendering.Request) -> tuple[str | None, str | None, str | None]:
    r = request.resource
    return (None, None, None) if r is None else (r.group, r.version, r.plural)


JOBS = ("batch", "v1", "jobs")
PODS = ("", "v1", "pods")
EVENTS = ("", "v1", "events")


class FakeApiServer(kmock.KubernetesEmulator):
    """kmock's emulator plus behaviours A1-A7. `cluster` is set right after construction."""

    cluster: FakeCluster

    async def _handle(self, request: rendering.Request) -> aiohttp.web.StreamResponse:
        cluster = self.cluster
        limit = cluster.request_log_limit
        if limit is not None and len(self._requests) > 2 * limit:
            # kmock matches every request against its whole request log (O(n) each): long tests
            # that never look at the log keep only its tail, or they slow down quadratically.
            del self._requests[:-limit]
        if _is_runner(request):
            cluster.check_fault(request)
        if _res(request) == PODS and request.subresource == "log":
            return cluster.serve_log(request)
        if request.action == kmock.action.WATCH and _is_runner(request) and cluster.take_watch_expiry():
            gone = {
                "type": "ERROR",
                "object": {
                    "kind": "Status",
                    "apiVersion": "v1",
                    "status": "Failure",
                    "code": 410,
                    "reason": "Expired",
                    "message": "too old resource version",
                },
            }
            return aiohttp.web.Response(text=json.dumps(gone) + "\n", content_type="application/json")
        if request.action == kmock.action.CREATE and isinstance(request.data, dict):
            meta = request.data.setdefault("metadata", {})
            meta.setdefault("uid", str(uuid.uuid4()))
            meta.setdefault("creationTimestamp", _now())
            meta["resourceVersion"] = cluster.next_version()
            if _res(request) == JOBS and "kueue.x-k8s.io/queue-name" in (meta.get("labels") or {}):
                request.data.setdefault("spec", {})["suspend"] = True  # J6: Kueue's webhook
        if request.action == kmock.action.UPDATE and isinstance(request.data, dict):
            request.data.setdefault("metadata", {})["resourceVersion"] = cluster.next_version()
        response = await super()._handle(request)
        if 200 <= response.status < 300:
            if request.action == kmock.action.CREATE and _res(request) == JOBS:
                cluster.on_job_created(request.data)
            resumed = ((request.data or {}).get("spec") or {}).get("suspend") is False
            if request.action == kmock.action.UPDATE and _res(request) == JOBS and resumed:
                (job,) = cluster.objects_sync("jobs", request.namespace or "", request.name)
                cluster.on_job_created(job)
            if request.action == kmock.action.DELETE and _res(request) == JOBS:
                policy = request.params.get("propagationPolicy") or (request.data or {}).get(
                    "propagationPolicy"
                )
                cluster.on_job_deleted(request.namespace or "", request.name or "", policy)
        return response

    async def _serve_list(self, request: rendering.Request) -> rendering.Payload:
        result: Any = await super()._serve_list(request)
        items = [o for o in result["items"] if self.cluster.selected(o, request)]
        return {
            "kind": "List",
            "apiVersion": "v1",
            "metadata": {"resourceVersion": self.cluster.version},
            "items": items,
        }

    async def _serve_watch(self, request: rendering.Request) -> AsyncIterator[rendering.Payload]:
        timeout = float(request.params.get("timeoutSeconds") or 0) or None
        loop = asyncio.get_running_loop()
        deadline = None if timeout is None else loop.time() + timeout
        stream: Any = super()._serve_watch(request)  # an async generator
        try:
            while True:
                remaining = None if deadline is None else deadline - loop.time()
                if remaining is not None and remaining <= 0:
                    return
                try:
                    event = await asyncio.wait_for(anext(stream), remaining)
                except (StopAsyncIteration, TimeoutError):
                    return
                if isinstance(event, dict) and not self.cluster.selected(event.get("object") or {}, request):
                    continue
                yield event
        finally:
            await stream.aclose()


class Kubelet(Protocol):
    """Runs a Job's Pod instead of the scripted kubelet (K8): creates it with `FakeCluster.create_pod`
    and reports its statuses through the cluster's HTTP helpers, so the runner's watches fire."""

    async def run_pod(self, cluster: FakeCluster, job: dict[str, Any], job_path: str) -> None: ...


class SelectorError(Exception):
    pass


class FakeCluster:
    """The fake control plane (module docstring), running on a private event loop in a thread so
    ordinary synchronous tests can drive the synchronous runner against it."""

    def __init__(
        self,
        *,
        honour_selectors: bool = True,
        kubelet: Kubelet | None = None,
        request_log_limit: int | None = None,
    ) -> None:
        self.honour_selectors = honour_selectors
        self.kubelet = kubelet
        self.request_log_limit = request_log_limit  # None: keep every request (`runner_requests`)
        self.scripts: dict[str, PodScript] = {}  # by run-id label; "" = default
        self.logs: dict[tuple[str, str, str], bytes] = {}
        self._versions = itertools.count(1)
        self.version = "0"
        self._faults: list[_Fault] = []
        self._watch_expiries = 0
        self.watch_expiries_served = 0
        self._tasks: set[asyncio.Task[None]] = set()
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="fake-cluster", daemon=True)
        self._stack = contextlib.AsyncExitStack()
        self.api: FakeApiServer
        self.url = ""

    # -- lifecycle (test thread) -------------------------------------------------------------------

    def start(self) -> FakeCluster:
        self._thread.start()
        self.run(self._start())
        return self

    async def _start(self) -> None:
        api = FakeApiServer()
        api.cluster = self
        for name in ("batch/v1/jobs", "v1/pods", "v1/events"):
            api.resources[name] = kmock.ResourceInfo(namespaced=True)
        self.api = await self._stack.enter_async_context(api)
        server = await self._stack.enter_async_context(kmock.Server(self.api))
        self.url = str(server.url).rstrip("/")

    def stop(self) -> None:
        async def _stop() -> None:
            for task in list(self._tasks):
                task.cancel()
            await asyncio.gather(*self._tasks, return_exceptions=True)
            await self._stack.aclose()

        self.run(_stop())
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=10)

    def run(self, coro: Coroutine[Any, Any, T], timeout: float = 30) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(timeout)

    # -- test controls -----------------------------------------------------------------------------

    def script(self, run_label: str, script: PodScript) -> None:
        self.scripts[run_label] = script

    def fail_next(self, method: str, path: str, status: int, times: int = 1) -> None:
        """A6: answer the next `times` runner requests `method` + `path` (regex) with `status`."""
        self._faults.append(_Fault(method.upper(), re.compile(path), status, times))

    def expire_watches(self, times: int = 1) -> None:
        """A4: the next `times` runner watches get an ERROR event with code 410."""
        self._watch_expiries += times

    def admit(self, namespace: str, name: str) -> None:
        """J6: Kueue admits a suspended Job (resumes it)."""

        async def _admit() -> None:
            await self._patch(
                f"/apis/batch/v1/namespaces/{namespace}/jobs/{name}", {"spec": {"suspend": False}}
            )

        self.run(_admit())

    def objects(self, plural: str, namespace: str) -> list[dict[str, Any]]:
        """Live objects (``jobs``, ``pods``, ``events``) in a namespace, for assertions."""

        async def _list() -> list[dict[str, Any]]:
            return self.objects_sync(plural, namespace)

        return self.run(_list())

    def runner_requests(self) -> list[rendering.Request]:
        """Every request the code under test made, in order."""
        return [r for r in list(self.api) if _is_runner(r)]

    # -- API server helpers (event loop) -----------------------------------------------------------

    def next_version(self) -> str:
        self.version = str(next(self._versions))
        return self.version

    def check_fault(self, request: rendering.Request) -> None:
        for fault in self._faults:
            if (
                fault.times > 0
                and fault.method == str(request.method.value).upper()
                and fault.path.search(request.url.path)
            ):
                fault.times -= 1
                raise kmock.KubernetesError(
                    status=fault.status,
                    reason="Injected",
                    message=f"injected {fault.status} by the fake cluster",
                )

    def take_watch_expiry(self) -> bool:
        if self._watch_expiries > 0:
            self._watch_expiries -= 1
            self.watch_expiries_served += 1
            return True
        return False

    def selected(self, obj: dict[str, Any], request: rendering.Request) -> bool:
        """A2/A3 (raises a 400 for selectors the fake does not support)."""
        if not self.honour_selectors:
            return True
        try:
            return _labels_match(obj, request.params.get("labelSelector", "")) and _fields_match(
                obj, request.params.get("fieldSelector", "")
            )
        except SelectorError as exc:
            raise kmock.KubernetesError(status=400, reason="BadRequest", message=str(exc)) from None

    def serve_log(self, request: rendering.Request) -> aiohttp.web.StreamResponse:
        """A5."""
        namespace, pod = request.namespace or "", request.name or ""
        if not self.objects_sync("pods", namespace, pod):
            raise kmock.KubernetesError(status=404, reason="NotFound", message=f'pods "{pod}" not found')
        container = request.params.get("container", "")
        data = self.logs.get((namespace, pod, container))
        if data is None:
            raise kmock.KubernetesError(
                status=400,
                reason="BadRequest",
                message=f'container "{container}" in pod "{pod}" is waiting to start: PodInitializing',
            )
        if "tailLines" in request.params:
            lines = data.splitlines(keepends=True)
            data = b"".join(lines[-int(request.params["tailLines"]) :])
        if "limitBytes" in request.params:
            data = data[: int(request.params["limitBytes"])]
        return aiohttp.web.Response(body=data, content_type="text/plain")

    def objects_sync(self, plural: str, namespace: str, name: str | None = None) -> list[dict[str, Any]]:
        """Stored objects, read on the event loop without HTTP (for the API server's own use)."""
        return [
            obj.raw
            for (res, ns, obj_name), obj in self.api.objects.items()
            if str(res.plural) == plural
            and ns == namespace
            and not obj.deleted
            and (name is None or obj_name == name)
        ]

    # -- controllers (event loop) ------------------------------------------------------------------

    def on_job_created(self, job: dict[str, Any]) -> None:
        labels = (job.get("metadata") or {}).get("labels") or {}
        script = self.scripts.get(labels.get("csawm.io/run-id", ""), self.scripts.get("", PodScript()))
        self._spawn(self._run_job(job, script))

    def on_job_deleted(self, namespace: str, name: str, policy: str | None) -> None:
        """G1."""
        if policy not in ("Background", "Foreground"):
            return
        for pod in self.objects_sync("pods", namespace):
            if (pod["metadata"].get("labels") or {}).get("batch.kubernetes.io/job-name") == name:
                self._spawn(self._delete(f"/api/v1/namespaces/{namespace}/pods/{pod['metadata']['name']}"))

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _run_job(self, job: dict[str, Any], script: PodScript) -> None:
        # The Job or Pod deleted under us (cancel, cleanup): a real controller stops too.
        with contextlib.suppress(_Gone):
            await self._job_controller(job, script)

    async def _job_controller(self, job: dict[str, Any], script: PodScript) -> None:
        meta = job["metadata"]
        namespace, name = meta["namespace"], meta["name"]
        job_path = f"/apis/batch/v1/namespaces/{namespace}/jobs/{name}"
        await asyncio.sleep(_STEP)
        if (job.get("spec") or {}).get("suspend"):
            return  # J6
        if script.failed_create:
            await self._post(f"/api/v1/namespaces/{namespace}/events", _event(job, script.failed_create))
            return
        await self._patch(f"{job_path}/status", {"status": {"active": 1, "startTime": _now()}})
        if self.kubelet is not None:  # K8: a real kubelet stand-in runs the Pod (tests/k8s/docker_kubelet.py)
            await self.kubelet.run_pod(self, job, job_path)
            return
        for _ in range(script.disruptions):
            pod = await self._create_pod(job)
            await self._start_model(pod)
            await self._pod_status(
                pod,
                _failed_status(
                    pod, "DisruptionTarget", "PreemptionByScheduler", "preempted by a higher-priority Pod"
                ),
            )
        pod = await self._create_pod(job)
        if script.unschedulable:
            await self._pod_status(
                pod,
                {
                    "phase": "Pending",
                    "conditions": [
                        {
                            "type": "PodScheduled",
                            "status": "False",
                            "reason": "Unschedulable",
                            "message": script.unschedulable,
                        }
                    ],
                },
            )
            return
        waiting = script.pull_error or script.waiting_reason
        if waiting:
            reasons = [waiting, "ImagePullBackOff"] if waiting == "ErrImagePull" else [waiting]
            for reason in reasons:
                await self._pod_status(pod, _pending_status(reason, f"simulated {reason}"))
            return
        await self._start_model(pod)
        self.logs[(namespace, pod["metadata"]["name"], "model")] = script.model_log.encode()
        if script.hang:
            return
        if script.deadline:
            await self._job_failed(
                job_path, "DeadlineExceeded", "Job was active longer than specified deadline"
            )
            await self._delete(f"/api/v1/namespaces/{namespace}/pods/{pod['metadata']['name']}")
            return
        if script.evicted:
            await self._pod_status(
                pod,
                _failed_status(pod, "DisruptionTarget", "TerminationByKubelet", script.evicted, evicted=True),
            )
            await self._create_pod(job)  # J5: the policy ignores the failure and replaces the Pod
            return
        reason = script.model_reason or ("Completed" if script.model_exit == 0 else "Error")
        model_done = _container(
            "model",
            {
                "terminated": {
                    "exitCode": script.model_exit,
                    "reason": reason,
                    "startedAt": _now(),
                    "finishedAt": _now(),
                }
            },
        )
        if script.model_exit != 0:
            await self._pod_status(
                pod,
                {
                    "phase": "Failed",
                    "conditions": [{"type": "PodScheduled", "status": "True"}],
                    "initContainerStatuses": [model_done],
                    "containerStatuses": [
                        _container("collector", {"waiting": {"reason": "PodInitializing"}})
                    ],
                },
            )
            await self._job_failed(
                job_path, "BackoffLimitExceeded", "Job has reached the specified backoff limit"
            )
            return
        if script.collector_seconds:
            collecting = {
                "phase": "Running",
                "conditions": [{"type": "PodScheduled", "status": "True"}],
                "initContainerStatuses": [model_done],
                "containerStatuses": [_container("collector", {"running": {"startedAt": _now()}})],
            }
            await self._pod_status(pod, collecting)
            await asyncio.sleep(script.collector_seconds)
        self.logs[(namespace, pod["metadata"]["name"], "collector")] = self._run_collector(pod, script)
        if script.vanish_after_finish:
            # K7: the Job completes and its Pod is deleted (TTL, GC) before anyone reads its logs.
            await self._job_complete(job_path)
            await self._delete(f"/api/v1/namespaces/{namespace}/pods/{pod['metadata']['name']}")
            return
        await self._pod_status(
            pod,
            {
                "phase": "Succeeded",
                "conditions": [{"type": "PodScheduled", "status": "True"}],
                "initContainerStatuses": [model_done],
                "containerStatuses": [
                    _container(
                        "collector",
                        {
                            "terminated": {
                                "exitCode": 0,
                                "reason": "Completed",
                                "startedAt": _now(),
                                "finishedAt": _now(),
                            }
                        },
                    )
                ],
            },
        )
        await self._job_complete(job_path)

    async def _job_complete(self, job_path: str) -> None:
        await self._patch(
            f"{job_path}/status",
            {
                "status": {
                    "active": 0,
                    "succeeded": 1,
                    "completionTime": _now(),
                    "conditions": [
                        _condition("SuccessCriteriaMet", "CompletionsReached"),
                        _condition("Complete", "CompletionsReached"),
                    ],
                }
            },
        )

    def _run_collector(self, pod: dict[str, Any], script: PodScript) -> bytes:
        """K6: the real collector on a temporary /output."""
        args = pod["spec"]["containers"][0]["args"]
        max_bytes = int(args[args.index("--max-bytes") + 1])
        with tempfile.TemporaryDirectory() as output:
            script.output(Path(output))
            out = io.StringIO()
            collect(Path(output), max_bytes, out)
        text = out.getvalue()
        if script.corrupt_collector_log:
            lines = text.splitlines(keepends=True)
            body = lines[1]
            lines[1] = ("B" if body[0] != "B" else "C") + body[1:]
            text = "".join(lines)
        return text.encode()

    async def _create_pod(self, job: dict[str, Any]) -> dict[str, Any]:
        """J1."""
        meta = job["metadata"]
        template = job["spec"]["template"]
        labels = dict((template.get("metadata") or {}).get("labels") or {})
        labels.update(
            {
                "batch.kubernetes.io/job-name": meta["name"],
                "job-name": meta["name"],
                "batch.kubernetes.io/controller-uid": meta["uid"],
                "controller-uid": meta["uid"],
            }
        )
        pod = {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {
                "name": f"{meta['name']}-{secrets.token_hex(3)[:5]}",
                "namespace": meta["namespace"],
                "labels": labels,
                "ownerReferences": [
                    {
                        "apiVersion": "batch/v1",
                        "kind": "Job",
                        "name": meta["name"],
                        "uid": meta["uid"],
                        "controller": True,
                        "blockOwnerDeletion": True,
                    }
                ],
            },
            "spec": json.loads(json.dumps(template["spec"])),
            "status": {"phase": "Pending"},
        }
        created = await self._post(f"/api/v1/namespaces/{meta['namespace']}/pods", pod)
        await asyncio.sleep(_STEP)
        return created

    async def _start_model(self, pod: dict[str, Any]) -> None:
        await self._pod_status(pod, _pending_status("ContainerCreating", ""))
        await self._pod_status(
            pod,
            {
                "phase": "Pending",
                "conditions": [{"type": "PodScheduled", "status": "True"}],
                "initContainerStatuses": [_container("model", {"running": {"startedAt": _now()}})],
                "containerStatuses": [_container("collector", {"waiting": {"reason": "PodInitializing"}})],
            },
        )

    async def _pod_status(self, pod: dict[str, Any], status: dict[str, Any]) -> None:
        meta = pod["metadata"]
        await self._patch(
            f"/api/v1/namespaces/{meta['namespace']}/pods/{meta['name']}/status", {"status": status}
        )
        await asyncio.sleep(_STEP)

    async def _job_failed(self, job_path: str, reason: str, message: str) -> None:
        await self._patch(
            f"{job_path}/status",
            {
                "status": {
                    "active": 0,
                    "failed": 1,
                    "conditions": [
                        _condition("FailureTarget", reason, message),
                        _condition("Failed", reason, message),
                    ],
                }
            },
        )

    async def _post(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        async with self.api.post(path, json=body) as response:
            if response.status == 404:
                raise _Gone(path)
            response.raise_for_status()
            data: dict[str, Any] = await response.json()
            return data

    async def _patch(self, path: str, body: dict[str, Any]) -> None:
        async with self.api.patch(path, json=body) as response:
            if response.status == 404:
                raise _Gone(path)
            response.raise_for_status()

    async def _delete(self, path: str) -> None:
        async with self.api.delete(path) as response:
            if response.status not in (200, 404):
                response.raise_for_status()


class _Gone(Exception):
    pass


def _container(name: str, state: dict[str, Any]) -> dict[str, Any]:
    return {"name": name, "state": state, "ready": False, "restartCount": 0, "image": "", "imageID": ""}


def _pending_status(model_reason: str, message: str) -> dict[str, Any]:
    waiting: dict[str, Any] = {"reason": model_reason}
    if message:
        waiting["message"] = message
    return {
        "phase": "Pending",
        "conditions": [{"type": "PodScheduled", "status": "True"}],
        "initContainerStatuses": [_container("model", {"waiting": waiting})],
        "containerStatuses": [_container("collector", {"waiting": {"reason": "PodInitializing"}})],
    }


def _failed_status(
    pod: dict[str, Any], condition: str, reason: str, message: str, *, evicted: bool = False
) -> dict[str, Any]:
    status: dict[str, Any] = {
        "phase": "Failed",
        "message": message,
        "conditions": [
            {"type": "PodScheduled", "status": "True"},
            {"type": condition, "status": "True", "reason": reason, "message": message},
        ],
        "initContainerStatuses": [
            _container(
                "model",
                {
                    "terminated": {
                        "exitCode": 137,
                        "reason": "Error",
                        "startedAt": _now(),
                        "finishedAt": _now(),
                    }
                },
            )
        ],
        "containerStatuses": [_container("collector", {"waiting": {"reason": "PodInitializing"}})],
    }
    if evicted:
        status["reason"] = "Evicted"
    return status


def _condition(kind: str, reason: str, message: str = "") -> dict[str, Any]:
    return {
        "type": kind,
        "status": "True",
        "reason": reason,
        "message": message,
        "lastTransitionTime": _now(),
        "lastProbeTime": _now(),
    }


def _event(job: dict[str, Any], message: str) -> dict[str, Any]:
    meta = job["metadata"]
    return {
        "apiVersion": "v1",
        "kind": "Event",
        "metadata": {"name": f"{meta['name']}.{secrets.token_hex(8)}", "namespace": meta["namespace"]},
        "involvedObject": {
            "kind": "Job",
            "name": meta["name"],
            "namespace": meta["namespace"],
            "uid": meta["uid"],
            "apiVersion": "batch/v1",
        },
        "reason": "FailedCreate",
        "type": "Warning",
        "message": message,
        "firstTimestamp": _now(),
        "lastTimestamp": _now(),
        "count": 1,
        "source": {"component": "job-controller"},
    }


def _labels_match(obj: dict[str, Any], selector: str) -> bool:
    labels = (obj.get("metadata") or {}).get("labels") or {}
    for term in filter(None, (t.strip() for t in selector.split(","))):
        if " in " in term or " notin " in term or "(" in term:
            raise SelectorError(f"set-based label selector not supported by the fake: {term!r}")
        if "!=" in term:
            key, value = term.split("!=", 1)
            if labels.get(key.strip()) == value.strip():
                return False
        elif "=" in term:
            key, value = term.replace("==", "=").split("=", 1)
            if labels.get(key.strip()) != value.strip():
                return False
        elif term.startswith("!"):
            if term[1:] in labels:
                return False
        elif term not in labels:
            return False
    return True


_FIELDS = {
    "metadata.name": lambda o: (o.get("metadata") or {}).get("name"),
    "metadata.namespace": lambda o: (o.get("metadata") or {}).get("namespace"),
    "involvedObject.kind": lambda o: (o.get("involvedObject") or {}).get("kind"),
    "involvedObject.name": lambda o: (o.get("involvedObject") or {}).get("name"),
}


def _fields_match(obj: dict[str, Any], selector: str) -> bool:
    for term in filter(None, (t.strip() for t in selector.split(","))):
        if "!=" in term or "=" not in term:
            raise SelectorError(f"field selector not supported by the fake: {term!r}")
        key, value = term.replace("==", "=").split("=", 1)
        if key not in _FIELDS:
            raise SelectorError(f'field label not supported: "{key}"')
        if _FIELDS[key](obj) != value:
            return False
    return True
