"""Layer 3 (container contract, CPU only): the collector runs under the Pod's constraints in a bare
``python3`` image, using only the standard library: no network, read-only root filesystem, a
non-root uid (the Job's 65532), all capabilities dropped, no new privileges, ``/output`` read-only.

What this proves: the collector's entry point and its hostile-output handling work in such a
sandbox. What it does not prove: anything about Kubernetes (the live suite's job).
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import docker
import pytest

from runner.kubernetes.framing import parse_frame

pytestmark = pytest.mark.docker

ROOT = Path(__file__).resolve().parents[2]
BASE_IMAGE = "csawm-base/python:bookworm"


@pytest.fixture(scope="module")
def run_collector() -> Iterator[Callable[[Path], bytes]]:
    client = docker.from_env()
    client.ping()  # fails loudly (never skips) when the engine is not running
    try:
        client.images.get(BASE_IMAGE)
    except docker.errors.ImageNotFound:  # built offline on demand, never pulled (docs/design.md)
        subprocess.run([str(ROOT / "scripts" / "build-base-images"), "python"], check=True, timeout=900)

    def run(output: Path) -> bytes:
        output.chmod(0o755)
        logs: bytes = client.containers.run(
            BASE_IMAGE,
            [
                "python3",
                "-m",
                "runner.kubernetes.collector",
                "--output-dir",
                "/output",
                "--max-bytes",
                "4096",
            ],
            working_dir="/app",
            environment={"PYTHONPATH": "/app", "PYTHONDONTWRITEBYTECODE": "1"},
            volumes={
                str(ROOT / "runner"): {"bind": "/app/runner", "mode": "ro"},
                str(output): {"bind": "/output", "mode": "ro"},
            },
            network_mode="none",
            read_only=True,
            user="65532:65532",
            cap_drop=["ALL"],
            security_opt=["no-new-privileges"],
            mem_limit="256m",
            pids_limit=64,
            remove=True,
            stdout=True,
            stderr=False,
        )
        return logs

    yield run
    client.close()


def test_collector_frames_predictions_in_a_sandbox(
    run_collector: Callable[[Path], bytes], tmp_path: Path
) -> None:
    data = b"Filename;Final_score\nA.png;0.25\n"
    (tmp_path / "predictions.csv").write_bytes(data)
    os.chmod(tmp_path / "predictions.csv", 0o644)
    assert parse_frame(run_collector(tmp_path), max_bytes=4096).data == data


def test_collector_rejects_a_symlink_in_a_sandbox(
    run_collector: Callable[[Path], bytes], tmp_path: Path
) -> None:
    (tmp_path / "predictions.csv").symlink_to("/etc/passwd")
    frame = parse_frame(run_collector(tmp_path), max_bytes=4096)
    assert frame.status == "rejected" and "symbolic link" in frame.message
