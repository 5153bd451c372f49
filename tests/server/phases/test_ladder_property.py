"""The Ladder invariant of issue 19 item 4 as a property: over random orders of scoring, approving,
hiding, disqualifying and re-scoring a team's runs,

* every step the team is shown, and every row the public board shows for it, is a step the Ladder
  showed the team when one of its runs was scored;
* the board's value is the best stored step among the team's approved runs, never above the team's
  best stored display, and no row without an approved scored run;
* no review action or re-score changes, adds or removes a stored step; each run's step is decided
  once, in scoring order, and (without re-scores) equals the rule run over the scored runs in order.

Each example is a new team in one database (one phase); the team's view and the board are read
through the API after every operation.
"""

from __future__ import annotations

import itertools
from datetime import timedelta
from typing import Any

import numpy as np
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import Bundle, RuleBasedStateMachine, invariant, rule, run_state_machine_as_test
from phasetest import RESAMPLES, make_phase, record_score, scored
from sqlalchemy import select
from srvtest import factories as f
from srvtest.app import Api

from server.clock import utcnow
from server.models import LadderStepRow, ReviewState, Role, Submission, Team
from server.scoring.ladder import LadderRun, climb

HOUR = timedelta(hours=1)
LEVEL, STEP = 0.05, 0.01
PAIRED = object()  # the basis every paired run shares (the oracle compares bases with ==)
ACTIONS = {
    "approve": ReviewState.APPROVED,
    "hide": ReviewState.HIDDEN,
    "disqualify": ReviewState.DISQUALIFIED,
}
EXAMPLES = 25
taus = st.integers(550, 720).map(lambda k: k / 1000)  # close enough to give ties, moves and stays


def _json(step: tuple[Any, ...]) -> dict[str, Any]:
    displayed, moved, note = step
    return {"displayed": displayed, "moved": moved, "note": note}


def test_no_review_action_approval_order_or_rescore_reveals_a_new_number(api: Api) -> None:
    maud = f.user(api.db, "m@x.org", role=Role.MAINTAINER)
    make_phase(api, "dev", -3 * HOUR, HOUR, ladder=True, ladder_level=LEVEL, ladder_step=STEP)
    teams = itertools.count()
    base = np.random.default_rng(4).normal(0.0, 0.03, RESAMPLES)  # each resample's patient sample

    class LadderMachine(RuleBasedStateMachine):
        runs = Bundle("runs")

        def __init__(self) -> None:
            super().__init__()
            n = next(teams)
            self.team = f"team-{n}"
            self.token = f.member_token(api.db, self.team, f"u{n}@x.org", runs=100)
            with api.db.transaction(write=False) as session:
                self.team_id = int(session.scalar(select(Team.id).where(Team.name == self.team)) or 0)
            self.order: list[int] = []  # runs in scoring order
            self.oracle: list[LadderRun] = []  # what the rule reads of each, as scored
            self.review: dict[int, ReviewState] = {}
            self.decided: dict[int, tuple[int, tuple[Any, ...]]] = {}  # run -> (seq, step) when scored
            self.revealed: list[dict[str, Any]] = []  # what the team was shown when each run was scored
            self.rescored = False

        @rule(target=runs, tau=taus, noise=st.sampled_from([0.002, 0.01, 0.03]), seed=st.integers(0, 2**16),
              paired=st.booleans(), approved=st.booleans())  # fmt: skip
        def score(self, tau: float, noise: float, seed: int, paired: bool, approved: bool) -> int:
            reps = tau + base + np.random.default_rng(seed).normal(0.0, noise, RESAMPLES)
            review = ReviewState.APPROVED if approved else ReviewState.PENDING
            boot = {"resamples": RESAMPLES, "seed": 0} if paired else {"resamples": RESAMPLES}
            sub = scored(
                api, self.team_id, f"r{len(self.order)}", "dev", tau, 40.0, reps, review=review,
                finished=utcnow(), bootstrap=boot,
            )  # fmt: skip
            self.order.append(sub)
            self.oracle.append(LadderRun(sub, tau, reps, PAIRED if paired else None))
            self.review[sub] = review
            steps = self._stored()
            assert set(steps) == set(self.order), "exactly the scored runs have a step"
            self.decided[sub] = steps[sub]
            assert steps[sub][0] == len(self.order), "decided after every earlier run"
            shown = self._team_view()[sub]
            assert shown == _json(steps[sub][1])
            self.revealed.append(shown)
            return sub

        @rule(sub=runs, action=st.sampled_from(sorted(ACTIONS)))
        def review_run(self, sub: int, action: str) -> None:
            r = api.client.post(
                f"/api/v1/admin/submissions/{sub}/review",
                json={"action": action, "reason": "property test"},
                headers=f.auth(maud),
            )
            assert r.status_code == 200, r.text
            self.review[sub] = ACTIONS[action]

        @rule(sub=runs, tau=taus)
        def rescore(self, sub: int, tau: float) -> None:
            with api.db.transaction() as session:
                sub_row = session.get_one(Submission, sub)
                record_score(session, sub_row, tau, 30.0, tau + base, reason="rescored")
            self.rescored = True

        @invariant()
        def steps_are_stored_once_and_never_change(self) -> None:
            steps = self._stored()
            assert steps == self.decided
            assert sorted(seq for seq, _ in steps.values()) == list(range(1, len(self.order) + 1))
            if not self.rescored:  # the rule over the scored runs in scoring order
                rule_says = climb(self.oracle, level=LEVEL, step=STEP)
                expected = [(s.displayed, s.moved, s.reason) for s in rule_says]
                assert [steps[sub][1] for sub in self.order] == expected

        @invariant()
        def the_team_sees_only_what_was_shown_when_scored(self) -> None:
            view = self._team_view()
            assert set(view) == set(self.order)
            for sub, shown in view.items():
                assert shown == _json(self.decided[sub][1])
                assert shown in self.revealed

        @invariant()
        def the_board_shows_the_best_approved_stored_step_that_moved(self) -> None:
            rows = [r for r in api.client.get("/api/v1/leaderboard").json()["rows"] if r["team"] == self.team]
            approved = [
                s for s in self.order if self.review[s] == ReviewState.APPROVED and self.decided[s][1][1]
            ]  # runs approved whose step moved the display: each shows its own revealed value
            if not approved:
                assert rows == []
                return
            (row,) = rows
            sub = row["submission_id"]
            assert self.review[sub] == ReviewState.APPROVED
            assert row["ladder"] == _json(self.decided[sub][1]) and row["ladder"] in self.revealed
            value = row["kendall_tau_b"]["value"]
            assert value == row["ladder"]["displayed"]
            assert value == max(self.decided[s][1][0] for s in approved)
            assert value <= max(step[0] for _, step in self.decided.values())
            assert row["kendall_tau_b"]["ci95"] is None and row["amae"]["value"] is None

        def _stored(self) -> dict[int, tuple[int, tuple[Any, ...]]]:
            with api.db.transaction(write=False) as session:
                rows = session.scalars(select(LadderStepRow).where(LadderStepRow.team_id == self.team_id))
                return {r.submission_id: (r.seq, (r.displayed, r.moved, r.note)) for r in rows}

        def _team_view(self) -> dict[int, dict[str, Any]]:
            r = api.client.get("/api/v1/submissions", params={"limit": 500}, headers=f.auth(self.token))
            assert r.status_code == 200, r.text
            return {s["id"]: s["ladder"] for s in r.json()}

    run_state_machine_as_test(
        LadderMachine,
        settings=settings(
            max_examples=EXAMPLES,
            stateful_step_count=12,
            deadline=None,
            suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
        ),
    )
