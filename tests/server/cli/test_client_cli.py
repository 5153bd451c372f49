"""`csawm submit|status|logs|leaderboard|quota` against a live server with a scripted runner."""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI, Request, Response
from fastapi.responses import HTMLResponse, JSONResponse
from sqlalchemy import select
from srvtest import factories as f
from srvtest.app import make_settings
from srvtest.archives import write_archive
from srvtest.fakes import FakeRunner
from srvtest.live import free_port, live_server
from starlette.middleware.base import RequestResponseEndpoint
from typer.testing import CliRunner

from reference_models.rules import ModelKind
from runner.spec import ErrorCode
from server.app import create_app
from server.cli.main import app as cli
from server.cli.seed import BuildRecorder
from server.core.db import Database
from server.disclosure.run_view import NEXT_STEP
from server.models import Role, Submission, Team


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
    assert "succeeded" in out and "tau-b" in out and "AMAE" in out
    sub_id = out.split()[1]
    assert f"report: {url}/submissions/{sub_id}" in out
    code, out, _ = _run(url, token, "status", sub_id)
    assert code == 0 and "'cli model' (alpha): succeeded" in out and "preflight" in out
    code, out, _ = _run(url, token, "status", sub_id, "--json")
    assert code == 0 and '"review_state": "pending"' in out
    code, out, _ = _run(url, token, "logs", sub_id)
    # the submitter reads the preflight log; the hidden run's output stays with the maintainers (issue 11)
    assert code == 0 and "predicted preflight" in out and "predicted hidden" not in out
    code, out, _ = _run(url, token, "quota")
    assert code == 0 and "last 24 h    1/2" in out
    code, out, _ = _run(url, None, "leaderboard")
    assert code == 0 and "Expert_1" in out and "cli model" not in out  # experts shown, model not yet approved
    maud = f.user(db, "m@x.org", role=Role.MAINTAINER)
    approved = httpx.post(
        f"{url}/api/v1/admin/submissions/{sub_id}/review", json={"action": "approve"}, headers=f.auth(maud)
    )
    assert approved.status_code == 200, approved.text
    code, out, _ = _run(url, None, "leaderboard")
    cells = {
        row[5]: row for line in out.splitlines() if len(row := [c.strip() for c in line.split("│")[1:-1]]) > 5
    }
    # the model: rank 1, tier 1, rank interval 1-1, leader; the experts: unranked reference bands
    assert cells["cli model"][:3] == ["1", "1", "1-1"] and cells["cli model"][-1] == "leader"
    bands = [row for name, row in cells.items() if name.startswith("Expert_")]
    assert len(bands) == 5 and all(row[0] == "" and row[-1] == "reference band" for row in bands)

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


def _ci(text: str, label: str) -> tuple[float, float, float]:
    """(value, low, high) of a ``LABEL value [low, high]`` line."""
    match = re.search(rf"{label}\s+(-?[\d.]+) \[(-?[\d.]+), (-?[\d.]+)\]", text)
    assert match, f"no {label} with a CI in {text!r}"
    value, low, high = (float(g) for g in match.groups())
    return value, low, high


def test_submit_wait_ends_with_tau_b_and_amae_with_cis(server: tuple[str, Database], tmp_path: Path) -> None:
    url, db = server
    f.team(db, "alpha")
    token = f.user(db, "a@x.org", team="alpha")
    write_archive(tmp_path / "m.tar", seed="ci")
    code, out, err = _run(url, token, "submit", str(tmp_path / "m.tar"), "--name", "ci", "--wait")
    assert code == 0, err
    sub_id = int(out.split()[1])
    for label in ("tau-b", "AMAE"):
        value, low, high = _ci(out, label)
        assert low <= value <= high
    # The same numbers the API reports.
    code, raw, _ = _run(url, token, "status", str(sub_id), "--json")
    masking = json.loads(raw)["metrics"]["masking"]
    assert _ci(out, "tau-b")[0] == round(masking["kendall_tau_b"]["value"], 4)
    assert _ci(out, "AMAE")[0] == round(masking["amae"]["value"], 4)
    # Without a terminal the stages are plain stderr lines ending with the final one.
    stages = [line.split()[0].rstrip(":") for line in err.splitlines() if line.startswith("  ")]
    assert stages[-1] == "succeeded", err


def test_submit_wait_shows_a_live_status_on_a_terminal(server: tuple[str, Database], tmp_path: Path) -> None:
    url, db = server
    f.team(db, "alpha")
    token = f.user(db, "a@x.org", team="alpha")
    write_archive(tmp_path / "m.tar", seed="tty")
    result = CliRunner().invoke(
        cli,
        ["submit", str(tmp_path / "m.tar"), "--name", "tty", "--wait"],
        env={"CSAWM_SERVER_URL": url, "CSAWM_TOKEN": token, "TTY_COMPATIBLE": "1", "COLUMNS": "200"},
    )
    assert result.exit_code == 0, result.stderr
    sub_id = int(result.stdout.split()[1])
    # rich's spinner line: "submission N: <stage> · <elapsed>", redrawn in place on stderr.
    stages = re.findall(rf"submission {sub_id}: (\w+)[^·\n]* · \d+s", result.stderr)
    assert stages and stages[-1] == "succeeded", result.stderr
    assert "\x1b[" in result.stderr  # drawn with terminal control codes, not as plain lines


def test_submit_without_wait_prints_the_report_url_and_json_stays_pure(
    server: tuple[str, Database], tmp_path: Path
) -> None:
    url, db = server
    f.team(db, "alpha")
    token = f.user(db, "a@x.org", team="alpha")
    digest = write_archive(tmp_path / "m.tar", seed="url")
    code, out, err = _run(url, token, "submit", str(tmp_path / "m.tar"), "--name", "u", "--json")
    assert code == 0, err
    sub = json.loads(out)  # stdout is the server's JSON and nothing else
    assert sub["image_digest"] == digest
    assert err.strip().endswith(f"report: {url}/submissions/{sub['id']}")
    # One active run per team: let the first finish before the second upload.
    for _ in range(300):
        if json.loads(_run(url, token, "status", str(sub["id"]), "--json")[1])["status"] == "succeeded":
            break
        time.sleep(0.1)
    write_archive(tmp_path / "n.tar", seed="url2")
    code, out, err = _run(url, token, "submit", str(tmp_path / "n.tar"), "--name", "n")
    assert code == 0, err
    first, second = out.splitlines()
    assert first.startswith("submission ") and second == f"report: {url}/submissions/{first.split()[1]}"


def test_every_read_command_has_json(server: tuple[str, Database], tmp_path: Path) -> None:
    url, db = server
    f.team(db, "alpha")
    token = f.user(db, "a@x.org", team="alpha")
    write_archive(tmp_path / "m.tar", seed="json")
    code, out, err = _run(url, token, "submit", str(tmp_path / "m.tar"), "--name", "j", "--wait", "--json")
    assert code == 0, err
    sub = json.loads(out)
    assert sub["status"] == "succeeded"
    sub_id = str(sub["id"])
    code, out, _ = _run(url, token, "logs", sub_id, "--json")
    assert code == 0 and json.loads(out) == {
        "id": sub["id"],
        "status": "succeeded",
        "log_tail": "predicted preflight\n",
        "hidden_log_tail": None,
    }
    assert json.loads(_run(url, token, "status", sub_id, "--json")[1])["id"] == sub["id"]
    assert "rows" in json.loads(_run(url, None, "leaderboard", "--json")[1])
    assert json.loads(_run(url, token, "quota", "--json")[1])["team"] == "alpha"


def test_a_failed_run_exits_1(tmp_path: Path, sqlite_url: str, synthetic_benchmark: Path) -> None:
    digest = write_archive(tmp_path / "m.tar", seed="crash")
    settings = make_settings(
        tmp_path, sqlite_url, benchmark_dir=synthetic_benchmark, bootstrap_resamples=200, poll_interval=0.2
    )
    runner = FakeRunner(behaviours={digest: "crash"})
    app = create_app(settings, runner=runner, embedded_worker=True, migrate_on_start=True)
    with live_server(app) as url:
        db = app.state.csawm.db
        f.team(db, "alpha")
        token = f.user(db, "a@x.org", team="alpha")
        code, out, err = _run(url, token, "submit", str(tmp_path / "m.tar"), "--name", "c", "--wait")
        assert code == 1, err
        assert "failed" in out and "nonzero_exit" in out
        sub_id = out.split()[1]
        # Issue 10 item 3b: the log tail and the next step, without a second command.
        tail = out[out.index("--- log tail") :]
        assert f"(last 2 of 2 lines; all: csawm logs {sub_id})" in tail
        assert "ValueError: boom" in tail
        assert "next: the model exited with an error: read the log tail, fix it, and reproduce with " in tail
        assert f"`csawm check {tmp_path / 'm.tar'}`" in tail
        code, _, _ = _run(url, token, "status", sub_id)
        assert code == 1
        code, out, _ = _run(url, token, "logs", sub_id)
        assert code == 0 and "ValueError: boom" in out


def _misbehaving_server() -> FastAPI:
    """Answers the client's routes the way a broken deployment or a wrong URL would."""
    app = FastAPI()

    @app.get("/api/v1/quota")
    def quota() -> JSONResponse:
        return JSONResponse({"error": {"message": "database is down"}}, status_code=503)

    @app.get("/api/v1/leaderboard")
    def leaderboard() -> HTMLResponse:
        return HTMLResponse("<html>a different site</html>")

    @app.get("/api/v1/submissions/{sub_id}")
    def status(sub_id: int) -> JSONResponse:
        return JSONResponse({"error": {"message": "not your team"}}, status_code=403)

    @app.get("/api/v1/submissions/{sub_id}/logs")
    def logs(sub_id: int) -> JSONResponse:
        return JSONResponse({"detail": "bad"}, status_code=422)

    return app


def test_exit_codes_for_server_faults_foreign_answers_and_usage(tmp_path: Path) -> None:
    with live_server(_misbehaving_server()) as url:
        code, _, err = _run(url, "tok", "quota")
        assert code == 3 and err == "error: database is down [HTTP 503]\n"
        code, _, err = _run(url, None, "leaderboard")
        assert code == 3 and "without JSON" in err and err.count("\n") == 1
        code, _, err = _run(url, "tok", "status", "4")
        assert code == 3 and err == "error: not your team [HTTP 403]\n"
        code, _, err = _run(url, "tok", "logs", "4", "--json")
        assert code == 2 and "[HTTP 422]" in err
    code, _, err = _run(url, None, "quota")
    assert code == 3 and "no API token" in err
    code, _, err = _run("ftp://example.invalid", "tok", "quota")
    assert code == 2 and "invalid server URL" in err
    code, _, err = _run(url, "tok", "status", "not-a-number")
    assert code == 2
    (tmp_path / "m.tar").write_bytes(b"x")
    code, _, err = _run(url, "tok", "submit", str(tmp_path / "m.tar"))  # --name is required
    assert code == 2 and "--name" in err
    card = tmp_path / "card.json"
    card.write_text("{not json")
    code, _, err = _run(
        url, "tok", "submit", str(tmp_path / "m.tar"), "--name", "x", "--method-card", str(card)
    )
    assert code == 2 and "--method-card" in err


def test_every_error_code_has_a_next_step() -> None:
    assert set(NEXT_STEP) == {code.value for code in ErrorCode}


def test_a_preflight_failure_says_it_cost_nothing(
    tmp_path: Path, sqlite_url: str, synthetic_benchmark: Path
) -> None:
    digest = write_archive(tmp_path / "m.tar", seed="preflight")
    settings = make_settings(
        tmp_path, sqlite_url, benchmark_dir=synthetic_benchmark, bootstrap_resamples=200, poll_interval=0.2
    )
    runner = FakeRunner(behaviours={digest: "preflight_crash"})
    app = create_app(settings, runner=runner, embedded_worker=True, migrate_on_start=True)
    with live_server(app) as url:
        db = app.state.csawm.db
        f.team(db, "alpha")
        token = f.user(db, "a@x.org", team="alpha")
        code, out, err = _run(url, token, "submit", str(tmp_path / "m.tar"), "--name", "p", "--wait")
    assert code == 1, err
    assert "in preflight" in out
    assert "quota: refunded: preflight failure costs no quota" in out
    assert "the quota slot is free again" in out
    assert "log: the log tail is shown in full" in out


@pytest.mark.parametrize("hint", ["none", "exception_type"])
def test_a_hidden_failure_names_the_charge_the_withheld_log_and_the_robust_check(
    tmp_path: Path, sqlite_url: str, synthetic_benchmark: Path, hint: str
) -> None:
    """Issue 23 item 1: the preflight passed, the hidden run crashed. `--wait` and `status` say the
    run was charged and why, that the hidden log is withheld (and who reads it), and point at
    a check at the hidden set's full scale, not at a plain check that passes; the maintainer's
    `logs` prints the hidden tail; the hint, where allowed, is a built-in exception name, no more."""
    digest = write_archive(tmp_path / "m.tar", seed="hidden-crash")
    settings = make_settings(
        tmp_path, sqlite_url, benchmark_dir=synthetic_benchmark, bootstrap_resamples=200, poll_interval=0.2,
        hidden_hint=hint,
    )  # fmt: skip
    app = create_app(
        settings, runner=FakeRunner(behaviours={digest: "hidden_crash"}), embedded_worker=True,
        migrate_on_start=True,
    )  # fmt: skip
    with live_server(app) as url:
        db = app.state.csawm.db
        token = f.member_token(db, runs=2)
        staff = f.user(db, "m@x.org", role=Role.MAINTAINER)
        code, out, err = _run(url, token, "submit", str(tmp_path / "m.tar"), "--name", "h", "--wait")
        assert code == 1, err
        sub_id = out.split()[1]
        assert "nonzero_exit in hidden" in out
        charge = "quota: charged: a failure on the hidden images always uses its quota slot"
        assert charge in out
        assert "log: the hidden run's log is withheld: only the maintainers can read it" in out
        assert f"`csawm check {tmp_path / 'm.tar'} --robust`" in out
        assert "--- log tail" not in out and "predicted preflight" not in out  # not the preflight's log
        assert "image 474" not in out  # the hidden log's text never reaches the team
        assert ("hint: exception type MemoryError" in out) is (hint == "exception_type")
        code, status_out, _ = _run(url, token, "status", sub_id)
        assert code == 1 and charge in status_out
        body = json.loads(_run(url, token, "status", sub_id, "--json")[1])
        assert body["outcome"]["charged"] is True
        assert body["outcome"]["hint"] == ("MemoryError" if hint == "exception_type" else None)
        assert json.loads(_run(url, token, "quota", "--json")[1])["used"]["per_day"] == 1
        code, logs_out, _ = _run(url, token, "logs", sub_id)
        assert code == 0 and "image 474" not in logs_out
        code, logs_out, _ = _run(url, staff, "logs", sub_id)
        assert code == 0 and "MemoryError: image 474 of 475" in logs_out and "predicted preflight" in logs_out
        staff_view = json.loads(_run(url, staff, "status", sub_id, "--json")[1])["outcome"]
        assert staff_view["log"] == f"the hidden run's log tail: `csawm logs {sub_id}`"


def _recording(app: FastAPI) -> list[tuple[str, str]]:
    """Every (method, path) the app receives, in order."""
    seen: list[tuple[str, str]] = []

    @app.middleware("http")
    async def record(request: Request, call_next: RequestResponseEndpoint) -> Response:
        seen.append((request.method, request.url.path))
        return await call_next(request)

    return seen


def test_method_card_and_quota_are_checked_before_the_upload(
    tmp_path: Path, sqlite_url: str, synthetic_benchmark: Path
) -> None:
    """Issue 10 item 3b: a typo in the card or a full quota is reported before any byte is sent."""
    settings = make_settings(
        tmp_path,
        sqlite_url,
        benchmark_dir=synthetic_benchmark,
        bootstrap_resamples=200,
        poll_interval=0.2,
        quota_per_day=1,
    )
    app = create_app(settings, runner=FakeRunner(), embedded_worker=True, migrate_on_start=True)
    seen = _recording(app)
    with live_server(app) as url:
        db = app.state.csawm.db
        f.team(db, "alpha")
        token = f.user(db, "a@x.org", team="alpha")
        write_archive(tmp_path / "m.tar", seed="card")
        card = tmp_path / "card.json"
        card.write_text('{"external_data": "none", "architecure": "resnet"}')
        archive = str(tmp_path / "m.tar")
        code, _, err = _run(url, token, "submit", archive, "--name", "x", "--method-card", str(card))
        assert code == 2 and err.count("\n") == 1
        assert f"--method-card {card}: external_data: must be true or false" in err
        assert "architecure: is not a field this server accepts" in err and "nothing was uploaded" in err
        assert seen == []  # not even the quota was asked

        card.write_text('{"external_data": false}')
        code, _, err = _run(
            url, token, "submit", str(tmp_path / "m.tar"), "--name", "x", "--method-card", str(card), "--wait"
        )
        assert code == 0, err
        write_archive(tmp_path / "n.tar", seed="card2")
        seen.clear()
        code, _, err = _run(url, token, "submit", str(tmp_path / "n.tar"), "--name", "y")
        assert code == 2 and err.count("\n") == 1
        assert err.startswith("error: quota exceeded: 1/1 submissions in the last 24 h; next slot at ")
        assert "nothing was uploaded" in err
        assert seen == [("GET", "/api/v1/status"), ("GET", "/api/v1/agreements"), ("GET", "/api/v1/quota")]


@pytest.mark.docker
def test_an_image_by_name_is_checked_before_docker_save(
    tmp_path: Path, sqlite_url: str, synthetic_benchmark: Path
) -> None:
    """Issue 10 item 3b: a missing image or a full quota stops `submit IMAGE` before `docker save`
    (which runs only while the upload request is sent)."""
    settings = make_settings(tmp_path, sqlite_url, benchmark_dir=synthetic_benchmark, quota_per_day=0)
    app = create_app(settings, runner=FakeRunner(), embedded_worker=False, migrate_on_start=True)
    seen = _recording(app)
    with live_server(app) as url:
        db = app.state.csawm.db
        f.team(db, "alpha")
        token = f.user(db, "a@x.org", team="alpha")
        missing = f"csawm-client-test-{tmp_path.name}/none:1"
        code, _, err = _run(url, token, "submit", missing, "--name", "x")
        assert code == 2 and err.count("\n") == 1
        assert f"no local image {missing!r}" in err and seen == []
        code, _, err = _run(url, token, "submit", "csawm-base/python:bookworm", "--name", "x")
        assert code == 2 and "quota exceeded: 0/0 submissions in the last 24 h" in err
        assert seen == [("GET", "/api/v1/status"), ("GET", "/api/v1/agreements"), ("GET", "/api/v1/quota")]


@pytest.mark.docker
def test_an_image_too_large_or_already_submitted_is_refused_before_docker_save(
    tmp_path: Path, sqlite_url: str, synthetic_benchmark: Path
) -> None:
    """Issue 23 item 6: `submit IMAGE` compares the local image's size with the server's cap and asks
    whether the team already submitted it in this phase, before `docker save`: in seconds, the
    size, the cap and a remedy, or the earlier submission and its phase; nothing is uploaded."""
    import docker

    base = "csawm-base/python:bookworm"
    image = docker.from_env().images.get(base)
    size = int(image.attrs["Size"])
    for cap in (size - 1, size * 2):
        folder = tmp_path / str(cap)
        db_url = f"sqlite:///{folder / 'state' / 'csawm.db'}"
        settings = make_settings(folder, db_url, benchmark_dir=synthetic_benchmark, max_upload_bytes=cap)
        app = create_app(settings, runner=FakeRunner(), embedded_worker=False, migrate_on_start=True)
        seen = _recording(app)
        with live_server(app) as url:
            db = app.state.csawm.db
            token = f.member_token(db)
            if cap > size:  # the team's earlier run of this very image, in this phase
                with db.transaction() as session:
                    team_id = session.scalar(select(Team.id).where(Team.name == "alpha"))
                    run = Submission(team_id=team_id, name="dev", phase="private-1", image_digest=image.id)
                    session.add(run)
                    session.flush()
                    earlier = run.id
            started = time.monotonic()
            code, _, err = _run(url, token, "submit", base, "--name", "x")
            assert time.monotonic() - started < 30
            assert code == 2 and err.count("\n") == 1, err
            assert "nothing was uploaded" in err and all(method == "GET" for method, _ in seen)
            if cap < size:
                assert f"is {size / 1e6:.0f} MB ({size} bytes)" in err and f"({cap} bytes)" in err
                assert "make the image smaller" in err
            else:
                assert f"already submitted image {image.id} as submission {earlier} in phase private-1" in err
                assert ("GET", "/api/v1/submissions/duplicate") in seen


def test_cancel_a_queued_run_says_it_was_refunded(
    tmp_path: Path, sqlite_url: str, synthetic_benchmark: Path
) -> None:
    """Issue 23 item 3: `csawm cancel ID` stops a queued run (no worker here, so it stays queued),
    says it was refunded, frees the quota slot, and a second cancel is refused with exit 2."""
    settings = make_settings(tmp_path, sqlite_url, benchmark_dir=synthetic_benchmark)
    app = create_app(settings, runner=FakeRunner(), embedded_worker=False, migrate_on_start=True)
    with live_server(app) as url:
        token = f.member_token(app.state.csawm.db)
        write_archive(tmp_path / "m.tar", seed="cancel")
        code, out, err = _run(url, token, "submit", str(tmp_path / "m.tar"), "--name", "c", "--json")
        assert code == 0, err
        sub_id = str(json.loads(out)["id"])
        code, out, err = _run(url, token, "cancel", sub_id)
        assert code == 0, err
        assert out.startswith(f"submission {sub_id} cancelled; quota: refunded: cancelled before the hidden")
        assert json.loads(_run(url, token, "quota", "--json")[1])["used"]["per_day"] == 0
        code, out, _ = _run(url, token, "status", sub_id)
        assert code == 1 and "review: none (the run ended without a result)" in out
        assert json.loads(_run(url, token, "status", sub_id, "--json")[1])["review_state"] is None
        code, _, err = _run(url, token, "cancel", sub_id)
        assert code == 2 and "already ended" in err


def test_leaderboard_prints_the_baselines_on_their_way(server: tuple[str, Database]) -> None:
    url, db = server
    recorder = BuildRecorder(db)
    recorder.start(ModelKind.MULTI_HOT, 200, training=True)
    recorder.line(ModelKind.MULTI_HOT, "step 125/200 loss 0.9")
    code, out, _ = _run(url, None, "leaderboard")
    assert code == 0, out
    assert "on its way: ResNet-34 multi-hot [baseline] training (step 125/200)" in out


def test_submit_wait_in_a_sealed_phase_shows_no_score_and_select_picks_the_run(
    server: tuple[str, Database], tmp_path: Path
) -> None:
    from datetime import timedelta

    from server.clock import utcnow
    from server.phases import service as phases

    url, db = server
    f.team(db, "alpha")
    token = f.user(db, "a@x.org", team="alpha")
    maud = f.user(db, "m@x.org", role=Role.MAINTAINER)
    with db.transaction() as session:
        phases.create(
            session,
            {
                "name": "final",
                "opens_at": utcnow() - timedelta(hours=1),
                "visibility": "sealed",
                "max_selected": 1,
            },
            actor="test",
        )
    write_archive(tmp_path / "m.tar", seed="sealed")
    code, out, err = _run(url, token, "submit", str(tmp_path / "m.tar"), "--name", "s", "--wait")
    assert code == 0, err
    sub_id = int(out.split()[1])
    assert "tau-b" not in out and "AMAE" not in out and "scores withheld: sealed phase" in out
    assert "selected for the final ranking: no" in out
    code, raw, _ = _run(url, maud, "status", str(sub_id), "--json")
    exact = json.loads(raw)["kendall_tau_b"]
    assert code == 0 and exact is not None  # the maintainer sees it
    assert f"{exact:.4f}" not in out
    code, out, err = _run(url, token, "select", str(sub_id))
    assert code == 0 and f"selected submission {sub_id} in phase final; selected now: {sub_id}" in out, err
    code, out, _ = _run(url, token, "select", str(sub_id), "--undo")
    assert code == 0 and "unselected" in out and "selected now: none" in out
    code, out, _ = _run(url, None, "leaderboard", "--phase", "final")
    assert code == 0 and out.startswith("phase final (sealed)") and f"{exact:.4f}" not in out
    code, _, err = _run(url, None, "leaderboard", "--phase", "nope")
    assert code == 2 and "phase 'nope' not found" in err


def test_names_stored_with_invisible_characters_print_escaped_issue_19(
    server: tuple[str, Database], tmp_path: Path
) -> None:
    """A run and team named before issue 19 with a bidi override, a zero-width space and Rich markup
    (written straight to the database): `status` and `leaderboard` print visible escapes and the
    brackets as they are; ``--json`` keeps the stored text."""
    from server.clock import utcnow
    from server.models import ReviewState, Submission, Team

    url, db = server
    f.team(db, "alpha")
    token = f.user(db, "a@x.org", team="alpha")
    write_archive(tmp_path / "m.tar", seed="invisible")
    code, out, err = _run(url, token, "submit", str(tmp_path / "m.tar"), "--name", "plain", "--wait")
    assert code == 0, err
    sub_id = int(out.split()[1])
    with db.transaction() as session:
        sub = session.get(Submission, sub_id)
        assert sub is not None
        sub.name, sub.review_state, sub.updated_at = "[red]a\u202e\u200bb", ReviewState.APPROVED, utcnow()
        team = session.get(Team, sub.team_id)
        assert team is not None
        team.name = "alpha\u2066"
    code, out, _ = _run(url, token, "status", str(sub_id))
    assert code == 0 and f"submission {sub_id} '[red]a\\u202e\\u200bb' (alpha\\u2066)" in out
    code, out, _ = _run(url, None, "leaderboard")
    assert code == 0 and "[red]a\\u202e\\u200bb" in out and "alpha\\u2066" in out
    for raw in (out, _run(url, token, "status", str(sub_id))[1]):
        assert not any(char in raw for char in "\u202e\u200b\u2066")
    rows = json.loads(_run(url, None, "leaderboard", "--json")[1])["rows"]
    assert ("alpha\u2066", "[red]a\u202e\u200bb") in {(row["team"], row["name"]) for row in rows}
