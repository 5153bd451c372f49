"""Fixtures for the runner tests: the real Docker engine, hostile test images, run directories.

Images are built locally FROM the offline python base (built on demand by
scripts/build-base-images when missing; nothing is pulled) and removed at the end of the session.

The `runtime` fixture runs a test once per container runtime (issue 12 item 7): ``runc`` always,
``runsc`` (gVisor) when the engine has it registered (scripts/ensure-docker does that wherever
runsc is installed, CI included); otherwise the runsc case is skipped, saying why.
"""

from __future__ import annotations

import contextlib
import io
import os
import subprocess
import uuid
from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path

import docker
import pytest
from PIL import Image

from runner.hardening import RUNTIMES, Runtime
from runner.io_contract import prepare_input
from runner.spec import RunLimits, RunSpec

REPO = Path(__file__).resolve().parents[2]
BASE_IMAGE = "csawm-base/python:bookworm"
TEST_REPO = f"csawm-runner-test-{os.getpid()}"
MODELS_PY = Path(__file__).with_name("images") / "models.py"


@pytest.fixture(scope="session")
def docker_client() -> Iterator[docker.DockerClient]:
    client = docker.from_env()
    client.ping()  # fails loudly (never skips) when the engine is not running
    yield client
    client.close()


@pytest.fixture(scope="session")
def engine_runtimes(docker_client: docker.DockerClient) -> frozenset[str]:
    """The OCI runtimes the engine knows (``docker info``'s ``Runtimes``)."""
    return frozenset(docker_client.info().get("Runtimes") or {})


@pytest.fixture(params=RUNTIMES)
def runtime(request: pytest.FixtureRequest, engine_runtimes: frozenset[str]) -> Runtime:
    """Each container runtime in turn; runsc only where the engine has it registered."""
    name: Runtime = request.param
    if name not in engine_runtimes:
        pytest.skip(
            f"the Docker engine has no runtime {name!r} registered (it knows {sorted(engine_runtimes)}); "
            "install runsc and run scripts/ensure-docker to register gVisor"
        )
    return name


@pytest.fixture(scope="session")
def base_image(docker_client: docker.DockerClient) -> str:
    try:
        docker_client.images.get(BASE_IMAGE)
    except docker.errors.ImageNotFound:
        subprocess.run([str(REPO / "scripts" / "build-base-images"), "python"], check=True)
    return BASE_IMAGE


def _build(client: docker.DockerClient, tag: str, dockerfile: str, files: dict[str, bytes]) -> str:
    """Build from an in-memory context (tar) with no network; returns the tag."""
    import tarfile

    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for name, data in {"Dockerfile": dockerfile.encode(), **files}.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            info.mode = 0o644
            tar.addfile(info, io.BytesIO(data))
    buf.seek(0)
    client.images.build(fileobj=buf, custom_context=True, tag=tag, network_mode="none", rm=True, forcerm=True)
    return tag


@pytest.fixture(scope="session")
def model_image(docker_client: docker.DockerClient, base_image: str) -> Iterator[Callable[..., str]]:
    """``model_image("sleeper")`` -> a tag whose CMD runs that behaviour of images/models.py."""
    built: dict[tuple[str, ...], str] = {}
    models_tag = _build(
        docker_client,
        f"{TEST_REPO}/models:base",
        f"FROM {base_image}\nCOPY models.py /opt/models.py\n",
        {"models.py": MODELS_PY.read_bytes()},
    )

    def make(behaviour: str, *args: str, user: str | None = None) -> str:
        key = (behaviour, *args, user or "")
        if key not in built:
            cmd = ", ".join(f'"{a}"' for a in ("python3", "/opt/models.py", behaviour, *args))
            lines = [f"FROM {models_tag}"]
            if user:
                lines.append(f"USER {user}")
            lines.append(f"CMD [{cmd}]")
            tag = f"{TEST_REPO}/{behaviour.replace('_', '-')}:{len(built)}"
            built[key] = _build(docker_client, tag, "\n".join(lines) + "\n", {})
        return built[key]

    yield make
    for tag in [*built.values(), models_tag]:
        with contextlib.suppress(docker.errors.ImageNotFound):
            docker_client.images.remove(tag, force=True)


def write_pngs(directory: Path, count: int = 3) -> list[Path]:
    """`count` tiny 8-bit grey PNGs of different content."""
    directory.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(count):
        path = directory / f"img_{i:03d}.png"
        Image.new("L", (16 + i, 12), color=20 * i).save(path)
        paths.append(path)
    return paths


@pytest.fixture
def run_dirs(tmp_path: Path) -> tuple[Path, Path, list[str]]:
    """(input_dir prepared with 3 images, output_dir not yet created, the manifest names)."""
    images = write_pngs(tmp_path / "src")
    input_dir = tmp_path / "input"
    prepare_input(input_dir, images)
    os.chmod(tmp_path, 0o755)
    return input_dir, tmp_path / "output", [p.name for p in images]


@pytest.fixture
def make_spec(run_dirs: tuple[Path, Path, list[str]]) -> Callable[..., RunSpec]:
    def make(image: str, **limits: object) -> RunSpec:
        defaults: dict[str, object] = {
            "timeout": timedelta(seconds=60),
            "memory_bytes": 256 * 1024**2,
            "cpus": 1.0,
            "pids": 64,
        }
        defaults.update(limits)
        return RunSpec(
            run_id=f"t{uuid.uuid4().hex[:10]}",
            image=image,
            input_dir=run_dirs[0],
            output_dir=run_dirs[1],
            limits=RunLimits(**defaults),  # type: ignore[arg-type]
            phase="preflight",
        )

    return make


@pytest.fixture
def build_image(docker_client: docker.DockerClient, base_image: str) -> Iterator[Callable[[str, str], str]]:
    """``build_image(name, dockerfile_body)`` -> tag of an image ``FROM`` the base, removed afterwards."""
    tags: list[str] = []

    def make(name: str, body: str) -> str:
        tag = _build(docker_client, f"{TEST_REPO}/{name}:{len(tags)}", f"FROM {base_image}\n{body}\n", {})
        tags.append(tag)
        return tag

    yield make
    for tag in tags:
        with contextlib.suppress(docker.errors.ImageNotFound):
            docker_client.images.remove(tag, force=True)
