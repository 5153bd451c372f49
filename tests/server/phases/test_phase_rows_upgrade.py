"""Migration ``0010_phase_rows`` (issue 20 item 3): an upgrade from a database made by the schema
before it (``0009_user_active``) gives every phase name the stored submissions use a row, and a
server without phases a row for ``CSAWM_PHASE``; the boards and quotas read the same runs, and
``create-phase`` still works after. On SQLite and PostgreSQL (the `db_url` fixture)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from itertools import combinations
from pathlib import Path

import numpy as np
import pytest
import sqlalchemy as sa
from phasetest import RESAMPLES, record_score
from srvtest import factories as f
from srvtest.app import Api, make_settings, running_api

from server.clock import iso, utcnow
from server.core import migrate
from server.core.db import Database
from server.models import LedgerKind, Phase, QuotaEntry, ReviewState, Role, RunStatus, Submission, Team
from server.phases import service as phases

DAY = timedelta(days=1)
BEFORE = "0009_user_active"


@pytest.fixture
def old_db(db_url: str) -> Iterator[Database]:
    """An empty database at the revision before phase rows."""
    if db_url.startswith("sqlite"):
        Path(db_url.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
    db = Database.connect(db_url.replace("postgresql://", "postgresql+psycopg://"))
    migrate.upgrade(db.engine, BEFORE)
    try:
        yield db
    finally:
        db.dispose()


def _run(
    db: Database, team_id: int, name: str, phase: str, tau: float, made: datetime, *, baseline: bool = False
) -> int:
    """A scored, approved run made at `made`, with its quota charge (none for a baseline)."""
    reps = tau + np.random.default_rng(0).normal(0, 0.02, RESAMPLES)
    with db.transaction() as session:
        sub = Submission(
            team_id=team_id, name=name, phase=phase, image_digest=f"sha256:{name}",
            status=RunStatus.SUCCEEDED,
            tau_replicates=reps.astype(np.float64).tobytes(), review_state=ReviewState.APPROVED,
            reproducibility={"scorer_version": "2", "test_set_manifest_sha256": "a" * 64,
                             "bootstrap": {"resamples": RESAMPLES, "seed": 0}},
            baseline=baseline, created_at=made, finished_at=made,
        )  # fmt: skip
        session.add(sub)
        session.flush()
        record_score(session, sub, tau, 40.0, reps, reason="scored")
        if not baseline:
            session.add(QuotaEntry(team_id=team_id, submission_id=sub.id, kind=LedgerKind.CHARGE, phase=phase,
                                   reason=f"submission {sub.id} ({name})", created_at=made))  # fmt: skip
        return sub.id


def _board(api: Api, phase: str | None = None) -> tuple[str, list[str]]:
    r = api.client.get("/api/v1/leaderboard", params={"phase": phase} if phase else None)
    assert r.status_code == 200, r.text
    body = r.json()
    return body["phase"]["name"], [row["name"] for row in body["rows"] if row["kind"] != "expert"]


def _windows(api: Api) -> dict[str, tuple[str | None, str | None, bool]]:
    return {
        p["name"]: (p["opens_at"], p["closes_at"], p["current"])
        for p in api.client.get("/api/v1/phases").json()
    }


def _no_overlap(api: Api) -> None:
    """Every pair of stored windows is disjoint (the service's invariant, kept by the migration)."""
    with api.db.transaction(write=False) as session:
        views = [phases.PhaseView.of(row) for row in phases.rows(session)]
    lo, hi = datetime.min.replace(tzinfo=UTC), datetime.max.replace(tzinfo=UTC)
    for a, b in combinations(views, 2):
        a_opens, a_closes = a.opens_at or lo, a.closes_at or hi
        b_opens, b_closes = b.opens_at or lo, b.closes_at or hi
        assert not (a_opens < b_closes and b_opens < a_closes), (a, b)


def test_an_upgrade_gives_every_used_phase_name_a_row_and_keeps_boards_and_quotas(
    old_db: Database, tmp_path: Path, db_url: str
) -> None:
    now = utcnow()
    alpha_token = f.member_token(old_db, "alpha")
    with old_db.transaction(write=False) as session:
        alpha = session.scalar(sa.select(Team.id).where(Team.name == "alpha"))
    assert alpha is not None
    beta = f.team(old_db, "beta")
    refs = f.team(old_db, "baselines")
    _run(old_db, alpha, "a-winter", "winter", 0.80, now - 9 * DAY)
    _run(old_db, alpha, "a-winter-2", "winter", 0.60, now - 8 * DAY)
    _run(old_db, alpha, "a-spring", "private-1", 0.70, now - 3 * DAY)
    _run(old_db, beta, "b-spring", "private-1", 0.75, now - 2 * DAY)
    _run(old_db, refs, "resnet", "private-1", 0.65, now - 10 * DAY, baseline=True)
    old_db.dispose()

    with running_api(make_settings(tmp_path, db_url)) as api:  # the start migrates with CSAWM_PHASE
        windows = _windows(api)
        # the old name: closed, from its first run to just after its last; CSAWM_PHASE open from there
        assert set(windows) == {"winter", "private-1"}
        with api.db.transaction(write=False) as session:
            first, last = session.execute(
                sa.select(sa.func.min(Submission.created_at), sa.func.max(Submission.created_at))
                .where(Submission.phase == "winter")
            ).one()  # fmt: skip
        assert windows["winter"] == (iso(first), iso(last + timedelta(seconds=1)), False)
        assert windows["private-1"] == (iso(last + timedelta(seconds=1)), None, True)
        _no_overlap(api)

        # the default board is CSAWM_PHASE's: its runs and the baselines; the old name's runs, best
        # per team, on that phase's board
        assert _board(api) == ("private-1", ["b-spring", "a-spring", "resnet"])
        assert _board(api, "winter") == ("winter", ["a-winter", "resnet"])
        quota = api.client.get("/api/v1/quota", headers=f.auth(alpha_token)).json()
        assert quota["phase"] == "private-1" and quota["used"]["total"] == 1  # a-spring; winter's 2 apart
        assert quota["limits"]["total"] == api.settings.quota_total

        # create-phase after the upgrade: the open-ended CSAWM_PHASE row ends where the new one opens
        maud = f.user(api.db, "m@x.org", role=Role.MAINTAINER)
        opens = utcnow() + DAY
        body = {"name": "final", "opens_at": opens.isoformat()}
        created = api.client.post("/api/v1/admin/phases", json=body, headers=f.auth(maud))
        assert created.status_code == 201, created.text
        windows = _windows(api)
        assert windows["private-1"][1:] == (iso(opens), True) and windows["final"][:2] == (iso(opens), None)
        _no_overlap(api)
        # an overlap with a phase that has its own start is still refused, naming it
        clash = api.client.post("/api/v1/admin/phases", headers=f.auth(maud),
                                json={"name": "clash", "opens_at": (first + timedelta(hours=1)).isoformat(),
                                      "closes_at": (first + 2 * DAY).isoformat()})  # fmt: skip
        assert clash.status_code == 409 and "overlaps phase 'winter'" in clash.text
        with api.db.transaction(write=False) as session:
            assert session.scalar(sa.select(sa.func.count()).select_from(Phase)) == 3


def test_a_fresh_database_gets_its_csawm_phase_row_and_create_phase_works(
    tmp_path: Path, db_url: str
) -> None:
    settings = make_settings(tmp_path, db_url, phase="season-1")
    with running_api(settings) as api:
        assert _windows(api) == {"season-1": (None, None, True)}  # open since always, open-ended
        token = f.member_token(api.db)
        assert api.client.get("/api/v1/quota", headers=f.auth(token)).json()["phase"] == "season-1"
        with api.db.transaction() as session:
            phases.create(
                session, {"name": "dev", "opens_at": utcnow() - DAY, "test_set": "public"}, actor="t"
            )
        windows = _windows(api)
        assert windows["season-1"][1:] == (windows["dev"][0], False) and windows["dev"][1:] == (None, True)
        assert api.client.get("/api/v1/quota", headers=f.auth(token)).json()["phase"] == "dev"


def test_names_on_a_server_with_phases_get_windows_that_overlap_none(
    old_db: Database, tmp_path: Path, db_url: str
) -> None:
    """Baselines filed under ``CSAWM_PHASE`` inside a stored phase's window, and an old name after it:
    rows that overlap nothing, no ``CSAWM_PHASE`` row opened, the stored phases unchanged."""
    now = utcnow()
    final_opens, final_closes = now - 30 * DAY, now - 10 * DAY
    table = sa.table("phases", *(sa.column(c) for c in (
        "name", "test_set", "opens_at", "closes_at", "visibility", "ladder", "ladder_level", "ladder_step",
        "max_selected", "disclosure", "created_at", "updated_at")))  # fmt: skip
    with old_db.engine.begin() as conn:
        conn.execute(table.insert(), [{
            "name": "final", "test_set": "private", "opens_at": final_opens, "closes_at": final_closes,
            "visibility": "live", "ladder": False, "ladder_level": 0.05, "ladder_step": 0.01,
            "max_selected": 2, "disclosure": "summary", "created_at": now, "updated_at": now}])  # fmt: skip
    alpha, refs = f.team(old_db, "alpha"), f.team(old_db, "baselines")
    _run(old_db, alpha, "a-final", "final", 0.7, now - 20 * DAY)
    _run(old_db, refs, "resnet", "private-1", 0.65, now - 20 * DAY, baseline=True)
    _run(old_db, alpha, "a-late", "late", 0.6, now - 5 * DAY)
    old_db.dispose()

    with running_api(make_settings(tmp_path, db_url)) as api:
        windows = _windows(api)
        assert windows["final"] == (iso(final_opens), iso(final_closes), False)
        assert windows["private-1"] == (iso(final_opens), iso(final_opens), False)  # empty: never open
        made = now - 5 * DAY
        assert windows["late"][:2] == (iso(made), iso(made + timedelta(seconds=1)))
        _no_overlap(api)
        assert _board(api, "final") == ("final", ["a-final", "resnet"])
        assert _board(api, "late") == ("late", ["resnet", "a-late"])
        with api.db.transaction() as session:  # the stored phase's window can still change
            phases.update(session, "final", {"closes_at": now - 9 * DAY}, actor="t")
