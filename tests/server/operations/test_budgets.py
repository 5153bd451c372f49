"""Compute budgets (issue 22 item 4): the figure counted, refused before the body at or over
budget, the binding check under the team's lock, and one 80 % alert under concurrent run ends."""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from srvtest import factories as f
from srvtest.app import Api, make_settings, running_api
from srvtest.archives import write_archive
from srvtest.attacks import declare_and_wait, upload_while
from srvtest.live import live_server

from server.app import create_app
from server.core.db import Database
from server.models import (
    ComputeAlert,
    Delivery,
    LedgerKind,
    Phase,
    QuotaEntry,
    Role,
    RunStatus,
    Submission,
    Team,
)
from server.operations import budgets
from server.quota import service as quota
from server.runs.transitions import transition


def _runtime(preflight_s: float, hidden_s: float, gpus: int = 0) -> dict[str, Any]:
    def stage(seconds: float) -> dict[str, Any]:
        return {"wall_s": seconds + 5, "container_s": seconds, "gpu_s": seconds * gpus if gpus else None}

    return {
        "phases": {"preflight": stage(preflight_s), "hidden": stage(hidden_s), "scoring": {"wall_s": 999.0}}
    }


def _run(
    db: Database, team_id: int, phase: str, name: str, runtime: dict[str, Any] | None, *,
    status: RunStatus = RunStatus.SUCCEEDED, refunded: bool = False, baseline: bool = False,
) -> int:  # fmt: skip
    """A run with recorded figures, charged (and refunded when asked) as the intake and worker do."""
    with db.transaction() as session:
        sub = Submission(
            team_id=team_id, name=name, phase=phase, image_digest=f"sha256:{name}", status=status,
            runtime=runtime, baseline=baseline,
        )  # fmt: skip
        session.add(sub)
        session.flush()
        team = session.get(Team, team_id)
        assert team is not None
        entry = QuotaEntry(
            team_id=team_id, submission_id=sub.id, kind=LedgerKind.CHARGE, phase=phase, reason="t"
        )
        session.add(entry)
        session.flush()
        if refunded:
            quota.refund(session, sub.id, "infra_error")
        return sub.id


def _set_budget(db: Database, phase: str, budget_s: int | None) -> None:
    with db.transaction() as session:
        row = session.query(Phase).filter_by(name=phase).one()
        row.compute_budget_s = budget_s


def _team_id(db: Database, name: str) -> int:
    with db.transaction(write=False) as session:
        return session.query(Team).filter_by(name=name).one().id


def test_the_figure_counts_preflight_and_hidden_gpu_seconds_and_leaves_refunds_out(api: Api) -> None:
    phase = api.settings.phase
    token = f.member_token(api.db)
    team_id = _team_id(api.db, "alpha")
    assert api.client.get("/api/v1/quota", headers=f.auth(token)).json()["compute"] == {
        "used_s": 0,
        "budget_s": None,
    }
    _run(api.db, team_id, phase, "cpu", _runtime(30, 100))  # 130 container-seconds
    _run(api.db, team_id, phase, "gpu", _runtime(10, 100, gpus=2))  # 220 GPU-seconds
    _run(api.db, team_id, phase, "refunded", _runtime(500, 5000), status=RunStatus.FAILED, refunded=True)
    _run(api.db, team_id, "other-phase", "elsewhere", _runtime(500, 5000))
    _run(api.db, team_id, phase, "queued", None, status=RunStatus.QUEUED)
    with api.db.transaction(write=False) as session:
        assert budgets.used_seconds(session, team_id, phase) == 350.0
    _set_budget(api.db, phase, 3600)
    # the team sees its use rounded up to whole minutes: 350 s -> 6 min
    assert api.client.get("/api/v1/quota", headers=f.auth(token)).json()["compute"] == {
        "used_s": 360,
        "budget_s": 3600,
    }
    phases = api.client.get("/api/v1/phases", headers=f.auth(token)).json()
    assert [p["compute_budget_s"] for p in phases if p["name"] == phase] == [3600]


def test_at_budget_a_submission_is_refused_429_before_its_body(tmp_path: Path, db_url: str) -> None:
    settings = make_settings(tmp_path, db_url)
    with live_server(create_app(settings, migrate_on_start=True)) as url:
        db = Database.connect(settings.effective_database_url)
        try:
            token = f.member_token(db)
            team_id = _team_id(db, "alpha")
            _set_budget(db, settings.phase, 600)
            _run(db, team_id, settings.phase, "big", _runtime(100, 500))  # exactly 600 s: at the budget
            answer, took = declare_and_wait(url, token, 400 * 1024**2)
            assert int(answer.split(b" ", 2)[1]) == 429, answer
            assert took < 3.0
            error = json.loads(answer.partition(b"\r\n\r\n")[2])["error"]
            assert error["code"] == "compute_budget"
            assert (error["used_s"], error["budget_s"]) == (600, 600)
            with db.transaction(write=False) as session:
                assert session.query(QuotaEntry).filter_by(kind=LedgerKind.CHARGE).count() == 1  # "big" only
        finally:
            db.dispose()


def test_a_run_ending_while_an_upload_streams_makes_the_binding_check_refuse_it(
    tmp_path: Path, db_url: str
) -> None:
    """Admitted under budget, the upload is refused at creation once a run's end used the budget up
    (checked again under the team's lock): nothing charged, no archive kept."""
    settings = make_settings(tmp_path, db_url)
    write_archive(tmp_path / "m.tar", seed="race")
    data = (tmp_path / "m.tar").read_bytes()
    with live_server(create_app(settings, migrate_on_start=True)) as url:
        db = Database.connect(settings.effective_database_url)
        try:
            token = f.member_token(db)
            team_id = _team_id(db, "alpha")
            _set_budget(db, settings.phase, 600)
            answer = upload_while(
                url, token, data, lambda: _run(db, team_id, settings.phase, "ended", _runtime(100, 600))
            )
            assert int(answer.split(b" ", 2)[1]) == 429, answer
            assert json.loads(answer.partition(b"\r\n\r\n")[2])["error"]["code"] == "compute_budget"
            with db.transaction(write=False) as session:
                assert session.query(Submission).filter_by(name="m").count() == 0
                assert (
                    session.query(QuotaEntry).filter_by(kind=LedgerKind.CHARGE).count() == 1
                )  # "ended" only
            assert list((settings.data_dir / "archives").glob("*")) == []
        finally:
            db.dispose()


def test_the_80_percent_alert_is_sent_once_when_runs_end_together(tmp_path: Path, db_url: str) -> None:
    settings = make_settings(
        tmp_path, db_url, smtp_host="127.0.0.1", smtp_sender="board@x.org"
    )  # email on: notices are written
    with running_api(settings) as api:
        db = api.db
        team_id = f.team(db, "alpha")
        f.user(db, "m1@x.org", role=Role.MAINTAINER)
        f.user(db, "m2@x.org", role=Role.ADMIN)
        f.user(db, "r@x.org", team="alpha")
        _set_budget(db, settings.phase, 1000)
        # 7 runs of 100 s recorded: 70 %, no alert; then 3 more end at once: 80 % is crossed
        for i in range(7):
            _run(db, team_id, settings.phase, f"done{i}", _runtime(0, 100))
        ending = [
            _run(db, team_id, settings.phase, f"end{i}", _runtime(0, 100), status=RunStatus.SCORING)
            for i in range(6)
        ]

        def end(sub_id: int) -> None:
            with db.transaction() as session:
                transition(session, sub_id, RunStatus.SUCCEEDED, note="scored")

        with ThreadPoolExecutor(max_workers=6) as pool:
            list(pool.map(end, ending))
        with db.transaction(write=False) as session:
            alerts = session.query(ComputeAlert).all()
            assert [(a.team_id, a.phase, a.percent, a.budget_s) for a in alerts] == [
                (team_id, settings.phase, 80, 1000)
            ]
            notices = session.query(Delivery).filter_by(event=budgets.ALERT_EVENT).all()
            assert sorted(n.target for n in notices) == ["m1@x.org", "m2@x.org"]  # maintainers, not the team
            assert notices[0].payload["submission_id"] is None and "80 %" in notices[0].payload["status"]
