"""`csawm submit|status|logs|leaderboard|quota` against a live server with a scripted runner."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from srvtest import factories as f
from srvtest.app import make_settings
from srvtest.archives import write_archive
from srvtest.fakes import FakeRunner
from srvtest.live import free_port, live_server
from typer.testing import CliRunner

from server.app import create_app
from server.cli.main import app as cli
from server.core.db import Database
from server.models import Role


@pytest.fixture
def server(tmp_path: Path, sqlite_url: str, synthetic_benchmark: Path) -> Iterator[tuple[str, Database]]:
    settings = make_settings(
        tmp_path, sqlite_url, benchmark_dir=synthetic_benchmark, bootstrap_resamples=200, poll_interval=0.2
    )
    app = create_app(settings, runner=FakeRunner(), embedded_worker=True, migrate_on_start=True)
    with live_server(app) as url:
        db = app.state.csawm.db
        yield url, db


def _run(url: str, token: str | None, *args: str) -> tuple[int, str, str]:
    env = {"CSAWM_SERVER_URL": url}
    if token:
        env["CSAWM_TOKEN"] = token
    result = CliRunner().invoke(cli, list(args), env=env)
    return result.exit_code, result.stdout, result.stderr


def test_submit_wait_status_logs_leaderboard_quota(server: tuple[str, Database], tmp_path: Path) -> None:
    url, db = server
    f.team(db, "alpha")
    token = f.user(db, "a@x.org", team="alpha")
    write_archive(tmp_path / "m.tar", seed="cli")
    card = tmp_path / "card.json"
    card.write_text('{"architecture": "resnet34"}')
    code, out, err = _run(
        url,
        token,
        "submit",
        str(tmp_path / "m.tar"),
        "--name",
        "cli model",
        "--method-card",
        str(card),
        "--wait",
    )
    assert code == 0, err
    assert "succeeded" in out and "kendall_tau_b" in out
    sub_id = out.split()[1]
    code, out, _ = _run(url, token, "status", sub_id)
    assert code == 0 and "'cli model' (alpha): succeeded" in out and "preflight" in out
    code, out, _ = _run(url, token, "status", sub_id, "--json")
    assert code == 0 and '"review_state": "pending"' in out
    code, out, _ = _run(url, token, "logs", sub_id)
    assert code == 0 and "predicted hidden" in out
    code, out, _ = _run(url, token, "quota")
    assert code == 0 and "last 24 h    1/2" in out
    code, out, _ = _run(url, None, "leaderboard")
    assert code == 0 and "Expert_1" in out and "cli model" not in out  # experts shown, model not yet approved

    code, out, err = _run(url, token, "submit", str(tmp_path / "m.tar"), "--name", "again")
    assert code == 2 and err.count("\n") == 1
    assert "already submitted" in err and f"csawm status {sub_id}" in err


def test_errors_are_one_line_with_exit_codes(server: tuple[str, Database], tmp_path: Path) -> None:
    url, db = server
    f.team(db, "alpha")
    token = f.user(db, "a@x.org", team="alpha")
    code, _, err = _run(url, "csawm_wrong", "quota")
    assert code == 3 and err == "error: invalid token [HTTP 401]\n"
    code, _, err = _run(f"http://127.0.0.1:{free_port()}", token, "quota")
    assert code == 3 and err.startswith("error: cannot reach") and err.count("\n") == 1
    code, _, err = _run(url, token, "status", "999")
    assert code == 2 and err == "error: submission 999 not found [HTTP 404]\n"
    code, _, err = _run(url, token, "submit", str(tmp_path / "missing.tar"), "--name", "x")
    assert code == 2 and "no such archive file" in err
    (tmp_path / "junk.tar").write_bytes(b"junk" * 100)
    code, _, err = _run(url, token, "submit", str(tmp_path / "junk.tar"), "--name", "x")
    assert code == 2 and "archive refused" in err and "[HTTP 422]" in err
    maint = f.user(db, "m@x.org", role=Role.MAINTAINER)
    code, _, err = _run(url, maint, "quota")
    assert code == 2 and "no team" in err
