"""Re-scoring from the web page (issue 23 item 7): a background job that calls what
``csawm admin rescore`` calls, shows its progress N of M on a page that reloads itself while it
runs, runs one at a time, and leaves the same reports and audit entries as the command."""

from __future__ import annotations

import html
import os
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from srvtest import factories as f
from srvtest.app import Api
from srvtest.web import csrf_token, web_login
from test_rescore import _metrics, _scored_runs, wapi  # noqa: F401  (the fixture)
from typer.testing import CliRunner

from server.cli.main import app as cli
from server.clock import utcnow
from server.models import AuditEntry, Role, SubmissionReport
from server.web.admin_rescore import RescoreJobs, RescoreProgress


def _start(api: Api, client: TestClient, **form: str) -> str:
    page = client.get("/admin/rescore")
    r = client.post("/admin/rescore", data={"csrf_token": csrf_token(page.text), **form})
    return f"{r.status_code} {html.unescape(r.text)}"


def _jobs(api: Api) -> RescoreJobs:
    return api.client.app.state.csawm.parts.get(RescoreJobs)  # type: ignore[attr-defined,no-any-return]


def _wait(jobs: RescoreJobs, timeout: float) -> bool:
    """Wait for the running job's thread; True when none is running."""
    thread = jobs._thread
    if thread is not None:
        thread.join(timeout)
    return thread is None or not thread.is_alive()


def _reports(api: Api, ids: list[int]) -> dict[int, list[str]]:
    with api.db.transaction(write=False) as session:
        rows = session.query(SubmissionReport).filter(SubmissionReport.submission_id.in_(ids))
        found: dict[int, list[str]] = {}
        for row in rows.order_by(SubmissionReport.id):
            found.setdefault(row.submission_id, []).append(row.reason)
        return found


def test_the_web_job_rescores_as_the_cli_does_and_shows_its_progress(
    wapi: Api,  # noqa: F811
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    ids = _scored_runs(wapi, tmp_path, 2)
    f.user(wapi.db, "m@x.org", role=Role.MAINTAINER)
    client = TestClient(wapi.client.app)
    web_login(client, f.token(wapi.db, "m@x.org"))

    said = _start(wapi, client, scope="ids", ids=f"{ids[0]}, 999999")
    assert said.startswith("200") and "Re-scoring job 1 started." in said
    assert _wait(_jobs(wapi), 120)
    page = html.unescape(client.get("/admin/rescore").text)
    assert "2 of 2 runs handled, 1 re-scored, 1 skipped" in page and 'http-equiv="refresh"' not in page
    assert "Skipped 999999: not a succeeded run with stored hidden predictions" in page.replace(
        '<a href="/submissions/999999">999999</a>', "999999"
    )

    said = _start(wapi, client, scope="all")
    assert "Re-scoring job 2 started." in said and _wait(_jobs(wapi), 120)
    assert "2 of 2 runs handled, 2 re-scored, 0 skipped" in html.unescape(client.get("/admin/rescore").text)
    web = _metrics(wapi, ids)
    assert _reports(wapi, ids) == {ids[0]: ["scored", "rescored", "rescored"], ids[1]: ["scored", "rescored"]}

    for key in list(os.environ):
        if key.startswith("CSAWM_"):
            monkeypatch.delenv(key)
    s = wapi.settings
    env = {
        "CSAWM_DATA_DIR": str(s.data_dir), "CSAWM_DATABASE_URL": s.effective_database_url,
        "CSAWM_BENCHMARK_DIR": str(s.benchmark_dir), "CSAWM_BOOTSTRAP_RESAMPLES": "100",
    }  # fmt: skip
    result = CliRunner().invoke(cli, ["admin", "rescore", "--all"], env=env)
    assert result.exit_code == 0, result.output
    assert _metrics(wapi, ids) == web  # the command's re-score equals the page's
    with wapi.db.transaction(write=False) as session:
        entries = session.query(AuditEntry).filter_by(action="rescore").order_by(AuditEntry.id).all()
        actors = [(e.actor, e.target_id) for e in entries]
        starts = [
            e.detail
            for e in session.query(AuditEntry).filter_by(action="start_rescore").order_by(AuditEntry.id)
        ]
    web_actor, cli_actor = actors[0][0], actors[-1][0]
    assert web_actor == "m@x.org" and cli_actor != web_actor
    assert [t for a, t in actors if a == web_actor] == [str(ids[0]), *map(str, ids)]
    assert sorted(t for a, t in actors if a == cli_actor) == sorted(map(str, ids))
    assert starts == [{"submissions": [ids[0], 999999]}, {"submissions": "all"}]


def test_one_job_at_a_time_and_the_page_follows_a_running_job(wapi: Api) -> None:  # noqa: F811
    f.user(wapi.db, "m@x.org", role=Role.MAINTAINER)
    client = TestClient(wapi.client.app)
    web_login(client, f.token(wapi.db, "m@x.org"))
    running = RescoreProgress(number=7, actor="other@x.org", ids=None, started_at=utcnow(), total=3, done=[1])
    _jobs(wapi).current = running  # a job another maintainer started, one run done
    page = html.unescape(client.get("/admin/rescore").text)
    assert 'http-equiv="refresh"' in page and "running, 1 of 3 runs handled" in page
    said = _start(wapi, client, scope="all")
    assert said.startswith("409") and "re-scoring job 7 is still running (1 of 3 runs)" in said
    with wapi.db.transaction(write=False) as session:
        assert session.query(AuditEntry).filter_by(action="start_rescore").count() == 0
    running.done.append(2)  # the thread moves on: a reload shows it
    assert "running, 2 of 3 runs handled" in html.unescape(client.get("/admin/rescore").text)
