"""``csawm check`` honours the worker's container runtime (issue 12 item 7): ``--runtime`` or
``CSAWM_RUN_RUNTIME``, with clear refusals for what cannot run."""

from __future__ import annotations

import io
import json
import os
import platform
import subprocess
import tarfile
from collections.abc import Iterator
from pathlib import Path

import docker
import pytest
from typer.testing import CliRunner

from server.cli.main import app

REPO = Path(__file__).resolve().parents[3]
MODELS_PY = REPO / "tests" / "runner" / "images" / "models.py"
BASE = "csawm-base/python:bookworm"


@pytest.fixture(scope="module")
def kernel_image() -> Iterator[str]:
    """An image that prints the kernel release it sees, then writes valid predictions."""
    client = docker.from_env()
    try:
        client.images.get(BASE)
    except docker.errors.ImageNotFound:
        subprocess.run([str(REPO / "scripts" / "build-base-images"), "python"], check=True)
    if "runsc" not in (client.info().get("Runtimes") or {}):
        pytest.skip("the Docker engine has no runtime 'runsc' registered; run scripts/ensure-docker")
    dockerfile = f'FROM {BASE}\nCOPY models.py /opt/models.py\nCMD ["python3", "/opt/models.py", "kernel"]\n'
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for name, data in (("Dockerfile", dockerfile.encode()), ("models.py", MODELS_PY.read_bytes())):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    buf.seek(0)
    tag = f"csawm-check-runtime-test-{os.getpid()}/kernel:1"
    client.images.build(fileobj=buf, custom_context=True, tag=tag, network_mode="none", rm=True)
    yield tag
    client.images.remove(tag, force=True)
    client.close()


def check(*args: str, env: dict[str, str] | None = None) -> tuple[int, dict[str, object]]:
    args = (*args, "--json", "--timeout", "60", "--memory", "256m")
    result = CliRunner().invoke(app, ["check", *args], env=env)
    return result.exit_code, json.loads(result.stdout)


@pytest.mark.docker
def test_csawm_run_runtime_runsc_runs_the_check_under_gvisor(kernel_image: str) -> None:
    code, report = check(kernel_image, env={"CSAWM_RUN_RUNTIME": "runsc"})
    assert code == 0, report
    assert report["runtime"] == "runsc"
    assert "kernel:" in str(report["log_tail"])
    assert f"kernel: {platform.release()}" not in str(report["log_tail"])  # gVisor's, not the host's


@pytest.mark.docker
def test_the_flag_wins_over_the_environment(kernel_image: str) -> None:
    code, report = check(kernel_image, "--runtime", "runc", env={"CSAWM_RUN_RUNTIME": "runsc"})
    assert code == 0, report
    assert report["runtime"] == "runc"
    assert f"kernel: {platform.release()}" in str(report["log_tail"])


def test_unknown_runtime_exits_2() -> None:
    result = CliRunner().invoke(app, ["check", "x", "--runtime", "kata"])
    assert result.exit_code == 2
    assert "unknown container runtime 'kata'; expected one of runc, runsc" in result.stderr


def test_too_little_memory_for_gvisor_exits_2_before_anything_runs() -> None:
    result = CliRunner().invoke(app, ["check", "x", "--runtime", "runsc", "--memory", "32m"])
    assert result.exit_code == 2
    assert "below 64 MiB, the least a gVisor (runsc) sandbox runs in" in result.stderr
