"""One disclosure decision (issue 20): the API, the pages and the exports ask
`server.disclosure.disclose` at read time, so a reveal and a ``CSAWM_HIDDEN_RUNTIME`` change take
effect on all of them at once, with nothing stored to rewrite; and every run has a real phase."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

from phasetest import cli_status, make_phase, scored, web
from sqlalchemy import select
from srvtest import factories as f
from srvtest.app import Api, make_settings, running_api
from srvtest.archives import write_archive
from srvtest.fakes import FakeRunner

from server.clock import utcnow
from server.models import Phase, Role, Submission, Team
from server.phases import service as phases
from server.submissions import service as submissions
from server.worker.loop import Worker

HOUR = timedelta(hours=1)
TAU = 0.734219
#: The hidden stage's figures a model steers (issue 19); the preflight's are shown to everyone.
HIDDEN = {"wall_s": 4321.25, "peak_memory_bytes": 7 * 1024**3}
RUNTIME = {"phases": {"preflight": {"wall_s": 12.0}, "hidden": HIDDEN}}


def _surfaces(api: Api, sub_id: int, token: str) -> dict[str, str]:
    """What the researcher reads of the run: the API, the report page, the board's CSV export and
    `csawm status` (which prints what the API returns)."""
    return {
        "api": api.client.get(f"/api/v1/submissions/{sub_id}", headers=f.auth(token)).text,
        "page": web(api, token).get(f"/submissions/{sub_id}").text,
        "export": web(api, token).get("/leaderboard.csv?phase=final").text,
        "cli": cli_status(api, token, sub_id),
    }


def test_a_reveal_and_a_hidden_runtime_change_reach_api_page_and_export_at_once(
    tmp_path: Path, db_url: str
) -> None:
    with running_api(make_settings(tmp_path, db_url)) as api:  # CSAWM_HIDDEN_RUNTIME=maintainers
        alice = f.member_token(api.db, "alpha", "a@x.org")
        maud = f.user(api.db, "m@x.org", role=Role.MAINTAINER)
        make_phase(api, "final", -HOUR, HOUR, visibility="sealed", max_selected=1)
        with api.db.transaction(write=False) as session:
            team_id = session.scalar(select(Team.id).where(Team.name == "alpha"))
        assert team_id is not None
        sub_id = scored(api, team_id, "secret-model", "final", TAU, 37.9)
        with api.db.transaction() as session:
            sub = session.get(Submission, sub_id)
            assert sub is not None
            sub.runtime = RUNTIME
        selected = api.client.post(f"/api/v1/submissions/{sub_id}/select", headers=f.auth(alice))
        assert selected.status_code == 200, selected.text

        sealed = _surfaces(api, sub_id, alice)
        assert [name for name, text in sealed.items() if "7342" in text] == []
        assert "scores are withheld until the phase is revealed" in sealed["api"] + sealed["page"]
        with api.db.transaction() as session:
            phases.update(session, "final", {"closes_at": utcnow() - timedelta(seconds=1)}, actor="test")
        revealed = api.client.post("/api/v1/admin/phases/final/reveal", headers=f.auth(maud))
        assert revealed.status_code == 200, revealed.text
        shown = _surfaces(api, sub_id, alice)
        assert [name for name, text in shown.items() if "0.734" not in text] == []  # every surface at once
        assert '"hidden"' not in shown["api"] and '<th scope="row">hidden</th>' not in shown["page"]
        assert '<th scope="row">preflight</th>' in shown["page"]

    # The operator opts in (an explicit setting for a set that is not secret) and restarts: the same
    # stored run now shows its hidden-stage figures exactly, on the API and the page alike.
    with running_api(make_settings(tmp_path, db_url, hidden_runtime="submitters")) as api:
        opted = _surfaces(api, sub_id, alice)
        body = api.client.get(f"/api/v1/submissions/{sub_id}", headers=f.auth(alice)).json()
        assert body["hidden_figures"] == "exact" and body["runtime"]["phases"]["hidden"]["wall_s"] == 4321.25
        assert '<th scope="row">hidden</th>' in opted["page"]
        assert "0.734" in opted["export"] and "0.734" in opted["cli"]

    with running_api(make_settings(tmp_path, db_url, hidden_runtime="coarse")) as api:
        body = api.client.get(f"/api/v1/submissions/{sub_id}", headers=f.auth(alice)).json()
        assert body["hidden_figures"] == "coarse"
        assert body["runtime"]["phases"]["hidden"] == {"wall_s": 4380, "peak_memory_bytes": 7 * 1024**3}
        assert '<th scope="row">hidden</th>' in web(api, alice).get(f"/submissions/{sub_id}").text


def test_a_baseline_under_a_phase_name_with_no_row_gets_a_real_row_and_runs(
    tmp_path: Path, sqlite_url: str, synthetic_benchmark: Path
) -> None:
    """``CSAWM_PHASE`` renamed after the upgrade: seeding files the baseline under a real row made
    then, with an empty window, so it is never the phase submissions go to."""
    settings = make_settings(tmp_path, sqlite_url, benchmark_dir=synthetic_benchmark, bootstrap_resamples=100)
    with running_api(settings) as api:
        with api.db.transaction(write=False) as session:
            current = phases.current(session, api.settings)
        assert current is not None
        renamed = make_settings(tmp_path, sqlite_url, phase="season-2")
        digest = write_archive(tmp_path / "base.tar", seed="baseline")
        with api.db.transaction() as session:
            sub_id = submissions.create_baseline(
                session, renamed, name="ResNet-34 one-hot", image_digest=digest,
                archive_path=tmp_path / "base.tar", actor="cli:test",
            ).id  # fmt: skip
        assert Worker(api.settings, api.db, FakeRunner()).run_once()
        with api.db.transaction(write=False) as session:
            row = session.scalar(select(Phase).where(Phase.name == "season-2"))
            assert row is not None and row.opens_at == row.closes_at  # never open
            assert phases.current(session, api.settings) == current  # submissions still go there
            sub = session.get(Submission, sub_id)
            assert sub is not None and sub.phase == "season-2" and sub.kendall_tau_b is not None
        rows = api.client.get("/api/v1/leaderboard").json()["rows"]
        assert [r["submission_id"] for r in rows if r["kind"] == "baseline"] == [sub_id]
        maud = f.user(api.db, "m@x.org", role=Role.MAINTAINER)
        detail = api.client.get(f"/api/v1/submissions/{sub_id}", headers=f.auth(maud))
        assert detail.status_code == 200 and detail.json()["phase"] == "season-2"
