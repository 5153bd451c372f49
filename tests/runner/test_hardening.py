"""The sandbox settings, as built (the docker suite checks them from inside the container)."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

from runner.hardening import (
    GVISOR_HOST_TASKS,
    GVISOR_HOST_TASKS_PER_PROCESS,
    container_kwargs,
    docker_run_flags,
)
from runner.spec import RunLimits, RunSpec


def spec(**limits: object) -> RunSpec:
    return RunSpec(
        run_id="r42",
        image="sha256:abc",
        input_dir=Path("/runs/r42/input"),
        output_dir=Path("/runs/r42/output"),
        limits=RunLimits(**limits),  # type: ignore[arg-type]
        attempt=2,
    )


def test_every_hardening_setting() -> None:
    kw = container_kwargs(
        spec(memory_bytes=1024**3, cpus=1.5, pids=100, tmp_bytes=64 * 1024**2, timeout=timedelta(seconds=5))
    )
    assert kw["name"] == "csawm-run-r42-a2"
    assert kw["network_mode"] == "none"
    assert kw["read_only"] is True
    assert kw["user"] == "65534:65534"
    assert kw["cap_drop"] == ["ALL"]
    assert kw["security_opt"] == ["no-new-privileges"]
    assert kw["privileged"] is False
    assert kw["pids_limit"] == 100
    assert kw["mem_limit"] == kw["memswap_limit"] == 1024**3
    assert kw["nano_cpus"] == 1_500_000_000
    assert kw["init"] is True
    # exec: Docker's --tmpfs is noexec unless told otherwise, and JIT caches dlopen from /tmp
    assert kw["tmpfs"] == {"/tmp": f"rw,exec,nosuid,nodev,size={64 * 1024**2},mode=1777"}
    assert kw["environment"] == {
        "CSAWM_INPUT_DIR": "/input",
        "CSAWM_OUTPUT_DIR": "/output",
        "CSAWM_CONTRACT": "1",
        "HOME": "/tmp",
    }
    assert kw["log_config"]["Config"] == {"max-size": "10m", "max-file": "1"}
    mounts = {m["Target"]: m for m in kw["mounts"]}
    assert mounts["/input"]["ReadOnly"] is True and mounts["/input"]["Source"] == "/runs/r42/input"
    assert mounts["/output"]["ReadOnly"] is False
    assert "device_requests" not in kw
    assert "ports" not in kw and "volumes" not in kw and "cap_add" not in kw


def test_gpu_request() -> None:
    kw = container_kwargs(spec(gpus=1))
    (request,) = kw["device_requests"]
    assert request["Count"] == 1 and request["Capabilities"] == [["gpu"]]
    assert "--gpus" in docker_run_flags(spec(gpus=1))


@pytest.mark.parametrize(
    ("limits", "match"),
    [
        ({"memory_bytes": 1024}, "below the engine's minimum"),
        ({"cpus": 0}, "cpus must be positive"),
        ({"pids": 1}, "pids limit"),
        ({"gpus": -1}, "gpus"),
    ],
)
def test_bad_limits(limits: dict[str, object], match: str) -> None:
    with pytest.raises(ValueError, match=match):
        container_kwargs(spec(**limits))


def test_cli_flags_match_the_kwargs() -> None:
    flags = docker_run_flags(spec())
    for expected in ("--read-only", "--init", "no-new-privileges", "ALL", "65534:65534"):
        assert expected in flags
    assert flags[flags.index("--network") + 1] == "none"
    assert "CSAWM_CONTRACT=1" in flags


def test_runtime_is_named_explicitly() -> None:
    """The engine's default-runtime never decides: runc is asked for by name too (issue 12)."""
    assert container_kwargs(spec())["runtime"] == "runc"
    assert container_kwargs(spec(), "runsc")["runtime"] == "runsc"
    flags = docker_run_flags(spec(), "runsc")
    assert flags[flags.index("--runtime") + 1] == "runsc"


def test_runc_limits_processes_with_the_pids_cgroup_only() -> None:
    kw = container_kwargs(spec(pids=100), "runc")
    assert kw["pids_limit"] == 100
    # RLIMIT_NPROC would count every uid-65534 process on the host, across concurrent runs
    assert "nproc" not in {u["Name"] for u in kw["ulimits"]}


def test_runsc_limits_the_models_processes_inside_the_sandbox() -> None:
    """gVisor: the model's limit is RLIMIT_NPROC (EAGAIN inside); the host cgroup is a backstop
    sized for the Sentry's own threads, which would otherwise abort the sandbox first."""
    kw = container_kwargs(spec(pids=100), "runsc")
    nproc = [u for u in kw["ulimits"] if u["Name"] == "nproc"]
    assert [(u["Soft"], u["Hard"]) for u in nproc] == [(100, 100)]
    assert kw["pids_limit"] == GVISOR_HOST_TASKS + GVISOR_HOST_TASKS_PER_PROCESS * 100
    flags = docker_run_flags(spec(pids=100), "runsc")
    assert "nproc=100:100" in flags
    assert flags[flags.index("--pids-limit") + 1] == str(kw["pids_limit"])


def test_runsc_needs_room_for_its_own_kernel() -> None:
    container_kwargs(spec(memory_bytes=64 * 1024**2), "runsc")
    container_kwargs(spec(memory_bytes=16 * 1024**2), "runc")
    with pytest.raises(ValueError, match="below 64 MiB, the least a gVisor"):
        container_kwargs(spec(memory_bytes=32 * 1024**2), "runsc")


def test_unknown_runtime() -> None:
    with pytest.raises(ValueError, match="unknown container runtime 'kata'; expected one of runc, runsc"):
        container_kwargs(spec(), "kata")  # type: ignore[arg-type]
