"""`csawm agreement` reads and accepts the data-use agreement; `csawm submit` stops before any
upload (or `docker save`) while it is not accepted, and says how to accept it."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi import FastAPI, Request, Response
from fastapi.responses import JSONResponse
from srvtest import factories as f
from srvtest.app import make_settings
from srvtest.archives import write_archive
from srvtest.live import live_server
from starlette.middleware.base import RequestResponseEndpoint
from typer.testing import CliRunner

from server.app import create_app
from server.cli.main import app as cli
from server.core.db import Database

TEXT = "# Agreement\n\nNo re-identification.\n"


def _run(url: str, token: str | None, *args: str) -> tuple[int, str, str]:
    env = {"CSAWM_SERVER_URL": url, **({"CSAWM_TOKEN": token} if token else {})}
    result = CliRunner().invoke(cli, list(args), env=env)
    return result.exit_code, result.stdout, result.stderr


@pytest.fixture
def server(tmp_path: Path, sqlite_url: str) -> Iterator[tuple[str, Database, list[tuple[str, str]], str]]:
    dua = tmp_path / "dua.md"
    dua.write_text(TEXT)
    app = create_app(make_settings(tmp_path, sqlite_url, dua_file=dua), migrate_on_start=True)
    seen: list[tuple[str, str]] = []

    @app.middleware("http")
    async def record(request: Request, call_next: RequestResponseEndpoint) -> Response:
        seen.append((request.method, request.url.path))
        return await call_next(request)

    with live_server(app) as url:
        yield url, app.state.csawm.db, seen, hashlib.sha256(dua.read_bytes()).hexdigest()


def test_submit_stops_before_the_upload_until_accepted(
    server: tuple[str, Database, list[tuple[str, str]], str], tmp_path: Path
) -> None:
    url, db, seen, version = server
    token = f.member_token(db)
    write_archive(tmp_path / "m.tar")
    code, _, err = _run(url, token, "submit", str(tmp_path / "m.tar"), "--name", "m")
    assert code == 2 and err.count("\n") == 1, err
    assert f"data-use agreement (version {version[:12]}) is not accepted" in err
    assert "`csawm agreement --accept`" in err and f"{url}/agreement" in err and "nothing was uploaded" in err
    assert seen == [("GET", "/api/v1/status"), ("GET", "/api/v1/agreements")]

    code, out, err = _run(url, token, "agreement")
    assert code == 0, err
    assert (
        out == f"{TEXT.rstrip()}\n---\nversion {version}\nnot accepted yet: run `csawm agreement "
        f"--accept` or open {url}/agreement\n"
    )
    code, out, err = _run(url, token, "agreement", "--accept")
    assert code == 0 and out.startswith(f"version {version}\naccepted on "), err
    code, out, _ = _run(url, token, "agreement", "--json")
    assert code == 0 and '"accepted": true' in out

    code, out, err = _run(url, token, "submit", str(tmp_path / "m.tar"), "--name", "m")
    assert code == 0 and out.startswith("submission 1 queued"), err


def test_an_outdated_version_and_usage_errors(
    server: tuple[str, Database, list[tuple[str, str]], str],
) -> None:
    url, db, _, version = server
    token = f.member_token(db)
    code, _, err = _run(url, token, "agreement", "--accept", "--version", "c" * 64)
    assert code == 2 and err.count("\n") == 1 and "[HTTP 409]" in err and "is not the current" in err
    code, _, err = _run(url, token, "agreement", "--version", version)
    assert code == 2 and "--version goes with --accept" in err
    code, out, _ = _run(url, token, "agreement", "--accept", "--version", version)
    assert code == 0 and "accepted on" in out


def test_a_server_without_an_agreement(tmp_path: Path, sqlite_url: str) -> None:
    app = create_app(make_settings(tmp_path, sqlite_url), migrate_on_start=True)
    with live_server(app) as url:
        token = f.member_token(app.state.csawm.db)
        code, out, err = _run(url, token, "agreement", "--accept")
        assert code == 0 and out == "this server has no data-use agreement: nothing to accept\n", err
        write_archive(tmp_path / "m.tar")
        code, _, err = _run(url, token, "submit", str(tmp_path / "m.tar"), "--name", "m")
        assert code == 0, err


def test_a_refusal_after_the_precheck_is_exit_2_with_the_message(tmp_path: Path) -> None:
    """The agreement changed between the precheck and the upload (a restart with a new file): the
    server's 403 ``agreement_required`` is a refusal to fix by accepting (2), not a bad token (3)."""
    fake = FastAPI()

    @fake.get("/api/v1/agreements")
    def agreements() -> dict[str, object]:
        return {"required": False}

    @fake.get("/api/v1/quota")
    def quota() -> dict[str, object]:
        return {"allowed": True, "max_upload_bytes": 1024**2}

    @fake.post("/api/v1/submissions")
    def submissions() -> JSONResponse:
        error = {"code": "agreement_required", "message": "accept the data-use agreement first"}
        return JSONResponse({"error": error}, status_code=403)

    write_archive(tmp_path / "m.tar")
    with live_server(fake) as url:
        code, _, err = _run(url, "tok", "submit", str(tmp_path / "m.tar"), "--name", "m")
    assert code == 2 and err == "error: accept the data-use agreement first [HTTP 403]\n"
