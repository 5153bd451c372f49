"""A registry-reference submission run by the worker on the real Docker engine (issue 13 item 3):
the image is not in the engine, so the Docker runner pulls it by digest from the real registry
(with the configured credentials), checks it is the image id recorded at submission, and runs it."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import docker
import pytest
from srvtest import factories as f
from srvtest.app import make_settings, running_api
from srvtest.registry import RegistryServer, missing_binaries, registry_server

from server.accounts import service as accounts
from server.models import Submission
from server.registry.config import RegistryConfig
from server.registry.push import push_archive
from server.worker.loop import Worker, build_runner

pytestmark = [
    pytest.mark.docker,
    pytest.mark.timeout(400),
    pytest.mark.skipif(bool(missing_binaries()), reason=f"needs {', '.join(missing_binaries())}"),
]


@pytest.fixture(scope="module")
def registry() -> Iterator[RegistryServer]:
    with registry_server() as server:
        yield server


def test_reference_is_pulled_by_digest_verified_and_run(
    tmp_path: Path,
    sqlite_url: str,
    synthetic_benchmark: Path,
    registry: RegistryServer,
    docker_client: docker.DockerClient,
) -> None:
    from srvtest import images

    tag = images.build(docker_client, "good", "registry-run")
    archive = images.save(tag, tmp_path / "m.tar")
    config = RegistryConfig(registry.host, registry.username, registry.password, insecure=True)
    pushed = push_archive(archive, "research/model", "v1", config, work_dir=tmp_path / "push")
    image_id = docker_client.images.get(tag).id
    docker_client.images.remove(image_id, force=True)  # the engine must pull it
    settings = make_settings(
        tmp_path,
        sqlite_url,
        benchmark_dir=synthetic_benchmark,
        bootstrap_resamples=100,
        max_upload_bytes=1024**3,
        registry=registry.host,
        registry_insecure=True,
        registry_username=registry.username,
        registry_password=registry.password,
    )
    with running_api(settings) as api:
        f.team(api.db, "alpha")
        with api.db.transaction() as session:
            accounts.set_quota(session, "alpha", {"active": 5}, actor="test")
        token = f.user(api.db, "a@x.org", team="alpha")
        r = api.client.post(
            "/api/v1/submissions",
            json={"name": "from-registry", "image": str(pushed.reference)},
            headers=f.auth(token),
        )
        assert r.status_code == 201, r.text
        sub_id = r.json()["id"]
        assert Worker(settings, api.db, build_runner(settings)).run_once()
        with api.db.transaction(write=False) as session:
            sub = session.get(Submission, sub_id)
            assert sub is not None
            assert (sub.status.value, sub.error_detail) == ("succeeded", None)
            assert sub.image_digest == image_id and sub.image_ref == str(pushed.reference)
        assert docker_client.images.get(image_id).id == image_id  # pulled by digest, the same image
    docker_client.images.remove(image_id, force=True)
