"""All sandbox settings of a model container, in one function.

`container_kwargs` is the only place that decides how an untrusted image runs (docs/contract.md): the
Docker backend, `csawm check` and the benchmark's bare ``docker run`` (`docker_run_flags`) all derive
from it, so a check run is exactly the production sandbox. There is deliberately no opt-out; a
future one must be a keyword named ``*_UNSAFE``.

Decisions worth knowing:

* The uid is forced to ``65534:65534`` (nobody) whatever the image's ``USER`` says; images get no
  say in it. ``/output`` is chowned to that uid by the runner before the start.
* ``/tmp`` is a tmpfs capped at ``limits.tmp_bytes`` with ``nosuid,nodev`` but *not* ``noexec``:
  PyTorch/Triton JIT caches ``dlopen`` code from ``/tmp``, and ``noexec`` buys nothing against code
  that already runs as the image's entrypoint. Docker mounts a ``--tmpfs`` ``noexec`` unless told
  ``exec``, hence the explicit option. tmpfs pages count against the memory limit.
* Memory and memory+swap are equal: no swap, so a model over its limit is OOM-killed, not slowed.
* ``/dev/shm`` is ``min(memory/4, 1 GiB)`` (DataLoader workers need more than Docker's 64 MiB);
  it is charged to the memory cgroup like any tmpfs.
* Logs: json-file, one file of at most 10 MiB, so a chatty model cannot fill the engine's disk.
* The disk quota of the writable layer (``--storage-opt size=``) is not available on overlay2 over
  ext4 (it needs xfs with ``pquota``); the root filesystem is read-only anyway, ``/tmp`` is a tmpfs,
  and ``/output`` is watched by the runner (see `runner.docker_backend`).

The runtime (``CSAWM_RUN_RUNTIME``) is ``runc`` (the host kernel, namespaces and seccomp) or
``runsc`` (gVisor: the model's system calls go to a user-space kernel, the Sentry, which itself runs
seccomp-filtered as uid 65534 on the host). Every setting above applies to both; three things differ
under runsc, measured with runsc 0.0~20221219 (Debian bookworm, ptrace platform, cgroup v1):

* **Processes.** The Sentry, its Gofer and the ptrace stubs live in the container's host cgroup:
  about 60 host tasks at rest and 5 to 6 more per process the model forks (threads that sleep cost
  almost nothing). When the host pids limit refuses the Sentry a thread, the Go runtime aborts the
  whole sandbox (exit code 2, gVisor issue 2490) instead of failing the model's ``fork``: with
  ``--pids-limit 64`` even the well-behaved test model died so, and with 32 the sandbox never
  started. So the model's own limit is ``RLIMIT_NPROC = limits.pids``, which gVisor enforces inside
  the sandbox per task, threads included (``fork``/``clone`` fail with EAGAIN, as the pids cgroup
  makes them fail under runc), and the host pids cgroup is a backstop of `GVISOR_HOST_TASKS` +
  `GVISOR_HOST_TASKS_PER_PROCESS` x ``limits.pids`` (2176 for 256; a fork bomb held at 254 children
  by ``RLIMIT_NPROC=256`` passed 1540 host tasks). ``RLIMIT_NPROC`` is *not* set under runc: there
  it counts every process of uid 65534 on the host, so concurrent runs would take from each other.
* **Memory.** The limit covers the Sentry too (about 20 MiB at rest, 5 to 8 MiB per process: the
  same fork bomb peaked at 1968 MiB against 68 MiB under runc), so a model has that much less than
  under runc; a limit under `GVISOR_MIN_MEMORY_BYTES` is refused (at 16 MiB the sandbox is killed
  before the model starts, without the engine's OOM flag). An out-of-memory kill of the model is
  still the engine's ``OOMKilled`` with exit code 137, and the cgroup's high-water mark is the
  sandbox's. The CPU quota (``nano_cpus``) applies to the whole sandbox as well.
* **What the model sees.** gVisor's kernel (``uname -r`` 4.4.0); ``/proc/self/status`` shows no
  ``NoNewPrivs`` line (``prctl(PR_GET_NO_NEW_PRIVS)`` answers 1) and ``Seccomp: 0``: the engine's
  seccomp profile is not loaded inside the sandbox (runsc ``--oci-seccomp`` would); the filtering
  that matters is the Sentry's own, on the host. Mounts are 9p (served by the Gofer), ``/tmp``'s
  options list neither ``nosuid`` nor ``nodev``, and writes to the read-only root fail with EACCES
  rather than EROFS.
"""

from __future__ import annotations

from typing import Any, Literal, get_args

from docker.types import DeviceRequest, LogConfig, Mount, Ulimit

from runner.spec import RunLimits, RunSpec

SANDBOX_UID = 65534
SANDBOX_GID = 65534
LOG_MAX_SIZE = "10m"
SHM_MAX_BYTES = 1024**3
NOFILE_LIMIT = 4096
CONTAINER_INPUT_DIR = "/input"
CONTAINER_OUTPUT_DIR = "/output"

Runtime = Literal["runc", "runsc"]
RUNTIMES: tuple[Runtime, ...] = get_args(Runtime)
MIN_MEMORY_BYTES = 16 * 1024**2  # the engine's own minimum
GVISOR_MIN_MEMORY_BYTES = 64 * 1024**2
GVISOR_HOST_TASKS = 128
GVISOR_HOST_TASKS_PER_PROCESS = 8


def container_name(run_id: str, attempt: int) -> str:
    """``csawm-run-<run_id>-a<attempt>``: any worker can find the container of a run attempt."""
    return f"csawm-run-{run_id}-a{attempt}"


def contract_env() -> dict[str, str]:
    """The model's whole environment (contract v1); nothing of the server leaks in."""
    return {
        "CSAWM_INPUT_DIR": CONTAINER_INPUT_DIR,
        "CSAWM_OUTPUT_DIR": CONTAINER_OUTPUT_DIR,
        "CSAWM_CONTRACT": "1",
        "HOME": "/tmp",
    }


def shm_bytes(memory_bytes: int) -> int:
    """Size of ``/dev/shm``: a quarter of the memory limit, at most 1 GiB, at least 64 MiB."""
    return max(64 * 1024**2, min(memory_bytes // 4, SHM_MAX_BYTES))


def check_runtime(runtime: str) -> Runtime:
    """`runtime` itself when it is one the sandbox knows, else a ValueError naming the choices."""
    if runtime not in RUNTIMES:
        raise ValueError(f"unknown container runtime {runtime!r}; expected one of {', '.join(RUNTIMES)}")
    return runtime


def host_pids_limit(pids: int, runtime: Runtime) -> int:
    """The pids cgroup limit of the container: `pids` under runc, gVisor's backstop under runsc."""
    if runtime == "runsc":
        return GVISOR_HOST_TASKS + GVISOR_HOST_TASKS_PER_PROCESS * pids
    return pids


def check_limits(limits: RunLimits, runtime: Runtime) -> None:
    """Refuse limits the sandbox cannot run with (`container_kwargs` calls it; so can a CLI, early).

    Raises
    ------
    ValueError
        Naming the limit and the bound.
    """
    if limits.memory_bytes < MIN_MEMORY_BYTES:
        raise ValueError(f"memory limit {limits.memory_bytes} B is below the engine's minimum of 16 MiB")
    if runtime == "runsc" and limits.memory_bytes < GVISOR_MIN_MEMORY_BYTES:
        raise ValueError(
            f"memory limit {limits.memory_bytes} B is below {GVISOR_MIN_MEMORY_BYTES // 1024**2} MiB, "
            "the least a gVisor (runsc) sandbox runs in: its own kernel shares the limit"
        )
    if limits.cpus <= 0:
        raise ValueError(f"cpus must be positive, got {limits.cpus}")
    if limits.pids < 8:
        raise ValueError(f"pids limit must be at least 8, got {limits.pids}")
    if limits.gpus < 0:
        raise ValueError(f"gpus must be >= 0, got {limits.gpus}")


def container_kwargs(spec: RunSpec, runtime: Runtime = "runc") -> dict[str, Any]:
    """Keyword arguments for ``client.containers.create(**kwargs)`` running `spec` in the sandbox.

    The runtime is always named explicitly, so an engine whose ``default-runtime`` is something
    else still runs exactly what ``CSAWM_RUN_RUNTIME`` says.

    Raises
    ------
    ValueError
        When the runtime is unknown, a limit is out of range or a run directory is not absolute.
    """
    runtime = check_runtime(runtime)
    limits = spec.limits
    check_limits(limits, runtime)
    if not spec.input_dir.is_absolute() or not spec.output_dir.is_absolute():
        raise ValueError(f"run directories must be absolute: {spec.input_dir}, {spec.output_dir}")
    ulimits = [
        Ulimit(name="nofile", soft=NOFILE_LIMIT, hard=NOFILE_LIMIT),
        Ulimit(name="core", soft=0, hard=0),
    ]
    if runtime == "runsc":
        ulimits.append(Ulimit(name="nproc", soft=limits.pids, hard=limits.pids))
    kwargs: dict[str, Any] = {
        "image": spec.image,
        "runtime": runtime,
        "name": container_name(spec.run_id, spec.attempt),
        "labels": {
            "csawm.run_id": spec.run_id,
            "csawm.attempt": str(spec.attempt),
            "csawm.phase": spec.phase,
        },
        "environment": contract_env(),
        "user": f"{SANDBOX_UID}:{SANDBOX_GID}",
        "hostname": "model",
        "network_mode": "none",
        "read_only": True,
        "tmpfs": {"/tmp": f"rw,exec,nosuid,nodev,size={limits.tmp_bytes},mode=1777"},
        "shm_size": shm_bytes(limits.memory_bytes),
        "cap_drop": ["ALL"],
        "security_opt": ["no-new-privileges"],
        "privileged": False,
        "pids_limit": host_pids_limit(limits.pids, runtime),
        "mem_limit": limits.memory_bytes,
        "memswap_limit": limits.memory_bytes,
        "nano_cpus": int(limits.cpus * 1e9),
        "ulimits": ulimits,
        "init": True,
        "log_config": LogConfig(type="json-file", config={"max-size": LOG_MAX_SIZE, "max-file": "1"}),
        "mounts": [
            Mount(target=CONTAINER_INPUT_DIR, source=str(spec.input_dir), type="bind", read_only=True),
            Mount(target=CONTAINER_OUTPUT_DIR, source=str(spec.output_dir), type="bind", read_only=False),
        ],
        "detach": True,
        "stdin_open": False,
        "tty": False,
    }
    if limits.gpus > 0:
        kwargs["device_requests"] = [DeviceRequest(count=limits.gpus, capabilities=[["gpu"]])]
    return kwargs


def docker_run_flags(spec: RunSpec, runtime: Runtime = "runc") -> list[str]:
    """The same sandbox as `container_kwargs`, as ``docker run`` CLI flags (benchmarks, debugging)."""
    kw = container_kwargs(spec, runtime)
    limits = spec.limits
    flags = [
        "--runtime", kw["runtime"],
        "--name", kw["name"],
        "--user", kw["user"],
        "--hostname", kw["hostname"],
        "--network", "none",
        "--read-only",
        "--tmpfs", f"/tmp:{kw['tmpfs']['/tmp']}",
        "--shm-size", str(kw["shm_size"]),
        "--cap-drop", "ALL",
        "--security-opt", "no-new-privileges",
        "--pids-limit", str(kw["pids_limit"]),
        "--memory", str(limits.memory_bytes),
        "--memory-swap", str(limits.memory_bytes),
        "--cpus", str(limits.cpus),
        "--ulimit", f"nofile={NOFILE_LIMIT}:{NOFILE_LIMIT}",
        "--ulimit", "core=0:0",
        "--init",
        "--log-driver", "json-file", "--log-opt", f"max-size={LOG_MAX_SIZE}", "--log-opt", "max-file=1",
        "--mount", f"type=bind,source={spec.input_dir},target={CONTAINER_INPUT_DIR},readonly",
        "--mount", f"type=bind,source={spec.output_dir},target={CONTAINER_OUTPUT_DIR}",
    ]  # fmt: skip
    if runtime == "runsc":
        flags += ["--ulimit", f"nproc={limits.pids}:{limits.pids}"]
    for key, value in kw["environment"].items():
        flags += ["--env", f"{key}={value}"]
    if limits.gpus > 0:
        flags += ["--gpus", str(limits.gpus)]
    return flags
