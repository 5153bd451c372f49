"""Tiny model images for the Docker integration tests, built FROM the offline python base image
(no network, nothing pulled) and removed at the end of the session."""

from __future__ import annotations

import io
import os
import subprocess
import tarfile
from pathlib import Path

import docker

BASE_IMAGE = "csawm-base/python:bookworm"
REPO_ROOT = Path(__file__).resolve().parents[3]
MODEL_PY = Path(__file__).with_name("image") / "model.py"
TAG_PREFIX = f"csawm-srvtest-{os.getpid()}"


def ensure_base(client: docker.DockerClient, base: str = BASE_IMAGE) -> None:
    try:
        client.images.get(base)
    except docker.errors.ImageNotFound:
        flavour = base.split("/")[1].split(":")[0]  # csawm-base/<flavour>:bookworm
        subprocess.run([str(REPO_ROOT / "scripts" / "build-base-images"), flavour], check=True)


def build(
    client: docker.DockerClient, behaviour: str, *args: str, base: str = BASE_IMAGE, model: Path = MODEL_PY
) -> str:
    """Build (once per session) an image whose CMD runs `behaviour` of `model` on `base`; return its tag."""
    family = "" if model == MODEL_PY else f"{model.stem}-"
    tag = f"{TAG_PREFIX}/{family}{behaviour}:{'-'.join(args) or 'x'}"
    cmd = ", ".join(f'"{a}"' for a in ("python3", "/opt/model.py", behaviour, *args))
    dockerfile = f"FROM {base}\nCOPY model.py /opt/model.py\nUSER 1000\nCMD [{cmd}]\n"
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for name, data in (("Dockerfile", dockerfile.encode()), ("model.py", model.read_bytes())):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            info.mode = 0o644
            tar.addfile(info, io.BytesIO(data))
    buf.seek(0)
    client.images.build(fileobj=buf, custom_context=True, tag=tag, network_mode="none", rm=True, forcerm=True)
    return tag


def save(tag: str, path: Path) -> Path:
    with path.open("wb") as fh:
        subprocess.run(["docker", "save", tag], stdout=fh, check=True)
    return path


def remove_all(client: docker.DockerClient) -> None:
    for image in client.images.list():
        for tag in image.tags:
            if tag.startswith(TAG_PREFIX):
                client.images.remove(tag, force=True)
