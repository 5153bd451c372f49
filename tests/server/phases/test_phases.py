"""Phases: windows (before / inside / after, overlaps refused), the current phase, per-phase quotas,
backwards compatibility without phase rows, `phase_closed` before the body is read, the admin API
and CLI."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from phasetest import make_phase
from srvtest import factories as f
from srvtest.app import Api
from srvtest.archives import write_archive
from typer.testing import CliRunner

from server.cli.main import app
from server.clock import utcnow
from server.core.db import Database
from server.core.errors import Conflict, PhaseClosed
from server.models import AuditEntry, Phase, QuotaEntry, Role, Submission
from server.phases import service as phases

HOUR = timedelta(hours=1)


def _upload(api: Api, token: str, tmp_path: Path, seed: str) -> tuple[int, dict[str, object]]:
    path = tmp_path / f"{seed}.tar"
    write_archive(path, seed=seed)
    r = api.client.post(
        "/api/v1/submissions", params={"name": seed}, content=path.read_bytes(), headers=f.auth(token)
    )
    return r.status_code, r.json()


def test_the_current_phase_is_the_one_whose_window_holds_now(sqlite_api: Api) -> None:
    api = sqlite_api
    make_phase(api, "dev", -3 * HOUR, -HOUR)
    make_phase(api, "final", HOUR, 3 * HOUR)
    now = utcnow()
    with api.db.transaction(write=False) as session:
        assert phases.current(session, api.settings, now) is None  # between the two
        before_dev = phases.current(session, api.settings, now - 2 * HOUR)
        inside_final = phases.current(session, api.settings, now + 2 * HOUR)
        after_all = phases.current(session, api.settings, now + 4 * HOUR)
        assert before_dev is not None and before_dev.name == "dev"
        assert inside_final is not None and inside_final.name == "final"
        assert after_all is None
        # before the first created phase: the server's CSAWM_PHASE row, open since always until then
        assert phases.current(session, api.settings, now - 4 * HOUR).name == "private-1"  # type: ignore[union-attr]
        # the window is opens_at <= t < closes_at
        dev = session.query(Phase).filter_by(name="dev").one()
        assert phases.current(session, api.settings, dev.opens_at).name == "dev"  # type: ignore[union-attr]
        assert phases.current(session, api.settings, dev.closes_at) is None
        # pages and the board default to the latest that opened; before the first, the first
        assert phases.shown(session, api.settings, now).name == "dev"
        assert phases.shown(session, api.settings, now - 4 * HOUR).name == "private-1"
        with pytest.raises(PhaseClosed) as closed:
            phases.require_open(session, api.settings, now)
        assert closed.value.extra["next_opens_at"] is not None and "next phase opens" in closed.value.message


@pytest.mark.parametrize(
    ("opens", "closes"),
    [(-2, 0.5), (0.5, 1.5), (-5, None), (0.9, 5), (-1, 1)],
    ids=["overlaps-start", "inside", "open-ended-before", "overlaps-end", "same"],
)
def test_overlapping_windows_are_refused(api: Api, opens: float, closes: float | None) -> None:
    make_phase(api, "first", -HOUR, HOUR)
    with pytest.raises(Conflict, match="overlaps phase 'first'"):
        make_phase(api, "second", opens * HOUR, closes * HOUR if closes is not None else None)
    make_phase(api, "adjacent", HOUR, 2 * HOUR)  # touching windows do not overlap
    with api.db.transaction() as session, pytest.raises(Conflict, match="overlaps phase 'adjacent'"):
        phases.update(session, "first", {"closes_at": utcnow() + 1.5 * HOUR}, actor="test")


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"name": "Bad Name"}, "must be a slug"),
        ({"name": "<script>"}, "must be a slug"),
        ({"name": "p", "closes": -2}, "must be after opens_at"),
        ({"name": "p", "ladder_level": 1.5}, "ladder_level"),
        ({"name": "p", "ladder_step": 0}, "ladder_step"),
        ({"name": "p", "max_selected": 0}, "max_selected"),
        ({"name": "p", "visibility": "secret"}, "visibility"),
        ({"name": "p", "quota_total": -1}, "quota_total"),
        ({"name": "p", "visibility": "sealed", "ladder": True}, "Ladder is for live phases"),
    ],
)
def test_invalid_phases_are_refused_with_the_field_named(
    sqlite_api: Api, values: dict[str, object], message: str
) -> None:
    closes = values.pop("closes", 1)
    assert isinstance(closes, int)
    with pytest.raises(Exception, match=message):
        make_phase(sqlite_api, str(values.pop("name")), -HOUR, closes * HOUR, **values)


def test_a_fresh_server_has_its_csawm_phase_row_and_it_takes_every_submission(
    sqlite_api: Api, tmp_path: Path
) -> None:
    """Phases are always real (issue 20): a fresh database gets a row for ``CSAWM_PHASE``, open since
    always and open-ended, so nothing needs a "no phase" branch."""
    api = sqlite_api
    token = f.member_token(api.db)
    code, body = _upload(api, token, tmp_path, "m")
    assert code == 201 and body["phase"] == api.settings.phase == "private-1"
    assert body["scores_withheld"] is None and body["ladder"] is None and body["selected"] is None
    listed = api.client.get("/api/v1/phases").json()
    assert [(p["name"], p["visibility"], p["open"], p["current"], p["opens_at"], p["closes_at"])
            for p in listed] == [("private-1", "live", True, True, None, None)]  # fmt: skip
    board = api.client.get("/api/v1/leaderboard").json()
    assert board["phase"]["name"] == "private-1" and board["phase"]["stored"] is True
    assert api.client.get("/api/v1/leaderboard", params={"phase": "private-1"}).status_code == 200
    assert api.client.get("/api/v1/leaderboard", params={"phase": "nope"}).status_code == 404
    assert api.client.get("/api/v1/quota", headers=f.auth(token)).json()["phase"] == "private-1"


def test_submissions_go_to_the_open_phase_and_quotas_count_per_phase(api: Api, tmp_path: Path) -> None:
    token = f.member_token(api.db)  # 10 a day and a week; the phase limits the total
    make_phase(api, "dev", -HOUR, None, quota_total=2)
    quota = api.client.get("/api/v1/quota", headers=f.auth(token)).json()
    assert quota["phase"] == "dev" and quota["limits"]["total"] == 2 and quota["used"]["total"] == 0
    assert _upload(api, token, tmp_path, "a")[1]["phase"] == "dev"
    with api.db.transaction() as session:  # let the first finish so the active cap does not bind
        session.query(Submission).update({"status": "succeeded"})
    assert _upload(api, token, tmp_path, "b")[0] == 201
    with api.db.transaction() as session:
        session.query(Submission).update({"status": "succeeded"})
    code, body = _upload(api, token, tmp_path, "c")
    assert code == 429 and "2/2 submissions in phase 'dev'" in body["error"]["message"]  # type: ignore[index]
    # a new phase starts a new total, with its own per-day limit
    with api.db.transaction() as session:
        phases.update(session, "dev", {"closes_at": utcnow() - timedelta(seconds=2)}, actor="test")
    make_phase(api, "final", timedelta(seconds=-1), HOUR, quota_total=5, quota_per_day=3)
    quota = api.client.get("/api/v1/quota", headers=f.auth(token)).json()
    assert quota["phase"] == "final" and quota["limits"]["total"] == 5 and quota["used"]["total"] == 0
    assert quota["limits"]["per_day"] == 10  # the team's own override still wins over the phase's
    code, body = _upload(api, token, tmp_path, "c")
    assert code == 201 and body["phase"] == "final"
    with api.db.transaction(write=False) as session:
        charged = [e.phase for e in session.query(QuotaEntry).order_by(QuotaEntry.id)]
    assert charged == ["dev", "dev", "final"]


def test_the_phase_quota_applies_without_team_overrides(sqlite_api: Api) -> None:
    api = sqlite_api
    f.team(api.db, "beta")
    token = f.user(api.db, "b@x.org", team="beta")
    make_phase(api, "final", -HOUR, HOUR, quota_total=7, quota_per_day=1, quota_per_week=3)
    limits = api.client.get("/api/v1/quota", headers=f.auth(token)).json()["limits"]
    assert limits == {"per_day": 1, "per_week": 3, "total": 7, "active": api.settings.quota_active}


class _Body:
    """A request body that records whether the server read any of it."""

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.touched = False

    def __iter__(self) -> Iterator[bytes]:
        self.touched = True
        yield self.data


def test_between_phases_an_upload_is_refused_before_its_body_is_read(sqlite_api: Api, tmp_path: Path) -> None:
    api = sqlite_api
    token = f.member_token(api.db)
    make_phase(api, "dev", -3 * HOUR, -HOUR)
    make_phase(api, "final", HOUR, 2 * HOUR)
    path = tmp_path / "m.tar"
    write_archive(path, seed="m")
    body = _Body(path.read_bytes())
    r = api.client.post(
        "/api/v1/submissions",
        params={"name": "m"},
        content=body,
        headers={**f.auth(token), "Content-Type": "application/x-tar"},
    )
    assert r.status_code == 403, r.text
    error = r.json()["error"]
    assert error["code"] == "phase_closed" and error["next_opens_at"] is not None
    assert "nothing was uploaded or charged" in error["message"]
    assert not body.touched  # refused on the headers alone
    with api.db.transaction(write=False) as session:
        assert session.query(QuotaEntry).count() == 0 and session.query(Submission).count() == 0
    uploads = api.settings.data_dir / "uploads"
    assert not uploads.exists() or not any(uploads.iterdir())
    # the control: once a phase is open the same body is read and accepted
    with api.db.transaction() as session:
        phases.update(session, "final", {"opens_at": utcnow() - timedelta(seconds=1)}, actor="test")
    control = _Body(path.read_bytes())
    r = api.client.post(
        "/api/v1/submissions",
        params={"name": "m"},
        content=control,
        headers={**f.auth(token), "Content-Type": "application/x-tar"},
    )
    assert r.status_code == 201 and control.touched and r.json()["phase"] == "final"
    with api.db.transaction() as session:
        phases.update(session, "final", {"opens_at": utcnow() + HOUR}, actor="test")
    # the JSON (registry) path is refused the same way
    r = api.client.post("/api/v1/submissions", json={"name": "x", "image": "r/x@sha256:" + "0" * 64},
                        headers=f.auth(token))  # fmt: skip
    assert r.status_code == 403 and r.json()["error"]["code"] == "phase_closed"


def test_the_admin_api_creates_updates_and_lists_phases(sqlite_api: Api) -> None:
    api = sqlite_api
    maud = f.user(api.db, "m@x.org", role=Role.MAINTAINER)
    alice = f.member_token(api.db)
    opens = utcnow() - HOUR
    body = {"name": "final", "opens_at": opens.isoformat(), "visibility": "sealed", "max_selected": 3}
    assert api.client.post("/api/v1/admin/phases", json=body, headers=f.auth(alice)).status_code == 403
    r = api.client.post("/api/v1/admin/phases", json=body, headers=f.auth(maud))
    assert r.status_code == 201, r.text
    assert r.json()["visibility"] == "sealed" and r.json()["open"] and r.json()["closes_at"] is None
    again = api.client.post("/api/v1/admin/phases", json={**body, "name": "other"}, headers=f.auth(maud))
    assert again.status_code == 409 and "overlaps phase 'final'" in again.json()["error"]["message"]
    naive = api.client.post(
        "/api/v1/admin/phases", json={"name": "n", "opens_at": "2030-01-01T00:00:00"}, headers=f.auth(maud)
    )
    assert naive.status_code == 422  # a time without a zone is ambiguous
    closes = (utcnow() + HOUR).isoformat()
    r = api.client.patch("/api/v1/admin/phases/final", json={"closes_at": closes, "quota_total": 4},
                         headers=f.auth(maud))  # fmt: skip
    assert r.status_code == 200 and r.json()["quota_total"] == 4 and r.json()["closes_at"] is not None
    r = api.client.patch("/api/v1/admin/phases/final", json={"name": "x"}, headers=f.auth(maud))
    assert r.status_code == 422
    assert api.client.patch("/api/v1/admin/phases/nope", json={}, headers=f.auth(maud)).status_code == 404
    early = api.client.post("/api/v1/admin/phases/final/reveal", headers=f.auth(maud))
    assert early.status_code == 409 and "still open" in early.json()["error"]["message"]
    listed = api.client.get("/api/v1/phases").json()
    assert [(p["name"], p["current"], p["max_selected"]) for p in listed] == [
        ("private-1", False, 2),  # the server's CSAWM_PHASE row, closed where "final" opened
        ("final", True, 3),
    ]
    with api.db.transaction(write=False) as session:
        actions = [e.action for e in session.query(AuditEntry).order_by(AuditEntry.id)]
    assert actions.count("create_phase") == 1 and actions.count("update_phase") == 1


def test_the_admin_cli_creates_updates_and_reveals(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CSAWM_DATA_DIR", str(tmp_path / "state"))
    monkeypatch.delenv("CSAWM_DATABASE_URL", raising=False)

    def run(*args: str) -> tuple[int, str]:
        result = CliRunner().invoke(app, list(args))
        return result.exit_code, result.stderr

    assert run("db", "upgrade")[0] == 0
    code, err = run("admin", "create-phase", "final", "--opens-at", "2020-01-01T00:00Z", "--closes-at",
                    "none", "--visibility", "sealed", "--total", "5")  # fmt: skip
    assert code == 0 and "created phase final (sealed final round, not revealed, exact board" in err, err
    code, err = run(
        "admin", "create-phase", "dev", "--opens-at", "2019-01-01T00:00Z", "--closes-at", "2021-01-01T00:00Z"
    )
    assert code == 2 and "overlaps phase 'final'" in err
    code, err = run("admin", "create-phase", "x", "--opens-at", "2030-01-01T00:00")
    assert code == 2 and "no time zone" in err
    assert "still open" in run("admin", "reveal-phase", "final")[1]
    code, err = run("admin", "update-phase", "final", "--closes-at", "now", "--ladder-step", "0.02")
    assert code == 0 and "updated phase final (" in err and "closes " in err, err
    code, err = run("admin", "reveal-phase", "final")
    assert code == 0 and "revealed phase final" in err
    assert "already revealed" in run("admin", "reveal-phase", "final")[1]
    assert "not found" in run("admin", "update-phase", "nope", "--total", "1")[1]
    db = Database.connect(f"sqlite:///{tmp_path / 'state' / 'csawm.db'}")
    try:
        with db.transaction(write=False) as session:
            row = session.query(Phase).filter_by(name="final").one()
            assert row.quota_total == 5 and row.revealed_at is not None and row.closes_at is not None
    finally:
        db.dispose()
