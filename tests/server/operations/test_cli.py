"""The command line of issue 22: `csawm admin pause|resume`, `csawm submit` exiting 75 (try later)
with the maintainers' message while intake is paused, the queue place in `csawm status` and the
compute budget in `csawm quota`."""

from __future__ import annotations

from pathlib import Path

import pytest
from fastapi import Request, Response
from srvtest import factories as f
from srvtest.app import make_settings
from srvtest.archives import write_archive
from srvtest.live import live_server
from starlette.middleware.base import RequestResponseEndpoint
from typer.testing import CliRunner

from server.app import create_app
from server.cli.client import EXIT_TRY_LATER
from server.cli.main import app as cli
from server.models import AuditEntry, Phase, Submission, Team


def _run(env: dict[str, str], *args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(cli, list(args), env=env)
    return result.exit_code, result.stdout, result.stderr


def test_pause_from_the_command_line_and_submit_exits_75(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    state = tmp_path / "state"
    monkeypatch.setenv("CSAWM_DATA_DIR", str(state))
    monkeypatch.delenv("CSAWM_DATABASE_URL", raising=False)
    settings = make_settings(tmp_path, f"sqlite:///{state / 'csawm.db'}")
    app = create_app(settings, migrate_on_start=True)
    seen: list[tuple[str, str]] = []

    @app.middleware("http")
    async def record(request: Request, call_next: RequestResponseEndpoint) -> Response:
        seen.append((request.method, request.url.path))
        return await call_next(request)

    with live_server(app) as url:
        db = app.state.csawm.db
        token = f.member_token(db)
        code, _, err = _run({}, "admin", "pause", "--message", "new disks, back at 14:00", "--runs")
        assert code == 0 and "paused intake and runs" in err, err
        env = {"CSAWM_SERVER_URL": url, "CSAWM_TOKEN": token}
        write_archive(tmp_path / "m.tar", seed="cli-pause")
        code, _, err = _run(env, "submit", str(tmp_path / "m.tar"), "--name", "m")
        assert code == EXIT_TRY_LATER == 75, err
        assert "paused for maintenance: new disks, back at 14:00" in err and "nothing was uploaded" in err
        assert ("POST", "/api/v1/submissions") not in seen
        code, _, err = _run({}, "admin", "resume")
        assert code == 0, err
        code, out, err = _run(env, "submit", str(tmp_path / "m.tar"), "--name", "m")
        assert code == 0, err
        with db.transaction() as session:
            sub_id = session.query(Submission).one().id
            actions = [a.action for a in session.query(AuditEntry).order_by(AuditEntry.id)]
            team_id = session.query(Team).filter_by(name="alpha").one().id
            runtime = {"phases": {"hidden": {"container_s": 150.0}}}
            session.add(
                Submission(
                    team_id=team_id, name="used", phase=settings.phase, image_digest="u", runtime=runtime
                )
            )
            session.query(Phase).filter_by(name=settings.phase).one().compute_budget_s = 3600
        assert actions[-2:] == ["pause", "resume"]
        code, out, _ = _run(env, "status", str(sub_id))
        assert code == 0 and "queue: position 1 (0 ahead)" in out, out
        code, out, _ = _run(env, "quota")
        assert code == 0 and "compute      3/60 min" in out, out
