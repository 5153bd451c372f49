"""Server test fixtures: a database per test (SQLite file, or a fresh database in a PostgreSQL cluster
the tests start themselves), settings pointing at a temp dir, and an app with its TestClient."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from srvtest.app import Api, make_settings, open_api
from srvtest.pg import create_database, postgres_cluster


@pytest.fixture(scope="session")
def pg_admin_url() -> Iterator[str]:
    with postgres_cluster() as url:
        yield url


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'state' / 'csawm.db'}"
    return create_database(request.getfixturevalue("pg_admin_url"))


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'state' / 'csawm.db'}"


@pytest.fixture
def api(tmp_path: Path, db_url: str) -> Iterator[Api]:
    """The app on SQLite and on PostgreSQL."""
    yield from open_api(make_settings(tmp_path, db_url))


@pytest.fixture
def sqlite_api(tmp_path: Path, sqlite_url: str) -> Iterator[Api]:
    yield from open_api(make_settings(tmp_path, sqlite_url))


@pytest.fixture(scope="session")
def docker_client() -> Iterator[Any]:
    import docker

    client = docker.from_env()
    client.ping()  # fails loudly (never skips) when the engine is not running
    yield client
    client.close()


@pytest.fixture(scope="session")
def model_images(docker_client: Any) -> Iterator[dict[str, str]]:
    """Tags of the integration-test models (srvtest/image/model.py), built once per session."""
    from srvtest import images

    images.ensure_base(docker_client)
    tags = {
        "good": images.build(docker_client, "good"),
        "crash_hidden": images.build(docker_client, "crash_hidden"),
        "slow": images.build(docker_client, "slow", "6"),
        "garbage_hidden": images.build(docker_client, "garbage_hidden"),
    }
    yield tags
    images.remove_all(docker_client)


@pytest.fixture(scope="session")
def model_archives(model_images: dict[str, str], tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    from srvtest import images

    folder = tmp_path_factory.mktemp("archives")
    return {name: images.save(tag, folder / f"{name}.tar") for name, tag in model_images.items()}
