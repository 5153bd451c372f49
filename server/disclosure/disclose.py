"""What a viewer may see of a run: `disclose`, the one function every surface asks at read time.

The API, the review console, the report and team pages ask `disclose`, and the board's JSON, CSV and
pages `board_figures_note`, with the settings and the phase row as they are now: a reveal, a phase's
``disclosure`` or a ``CSAWM_HIDDEN_*`` setting takes effect everywhere at once. The texts stored when
a run ends are written safe by `server.runs.disclosure`; webhooks, mails and the quota ledger show
only a run's times, through the same `Viewer`.

Scores. Maintainers and admins always see exact values. Everyone else (the run's team, anonymous
visitors of the board):

* live phase without the Ladder: the exact scores;
* sealed phase before ``reveal-phase``: the status only, no score of any kind (tau-b, AMAE, CIs,
  clinical metrics, plots, report history): `SEALED_NOTE`;
* sealed phase after the reveal: the exact scores of the runs the team selected; an unselected
  run stays withheld (`NOT_SELECTED_NOTE`), it took no part in the ranking;
* Ladder phase: only the team's displayed value, rounded to the phase's step, which moves only on a
  significant improvement (`server.scoring.ladder`); every exact number (tau-b and its CI, AMAE,
  the clinical metrics, the report, the plots) is withheld, since any of them would let a team read
  the exact value it is not given.

A team sees each of its runs' own Ladder step, stored when the run was scored
(`server.phases.ladder_steps`) and never recomputed here, whatever the run's review state.

On top of those, the phase's ``disclosure`` decides how much of a report a researcher sees where
scores are shown: ``full``, or ``summary`` (the headline metrics with their CIs and the board's
figures, `server.scoring.summary`); maintainers always see the full report.
Figures, timestamps and a failed run's outcome: `server.disclosure.run_view`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from server.core.principal import Principal
from server.core.settings import Settings
from server.disclosure.run_view import Charge, RunView, Viewer, ledger_charge, run_view, shown_review
from server.models import PhaseSelection, ReviewState, RunStatus, Submission
from server.phases import ladder_steps
from server.phases.service import PhaseView, by_name
from server.scoring.summary import summary_report

SEALED_NOTE = "sealed phase: scores are withheld until the phase is revealed"
NOT_SELECTED_NOTE = "not selected for the final ranking of this sealed phase: scores are withheld"
LADDER_NOTE = "Ladder phase: exact scores are withheld; the board shows the team's rounded displayed value"


@dataclass
class ViewCache:
    """Look-ups shared by the runs of one list: phases by name, each team's stored Ladder steps once."""

    phases: dict[str, PhaseView] = field(default_factory=dict)
    ladders: dict[tuple[str, int], dict[int, dict[str, Any]]] = field(default_factory=dict)


@dataclass(frozen=True)
class RunDisclosure:
    """Everything `viewer` may see of one run: its scores `exact`, or withheld with `note`; `ladder`
    (``{"displayed", "moved", "note"}``), `selected` (sealed phases), the report's `disclosure`
    (``full`` or ``summary``), and `run`: figures, times, maintainer texts, outcome (made on first use,
    so a list of runs reads only its times)."""

    sub: Submission
    viewer: Viewer
    note: str | None  # why the scores are withheld; None: they are shown
    ladder: dict[str, Any] | None
    selected: bool | None
    phase: PhaseView
    disclosure: str
    charge: Charge | None = None

    @property
    def exact(self) -> bool:
        """The stored scores, report, plots and report history may be shown."""
        return self.note is None

    def report_of(self, stored: dict[str, Any] | None) -> dict[str, Any] | None:
        """A stored report (the run's, or one of its history) as the viewer may read it: None where the
        scores are withheld, the summary in a ``summary`` phase, else as stored."""
        if not self.exact or not isinstance(stored, dict):
            return None
        return stored if self.disclosure == "full" else summary_report(stored)

    @cached_property
    def run(self) -> RunView:
        return run_view(self.sub, self.viewer, self.charge)

    @property
    def review(self) -> ReviewState | None:
        return shown_review(self.sub)

    @property
    def hidden_log_tail(self) -> str | None:
        """Maintainers only (``CSAWM_HIDDEN_LOGS=submitters`` copies it into the public ``log_tail``)."""
        return self.sub.hidden_log_tail if self.viewer.staff else None


def viewer_of(user: Principal | None, settings: Settings) -> Viewer:
    """Who looks (None: a visitor, or a webhook's or mail's reader), with the settings as they are now."""
    return Viewer(
        staff=user is not None and user.is_staff,
        level=settings.hidden_runtime,
        logs=settings.hidden_logs,
        hint=settings.hidden_hint,
    )


def disclose(
    session: Session,
    settings: Settings,
    sub: Submission,
    user: Principal | None,
    cache: ViewCache | None = None,
    *,
    outcome: bool = False,
) -> RunDisclosure:
    """What `user` (None: anonymous) may see of `sub` (module docstring). `cache` shares look-ups
    across the runs of a list; `outcome` reads the quota ledger for the end of a failed run."""
    cache = cache if cache is not None else ViewCache()
    phase = cache.phases.get(sub.phase)
    if phase is None:
        phase = cache.phases[sub.phase] = by_name(session, settings, sub.phase)
    viewer = viewer_of(user, settings)
    sealed = phase.visibility == "sealed" and not sub.baseline
    laddered = phase.ladder_board and not sub.baseline
    selected = _is_selected(session, sub.id) if sealed else None
    note = None
    if sealed and not viewer.staff:
        note = SEALED_NOTE if phase.revealed_at is None else None if selected else NOT_SELECTED_NOTE
    elif laddered and not viewer.staff:
        note = LADDER_NOTE
    return RunDisclosure(
        sub, viewer, note, _ladder_step(session, phase, sub, cache) if laddered else None, selected, phase,
        "full" if viewer.staff else phase.disclosure, ledger_charge(session, sub.id) if outcome else None,
    )  # fmt: skip


def _ladder_step(
    session: Session, phase: PhaseView, sub: Submission, cache: ViewCache
) -> dict[str, Any] | None:
    """The run's stored step (None before the run is scored)."""
    if sub.status != RunStatus.SUCCEEDED:
        return None
    key = (phase.name, sub.team_id)
    if key not in cache.ladders:
        cache.ladders[key] = ladder_steps.team_steps(session, phase.name, sub.team_id)
    return cache.ladders[key].get(sub.id)


def _is_selected(session: Session, submission_id: int) -> bool:
    found = session.scalar(select(PhaseSelection.id).where(PhaseSelection.submission_id == submission_id))
    return found is not None


RANKINGS_SEALED_NOTE = "sealed phase: rank figures are withheld until the phase is revealed"
RANKINGS_LADDER_NOTE = "Ladder phase: rank figures, tiers, the significance map and expert bands are withheld"


def board_figures_note(phase: PhaseView, user: Principal | None) -> str | None:
    """The board counterpart of `disclose` for the rank figures of issue 21 (rank intervals,
    median ranks, ``p_first``, tiers, the significance map, each model against the expert bands,
    the bands themselves): None where `user` may see them, else why they are withheld.

    A sealed phase before its reveal and a Ladder phase withhold them from researchers and
    visitors (each is a channel to the exact scores the phase hides); maintainers always see them.
    """
    if user is not None and user.is_staff:
        return None
    if phase.sealed:
        return RANKINGS_SEALED_NOTE
    if phase.ladder_board:
        return RANKINGS_LADDER_NOTE
    return None
