"""The quota ledger: rolling windows, next slot, refunds, 429s, and check-and-charge under concurrency."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from pathlib import Path

import httpx
import pytest
from srvtest import factories as f
from srvtest.app import Api, make_settings
from srvtest.archives import write_archive
from srvtest.live import live_server

from server.accounts import service as accounts
from server.app import create_app
from server.clock import utcnow
from server.core.errors import QuotaExceeded
from server.models import LedgerKind, QuotaEntry, RunStatus, Submission, Team
from server.quota import service as quota


def _charge_at(
    api: Api, team_id: int, at_hours_ago: float, *, status: RunStatus = RunStatus.SUCCEEDED
) -> int:
    """A finished submission charged `at_hours_ago` hours ago; returns the charge row id."""
    with api.db.transaction() as session:
        sub = Submission(
            team_id=team_id,
            name="old",
            phase=api.settings.phase,
            image_digest=f"sha256:{at_hours_ago}",
            status=status,
        )
        session.add(sub)
        session.flush()
        entry = QuotaEntry(
            team_id=team_id,
            submission_id=sub.id,
            kind=LedgerKind.CHARGE,
            phase=api.settings.phase,
            reason="test",
            created_at=utcnow() - timedelta(hours=at_hours_ago),
        )
        session.add(entry)
        session.flush()
        return entry.id


def _status(api: Api, team_id: int) -> quota.QuotaStatus:
    with api.db.transaction(write=False) as session:
        team = session.get(Team, team_id)
        assert team is not None
        return quota.compute_status(session, team, api.settings)


def test_rolling_windows_and_next_slot(api: Api) -> None:
    team_id = f.team(api.db, "alpha")
    assert _status(api, team_id).allowed
    _charge_at(api, team_id, 30)  # outside the day window, inside the week
    _charge_at(api, team_id, 20)
    assert _status(api, team_id).allowed
    _charge_at(api, team_id, 2)
    status = _status(api, team_id)
    assert (status.used_day, status.used_week, status.used_total) == (2, 3, 3)
    assert status.blocked_by == ("per_day",)
    # the oldest charge in the day window (20 h ago) leaves it 4 h from now
    assert status.next_slot_at is not None
    expected = utcnow() + timedelta(hours=4)
    assert abs((status.next_slot_at - expected).total_seconds()) < 60
    _charge_at(api, team_id, 100)
    _charge_at(api, team_id, 120)
    status = _status(api, team_id)
    assert status.blocked_by == ("per_day", "per_week")
    # week: 5 live charges (120, 100, 30, 20, 2 h ago); the oldest leaves at 168 - 120 = 48 h from now
    assert status.next_slot_at is not None
    assert abs((status.next_slot_at - (utcnow() + timedelta(hours=48))).total_seconds()) < 60


def test_refund_frees_the_slot_and_is_idempotent(api: Api) -> None:
    team_id = f.team(api.db, "alpha")
    _charge_at(api, team_id, 1)
    _charge_at(api, team_id, 2)
    assert _status(api, team_id).blocked_by == ("per_day",)
    with api.db.transaction() as session:
        sub_id = session.query(QuotaEntry).first().submission_id  # type: ignore[union-attr]
        assert quota.refund(session, sub_id, "infra_error") is not None
        assert quota.refund(session, sub_id, "again") is None
    status = _status(api, team_id)
    assert status.allowed and status.used_day == 1


def test_total_and_active_limits(api: Api) -> None:
    team_id = f.team(api.db, "alpha")
    with api.db.transaction() as session:
        accounts.set_quota(session, "alpha", {"total": 1, "per_day": 10}, actor="test")
    _charge_at(api, team_id, 200)
    status = _status(api, team_id)
    assert status.blocked_by == ("total",) and status.next_slot_at is None
    with pytest.raises(QuotaExceeded) as info:
        quota.ensure_allowed(status)
    assert "Retry-After" not in info.value.headers
    with api.db.transaction() as session:
        accounts.set_quota(session, "alpha", {"total": None}, actor="test")
    _charge_at(api, team_id, 300, status=RunStatus.RUNNING)
    status = _status(api, team_id)
    assert status.blocked_by == ("active",)
    with pytest.raises(QuotaExceeded) as info:
        quota.ensure_allowed(status)
    assert info.value.headers["Retry-After"] == str(quota.ACTIVE_RETRY_AFTER_S)


def test_get_quota_and_429_with_retry_after(api: Api, tmp_path: Path) -> None:
    team_id = f.team(api.db, "alpha")
    token = f.user(api.db, "a@x.org", team="alpha")
    _charge_at(api, team_id, 23)
    _charge_at(api, team_id, 1)
    body = api.client.get("/api/v1/quota", headers=f.auth(token)).json()
    assert body["limits"] == {"per_day": 2, "per_week": 5, "total": 20, "active": 1}
    assert body["used"] == {"per_day": 2, "per_week": 2, "total": 2, "active": 0}
    assert body["allowed"] is False and body["blocked_by"] == ["per_day"]
    write_archive(tmp_path / "m.tar")
    response = api.client.post(
        "/api/v1/submissions",
        params={"name": "m"},
        content=(tmp_path / "m.tar").read_bytes(),
        headers=f.auth(token),
    )
    assert response.status_code == 429
    retry_after = int(response.headers["Retry-After"])
    assert 3500 <= retry_after <= 3601  # the charge 23 h ago leaves the window in about one hour
    assert response.json()["error"]["next_slot_at"] == body["next_slot_at"]
    ledger = api.client.get("/api/v1/quota/ledger", headers=f.auth(token)).json()
    assert [e["kind"] for e in ledger] == ["charge", "charge"]


@pytest.mark.timeout(300)
def test_twenty_concurrent_submissions_with_three_left(tmp_path: Path, db_url: str) -> None:
    """Exactly 3 of 20 simultaneous uploads are accepted and charged (docs/design.md)."""
    # All 20 uploads in flight at once: the per-team upload slots (issue 12) must not be what refuses.
    settings = make_settings(tmp_path, db_url, max_concurrent_uploads=20)
    bodies = []
    for i in range(20):
        write_archive(tmp_path / f"m{i}.tar", seed=f"c{i}")
        bodies.append((tmp_path / f"m{i}.tar").read_bytes())
    with live_server(create_app(settings, migrate_on_start=True)) as url:
        from server.core.db import Database

        db = Database.connect(settings.effective_database_url)
        try:
            f.team(db, "alpha")
            with db.transaction() as session:
                accounts.set_quota(session, "alpha", {"per_day": 3, "active": 20}, actor="test")
            token = f.user(db, "a@x.org", team="alpha")

            def submit(i: int) -> int:
                with httpx.Client(base_url=url, timeout=120) as client:
                    r = client.post(
                        "/api/v1/submissions",
                        params={"name": f"m{i}"},
                        content=bodies[i],
                        headers=f.auth(token),
                    )
                    return r.status_code

            with ThreadPoolExecutor(max_workers=20) as pool:
                codes = list(pool.map(submit, range(20)))
            assert sorted(codes) == [201] * 3 + [429] * 17
            with db.transaction(write=False) as session:
                assert session.query(Submission).count() == 3
                assert session.query(QuotaEntry).filter_by(kind=LedgerKind.CHARGE).count() == 3
        finally:
            db.dispose()
