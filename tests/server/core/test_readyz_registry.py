"""``/readyz`` names ``registry`` when the configured registry does not answer with the server's
credentials (issue 13; docs/api.md), against the real loopback registry."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from srvtest.app import make_settings, running_api
from srvtest.registry import RegistryServer, free_port, missing_binaries, registry_server

pytestmark = pytest.mark.skipif(bool(missing_binaries()), reason=f"needs {', '.join(missing_binaries())}")


@pytest.fixture(scope="module")
def registry() -> Iterator[RegistryServer]:
    with registry_server() as server:
        yield server


@pytest.mark.parametrize(
    ("host", "password", "failing", "reason"),
    [
        ("registry", "right", None, None),
        ("registry", "wrong", "registry", "refused the server's credentials"),
        ("nothing", "right", "registry", "unreachable"),
    ],
)
def test_readyz_checks_the_registry(
    tmp_path: Path, sqlite_url: str, registry: RegistryServer, host: str, password: str, failing: str | None,
    reason: str | None,
) -> None:  # fmt: skip
    settings = make_settings(
        tmp_path,
        sqlite_url,
        registry=registry.host if host == "registry" else f"127.0.0.1:{free_port()}",
        registry_insecure=True,
        registry_username=registry.username,
        registry_password=registry.password if password == "right" else "not-the-password",
    )
    with running_api(settings) as api:
        response = api.client.get("/readyz")
    if failing is None:
        assert (response.status_code, response.json()) == (200, {"status": "ready"})
    else:
        error = response.json()["error"]
        assert (response.status_code, error["checks"]) == (503, [failing])
        assert reason in error["details"][failing]
