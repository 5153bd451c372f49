"""What score of a run a viewer may see: the one place every endpoint, page and export asks (issue 15).

Maintainers and admins always see exact values. Everyone else (the run's team, anonymous visitors
of the board):

* live phase without the Ladder: the exact scores;
* sealed phase before ``reveal-phase``: the status only, no score of any kind (tau-b, AMAE, CIs,
  clinical metrics, plots, report history): `SEALED_NOTE`;
* sealed phase after the reveal: the exact scores of the runs the team selected; an unselected
  run stays withheld (`NOT_SELECTED_NOTE`), it took no part in the ranking;
* Ladder phase: only the team's displayed value, rounded to the phase's step, which moves only on a
  significant improvement (`server.scoring.ladder`); every exact number (tau-b and its CI, AMAE,
  the clinical metrics, the report, the plots) is withheld, since any of them would let a team read
  the exact value it is not given.

The Ladder's steps are stored, each decided once when its run was scored
(`server.phases.ladder_steps`): a team sees each of its runs' own step, whatever the run's review
state; the board's row is the team's best step that moved and whose run is approved. Nothing here
recomputes them.

On top of those, the phase's ``disclosure`` decides how much of a report a researcher sees where
scores are shown: ``full``, or ``summary`` (the headline metrics with their CIs and the board's
figures, `server.scoring.summary`); maintainers always see the full report. `shown_report` applies
both rules, and every surface that shows a report (API, report history, pages, plots) asks it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from server.core.principal import Principal
from server.core.settings import Settings
from server.models import PhaseSelection, RunStatus, Submission
from server.phases import ladder_steps
from server.phases.service import PhaseView, of_name
from server.scoring.summary import summary_report

SEALED_NOTE = "sealed phase: scores are withheld until the phase is revealed"
NOT_SELECTED_NOTE = "not selected for the final ranking of this sealed phase: scores are withheld"
LADDER_NOTE = "Ladder phase: exact scores are withheld; the board shows the team's rounded displayed value"


@dataclass(frozen=True)
class ScoreView:
    """What the viewer gets of one run's scores."""

    exact: bool  # the stored scores, report, plots and report history may be shown
    note: str | None  # why they are withheld (None when exact)
    ladder: dict[str, Any] | None  # Ladder phases: {"displayed", "moved", "note"}
    selected: bool | None  # sealed phases: whether the team selected the run (else None)
    phase: PhaseView
    disclosure: str  # what of the report is shown where `exact`: full, or summary (maintainers: full)


@dataclass
class ViewCache:
    """Look-ups shared by the runs of one list: phases by name, each team's stored Ladder steps once."""

    phases: dict[str, PhaseView] = field(default_factory=dict)
    ladders: dict[tuple[str, int], dict[int, dict[str, Any]]] = field(default_factory=dict)


def is_staff(viewer: Principal | None) -> bool:
    return viewer is not None and viewer.is_staff


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


def is_selected(session: Session, submission_id: int) -> bool:
    found = session.scalar(select(PhaseSelection.id).where(PhaseSelection.submission_id == submission_id))
    return found is not None


def score_view(
    session: Session,
    settings: Settings,
    sub: Submission,
    viewer: Principal | None,
    cache: ViewCache | None = None,
) -> ScoreView:
    """What `viewer` (None: anonymous) may see of `sub`'s scores (module docstring). `cache` shares
    look-ups across the runs of a list."""
    cache = cache if cache is not None else ViewCache()
    phase = cache.phases.get(sub.phase)
    if phase is None:
        phase = cache.phases[sub.phase] = of_name(session, settings, sub.phase)
    staff = is_staff(viewer)
    level = "full" if staff else phase.disclosure
    if phase.visibility == "sealed" and not sub.baseline:
        selected = is_selected(session, sub.id)
        if staff:
            return ScoreView(True, None, None, selected, phase, level)
        if phase.revealed_at is None:
            return ScoreView(False, SEALED_NOTE, None, selected, phase, level)
        return ScoreView(selected, None if selected else NOT_SELECTED_NOTE, None, selected, phase, level)
    if phase.ladder_board and not sub.baseline:
        ladder = _ladder_step(session, phase, sub, cache)
        return ScoreView(staff, None if staff else LADDER_NOTE, ladder, None, phase, level)
    return ScoreView(True, None, None, None, phase, level)


def shown_report(view: ScoreView, report: dict[str, Any] | None) -> dict[str, Any] | None:
    """The report JSON `view`'s viewer may read: None where the scores are withheld (sealed, Ladder,
    not selected), the summary in a ``summary`` phase, else the report as stored."""
    if not view.exact or not isinstance(report, dict):
        return None
    return report if view.disclosure == "full" else summary_report(report)


RANKINGS_SEALED_NOTE = "sealed phase: rank figures are withheld until the phase is revealed"
RANKINGS_LADDER_NOTE = "Ladder phase: rank figures, tiers, the significance map and expert bands are withheld"


def board_figures_note(phase: PhaseView, viewer: Principal | None) -> str | None:
    """The board counterpart of `score_view` for the rank figures of issue 21 (rank intervals,
    median ranks, ``p_first``, tiers, the significance map, each model against the expert bands,
    the bands themselves): None where `viewer` may see them, else why they are withheld.

    A sealed phase before its reveal and a Ladder phase withhold them from researchers and
    visitors (each is a channel to the exact scores the phase hides); maintainers always see them.
    """
    if is_staff(viewer):
        return None
    if phase.sealed:
        return RANKINGS_SEALED_NOTE
    if phase.ladder_board:
        return RANKINGS_LADDER_NOTE
    return None
