"""Signed webhooks from the durable outbox (issue 15 item 6), against a real HTTP receiver on 127.0.0.1.

The dispatcher's clock is a test clock: retries become due by moving it, never by sleeping.
"""

from __future__ import annotations

import json
import threading
from collections import Counter
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import select
from srvtest.app import make_settings
from srvtest.notify import (
    Receiver,
    add_webhook,
    closed_port,
    deliveries,
    scoring_run,
    serving,
    team_with_members,
    verify,
)

from server.clock import utcnow
from server.core import migrate
from server.core.db import Database
from server.core.settings import Settings
from server.models import Delivery, DeliveryAttempt, RunStatus, Submission
from server.notifications import outbox, signing
from server.notifications.dispatcher import Dispatcher
from server.notifications.events import PAYLOAD_FIELDS
from server.runs.transitions import transition

SECRET = "whsec_test-secret"


class Clock:
    def __init__(self) -> None:
        self.now = utcnow()

    def __call__(self) -> datetime:
        return self.now

    def advance(self, delta: timedelta) -> None:
        self.now += delta


def _settings(tmp_path: Path, url: str, **overrides: object) -> Settings:
    values: dict[str, object] = {
        "webhook_allow_private": True,  # the receiver is on 127.0.0.1
        "notify_backoff": 10,
        "notify_backoff_max": 80,
        "notify_max_attempts": 5,
        "webhook_timeout": 5,
        "public_url": "https://board.example.org",
    }
    values.update(overrides)
    return make_settings(tmp_path, url, **values)


@pytest.fixture
def db(sqlite_url: str) -> Iterator[Database]:
    database = Database.connect(sqlite_url)
    migrate.upgrade(database.engine)
    yield database
    database.dispose()


def _finish(db: Database, sub_id: int, to: RunStatus = RunStatus.SUCCEEDED, **kw: object) -> None:
    with db.transaction() as session:
        transition(session, sub_id, to, **kw)  # type: ignore[arg-type]


def _attempts(db: Database, delivery_id: str) -> list[DeliveryAttempt]:
    with db.transaction(write=False) as session:
        return list(
            session.scalars(
                select(DeliveryAttempt)
                .where(DeliveryAttempt.delivery_id == delivery_id)
                .order_by(DeliveryAttempt.number)
            )
        )


def test_a_delivery_is_signed_and_carries_no_score(tmp_path: Path, sqlite_url: str, db: Database) -> None:
    team = team_with_members(db, "alpha", [])
    with serving(Receiver()) as receiver:
        add_webhook(db, team, receiver.url, SECRET)
        sub = scoring_run(db, team, kendall_tau_b=0.4123, amae=1.2345, metrics={"kendall_tau_b": 0.4123})
        _finish(db, sub)
        dispatcher = Dispatcher(_settings(tmp_path, sqlite_url), db)
        assert dispatcher.run_once() == 1
        (got,) = receiver.wait_for(1)
    ts = int(got.headers["X-CSAWM-Timestamp"])
    assert got.headers["X-CSAWM-Signature"] == signing.signature(SECRET, ts, got.body)
    assert verify(SECRET, ts, got.body, got.headers["X-CSAWM-Signature"])
    assert not verify(SECRET, ts + 1, got.body, got.headers["X-CSAWM-Signature"])  # ts is signed
    assert abs(utcnow().timestamp() - ts) < 60
    assert got.headers["X-CSAWM-Event"] == "run.finished"
    assert got.headers["Content-Type"] == "application/json"
    body = json.loads(got.body)
    assert set(body) == PAYLOAD_FIELDS
    assert body["delivery_id"] == got.headers["X-CSAWM-Delivery"]
    assert body | {"delivery_id": None, "occurred_at": None} == {
        "delivery_id": None,
        "event": "run.finished",
        "submission_id": sub,
        "name": "model-a",
        "team": "alpha",
        "phase": "private-1",
        "status": "succeeded",
        "error_code": None,
        "review_state": "pending",
        "url": f"https://board.example.org/submissions/{sub}",
        "occurred_at": None,
    }
    assert b"0.41" not in got.body and b"1.23" not in got.body and b"metrics" not in got.body
    (row,) = deliveries(db)
    assert row.delivered_at is not None and row.attempts == 1 and row.claimed_by is None


def test_failed_run_event_has_the_code_but_no_error_text(
    tmp_path: Path, sqlite_url: str, db: Database
) -> None:
    team = team_with_members(db, "alpha", [])
    with serving(Receiver()) as receiver:
        add_webhook(db, team, receiver.url, SECRET)
        sub = scoring_run(db, team)
        _finish(
            db,
            sub,
            RunStatus.FAILED,
            error_code="infra_error",
            error_message="the node went away",
            error_detail="host gpu-7.internal: kubelet said no",
        )
        Dispatcher(_settings(tmp_path, sqlite_url), db).run_once()
        (got,) = receiver.wait_for(1)
    body = json.loads(got.body)
    assert (body["event"], body["status"], body["error_code"]) == ("run.failed", "failed", "infra_error")
    assert body["review_state"] is None  # issue 23: nothing to review, no "pending" for ever
    assert b"node went away" not in got.body and b"gpu-7" not in got.body


def test_a_rolled_back_transition_leaves_no_outbox_row(db: Database) -> None:
    team = team_with_members(db, "alpha", [])
    add_webhook(db, team, "http://127.0.0.1:9/never", SECRET)
    sub = scoring_run(db, team)
    with pytest.raises(RuntimeError), db.transaction() as session:
        transition(session, sub, RunStatus.SUCCEEDED)
        assert session.scalar(select(Delivery.id)) is not None  # written inside the transaction...
        raise RuntimeError("the state change fails after the transition")
    assert deliveries(db) == []  # ...and gone with it
    with db.transaction(write=False) as session:
        assert session.get_one(Submission, sub).status is RunStatus.SCORING
    _finish(db, sub)
    assert [d.event for d in deliveries(db)] == ["run.finished"]


def test_receiver_answering_500_gets_the_event_later_exactly_once(
    tmp_path: Path, sqlite_url: str, db: Database
) -> None:
    team = team_with_members(db, "alpha", [])
    with serving(Receiver(statuses=[500, 503])) as receiver:
        add_webhook(db, team, receiver.url, SECRET)
        _finish(db, scoring_run(db, team))
        clock = Clock()
        dispatcher = Dispatcher(_settings(tmp_path, sqlite_url), db, clock=clock)
        assert dispatcher.run_once() == 1
        (row,) = deliveries(db)
        assert (
            row.delivered_at is None
            and row.attempts == 1
            and row.last_error == "the receiver answered: HTTP 500"
        )
        wait = row.next_attempt_at - clock.now
        assert timedelta(seconds=10) <= wait <= timedelta(seconds=11)  # base, plus up to 10% jitter
        assert dispatcher.run_once() == 0  # not due yet
        clock.advance(wait)
        assert dispatcher.run_once() == 1
        (row,) = deliveries(db)
        assert timedelta(seconds=20) <= row.next_attempt_at - clock.now <= timedelta(seconds=22)  # doubled
        clock.advance(timedelta(seconds=22))
        assert dispatcher.run_once() == 1
        clock.advance(timedelta(days=1))
        assert dispatcher.run_once() == 0  # delivered: never again
        got = receiver.wait_for(3)
    assert len(got) == 3 and len({g.headers["X-CSAWM-Delivery"] for g in got}) == 1
    (row,) = deliveries(db)
    assert row.delivered_at is not None and row.attempts == 3 and row.last_error is None
    assert [(a.status_code, a.ok) for a in _attempts(db, row.id)] == [(500, False), (503, False), (204, True)]


def test_receiver_down_then_up_gets_it_once(tmp_path: Path, sqlite_url: str, db: Database) -> None:
    team = team_with_members(db, "alpha", [])
    port = closed_port()
    add_webhook(db, team, f"http://127.0.0.1:{port}/hook", SECRET)
    _finish(db, scoring_run(db, team))
    clock = Clock()
    dispatcher = Dispatcher(_settings(tmp_path, sqlite_url), db, clock=clock)
    assert dispatcher.run_once() == 1
    (row,) = deliveries(db)
    assert row.delivered_at is None and "ConnectionRefusedError" in (row.last_error or "")
    clock.advance(timedelta(seconds=11))
    with serving(Receiver(), port=port) as receiver:
        assert dispatcher.run_once() == 1
        clock.advance(timedelta(days=1))
        assert dispatcher.run_once() == 0
        (got,) = receiver.wait_for(1)
    assert got.headers["X-CSAWM-Delivery"] == row.id
    assert deliveries(db)[0].delivered_at is not None


def test_dead_after_max_attempts_with_capped_backoff(tmp_path: Path, sqlite_url: str, db: Database) -> None:
    team = team_with_members(db, "alpha", [])
    with serving(Receiver(then=500)) as receiver:
        add_webhook(db, team, receiver.url, SECRET)
        _finish(db, scoring_run(db, team))
        clock = Clock()
        dispatcher = Dispatcher(_settings(tmp_path, sqlite_url, notify_max_attempts=5), db, clock=clock)
        waits = []
        for _ in range(5):
            assert dispatcher.run_once() == 1
            (row,) = deliveries(db)
            if row.dead_at is None:
                waits.append((row.next_attempt_at - clock.now).total_seconds())
                clock.advance(row.next_attempt_at - clock.now)
        clock.advance(timedelta(days=30))
        assert dispatcher.run_once() == 0
        assert len(receiver.wait_for(5)) == 5
    # 10, 20, 40, 80 (the cap), each with up to 10% jitter
    assert [int(w // 10) * 10 for w in waits] == [10, 20, 40, 80]
    (row,) = deliveries(db)
    assert row.dead_at is not None and row.delivered_at is None and row.attempts == 5


def test_a_redirect_is_not_followed(tmp_path: Path, sqlite_url: str, db: Database) -> None:
    team = team_with_members(db, "alpha", [])
    with serving(Receiver(statuses=[302])) as receiver:
        add_webhook(db, team, receiver.url, SECRET)
        _finish(db, scoring_run(db, team))
        Dispatcher(_settings(tmp_path, sqlite_url), db).run_once()
        assert len(receiver.wait_for(1)) == 1
    (row,) = deliveries(db)
    assert row.delivered_at is None and row.last_error == "redirects are not followed: HTTP 302"


def test_a_removed_webhook_kills_its_pending_delivery(tmp_path: Path, sqlite_url: str, db: Database) -> None:
    from server.models import Webhook

    team = team_with_members(db, "alpha", [])
    hook = add_webhook(db, team, "http://127.0.0.1:9/gone", SECRET)
    _finish(db, scoring_run(db, team))
    with db.transaction() as session:
        session.delete(session.get_one(Webhook, hook))
    Dispatcher(_settings(tmp_path, sqlite_url), db).run_once()
    (row,) = deliveries(db)
    assert row.dead_at is not None and row.last_error == "the webhook was removed"


def test_a_claim_is_exclusive_until_its_lease_expires(db: Database) -> None:
    team = team_with_members(db, "alpha", [])
    add_webhook(db, team, "http://127.0.0.1:9/x", SECRET)
    _finish(db, scoring_run(db, team))
    now = utcnow()
    lease = timedelta(seconds=60)
    with db.transaction() as session:
        (first,) = outbox.claim(session, now, limit=10, lease=lease)
    with db.transaction() as session:
        assert outbox.claim(session, now, limit=10, lease=lease) == []
    later = now + lease
    with db.transaction() as session:
        (second,) = outbox.claim(session, later, limit=10, lease=lease)
    assert second.token != first.token
    from server.notifications.outcome import Outcome

    settle = {"max_attempts": 3, "base": timedelta(seconds=1), "cap": timedelta(seconds=1)}
    with db.transaction() as session:  # the first dispatcher's late answer no longer counts
        assert not outbox.settle(session, first, Outcome(ok=True, duration_ms=1), later, **settle)  # type: ignore[arg-type]
    with db.transaction() as session:
        assert outbox.settle(session, second, Outcome(ok=True, duration_ms=1), later, **settle)  # type: ignore[arg-type]
    with db.transaction() as session:
        assert outbox.claim(session, later + timedelta(days=1), limit=10, lease=lease) == []


def test_two_dispatchers_never_send_one_delivery_twice(tmp_path: Path, db_url: str) -> None:
    """Two dispatchers with their own engines (as two processes would be) drain 40 deliveries at once."""
    setup = Database.connect(db_url)
    migrate.upgrade(setup.engine)
    team = team_with_members(setup, "alpha", [])
    with serving(Receiver()) as receiver:
        for _ in range(4):
            add_webhook(setup, team, receiver.url, SECRET)
        for i in range(10):
            _finish(setup, scoring_run(setup, team, name=f"m{i}"))
        assert len(deliveries(setup)) == 40
        settings = _settings(tmp_path, db_url)
        engines = [Database.connect(db_url) for _ in range(2)]
        dispatchers = [Dispatcher(settings, e) for e in engines]
        start = threading.Barrier(2)
        errors: list[BaseException] = []

        def drain(d: Dispatcher) -> None:
            try:
                start.wait(10)
                while d.run_once():
                    pass
            except BaseException as exc:  # surfaced below
                errors.append(exc)

        threads = [threading.Thread(target=drain, args=(d,)) for d in dispatchers]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        assert not errors and not any(t.is_alive() for t in threads)
        got = receiver.wait_for(40)
        for e in engines:
            e.dispose()
    counts = Counter(g.headers["X-CSAWM-Delivery"] for g in got)
    assert len(counts) == 40 and set(counts.values()) == {1}
    assert all(d.delivered_at is not None and d.attempts == 1 for d in deliveries(setup))
    setup.dispose()
