"""The Docker backend: one container per run attempt, on the local engine.

Life of a run::

    start(spec)  -> "docker:csawm-run-<run_id>-a<attempt>"   (idempotent: an existing container is reused)
    wait(handle, spec) -> RunResult                          (deadline, OOM, peak memory, log tail, output)
    cancel(handle) / cleanup(handle)                          (never raise for a container that is gone)

The container's name is derived from the run id and attempt, and the deadline from the engine's
``State.StartedAt``, so a worker that restarts can find the container, wait for it with the time
that was left, and collect or remove it. All sandbox settings come from `runner.hardening`.

While the container runs, `wait` samples two things every `poll_interval_s`:

* the memory cgroup's high-water mark (cgroup v1 ``memory.max_usage_in_bytes``, v2 ``memory.peak``;
  the engine's one-shot stats when the cgroup is not visible), because the cgroup disappears with
  the container; the last sample before exit is a lower bound, raised to the limit on OOM;
* the size of ``/output``: a bind mount cannot be size-capped on overlay2/ext4 (``--storage-opt
  size`` needs xfs project quotas), so a model writing more than ``limits.output_dir_bytes`` (or
  more than `MAX_OUTPUT_ENTRIES` files) is killed and failed with ``output_invalid``; the overshoot
  is bounded by the disk's write speed times the poll interval.

Model outcomes come back as a `RunResult`; engine failures are raised as `TransientInfraError` or
`PermanentInfraError`; an image that cannot start as `ImageInvalidError`.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import stat
import tempfile
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import docker
import docker.errors

from runner.errors import (
    ImageInvalidError,
    PermanentInfraError,
    RunnerError,
    TransientInfraError,
    classify_exit,
    terminal_state,
)
from runner.hardening import (
    SANDBOX_GID,
    SANDBOX_UID,
    Runtime,
    check_runtime,
    container_kwargs,
    container_name,
)
from runner.imagetar import ImageArchiveError, ImageArchiveInfo, inspect_archive, remove_tags
from runner.output import output_usage, read_predictions_file
from runner.registry_pull import ENGINE_ERRORS, RegistryAuth, pull
from runner.registry_pull import engine_error as _infra
from runner.spec import ErrorCode, RunObject, RunResult, RunSpec

HANDLE_PREFIX = "docker:"
DEADLINE_LABEL = "csawm.deadline"
# Images the operator builds (bases, the server, the reference models): never removed by the janitor.
PROTECTED_TAGS = ("csawm-base/", "csawm-leaderboard", "csawm-reference/")
JANITOR_GRACE = timedelta(minutes=2)
MAX_OUTPUT_ENTRIES = 10_000
_STOP_GRACE_S = 30.0
_CGROUP_ROOTS = ("/sys/fs/cgroup/memory", "/sys/fs/cgroup")
_CGROUP_PARENTS = ("docker/{id}", "system.slice/docker-{id}.scope")
_CGROUP_FILES = ("memory.max_usage_in_bytes", "memory.peak")
_CGROUP_CPU_FILES = ("cpuacct.usage", "cpu.stat")  # v1: nanoseconds; v2: ``usage_usec N``
_CGROUP_CPU_ROOTS = ("/sys/fs/cgroup/cpuacct", "/sys/fs/cgroup/cpu,cpuacct", "/sys/fs/cgroup")


def handle_for(spec: RunSpec) -> str:
    """The handle of `spec`'s container: ``docker:csawm-run-<run_id>-a<attempt>``."""
    return HANDLE_PREFIX + container_name(spec.run_id, spec.attempt)


def _container_of(handle: str) -> str:
    if not handle.startswith(HANDLE_PREFIX) or len(handle) == len(HANDLE_PREFIX):
        raise ValueError(f"not a docker runner handle: {handle!r}")
    return handle[len(HANDLE_PREFIX) :]


def _parse_time(value: str | None) -> datetime | None:
    """Engine timestamps (RFC 3339 with nanoseconds); None for the zero time."""
    if not value or value.startswith("0001-"):
        return None
    head, _, frac = value.rstrip("Z").partition(".")
    micro = (frac + "000000")[:6] if frac else "0"
    return datetime.strptime(head, "%Y-%m-%dT%H:%M:%S").replace(microsecond=int(micro), tzinfo=UTC)


@contextlib.contextmanager
def _engine(what: str) -> Iterator[None]:
    """Engine failures inside raised as the taxonomy's (`runner.registry_pull.engine_error`)."""
    try:
        yield
    except ENGINE_ERRORS as exc:
        raise _infra(exc, what) from None


@contextlib.contextmanager
def _untagged(path: Path, info: ImageArchiveInfo) -> Iterator[Path]:
    """The archive to hand to ``docker load``: one that names no image, so loading never moves a tag
    on the engine (an archive tagged ``csawm-base/torch:bookworm`` would otherwise replace the base
    image). Archives the server stores are untagged already; a tagged one (``csawm check
    my-model.tar``) is copied and its names removed (`runner.imagetar.remove_tags`)."""
    if not info.repo_tags:
        yield path
        return
    with tempfile.TemporaryDirectory(prefix="csawm-load-") as tmp:
        copy = Path(tmp) / "archive"
        shutil.copyfile(path, copy)
        yield remove_tags(copy)


def _cgroup_file(container_id: str, roots: tuple[str, ...], names: tuple[str, ...]) -> Path | None:
    """The first of the container's cgroup files `names` found under one of `roots`."""
    for root in roots:
        for parent in _CGROUP_PARENTS:
            for fname in names:
                candidate = Path(root, parent.format(id=container_id), fname)
                if candidate.is_file():
                    return candidate
    return None


def _read_cpu_seconds(path: Path | None) -> float | None:
    """CPU time used so far by the container's cgroup (sampled while it runs: the cgroup goes with it)."""
    if path is None:
        return None
    try:
        text = path.read_text()
    except OSError:
        return None
    if path.name == "cpuacct.usage":
        return int(text.strip()) / 1e9 if text.strip().isdigit() else None
    for line in text.splitlines():
        key, _, value = line.partition(" ")
        if key == "usage_usec" and value.strip().isdigit():
            return int(value) / 1e6
    return None


def prepare_output_dir(path: Path) -> None:
    """Create the per-run output directory, empty, owned by the sandbox uid, mode 0700.

    A runner that is not root (``csawm check`` by a user in the ``docker`` group) cannot chown; the
    directory is then made mode 0777 instead, which is safe only inside a private (0700) parent, as
    the worker's run directories and ``csawm check``'s temporary directory are.

    Raises
    ------
    PermanentInfraError
        When the path is a link or not a directory, or is not empty.
    """
    path.mkdir(parents=True, exist_ok=True, mode=0o700)
    if not stat.S_ISDIR(os.lstat(path).st_mode):
        raise PermanentInfraError(f"output directory {path} is not a directory (or is a link)")
    if any(path.iterdir()):
        raise PermanentInfraError(f"output directory {path} is not empty; each run needs a fresh one")
    try:
        os.chown(path, SANDBOX_UID, SANDBOX_GID)
        os.chmod(path, 0o700)
    except PermissionError:
        os.chmod(path, 0o777)


class DockerRunner:
    """`runner.spec.Runner` on the local Docker engine.

    Parameters
    ----------
    client : docker.DockerClient, optional
        Built from the environment on first use when omitted (no import-time side effects).
    remove_containers : bool
        Remove the container once `wait` has collected its result.
    remove_images : bool
        Also remove the run's image in `cleanup` (for one run per loaded image, e.g. ``csawm
        check ARCHIVE``; leave False when preflight and the hidden run share the image).
    poll_interval_s : float
        How often memory and ``/output`` are sampled while the model runs.
    runtime : {"runc", "runsc"}
        The OCI runtime of model containers (``CSAWM_RUN_RUNTIME``); ``runsc`` is gVisor and must
        be registered with the engine (``scripts/ensure-docker``). See `runner.hardening`.

    Raises
    ------
    ValueError
        When `runtime` is not one of the above.
    """

    name = "docker"
    accepts_archives = True
    mounts_local_inputs = True

    def __init__(
        self,
        client: docker.DockerClient | None = None,
        *,
        remove_containers: bool = True,
        remove_images: bool = False,
        poll_interval_s: float = 0.5,
        registry_auth: RegistryAuth | None = None,
        runtime: Runtime = "runc",
    ) -> None:
        self._client = client
        self.registry_auth = registry_auth
        self.runtime = check_runtime(runtime)
        self.remove_containers = remove_containers
        self.remove_images = remove_images
        self.poll_interval_s = poll_interval_s
        self._cancelled: set[str] = set()
        self._lock = threading.Lock()

    @property
    def client(self) -> docker.DockerClient:
        if self._client is None:
            try:
                self._client = docker.from_env()
            except docker.errors.DockerException as exc:
                raise TransientInfraError(f"cannot connect to the Docker engine: {exc}") from None
        return self._client

    # -- images --------------------------------------------------------------------------------

    def load_archive(self, path: Path) -> str:
        """Inspect a ``docker save`` archive, then load it; returns the image id ``sha256:...``.

        Raises
        ------
        ImageArchiveError
            When inspection rejects the archive (nothing is loaded) or the engine loads an image
            other than the one inspected.
        """
        info = inspect_archive(path)
        with _untagged(path, info) as loadable, _engine("loading the image archive"):
            try:
                with loadable.open("rb") as fh:
                    ids = {img.id for img in self.client.images.load(fh)}
            except docker.errors.APIError as exc:
                if exc.status_code and exc.status_code < 500:
                    raise ImageArchiveError(f"the engine refused the archive: {exc.explanation}") from None
                raise
        if info.digest not in ids:
            raise ImageArchiveError(f"the engine loaded {sorted(ids)}, not the inspected image {info.digest}")
        return info.digest

    def image_for_reference(self, reference: str, image_id: str) -> str:
        """The image id of `reference`: already in the engine, or pulled by digest and verified."""
        if self.has_image(image_id):
            return image_id
        return pull(self.client, reference, self.registry_auth, expected_image_id=image_id)

    def has_image(self, image: str) -> bool:
        """True when the engine holds an image with this id. Image ids are content addresses, so the
        image present under that id is the submitted one (a retry, a takeover, a resubmission)."""
        with _engine(f"looking up image {image!r}"):
            try:
                self.client.images.get(image)
            except docker.errors.ImageNotFound:
                return False
        return True

    def remove_image(self, image: str) -> bool:
        """Remove an image by id; never one tagged with an operator's name (`PROTECTED_TAGS`)."""
        with _engine(f"removing image {image!r}"):
            try:
                tags = self.client.images.get(image).tags
                if any(tag.startswith(PROTECTED_TAGS) for tag in tags):
                    return False
                self.client.images.remove(image, force=False, noprune=False)
            except docker.errors.APIError as exc:
                if isinstance(exc, docker.errors.ImageNotFound) or exc.status_code == 409:
                    return False  # gone, or a container still uses it: keep it for now
                raise
        return True

    def list_runs(self) -> list[RunObject]:
        """Every container this project started on the engine (label ``csawm.run_id``)."""
        with _engine("listing run containers"):
            # The low-level list: one call, no per-container inspect that races with removals.
            rows = self.client.api.containers(all=True, filters={"label": "csawm.run_id"})
        return [
            RunObject(
                handle=HANDLE_PREFIX + row["Names"][0].lstrip("/"),
                run_id=(row.get("Labels") or {}).get("csawm.run_id", ""),
                deadline=_parse_time((row.get("Labels") or {}).get(DEADLINE_LABEL)),
            )
            for row in rows
            if row.get("Names")
        ]

    def _check_image(self, image: str) -> None:
        try:
            attrs = self.client.images.get(image).attrs
        except docker.errors.ImageNotFound:
            raise ImageInvalidError(
                f"image {image!r} is not present on this engine (images are loaded from archives; "
                "nothing is pulled)"
            ) from None
        except ENGINE_ERRORS as exc:
            raise _infra(exc, f"inspecting image {image!r}") from None
        config = attrs.get("Config") or {}
        if not config.get("Entrypoint") and not config.get("Cmd"):
            raise ImageInvalidError(f"image {image!r} has neither ENTRYPOINT nor CMD: nothing to run")
        platform = (attrs.get("Os"), attrs.get("Architecture"))
        if platform != ("linux", "amd64"):
            raise ImageInvalidError(
                f"image {image!r} is {platform[0]}/{platform[1]}; linux/amd64 is required"
            )

    # -- the Runner protocol -------------------------------------------------------------------

    def handle_for(self, spec: RunSpec) -> str:
        return handle_for(spec)

    def _find(self, name: str) -> Any | None:
        with _engine(f"looking up container {name}"):
            try:
                return self.client.containers.get(name)
            except docker.errors.NotFound:
                return None

    def start(self, spec: RunSpec) -> str:
        """Create and start the sandboxed container; reuse it when it already exists.

        Raises
        ------
        ImageInvalidError
            The image is missing, has nothing to run, or the runtime cannot start its entrypoint.
        TransientInfraError, PermanentInfraError
            The engine failed.
        """
        handle = handle_for(spec)
        name = _container_of(handle)
        container = self._find(name)
        if container is None:
            self._check_image(spec.image)
            kwargs = container_kwargs(spec, self.runtime)
            # The janitor (server.worker.janitor, csawm check) removes a container past this time
            # even when the process that started it was killed: a model never runs forever.
            deadline = datetime.now(UTC) + spec.limits.timeout + JANITOR_GRACE
            kwargs["labels"] = {**kwargs["labels"], DEADLINE_LABEL: deadline.strftime("%Y-%m-%dT%H:%M:%SZ")}
            prepare_output_dir(spec.output_dir)
            try:
                container = self.client.containers.create(**kwargs)
            except docker.errors.APIError as exc:
                if exc.status_code == 409:  # another process created it meanwhile
                    container = self._find(name)
                if container is None:
                    raise self._start_error(exc, spec, "creating the container") from None
            except ENGINE_ERRORS as exc:
                raise _infra(exc, "creating the container") from None
        if container.status == "created":
            try:
                container.start()
            except docker.errors.APIError as exc:
                raise self._start_error(exc, spec, "starting the container") from None
            except ENGINE_ERRORS as exc:
                raise _infra(exc, "starting the container") from None
        return handle

    @staticmethod
    def _start_error(exc: docker.errors.APIError, spec: RunSpec, what: str) -> RunnerError:
        text = str(exc.explanation or exc)
        image_markers = ("executable file not found", "no such file or directory", "No command specified")
        if any(m in text for m in image_markers) and "mount" not in text:
            return ImageInvalidError(f"the image {spec.image!r} cannot be started: {text}")
        if "Unknown runtime specified" in text:
            return PermanentInfraError(
                f"{what}: the Docker engine does not know the runtime this worker is configured with "
                f"(CSAWM_RUN_RUNTIME): {text}. Register gVisor's runsc with scripts/ensure-docker "
                "(it adds it to /etc/docker/daemon.json and reloads dockerd), or set CSAWM_RUN_RUNTIME=runc."
            )
        if "could not select device driver" in text:
            return PermanentInfraError(
                f"{what}: GPUs were requested but the engine has no GPU runtime: {text}"
            )
        return _infra(exc, what)

    def wait(self, handle: str, spec: RunSpec) -> RunResult:
        """Wait for the container to end (killing it at the deadline) and collect the result."""
        name = _container_of(handle)
        container = self._find(name)
        if container is None:
            raise PermanentInfraError(f"container {name} does not exist (removed by someone else?)")
        limits = spec.limits
        timeout_s = limits.timeout.total_seconds()
        started = _parse_time(container.attrs["State"].get("StartedAt"))
        elapsed = (datetime.now(UTC) - started).total_seconds() if started else 0.0
        deadline = time.monotonic() + max(0.0, timeout_s - elapsed)

        # The engine's wait endpoint blocks, so it runs in a thread while this one samples.
        api, done, failure = self.client.api, threading.Event(), list[BaseException]()

        def wait_for_exit() -> None:
            try:
                api.wait(container.id)
            except BaseException as exc:  # handed to the caller
                failure.append(exc)
            finally:
                done.set()

        threading.Thread(target=wait_for_exit, name=f"wait-{name}", daemon=True).start()
        peak: int | None = None
        timed_out = False
        output_flooded: str | None = None
        cgroup_file = _cgroup_file(container.id, _CGROUP_ROOTS, _CGROUP_FILES)
        cpu_file = _cgroup_file(container.id, _CGROUP_CPU_ROOTS, _CGROUP_CPU_FILES)
        cpu_s: float | None = None
        while not done.is_set():
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                timed_out = True
                self._kill(container.id)
                break
            if done.wait(min(self.poll_interval_s, remaining)):
                break
            sample = self._sample_memory(container.id, cgroup_file)
            if sample is not None:
                peak = max(peak or 0, sample)
            cpu_s = _read_cpu_seconds(cpu_file) or cpu_s
            usage = output_usage(spec.output_dir, max_entries=MAX_OUTPUT_ENTRIES)
            if usage.truncated or usage.bytes > limits.output_dir_bytes:
                output_flooded = (
                    f"The model wrote more than {MAX_OUTPUT_ENTRIES} files to /output and was stopped."
                    if usage.truncated
                    else f"The model wrote more than {limits.output_dir_bytes / 1024**2:.0f} MiB to /output "
                    "and was stopped."
                )
                self._kill(container.id)
                break
        if not done.wait(_STOP_GRACE_S):
            raise TransientInfraError(
                f"container {name} did not stop within {_STOP_GRACE_S:.0f} s of the kill"
            )
        if failure:
            raise _infra(
                failure[0] if isinstance(failure[0], Exception) else Exception(failure[0]), "waiting"
            )

        with _engine(f"inspecting container {name}"):
            container.reload()
        state = container.attrs["State"]
        exit_code = state.get("ExitCode")
        oom_killed = bool(state.get("OOMKilled"))
        with self._lock:
            cancelled = handle in self._cancelled
            self._cancelled.discard(handle)
        started = _parse_time(state.get("StartedAt"))
        finished = _parse_time(state.get("FinishedAt"))
        duration = (finished - started).total_seconds() if started and finished else 0.0
        if oom_killed:
            peak = max(peak or 0, limits.memory_bytes)
        log_tail = self._log_tail(container.id, limits.log_tail_lines, limits.log_tail_bytes)

        outcome = classify_exit(
            exit_code,
            oom_killed=oom_killed,
            timed_out=timed_out,
            cancelled=cancelled,
            timeout_s=timeout_s,
            memory_bytes=limits.memory_bytes,
        )
        code, message, predictions = outcome.error_code, outcome.message, None
        if output_flooded is not None and not cancelled:
            code, message = ErrorCode.OUTPUT_INVALID, output_flooded
        elif code is None:
            read = read_predictions_file(spec.output_dir, max_bytes=limits.output_bytes)
            code, predictions = read.error_code, read.data
            message = (
                read.message if code is not None else "The model exited with code 0 and wrote predictions."
            )
        result = RunResult(
            state=terminal_state(code),
            error_code=code,
            message=message,
            exit_code=exit_code,
            duration_s=duration,
            peak_memory_bytes=peak,
            log_tail=log_tail,
            predictions=predictions,
            handle=handle,
            cpu_seconds=cpu_s,
        )
        if self.remove_containers:
            self.cleanup(handle)
        return result

    def cancel(self, handle: str) -> None:
        """Kill the container if it runs; a later `wait` in this process reports ``cancelled``."""
        name = _container_of(handle)
        with self._lock:
            self._cancelled.add(handle)
        self._kill(name)

    def cleanup(self, handle: str) -> None:
        """Remove the container (and, with ``remove_images``, its image). Idempotent."""
        name = _container_of(handle)
        container = self._find(name)
        if container is None:
            return
        image_id = container.attrs.get("Image")
        with _engine(f"removing container {name}"), contextlib.suppress(docker.errors.NotFound):
            container.remove(force=True)
        if self.remove_images and image_id:
            with contextlib.suppress(docker.errors.ImageNotFound, docker.errors.APIError):
                self.client.images.remove(image_id, force=False, noprune=False)

    # -- helpers -------------------------------------------------------------------------------

    def _kill(self, container: str) -> None:
        with _engine(f"killing container {container}"):
            try:
                self.client.api.kill(container)
            except docker.errors.APIError as exc:
                if not isinstance(exc, docker.errors.NotFound) and exc.status_code != 409:  # 409: not running
                    raise

    def _sample_memory(self, container_id: str, cgroup_file: Path | None) -> int | None:
        """The container's memory high-water mark so far, in bytes (None when unknown)."""
        if cgroup_file is not None:
            try:
                return int(cgroup_file.read_text().strip())
            except (OSError, ValueError):
                return None
        try:
            stats = self.client.api.stats(container_id, stream=False, one_shot=True)
        except ENGINE_ERRORS:
            return None
        mem = stats.get("memory_stats") or {}
        value = mem.get("max_usage") or mem.get("usage")
        return int(value) if value else None

    def _log_tail(self, container_id: str, max_lines: int, max_bytes: int) -> str:
        """The last `max_lines` lines and at most `max_bytes` bytes of stdout+stderr.

        The engine reads its log file from the end (``tail=``), and the stream is folded into a
        buffer that never holds more than ``2 * max_bytes``, so a model that printed gigabytes costs
        the runner nothing.
        """
        buf = bytearray()
        try:
            stream: Iterator[bytes] = self.client.api.logs(
                container_id, stdout=True, stderr=True, stream=True, follow=False, tail=max_lines
            )
            for chunk in stream:
                buf += chunk
                if len(buf) > 2 * max_bytes:
                    del buf[: len(buf) - max_bytes]
        except ENGINE_ERRORS as exc:
            return f"(log tail unavailable: {exc})"
        data = bytes(buf[-max_bytes:]) if len(buf) > max_bytes else bytes(buf)
        return "\n".join(data.decode("utf-8", errors="replace").splitlines()[-max_lines:])
