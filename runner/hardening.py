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
  that already runs as the image's entrypoint. tmpfs pages count against the memory limit.
* Memory and memory+swap are equal: no swap, so a model over its limit is OOM-killed, not slowed.
* ``/dev/shm`` is ``min(memory/4, 1 GiB)`` (DataLoader workers need more than Docker's 64 MiB);
  it is charged to the memory cgroup like any tmpfs.
* Logs: json-file, one file of at most 10 MiB, so a chatty model cannot fill the engine's disk.
* The disk quota of the writable layer (``--storage-opt size=``) is not available on overlay2 over
  ext4 (it needs xfs with ``pquota``); the root filesystem is read-only anyway, ``/tmp`` is a tmpfs,
  and ``/output`` is watched by the runner (see `runner.docker_backend`).
"""

from __future__ import annotations

from typing import Any

from docker.types import DeviceRequest, LogConfig, Mount, Ulimit

from runner.spec import RunSpec

SANDBOX_UID = 65534
SANDBOX_GID = 65534
LOG_MAX_SIZE = "10m"
SHM_MAX_BYTES = 1024**3
NOFILE_LIMIT = 4096
CONTAINER_INPUT_DIR = "/input"
CONTAINER_OUTPUT_DIR = "/output"


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


def container_kwargs(spec: RunSpec) -> dict[str, Any]:
    """Keyword arguments for ``client.containers.create(**kwargs)`` running `spec` in the sandbox.

    Raises
    ------
    ValueError
        When a limit is out of range or a run directory is not absolute.
    """
    limits = spec.limits
    if limits.memory_bytes < 16 * 1024**2:
        raise ValueError(f"memory limit {limits.memory_bytes} B is below the engine's minimum of 16 MiB")
    if limits.cpus <= 0:
        raise ValueError(f"cpus must be positive, got {limits.cpus}")
    if limits.pids < 8:
        raise ValueError(f"pids limit must be at least 8, got {limits.pids}")
    if limits.gpus < 0:
        raise ValueError(f"gpus must be >= 0, got {limits.gpus}")
    if not spec.input_dir.is_absolute() or not spec.output_dir.is_absolute():
        raise ValueError(f"run directories must be absolute: {spec.input_dir}, {spec.output_dir}")
    kwargs: dict[str, Any] = {
        "image": spec.image,
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
        "tmpfs": {"/tmp": f"rw,nosuid,nodev,size={limits.tmp_bytes},mode=1777"},
        "shm_size": shm_bytes(limits.memory_bytes),
        "cap_drop": ["ALL"],
        "security_opt": ["no-new-privileges"],
        "privileged": False,
        "pids_limit": limits.pids,
        "mem_limit": limits.memory_bytes,
        "memswap_limit": limits.memory_bytes,
        "nano_cpus": int(limits.cpus * 1e9),
        "ulimits": [
            Ulimit(name="nofile", soft=NOFILE_LIMIT, hard=NOFILE_LIMIT),
            Ulimit(name="core", soft=0, hard=0),
        ],
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


def docker_run_flags(spec: RunSpec) -> list[str]:
    """The same sandbox as `container_kwargs`, as ``docker run`` CLI flags (benchmarks, debugging)."""
    kw = container_kwargs(spec)
    limits = spec.limits
    flags = [
        "--name", kw["name"],
        "--user", kw["user"],
        "--hostname", kw["hostname"],
        "--network", "none",
        "--read-only",
        "--tmpfs", f"/tmp:{kw['tmpfs']['/tmp']}",
        "--shm-size", str(kw["shm_size"]),
        "--cap-drop", "ALL",
        "--security-opt", "no-new-privileges",
        "--pids-limit", str(limits.pids),
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
    for key, value in kw["environment"].items():
        flags += ["--env", f"{key}={value}"]
    if limits.gpus > 0:
        flags += ["--gpus", str(limits.gpus)]
    return flags
