"""The pages of issue 22: the pause banner on every page, /status as the API gives it, a queued
run's place on its report page, the compute budget on the team page."""

from __future__ import annotations

from srvtest import factories as f
from srvtest.app import Api
from srvtest.web import web_login

from server.models import Phase, Role, Submission, Team


def test_pause_banner_on_every_page_and_the_status_page(sqlite_api: Api) -> None:
    api = sqlite_api
    admin = f.user(api.db, "m@x.org", role=Role.MAINTAINER)
    for path in ("/", "/login", "/guide/submitting", "/status"):
        assert "Maintenance:" not in api.client.get(path).text, path
    r = api.client.post(
        "/api/v1/admin/pause",
        json={"intake": True, "runs": True, "message": "<b>disk</b> swap"},
        headers=f.auth(admin),
    )
    assert r.status_code == 200
    for path in ("/", "/login", "/guide/submitting", "/status"):
        page = api.client.get(path).text
        assert "Maintenance:" in page and "submissions are paused" in page and "runs are paused" in page, path
        assert "&lt;b&gt;disk&lt;/b&gt; swap" in page and "<b>disk</b>" not in page, path  # escaped
    anonymous = api.client.get("/status").text
    assert "Queued runs" in anonymous and "Workers alive" in anonymous
    assert "Running runs" not in anonymous and "Oldest heartbeat" not in anonymous


def test_report_page_shows_the_queue_place_and_team_page_the_compute(sqlite_api: Api) -> None:
    api = sqlite_api
    token = f.member_token(api.db)
    with api.db.transaction() as session:
        team_id = session.query(Team).filter_by(name="alpha").one().id
        subs = [
            Submission(team_id=team_id, name=f"m{i}", phase=api.settings.phase, image_digest=f"sha256:{i}")
            for i in range(3)
        ]
        subs.append(
            Submission(
                team_id=team_id, name="done", phase=api.settings.phase, image_digest="sha256:done",
                runtime={"phases": {"hidden": {"container_s": 61.0}}},
            )
        )  # fmt: skip
        session.add_all(subs)
        session.flush()
        third = subs[2].id
        session.query(Phase).filter_by(name=api.settings.phase).one().compute_budget_s = 600
    web_login(api.client, token)
    page = api.client.get(f"/submissions/{third}").text
    assert "position 3 (2 ahead)" in page
    team = api.client.get("/teams/alpha").text
    assert "Compute: 2 of 10 minutes used" in team  # 61 s, rounded up
