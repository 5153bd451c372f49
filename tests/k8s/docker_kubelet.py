"""A kubelet stand-in that runs a Job's Pod for real with the Docker engine (`fake_cluster` K8).

`FakeCluster(kubelet=DockerKubelet(...))` hands every Job's Pod to `DockerKubelet.run_pod`, which
does what a kubelet with a runc runtime would do with the Pod the runner's manifest describes, and
reports each step as a Pod status through the fake API server (so the runner's watches fire):

* **Images**: ``imagePullPolicy`` ``IfNotPresent``/``Always`` honoured; a missing image is pulled
  by its reference (the model: ``REGISTRY/csawm/<team>@sha256:...`` from the real loopback
  registry, with the credentials the ``imagePullSecrets`` Secret would hold, given to the kubelet
  as `pull_auth`). A failed pull is ``ErrImagePull`` then ``ImagePullBackOff``, as K3.
* **Init container first** (K2): the model runs to its end; exit 0 starts the collector, any other
  exit fails the Pod (``restartPolicy: Never``) and the Job (``BackoffLimitExceeded``, J3). An
  engine OOM kill is ``OOMKilled``/137 (K4).
* **Security context → sandbox** (the meaning `runner.hardening` gives it on Docker):
  ``runAsUser``/``runAsGroup`` → ``--user uid:gid`` (``runAsNonRoot`` with uid 0 is refused as
  ``CreateContainerConfigError``, as the kubelet does); ``readOnlyRootFilesystem`` → ``--read-only``;
  ``capabilities.drop`` → ``--cap-drop``; ``allowPrivilegeEscalation: false`` →
  ``no-new-privileges``; never privileged. The Pod's network namespace under the deny-all
  NetworkPolicy → ``--network none`` (stricter than a real Pod: no loopback to other containers,
  which the Pod does not use). ``resources.limits`` memory/cpu → ``--memory`` (= memory+swap) and
  ``--cpus``; a pids limit of `PIDS_LIMIT` stands in for the kubelet's ``podPidsLimit``.
* **Volumes**: a ``persistentVolumeClaim`` is a bind mount of the host folder given for that claim
  in `volumes` (``subPath`` honoured, read-only when the mount or the claim says so); an
  ``emptyDir`` with ``medium: Memory`` is a tmpfs of its ``sizeLimit``; a disk ``emptyDir`` is a
  fresh host folder (mode 0777, as the kubelet creates it) shared by the Pod's containers; its
  ``sizeLimit`` is not enforced (eviction is K5, scripted).
* **The collector** runs in `collector_image` with the repository's ``runner/`` package bind-mounted
  read-only at ``/opt/csawm/runner`` (``PYTHONPATH=/opt/csawm``), standing in for the server image
  (which is not built on this machine): the command, arguments, user and mounts are the manifest's.
* **Logs**: each container's engine log is what ``pods/{name}/log?container=`` serves (A5).
* **Deletion**: a Pod deleted through the API (the runner deleting the Job with propagation, G1)
  has its containers killed at the next poll; ``activeDeadlineSeconds`` is enforced on the Job's
  wall clock (J4 for real: containers killed, ``DeadlineExceeded``).

Not modelled: scheduling (every Pod is placed at once), GPUs, node pressure, image garbage
collection, log rotation, graceful termination (containers are killed, not sent SIGTERM first).
Every container carries the label ``csawm.k8s-e2e=<label>`` so a test can remove what it left.
"""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import docker
from docker.models.containers import Container
from docker.types import Mount
from kubernetes.utils import parse_quantity

from tests.k8s.fake_cluster import FakeCluster, _container, _Gone, _now, _pending_status

PIDS_LIMIT = 256
REPO_RUNNER = Path(__file__).resolve().parents[2] / "runner"
POLL_S = 0.05
LABEL = "csawm.k8s-e2e"


@dataclass(frozen=True)
class ContainerRun:
    """One container the kubelet started: for "the hidden model ran once" and similar assertions."""

    job: str
    pod: str
    container: str
    image: str
    phase: str
    started_at: float = field(default_factory=time.time)  # wall clock, just after the engine's start


@dataclass
class DockerKubelet:
    """See the module docstring. `volumes`: PVC claim name -> host folder."""

    client: docker.DockerClient
    volumes: dict[str, Path]
    collector_image: str
    label: str
    pull_auth: dict[str, str] | None = None
    runs: list[ContainerRun] = field(default_factory=list)
    pulled: list[str] = field(default_factory=list)
    scratch: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="csawm-kubelet-")))

    async def run_pod(self, cluster: FakeCluster, job: dict[str, Any], job_path: str) -> None:
        pod = await cluster._create_pod(job)
        meta = pod["metadata"]
        namespace, name = meta["namespace"], meta["name"]
        phase = (meta.get("labels") or {}).get("csawm.io/phase", "")
        deadline = asyncio.get_running_loop().time() + float(job["spec"].get("activeDeadlineSeconds") or 3600)
        workdir = self.scratch / name
        started: list[Container] = []
        try:
            model_spec = pod["spec"]["initContainers"][0]
            await cluster._pod_status(pod, _pending_status("ContainerCreating", ""))
            pull_error = await asyncio.to_thread(self._ensure_image, model_spec)
            if pull_error is not None:
                for reason in ("ErrImagePull", "ImagePullBackOff"):
                    await cluster._pod_status(pod, _pending_status(reason, pull_error))
                return
            try:
                model = await asyncio.to_thread(self._create, pod, model_spec, workdir)
            except _ConfigError as exc:
                await cluster._pod_status(pod, _pending_status("CreateContainerConfigError", str(exc)))
                return
            started.append(model)
            await asyncio.to_thread(model.start)
            self.runs.append(ContainerRun(job["metadata"]["name"], name, "model", model_spec["image"], phase))
            await cluster._pod_status(pod, _status("Pending", model=_running(), collector=_initializing()))
            ending = await self._wait(cluster, model, namespace, name, deadline)
            cluster.logs[(namespace, name, "model")] = await asyncio.to_thread(model.logs)
            if ending == "deleted":
                return
            if ending == "deadline":
                await cluster._job_failed(
                    job_path, "DeadlineExceeded", "Job was active longer than specified deadline"
                )
                await cluster._delete(f"/api/v1/namespaces/{namespace}/pods/{name}")
                return
            exit_code, oom = _exit_of(model)
            reason = "OOMKilled" if oom else ("Completed" if exit_code == 0 else "Error")
            model_done = _terminated("model", exit_code, reason)
            if exit_code != 0:
                await cluster._pod_status(pod, _status("Failed", model=model_done, collector=_initializing()))
                await cluster._job_failed(
                    job_path, "BackoffLimitExceeded", "Job has reached the specified backoff limit"
                )
                return
            collector_spec = pod["spec"]["containers"][0]
            await asyncio.to_thread(self._ensure_image, collector_spec)
            collector = await asyncio.to_thread(self._create, pod, collector_spec, workdir)
            started.append(collector)
            await asyncio.to_thread(collector.start)
            self.runs.append(
                ContainerRun(job["metadata"]["name"], name, "collector", collector_spec["image"], phase)
            )
            await cluster._pod_status(
                pod, _status("Running", model=model_done, collector=_running("collector"))
            )
            ending = await self._wait(cluster, collector, namespace, name, deadline)
            cluster.logs[(namespace, name, "collector")] = await asyncio.to_thread(
                collector.logs, stderr=False
            )
            if ending != "exited":
                return
            code, _ = _exit_of(collector)
            done = _terminated("collector", code, "Completed" if code == 0 else "Error")
            await cluster._pod_status(
                pod, _status("Succeeded" if code == 0 else "Failed", model=model_done, collector=done)
            )
            if code == 0:
                await cluster._job_complete(job_path)
            else:
                await cluster._job_failed(
                    job_path, "BackoffLimitExceeded", "Job has reached the specified backoff limit"
                )
        except _Gone:
            return
        finally:
            for container in started:
                with contextlib.suppress(docker.errors.APIError):
                    container.remove(force=True)
            shutil.rmtree(workdir, ignore_errors=True)

    # -- engine calls (in a thread) ----------------------------------------------------------------

    def _ensure_image(self, spec: dict[str, Any]) -> str | None:
        """Pull per ``imagePullPolicy``; the engine's error message when the pull fails."""
        image = spec["image"]
        if spec.get("imagePullPolicy", "IfNotPresent") != "Always":
            try:
                self.client.images.get(image)
                return None
            except docker.errors.ImageNotFound:
                pass
        try:
            self.client.images.pull(image, auth_config=self.pull_auth)
        except docker.errors.APIError as exc:
            return str(exc.explanation or exc)
        self.pulled.append(image)
        return None

    def _create(self, pod: dict[str, Any], spec: dict[str, Any], workdir: Path) -> Container:
        pod_spec = pod["spec"]
        security = {**(pod_spec.get("securityContext") or {}), **(spec.get("securityContext") or {})}
        uid, gid = security.get("runAsUser"), security.get("runAsGroup", 0)
        if security.get("runAsNonRoot") and (uid is None or int(uid) == 0):
            raise _ConfigError("container has runAsNonRoot and image will run as root")
        if security.get("privileged") or (spec.get("securityContext") or {}).get("capabilities", {}).get(
            "add"
        ):
            raise _ConfigError("privileged containers and added capabilities are not run by this kubelet")
        limits = (spec.get("resources") or {}).get("limits") or {}
        memory = int(_quantity(limits["memory"]))
        env = {e["name"]: e["value"] for e in spec.get("env") or []}
        mounts = self._mounts(pod_spec, spec, workdir)
        if spec["name"] == "collector" and spec["image"] == self.collector_image:
            mounts.append(Mount("/opt/csawm/runner", str(REPO_RUNNER), type="bind", read_only=True))
            env["PYTHONPATH"] = "/opt/csawm"
        entrypoint = spec.get("command")
        return self.client.containers.create(
            spec["image"],
            command=spec.get("args"),
            entrypoint=entrypoint,
            name=f"{self.label}-{pod['metadata']['name']}-{spec['name']}",
            labels={LABEL: self.label},
            environment=env,
            user=f"{uid}:{gid}" if uid is not None else None,
            network_mode="none",
            read_only=bool(security.get("readOnlyRootFilesystem")),
            cap_drop=list((security.get("capabilities") or {}).get("drop") or []),
            security_opt=["no-new-privileges"] if security.get("allowPrivilegeEscalation") is False else [],
            privileged=False,
            mem_limit=memory,
            memswap_limit=memory,
            nano_cpus=int(float(_quantity(limits["cpu"])) * 1e9),
            pids_limit=PIDS_LIMIT,
            mounts=mounts,
            detach=True,
        )

    def _mounts(self, pod_spec: dict[str, Any], spec: dict[str, Any], workdir: Path) -> list[Mount]:
        volumes = {v["name"]: v for v in pod_spec.get("volumes") or []}
        mounts = []
        for mount in spec.get("volumeMounts") or []:
            volume = volumes[mount["name"]]
            read_only = bool(mount.get("readOnly"))
            if "persistentVolumeClaim" in volume:
                claim = volume["persistentVolumeClaim"]
                source = self.volumes[claim["claimName"]] / mount.get("subPath", "")
                if not source.is_dir():
                    raise _ConfigError(f"subPath {mount.get('subPath')!r} does not exist on the volume")
                read_only = read_only or bool(claim.get("readOnly"))
                mounts.append(Mount(mount["mountPath"], str(source), type="bind", read_only=read_only))
            elif (volume.get("emptyDir") or {}).get("medium") == "Memory":
                size = int(_quantity(volume["emptyDir"]["sizeLimit"]))
                mounts.append(
                    Mount(mount["mountPath"], None, type="tmpfs", tmpfs_size=size, tmpfs_mode=0o1777)
                )
            elif "emptyDir" in volume:
                folder = workdir / volume["name"]
                folder.mkdir(parents=True, exist_ok=True)
                folder.chmod(0o777)
                mounts.append(Mount(mount["mountPath"], str(folder), type="bind", read_only=read_only))
            else:
                raise _ConfigError(f"volume {mount['name']!r}: kind not supported by this kubelet")
        return mounts

    async def _wait(
        self, cluster: FakeCluster, container: Container, namespace: str, pod: str, deadline: float
    ) -> str:
        """``exited``, ``deleted`` (the Pod was deleted) or ``deadline``; kills the container for the
        last two. Bounded by the Job's deadline."""
        loop = asyncio.get_running_loop()
        while True:
            await asyncio.to_thread(container.reload)
            if container.status in ("exited", "dead"):
                return "exited"
            gone = not cluster.objects_sync("pods", namespace, pod)
            if gone or loop.time() > deadline:
                with contextlib.suppress(docker.errors.APIError):
                    await asyncio.to_thread(container.kill)
                return "deleted" if gone else "deadline"
            await asyncio.sleep(POLL_S)

    def remove_leftovers(self) -> None:
        for container in self.client.containers.list(all=True, filters={"label": f"{LABEL}={self.label}"}):
            with contextlib.suppress(docker.errors.APIError):
                container.remove(force=True)
        shutil.rmtree(self.scratch, ignore_errors=True)


def _quantity(value: str) -> Any:
    return parse_quantity(value)  # type: ignore[no-untyped-call]


class _ConfigError(Exception):
    pass


def _exit_of(container: Container) -> tuple[int, bool]:
    state = container.attrs["State"]
    return int(state["ExitCode"]), bool(state.get("OOMKilled"))


def _running(name: str = "model") -> dict[str, Any]:
    return _container(name, {"running": {"startedAt": _now()}})


def _initializing() -> dict[str, Any]:
    return _container("collector", {"waiting": {"reason": "PodInitializing"}})


def _terminated(name: str, exit_code: int, reason: str) -> dict[str, Any]:
    return _container(
        name,
        {"terminated": {"exitCode": exit_code, "reason": reason, "startedAt": _now(), "finishedAt": _now()}},
    )


def _status(phase: str, *, model: dict[str, Any], collector: dict[str, Any]) -> dict[str, Any]:
    return {
        "phase": phase,
        "conditions": [{"type": "PodScheduled", "status": "True"}],
        "initContainerStatuses": [model],
        "containerStatuses": [collector],
    }
