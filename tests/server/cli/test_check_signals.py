"""``csawm check`` interrupted (issue 11 item 5): SIGINT or SIGTERM removes the model's container
before the process exits, so no model keeps running after its check."""

from __future__ import annotations

import io
import os
import signal
import subprocess
import sys
import tarfile
import time
from collections.abc import Iterator
from pathlib import Path

import docker
import pytest

BASE = "csawm-base/python:bookworm"
CSAWM = str(Path(sys.executable).with_name("csawm"))

pytestmark = [pytest.mark.docker, pytest.mark.timeout(300)]


@pytest.fixture(scope="module")
def sleeper() -> Iterator[str]:
    client = docker.from_env()
    client.images.get(BASE)  # built by `make test` (scripts/build-base-images)
    tag = f"csawm-check-signal-{os.getpid()}/sleeper:1"
    dockerfile = f'FROM {BASE}\nCMD ["python3", "-c", "import time; time.sleep(600)"]\n'.encode()
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        info = tarfile.TarInfo("Dockerfile")
        info.size = len(dockerfile)
        tar.addfile(info, io.BytesIO(dockerfile))
    buf.seek(0)
    client.images.build(fileobj=buf, custom_context=True, tag=tag, network_mode="none", rm=True)
    yield tag
    client.images.remove(tag, force=True)
    client.close()


def _check_containers(client: docker.DockerClient, image: str) -> list[str]:
    image_id = client.images.get(image).id
    return [
        row["Names"][0]
        for row in client.api.containers(all=True, filters={"label": "csawm.run_id"})
        if (row.get("Labels") or {}).get("csawm.run_id", "").startswith("check-")
        and row.get("ImageID") == image_id
    ]


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_interrupted_check_removes_its_container(sleeper: str, signum: int) -> None:
    client = docker.from_env()
    proc = subprocess.Popen(
        [CSAWM, "check", sleeper, "--json"], stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    try:
        deadline = time.monotonic() + 120
        while not _check_containers(client, sleeper):
            assert proc.poll() is None, proc.communicate()
            assert time.monotonic() < deadline, "the check's container never started"
            time.sleep(0.1)
        proc.send_signal(signum)
        proc.wait(30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode != 0
    assert _check_containers(client, sleeper) == []
