"""The stored Ladder (issue 19 item 4): each step is decided once, when its run is scored, and stored;
review actions, approval order and re-scores never make the team's view or the board show a number
the Ladder did not show when a run was scored.

The two cases the attack saw are replayed first, through the API as the team, the public and the
maintainers use it; then the store itself (upgrade, a phase turned into a Ladder phase, two runs
scored at once, the worker's scoring and ``csawm admin rescore``), on SQLite and PostgreSQL.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from alembic.script import ScriptDirectory
from phasetest import RESAMPLES, leaked, make_phase, record_score, scored
from sqlalchemy import delete, select, text
from srvtest import factories as f
from srvtest.app import Api, make_settings, open_api
from srvtest.archives import write_archive
from srvtest.fakes import FakeRunner

from server.clock import utcnow
from server.core import migrate
from server.models import LadderStepRow, ReviewState, Role, RunStatus, Submission
from server.runs.rescore import rescore
from server.scoring.ladder import NOT_SIGNIFICANT
from server.worker.evaluation import EvaluationSet
from server.worker.loop import Worker
from server.worker.stages import score_report

HOUR = timedelta(hours=1)


@pytest.fixture
def env(api: Api) -> dict[str, Any]:
    """A live Ladder phase (level 0.05, step 0.01), team alpha, a maintainer, and the patient sample
    of each bootstrap resample that every run of the team shares (so runs pair)."""
    alice = f.member_token(api.db, "alpha", "a@x.org")
    maud = f.user(api.db, "m@x.org", role=Role.MAINTAINER)
    make_phase(api, "dev", -3 * HOUR, HOUR, ladder=True, ladder_level=0.05, ladder_step=0.01)
    with api.db.transaction(write=False) as session:
        team_id = session.scalar(text("SELECT id FROM teams WHERE name = 'alpha'"))
    rng = np.random.default_rng(19)
    return {"api": api, "alice": alice, "maud": maud, "team_id": int(team_id), "rng": rng,
            "base": rng.normal(0.0, 0.03, RESAMPLES)}  # fmt: skip


def run(env: dict[str, Any], name: str, tau: float, review: ReviewState = ReviewState.PENDING) -> int:
    """A run scored now: its replicates are the team's shared resamples plus a little noise of its own."""
    reps = tau + env["base"] + env["rng"].normal(0.0, 0.005, RESAMPLES)
    return scored(env["api"], env["team_id"], name, "dev", tau, 40.0, reps, review=review, finished=utcnow())


def team_view(env: dict[str, Any], sub_id: int) -> dict[str, Any] | None:
    r = env["api"].client.get(f"/api/v1/submissions/{sub_id}", headers=f.auth(env["alice"]))
    assert r.status_code == 200, r.text
    ladder: dict[str, Any] | None = r.json()["ladder"]
    return ladder


def board_row(env: dict[str, Any]) -> dict[str, Any] | None:
    rows = env["api"].client.get("/api/v1/leaderboard").json()["rows"]
    mine = [row for row in rows if row["team"] == "alpha"]
    return mine[0] if mine else None


def review(env: dict[str, Any], sub_id: int, action: str) -> None:
    r = env["api"].client.post(
        f"/api/v1/admin/submissions/{sub_id}/review",
        json={"action": action, "reason": "issue 19 review"},
        headers=f.auth(env["maud"]),
    )
    assert r.status_code == 200, r.text


def stored(api: Api) -> dict[int, tuple[Any, ...]]:
    """Every stored step, by run: (seq, displayed, moved, note, best run, decided_at)."""
    with api.db.transaction(write=False) as session:
        rows = session.scalars(select(LadderStepRow).order_by(LadderStepRow.id))
        return {
            r.submission_id: (r.seq, r.displayed, r.moved, r.note, r.best_submission_id, r.decided_at)
            for r in rows
        }


def step(displayed: float, moved: bool) -> dict[str, Any]:
    return {"displayed": displayed, "moved": moved, "note": None if moved else NOT_SIGNIFICANT}


# -- the two cases the attack saw --------------------------------------------------------------------------


def test_hiding_run_10_leaves_run_13_as_it_was_shown(env: dict[str, Any]) -> None:
    """Before: hiding run 10 made run 13's "not a significant improvement" become
    {"displayed": 0.67, "moved": true}, a value never shown (the climb was recomputed without run 10)."""
    approved = ReviewState.APPROVED
    run_7 = run(env, "run-7", 0.601, approved)
    run_10 = run(env, "run-10", 0.682, approved)
    run_13 = run(env, "run-13", 0.671, approved)  # far above run 7, below run 10
    seen = {sub: team_view(env, sub) for sub in (run_7, run_10, run_13)}
    assert seen == {run_7: step(0.6, True), run_10: step(0.68, True), run_13: step(0.68, False)}
    before = stored(env["api"])

    review(env, run_10, "hide")

    assert team_view(env, run_13) == step(0.68, False)  # not {"displayed": 0.67, "moved": true}
    assert {sub: team_view(env, sub) for sub in seen} == seen
    # Run 13's step shows run 10's value: with run 10 hidden the board falls back to run 7's own step.
    row = board_row(env)
    assert row is not None and row["submission_id"] == run_7 and row["ladder"] == step(0.6, True)
    assert row["kendall_tau_b"]["value"] == 0.6
    board = env["api"].client.get("/api/v1/leaderboard").text + env["api"].client.get("/leaderboard.csv").text
    assert not leaked(board, ("0.67", "0.68"))
    assert stored(env["api"]) == before

    review(env, run_10, "approve")
    row = board_row(env)
    assert row is not None and row["submission_id"] == run_10 and row["ladder"] == step(0.68, True)

    review(env, run_10, "disqualify")  # the best remaining approved step: run 7's
    row = board_row(env)
    assert row is not None and row["submission_id"] == run_7 and row["ladder"] == step(0.6, True)
    assert stored(env["api"]) == before


def test_approving_a_later_run_while_an_earlier_one_is_pending(env: dict[str, Any]) -> None:
    """Before: the board climbed over approved runs only, so approving run b while run a was pending
    showed 0.63 on the public board and "not a significant improvement (0.67)" to the team."""
    run_a = run(env, "a", 0.672)
    run_b = run(env, "b", 0.631)
    assert team_view(env, run_a) == step(0.67, True)
    assert team_view(env, run_b) == step(0.67, False)
    assert board_row(env) is None  # nothing approved yet
    before = stored(env["api"])

    review(env, run_b, "approve")

    # Run b's step shows pending run a's value, so the board has no row for the team yet (never 0.63).
    assert board_row(env) is None
    csv = env["api"].client.get("/leaderboard.csv").text  # (0.63 is also an expert's tau-b: rows only)
    assert [line for line in csv.splitlines() if "alpha" in line and "0.63" in line] == []

    review(env, run_a, "approve")
    row = board_row(env)
    assert row is not None and row["ladder"] == team_view(env, run_a) == step(0.67, True)
    assert row["kendall_tau_b"]["value"] == 0.67 and row["submission_id"] == run_a
    assert stored(env["api"]) == before


# -- what the board chooses from ---------------------------------------------------------------------------


def test_the_board_shows_the_best_step_that_moved_and_whose_run_is_approved(env: dict[str, Any]) -> None:
    first = run(env, "first", 0.601, ReviewState.APPROVED)
    better = run(env, "better", 0.702)
    worse = run(env, "worse", 0.652, ReviewState.APPROVED)  # shown 0.70 (the better run's value)
    assert [team_view(env, s) for s in (first, better, worse)] == [
        step(0.6, True),
        step(0.7, True),
        step(0.7, False),
    ]
    row = board_row(env)  # the worse run's step shows the pending better run's value: not the board's
    assert row is not None and row["submission_id"] == first and row["ladder"] == step(0.6, True)
    review(env, worse, "hide")
    row = board_row(env)
    assert row is not None and row["submission_id"] == first and row["ladder"] == step(0.6, True)
    review(env, better, "approve")
    row = board_row(env)
    assert row is not None and row["submission_id"] == better and row["ladder"] == step(0.7, True)
    review(env, better, "disqualify")  # its value leaves the board, though the worse run showed it too
    review(env, worse, "approve")
    row = board_row(env)
    assert row is not None and row["submission_id"] == first and row["ladder"] == step(0.6, True)


def test_the_team_keeps_seeing_the_step_of_a_hidden_run(env: dict[str, Any]) -> None:
    sub = run(env, "only", 0.5)
    review(env, sub, "hide")
    assert team_view(env, sub) == step(0.5, True)
    assert board_row(env) is None


def test_a_rescore_changes_no_step_and_adds_none(env: dict[str, Any]) -> None:
    api = env["api"]
    first = run(env, "first", 0.601, ReviewState.APPROVED)
    near = run(env, "near", 0.604, ReviewState.APPROVED)
    before = stored(api)
    with api.db.transaction() as session:  # what `csawm admin rescore` records: a new report
        sub = session.get_one(Submission, near)
        record_score(session, sub, 0.801, 30.0, 0.801 + env["base"], reason="rescored")
    assert stored(api) == before
    assert team_view(env, near) == step(0.6, False)
    row = board_row(env)
    assert row is not None and row["ladder"] == step(0.6, True) and row["submission_id"] == first
    assert not leaked(api.client.get("/api/v1/leaderboard").text, ("0.8", "0.80", "0.801"))
    assert team_view(env, first) == step(0.6, True)


# -- the store: upgrade, a phase turned into a Ladder phase, concurrency ------------------------------------


def test_runs_scored_before_the_upgrade_are_decided_once_in_scoring_order(env: dict[str, Any]) -> None:
    """A database upgraded with Ladder-phase runs and no steps: the migration decides them per team in
    finishing order, over every scored run whatever its review state, and stores them."""
    api = env["api"]
    now = utcnow()
    ids = [
        run_at(env, "r1", 0.601, now - 5 * HOUR, ReviewState.APPROVED),
        run_at(env, "r2", 0.682, now - 4 * HOUR, ReviewState.HIDDEN),
        run_at(env, "r3", 0.671, now - 3 * HOUR, ReviewState.APPROVED),
        run_at(env, "r4", 0.702, now - 2 * HOUR, ReviewState.PENDING),
    ]
    expected = stored(api)
    with api.db.transaction() as session:
        session.execute(delete(LadderStepRow))  # as a database of the previous release has none
    assert team_view(env, ids[0]) is None

    config = migrate.alembic_config(api.settings.database_url)
    before = ScriptDirectory.from_config(config).get_revision("0006_ladder_steps").down_revision
    assert isinstance(before, str)
    migrate.downgrade(api.db.engine, before)
    migrate.upgrade(api.db.engine)

    after = stored(api)
    assert {k: v[:5] for k, v in after.items()} == {k: v[:5] for k, v in expected.items()}
    assert [after[i][0] for i in ids] == [1, 2, 3, 4]
    assert [team_view(env, i) for i in ids] == [step(0.6, True), step(0.68, True), step(0.68, False),
                                                step(0.7, True)]  # fmt: skip
    row = board_row(env)  # r3 shows hidden r2's value: the board keeps r1's own step
    assert row is not None and row["submission_id"] == ids[0] and row["ladder"] == step(0.6, True)
    assert stored(api) == after  # reading decides nothing again


def run_at(env: dict[str, Any], name: str, tau: float, finished: Any, review: ReviewState) -> int:
    reps = tau + env["base"] + env["rng"].normal(0.0, 0.005, RESAMPLES)
    return scored(env["api"], env["team_id"], name, "dev", tau, 40.0, reps, review=review, finished=finished)


def test_a_phase_turned_into_a_ladder_phase_decides_its_runs_in_finishing_order(api: Api) -> None:
    alice = f.member_token(api.db, "alpha", "a@x.org")
    make_phase(api, "open", -3 * HOUR, HOUR)
    with api.db.transaction(write=False) as session:
        team_id = int(session.scalar(text("SELECT id FROM teams WHERE name = 'alpha'")))
    now = utcnow()
    late = scored(api, team_id, "late", "open", 0.55, 40.0, finished=now - HOUR)
    early = scored(api, team_id, "early", "open", 0.45, 40.0, finished=now - 2 * HOUR)
    assert stored(api) == {}  # no Ladder: exact scores, no steps
    admin = f.user(api.db, "adm@x.org", role=Role.ADMIN)
    r = api.client.patch("/api/v1/admin/phases/open", json={"ladder": True}, headers=f.auth(admin))
    assert r.status_code == 200, r.text
    steps = stored(api)
    assert (steps[early][0], steps[late][0]) == (1, 2)
    assert steps[early][1:3] == (0.45, True) and steps[late][1:3] == (0.55, True)
    body = api.client.get(f"/api/v1/submissions/{late}", headers=f.auth(alice)).json()
    assert body["ladder"] == step(0.55, True) and body["kendall_tau_b"] is None


def test_two_runs_of_a_team_scored_at_once_get_one_order(env: dict[str, Any]) -> None:
    """Each scoring transaction decides its run's step; the one that loses the race for the next
    sequence number (PostgreSQL: its insert waits for the other transaction, then conflicts; SQLite:
    its transaction waits for the write lock) decides again after the other's step."""
    api = env["api"]
    first = run(env, "first", 0.601)
    racers = [scored(api, env["team_id"], n, "dev", 0.0, 0.0, status=RunStatus.SCORING) for n in ("x", "y")]
    taus = {racers[0]: 0.702, racers[1]: 0.751}
    hold = threading.Event()
    inside = threading.Event()
    errors: list[BaseException] = []

    def score(sub_id: int, wait: bool) -> None:
        try:
            with api.db.transaction() as session:
                sub = session.get_one(Submission, sub_id)
                sub.status, sub.finished_at = RunStatus.SUCCEEDED, utcnow()
                tau = taus[sub_id]
                record_score(session, sub, tau, 40.0, tau + env["base"], reason="scored")
                if wait:
                    inside.set()
                    assert hold.wait(10)
        except BaseException as exc:  # reported by the main thread
            errors.append(exc)

    holder = threading.Thread(target=score, args=(racers[0], True))
    holder.start()
    assert inside.wait(10)  # the first racer has decided its step and holds its transaction open
    other = threading.Thread(target=score, args=(racers[1], False))
    other.start()
    if not api.db.is_sqlite:
        assert _waits_on_a_lock(api), "the second insert should wait for the first transaction"
    else:
        time.sleep(0.3)
    hold.set()
    holder.join(20)
    other.join(20)
    assert not errors, errors
    steps = stored(api)
    assert steps[first][0] == 1 and steps[racers[0]][0] == 2 and steps[racers[1]][0] == 3
    assert steps[racers[1]][4] == racers[0]  # compared with the run decided before it
    assert team_view(env, racers[0]) == step(0.7, True)
    assert team_view(env, racers[1]) == step(0.75, True)


def _waits_on_a_lock(api: Api) -> bool:
    for _ in range(100):
        with api.db.engine.connect() as conn:
            waiting = conn.scalar(
                text("SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock'")
            )
        if waiting:
            return True
        time.sleep(0.05)
    return False


# -- the worker's scoring and `csawm admin rescore` --------------------------------------------------------


@pytest.fixture
def wapi(tmp_path: Path, db_url: str, synthetic_benchmark: Path) -> Iterator[Api]:
    settings = make_settings(tmp_path, db_url, benchmark_dir=synthetic_benchmark, bootstrap_resamples=100)
    yield from open_api(settings)


class _Shifted:
    """A scorer whose tau-b is 0.2 higher: a re-score that would move any board recomputed from it."""

    def __call__(self, *args: Any) -> Any:
        report = score_report(*args)
        report.data["masking"]["kendall_tau_b"]["value"] += 0.2
        report.replicates["kendall_tau_b"] = report.replicates["kendall_tau_b"] + 0.2
        return report


def test_the_worker_decides_each_step_when_it_scores_and_rescore_keeps_them(
    wapi: Api, tmp_path: Path
) -> None:
    api = wapi
    token = f.member_token(api.db, "alpha", "a@x.org")
    make_phase(api, "dev", -HOUR, HOUR, ladder=True)
    ids = []
    for i in range(2):
        path = tmp_path / f"m{i}.tar"
        write_archive(path, seed=f"ladder-{i}")
        r = api.client.post(
            "/api/v1/submissions", params={"name": f"m{i}"}, content=path.read_bytes(), headers=f.auth(token)
        )
        assert r.status_code == 201, r.text
        ids.append(r.json()["id"])
    worker = Worker(api.settings, api.db, FakeRunner())
    while worker.run_once():
        pass
    steps = stored(api)
    assert sorted(steps) == ids and [steps[i][0] for i in ids] == [1, 2]
    views = [api.client.get(f"/api/v1/submissions/{i}", headers=f.auth(token)).json() for i in ids]
    assert all(v["status"] == "succeeded" and v["kendall_tau_b"] is None for v in views)
    shown = [v["ladder"] for v in views]
    assert shown[0]["moved"] and not shown[1]["moved"]  # the same predictions: p = 1
    assert shown[1]["displayed"] == shown[0]["displayed"]

    evaluation = EvaluationSet.prepare(api.settings.benchmark_dir, api.settings.data_dir, 4)  # type: ignore[arg-type]
    done = rescore(api.db, api.settings, evaluation, None, actor="test", scorer=_Shifted())
    assert done.done == ids
    assert stored(api) == steps
    again = [api.client.get(f"/api/v1/submissions/{i}", headers=f.auth(token)).json() for i in ids]
    assert [v["ladder"] for v in again] == shown
