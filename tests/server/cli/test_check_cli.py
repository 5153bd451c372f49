"""``csawm check`` (issue 3): the production sandbox on synthetic images, verdict as JSON."""

from __future__ import annotations

import hashlib
import io
import json
import os
import subprocess
import tarfile
from collections.abc import Iterator
from pathlib import Path

import docker
import pytest
from typer.testing import CliRunner

from server.cli.check import parse_memory
from server.cli.main import app

REPO = Path(__file__).resolve().parents[3]
MODELS_PY = REPO / "tests" / "runner" / "images" / "models.py"
BASE = "csawm-base/python:bookworm"


def _context(dockerfile: str) -> io.BytesIO:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for name, data in (("Dockerfile", dockerfile.encode()), ("models.py", MODELS_PY.read_bytes())):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    buf.seek(0)
    return buf


@pytest.fixture(scope="module")
def images() -> Iterator[dict[str, str]]:
    client = docker.from_env()
    try:
        client.images.get(BASE)
    except docker.errors.ImageNotFound:
        subprocess.run([str(REPO / "scripts" / "build-base-images"), "python"], check=True)
    tags = {}
    for behaviour in ("good", "silent"):
        tag = f"csawm-check-test-{os.getpid()}/{behaviour}:1"
        dockerfile = (
            f'FROM {BASE}\nCOPY models.py /opt/models.py\nCMD ["python3", "/opt/models.py", "{behaviour}"]\n'
        )
        client.images.build(
            fileobj=_context(dockerfile), custom_context=True, tag=tag, network_mode="none", rm=True
        )
        tags[behaviour] = tag
    yield tags
    for tag in tags.values():
        client.images.remove(tag, force=True)
    client.close()


def invoke(*args: str) -> tuple[int, dict[str, object]]:
    result = CliRunner().invoke(app, ["check", *args, "--json"])
    return result.exit_code, json.loads(result.stdout)


@pytest.mark.docker
def test_good_image_passes(images: dict[str, str]) -> None:
    code, report = invoke(images["good"], "--timeout", "60", "--memory", "256m")
    assert code == 0, report
    assert report["status"] == "succeeded"
    assert report["error_code"] is None
    assert report["error_message"] == "The model passed: valid predictions for all 8 images."
    assert report["predictions"] == {"rows": 8, "final_pred": False, "probs": False}
    assert "predicting 8 images" in str(report["log_tail"])


@pytest.mark.docker
def test_silent_image_fails_with_output_missing(images: dict[str, str]) -> None:
    code, report = invoke(images["silent"], "--timeout", "60", "--memory", "256m")
    assert code == 1
    assert (report["status"], report["error_code"]) == ("failed", "output_missing")
    assert "wrote nothing" in str(report["log_tail"])


@pytest.mark.docker
def test_unknown_image_is_image_invalid() -> None:
    code, report = invoke("csawm-check-test-no-such-image:0")
    assert code == 2  # bad input, as docs/cli.md's exit codes say (issue 23 item 8), not a model failure
    assert report["error_code"] == "image_invalid"
    assert "not present on this engine" in str(report["error_message"])


def test_rejected_archive_exits_2_before_loading(tmp_path: Path) -> None:
    config = json.dumps({"architecture": "arm64", "os": "linux", "config": {"Cmd": ["x"]}}).encode()
    name = hashlib.sha256(config).hexdigest() + ".json"
    path = tmp_path / "arm.tar"
    with tarfile.open(path, "w") as tar:
        for member, data in (
            (name, config),
            ("manifest.json", json.dumps([{"Config": name, "Layers": []}]).encode()),
        ):
            info = tarfile.TarInfo(member)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    code, report = invoke(str(path))
    assert code == 2
    assert report["error_code"] == "image_invalid"
    assert "linux/arm64" in str(report["error_message"])


def test_bad_arguments_exit_2() -> None:
    result = CliRunner().invoke(app, ["check", "x", "--memory", "lots"])
    assert result.exit_code == 2
    assert "not a size like 512m" in result.stderr


def test_parse_memory() -> None:
    assert parse_memory("4g") == 4 * 1024**3
    assert parse_memory("512MiB") == 512 * 1024**2
    assert parse_memory("1048576") == 1048576
    with pytest.raises(ValueError, match="must be positive"):
        parse_memory("0m")
