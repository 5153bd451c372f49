"""`runner.registry_pull.pull` against the real registry and the real Docker engine (issue 13):
by digest, with the configured credentials, the pulled image id checked."""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import Iterator

import docker
import pytest

from runner.errors import ImageInvalidError, PermanentInfraError
from runner.registry_pull import RegistryAuth, pull
from server.registry.config import RegistryConfig
from server.registry.push import PushedImage, push_archive
from tests.server.srvtest.archives import write_archive
from tests.server.srvtest.registry import RegistryServer, missing_binaries, registry_server

pytestmark = [
    pytest.mark.docker,
    pytest.mark.skipif(
        bool(missing_binaries()),
        reason=f"needs {', '.join(missing_binaries())} (scripts/install-system-deps)",
    ),
]


@pytest.fixture(scope="module")
def registry() -> Iterator[RegistryServer]:
    with registry_server() as server:
        yield server


@pytest.fixture(scope="module")
def pushed(registry: RegistryServer, tmp_path_factory: pytest.TempPathFactory) -> tuple[PushedImage, str]:
    """A tiny image (one layer, no base image) pushed to the registry; (push, image id)."""
    folder = tmp_path_factory.mktemp("pull")
    image_id = write_archive(folder / "m.tar", seed=f"pull-{uuid.uuid4().hex}")
    config = RegistryConfig(registry.host, registry.username, registry.password, insecure=True)
    return push_archive(folder / "m.tar", "models/pull-test", "v1", config, work_dir=folder / "w"), image_id


@pytest.fixture
def engine(
    docker_client: docker.DockerClient, pushed: tuple[PushedImage, str]
) -> Iterator[docker.DockerClient]:
    """The engine, without the test image before and after each test (so every pull is real)."""

    def remove() -> None:
        with contextlib.suppress(docker.errors.ImageNotFound):
            docker_client.images.remove(pushed[1], force=True)

    remove()
    yield docker_client
    remove()


def test_pull_by_digest_with_credentials_returns_the_checked_image_id(
    engine: docker.DockerClient, registry: RegistryServer, pushed: tuple[PushedImage, str]
) -> None:
    image, image_id = pushed
    auth = RegistryAuth(registry.username, registry.password)
    assert pull(engine, str(image.reference), auth, expected_image_id=image_id) == image_id
    assert engine.images.get(image_id).id == image_id


def test_wrong_credentials_are_a_clear_infrastructure_error(
    engine: docker.DockerClient, registry: RegistryServer, pushed: tuple[PushedImage, str]
) -> None:
    image, image_id = pushed
    with pytest.raises(PermanentInfraError, match="refused the configured credentials") as info:
        pull(
            engine,
            str(image.reference),
            RegistryAuth(registry.username, "hunter2-pw"),
            expected_image_id=image_id,
        )
    assert "hunter2-pw" not in info.value.message
    with pytest.raises(PermanentInfraError, match="refused the configured credentials"):
        pull(engine, str(image.reference), None, expected_image_id=image_id)


def test_another_image_id_than_the_checked_one_is_refused(
    engine: docker.DockerClient, registry: RegistryServer, pushed: tuple[PushedImage, str]
) -> None:
    image, _ = pushed
    other = "sha256:" + "0" * 64
    with pytest.raises(PermanentInfraError, match="not the image sha256:0000"):
        pull(
            engine,
            str(image.reference),
            RegistryAuth(registry.username, registry.password),
            expected_image_id=other,
        )


def test_missing_image_and_tag_references_are_image_errors(
    engine: docker.DockerClient, registry: RegistryServer, pushed: tuple[PushedImage, str]
) -> None:
    auth = RegistryAuth(registry.username, registry.password)
    missing = f"{registry.host}/models/pull-test@sha256:" + "1" * 64
    with pytest.raises(ImageInvalidError, match="no longer in the registry"):
        pull(engine, missing, auth, expected_image_id=pushed[1])
    with pytest.raises(ImageInvalidError, match="pinned by digest"):
        pull(engine, f"{registry.host}/models/pull-test:v1", auth, expected_image_id=pushed[1])


def test_credentials_never_appear_in_the_repr() -> None:
    assert "hunter2" not in repr(RegistryAuth("u", "hunter2"))
