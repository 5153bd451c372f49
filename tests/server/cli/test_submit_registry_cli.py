"""``csawm submit HOST/REPO@sha256:…`` and ``csawm check`` with registry references (issue 24 item
2), against a live server and the real loopback registry (Debian's ``docker-registry``, skopeo
pushes): a tag is refused before anything is sent, a digest the registry does not hold is the
server's clear refusal, and a digest it holds is queued as a registry submission. Every refusal
leaves nothing queued and nothing charged."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from srvtest import factories as f
from srvtest.app import make_settings
from srvtest.archives import write_archive
from srvtest.fakes import FakeRunner
from srvtest.live import free_port, live_server
from srvtest.registry import RegistryServer, missing_binaries, registry_server
from typer.testing import CliRunner

from server.accounts import service as accounts
from server.app import create_app
from server.cli.main import app as cli
from server.core.db import Database
from server.models import QuotaEntry, Submission
from server.registry.config import RegistryConfig
from server.registry.push import PushedImage, push_archive

pytestmark = pytest.mark.skipif(
    bool(missing_binaries()), reason=f"needs {', '.join(missing_binaries())} (scripts/install-system-deps)"
)


@pytest.fixture(scope="module")
def registry() -> Iterator[RegistryServer]:
    with registry_server() as server:
        yield server


@pytest.fixture
def server(tmp_path: Path, sqlite_url: str, registry: RegistryServer) -> Iterator[tuple[str, Database, str]]:
    """A live server whose registry is the loopback one: (URL, database, a member's token)."""
    settings = make_settings(
        tmp_path,
        sqlite_url,
        registry=registry.host,
        registry_insecure=True,
        registry_username=registry.username,
        registry_password=registry.password,
    )
    app = create_app(settings, runner=FakeRunner(), embedded_worker=False, migrate_on_start=True)
    with live_server(app) as url:
        db = app.state.csawm.db
        f.team(db, "alpha")
        with db.transaction() as session:
            accounts.set_quota(session, "alpha", {"active": 5}, actor="test")
        yield url, db, f.user(db, "a@x.org", team="alpha")


@pytest.fixture
def pushed(tmp_path: Path, registry: RegistryServer) -> PushedImage:
    write_archive(tmp_path / "m.tar", seed="cli-ref")
    config = RegistryConfig(registry.host, registry.username, registry.password, insecure=True)
    return push_archive(tmp_path / "m.tar", "models/alpha", "v1", config, work_dir=tmp_path / "push")


def _csawm(url: str, token: str, *args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(cli, list(args), env={"CSAWM_SERVER_URL": url, "CSAWM_TOKEN": token})
    return result.exit_code, result.stdout, result.stderr


def _counts(db: Database) -> tuple[int, int]:
    with db.transaction(write=False) as session:
        return session.query(Submission).count(), session.query(QuotaEntry).count()


def test_a_tag_is_refused_before_anything_is_sent(registry: RegistryServer, pushed: PushedImage) -> None:
    """No server listens at the URL: exit 2 (not 3, unreachable) proves the refusal is local."""
    closed = f"http://127.0.0.1:{free_port()}"
    tagged = f"{registry.host}/models/alpha:v1"
    code, _, err = _csawm(closed, "t", "submit", tagged, "--name", "r")
    assert code == 2, err
    assert "by tag" in err and "only by digest" in err
    assert f"docker inspect --format '{{{{index .RepoDigests 0}}}}' {tagged}" in err
    assert "nothing was sent" in err


def test_a_digest_the_registry_does_not_hold_is_refused_and_charges_nothing(
    server: tuple[str, Database, str], registry: RegistryServer, pushed: PushedImage
) -> None:
    url, db, token = server
    missing = f"{registry.host}/models/alpha@sha256:{'0' * 64}"
    code, out, err = _csawm(url, token, "submit", missing, "--name", "r")
    assert code == 2, out + err
    assert err.startswith("error: ") and missing in err
    assert "Traceback" not in err
    assert _counts(db) == (0, 0)


def test_a_digest_it_holds_is_queued_as_a_registry_submission(
    server: tuple[str, Database, str], pushed: PushedImage, tmp_path: Path
) -> None:
    url, db, token = server
    card = tmp_path / "card.json"
    card.write_text('{"architecture": "resnet34"}')
    reference = str(pushed.reference)
    args = ("submit", reference, "--name", "by-ref", "--description", "d", "--method-card", str(card))
    code, out, err = _csawm(url, token, *args, "--json")
    assert code == 0, out + err
    body: dict[str, Any] = json.loads(out)
    assert (body["name"], body["status"], body["image_ref"]) == ("by-ref", "queued", reference)
    assert body["method_card"] == {"architecture": "resnet34"} and body["description"] == "d"
    assert f"/submissions/{body['id']}" in err  # the report URL, on stderr with --json
    with db.transaction(write=False) as session:
        stored = session.query(Submission).one()
        assert (stored.image_ref, stored.name) == (reference, "by-ref")
    assert _counts(db) == (1, 1)
    # the same reference again: the server's duplicate check answers, and still nothing is charged twice
    again, _, err = _csawm(url, token, "submit", reference, "--name", "again")
    assert again == 2 and f"submission {body['id']}" in err
    assert _counts(db) == (1, 1)


def test_check_refuses_a_tag_and_a_digest_it_cannot_pull(registry: RegistryServer, tmp_path: Path) -> None:
    code, out, err = _csawm("http://unused", "t", "check", f"{registry.host}/models/alpha:v1")
    assert code == 2 and "only by digest" in err, out + err
    missing = f"{registry.host}/models/alpha@sha256:{'0' * 64}"
    code, out, err = _csawm("http://unused", "t", "check", missing)
    assert code == 2, out + err
    assert f"could not pull {missing}" in err or "docker is not installed" in err


@pytest.mark.docker
def test_check_pulls_a_reference_with_the_researcher_s_login_and_runs_it(
    registry: RegistryServer, model_archives: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The engine pulls with the researcher's own ``docker login`` (a throwaway DOCKER_CONFIG here),
    then the image is checked like a local one."""
    import subprocess

    config = RegistryConfig(registry.host, registry.username, registry.password, insecure=True)
    pushed = push_archive(model_archives["good"], "models/good", "v1", config, work_dir=tmp_path / "push")
    monkeypatch.setenv("DOCKER_CONFIG", str(tmp_path / "docker-config"))
    login = subprocess.run(
        ["docker", "login", "--username", registry.username, "--password-stdin", registry.host],
        input=registry.password,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert login.returncode == 0, login.stderr
    reference = str(pushed.reference)
    try:
        code, out, err = _csawm("http://unused", "t", "check", reference, "--json")
        assert code == 0, out + err
        assert json.loads(out)["status"] == "succeeded"
    finally:
        subprocess.run(["docker", "image", "rm", "--force", reference], capture_output=True, check=False)
