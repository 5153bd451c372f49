"""The stored Ladder: each team's sequence of steps in a Ladder phase, decided once (issue 19 item 4).

The rule (`server.scoring.ladder`) runs over **all** of a team's scored runs of the phase, in the
order they were scored, whatever their review state; each run's step is decided when the run is
scored (`on_scored`, called by `server.runs.reports.record` in the transaction that records the
score) against the team's stored sequence so far, and stored append-only (`LadderStepRow`):

* the best run so far is the run of the team's last step that moved, the displayed value that of
  its last step;
* the team sees each of its runs' own step (`team_steps`);
* the public board shows, of the same steps, the best one that moved the display and whose run is
  approved (`board_steps`): the highest displayed value, the latest of equals, so every number on it
  is an approved run's own revealed value. Hiding, disqualifying or approving a run only
  changes which stored steps the board may choose from; a re-score (`csawm admin rescore`) records a
  new report but neither changes nor adds a step.

So no review action, approval order or re-score shows a number the Ladder did not show when a run
was scored. Runs that have no step yet (scored before the steps were stored, or while the phase had
no Ladder) are decided in finishing order on the next write that needs them: the migration that
created the table, a phase turned into a Ladder phase (`decide_all`), or the team's next scored run.

Two runs of one team scored at the same time: each appends with the next `seq` under the unique
(phase, team, seq) constraint; the one that loses the race rolls back its savepoint and decides again
after the other's step (PostgreSQL: the insert waits for the other transaction; SQLite serialises
writers anyway).

The statements name their columns (no ORM entity loads), so the migration can run them too.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import numpy as np
from sqlalchemy import Row, insert, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from server.clock import utcnow
from server.models import LadderStepRow, Phase, ReviewState, RunStatus, Submission, Team, Visibility
from server.phases.history_reviews import review_states_at
from server.scoring.ladder import LadderRun, next_step
from server.scoring.results import PairingBasis

ATTEMPTS = 5  # a lost race retries; five losses in a row is not a race any more
# What the Ladder reads of a run (`_run`).
RUN_COLUMNS = (Submission.id, Submission.kendall_tau_b, Submission.tau_replicates, Submission.reproducibility)


@dataclass(frozen=True)
class LadderPhase:
    """A phase whose board runs the Ladder, with its parameters."""

    name: str
    level: float
    step: float


@dataclass(frozen=True)
class BoardStep:
    """The step a team's board row shows, and the approved run it belongs to."""

    team: str
    submission_id: int
    name: str
    shown: dict[str, Any]  # {"displayed", "moved", "note"}


def ladder_phases(session: Session, name: str | None = None) -> list[LadderPhase]:
    """The live phases with the Ladder on (only `name`'s, when given)."""
    query = select(Phase.name, Phase.ladder_level, Phase.ladder_step).where(
        Phase.ladder.is_(True), Phase.visibility == Visibility.LIVE
    )
    if name is not None:
        query = query.where(Phase.name == name)
    return [LadderPhase(str(n), float(level), float(step)) for n, level, step in session.execute(query)]


def on_scored(session: Session, sub: Submission) -> None:
    """Decide the step of `sub` (just scored) if its phase runs the Ladder: the worker's hook."""
    if sub.baseline:
        return
    for phase in ladder_phases(session, sub.phase):
        decide(session, phase, sub.team_id)


def decide_all(session: Session, name: str | None = None) -> None:
    """Decide every scored run without a step of every Ladder phase (only `name`'s, when given): the
    migration, and a phase created or changed with the Ladder on."""
    for phase in ladder_phases(session, name):
        undecided = _undecided(phase.name).with_only_columns(Submission.team_id).order_by(None).distinct()
        for team_id in list(session.scalars(undecided)):
            decide(session, phase, int(team_id))


def decide(session: Session, phase: LadderPhase, team_id: int) -> None:
    """Append a step for each of the team's scored runs of `phase` without one, in finishing order."""
    session.flush()  # the caller's pending changes (the run's move to succeeded) stay outside the savepoint
    for attempt in range(ATTEMPTS):
        try:
            with session.begin_nested():
                _append(session, phase, team_id)
            return
        except IntegrityError:
            if attempt == ATTEMPTS - 1:
                raise


def _undecided(phase: str, team_id: int | None = None) -> Any:
    decided = select(LadderStepRow.submission_id).where(LadderStepRow.phase == phase)
    query = select(*RUN_COLUMNS).where(
        Submission.phase == phase,
        Submission.baseline.is_(False),
        Submission.status == RunStatus.SUCCEEDED,
        Submission.id.not_in(decided),
    )
    if team_id is not None:
        query = query.where(Submission.team_id == team_id)
    return query.order_by(Submission.finished_at, Submission.id)


def _run(row: Row[Any]) -> LadderRun:
    sub_id, tau, replicates, record = tuple(row)
    return LadderRun(
        submission_id=int(sub_id),
        tau=tau,
        replicates=np.frombuffer(replicates, dtype=np.float64) if replicates else None,
        basis=PairingBasis.of(record).known(),
    )


def _append(session: Session, phase: LadderPhase, team_id: int) -> None:
    todo = session.execute(_undecided(phase.name, team_id)).all()
    if not todo:
        return
    mine = (LadderStepRow.phase == phase.name, LadderStepRow.team_id == team_id)
    last = session.execute(
        select(LadderStepRow.seq, LadderStepRow.displayed)
        .where(*mine)
        .order_by(LadderStepRow.seq.desc())
        .limit(1)
    ).one_or_none()
    seq, displayed = (int(last[0]), last[1]) if last is not None else (0, None)
    best_id = session.scalar(
        select(LadderStepRow.submission_id)
        .where(*mine, LadderStepRow.moved.is_(True))
        .order_by(LadderStepRow.seq.desc())
        .limit(1)
    )
    best: LadderRun | None = None
    if best_id is not None:
        best = _run(session.execute(select(*RUN_COLUMNS).where(Submission.id == best_id)).one())
    for row in todo:
        run = _run(row)
        step = next_step(run, best, displayed, level=phase.level, step=phase.step)
        seq += 1
        session.execute(
            insert(LadderStepRow).values(
                phase=phase.name, team_id=team_id, submission_id=run.submission_id, seq=seq,
                displayed=step.displayed, moved=step.moved, note=step.reason,
                best_submission_id=best.submission_id if best is not None else None, decided_at=utcnow(),
            )
        )  # fmt: skip
        if step.moved:
            best = run
        displayed = step.displayed


def shown(displayed: float | None, moved: bool, note: str | None) -> dict[str, Any]:
    """A step as the API writes it (`LadderOut`)."""
    return {"displayed": displayed, "moved": bool(moved), "note": note}


def team_steps(session: Session, phase: str, team_id: int) -> dict[int, dict[str, Any]]:
    """The team's own sequence in `phase`: each of its runs' stored step, by submission id."""
    rows = session.execute(
        select(
            LadderStepRow.submission_id, LadderStepRow.displayed, LadderStepRow.moved, LadderStepRow.note
        ).where(LadderStepRow.phase == phase, LadderStepRow.team_id == team_id)
    )
    return {int(sub_id): shown(displayed, moved, note) for sub_id, displayed, moved, note in rows}


def board_steps(session: Session, phase: str, as_of: datetime | None = None) -> list[BoardStep]:
    """Per team, its best stored step that moved the display and whose run is approved (highest
    displayed, the latest of equals); a team with no such step has no row. With `as_of`: of the
    steps decided by then, whose runs were approved then (`server.phases.history_reviews`).

    Only steps that moved count: a step that did not move displays an earlier run's value, and that
    run may be pending, hidden or disqualified. So every number on the public board is the revealed
    value of an approved run itself, and disqualifying a run takes its number off the board.
    """
    query = (
        select(
            Team.name, LadderStepRow.submission_id, Submission.name, LadderStepRow.displayed,
            LadderStepRow.moved, LadderStepRow.note, LadderStepRow.seq, Submission.review_state,
        )
        .join(Submission, Submission.id == LadderStepRow.submission_id)
        .join(Team, Team.id == LadderStepRow.team_id)
        .where(
            LadderStepRow.phase == phase,
            LadderStepRow.displayed.is_not(None),
            LadderStepRow.moved.is_(True),
            Submission.status == RunStatus.SUCCEEDED,  # a step is decided when its run is scored
        )
    )  # fmt: skip
    if as_of is None:
        rows = list(session.execute(query.where(Submission.review_state == ReviewState.APPROVED)))
    else:
        decided = list(session.execute(query.where(LadderStepRow.decided_at <= as_of)))
        states = review_states_at(session, ((row[1], row[7]) for row in decided), as_of)
        rows = [row for row in decided if states[row[1]] == ReviewState.APPROVED]
    best: dict[str, tuple[tuple[float, int], BoardStep]] = {}
    for team, sub_id, name, displayed, moved, note, seq, _ in rows:
        key = (float(displayed or 0.0), int(seq))  # never None here (the query's filter)
        if team not in best or key > best[team][0]:
            best[team] = (key, BoardStep(str(team), int(sub_id), str(name), shown(displayed, moved, note)))
    return [step for _, step in best.values()]
