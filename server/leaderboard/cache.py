"""The one leaderboard cache: the board's rows (`server.leaderboard.rows`) and the API's serialised
bodies, per phase and ``best_per_team``, for one version of the board. The API, the pages, the plots
and the CSV and JSON downloads all read it.

It needs no explicit invalidation: it is keyed by `service.version_key` (count and latest
``updated_at`` of the succeeded submissions, the phase and selection tables), which every new result,
review action, phase and selection change moves, and by the test set's digest; a new key drops every
entry. Two requests racing on a stale entry may both build it; they build the same rows.
"""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy.orm import Session

from server.leaderboard import ordering, service
from server.leaderboard.references import BoardReferences
from server.leaderboard.rows import BoardRow, ClinicalRow, withheld
from server.phases.service import PhaseView
from server.scoring.ranking import DEFAULT_ALPHA

#: The response's ``reference`` and ``groups`` of a board neither ordered by an expert nor grouped.
UNARRANGED: dict[str, Any] = {"reference": None, "groups": None}


def _dumps(value: Any) -> bytes:
    return json.dumps(value, allow_nan=False, separators=(",", ":")).encode()


@dataclass
class _Board:
    """One phase's board at one version: each part made on first use."""

    built: service.Board | None = None  # the rows with the significance map and stability made with them
    clinical: list[ClinicalRow] | None = None
    # the rows array and the figures beside it (`BoardCache.body`), by view, note, reference and group
    bodies: dict[tuple[str, str | None, str | None, str | None], tuple[bytes, bytes]] = field(
        default_factory=dict
    )


@dataclass
class BoardCache:
    """The boards of the current version, by phase name and ``best_per_team``."""

    alpha: float = DEFAULT_ALPHA  # the tiers' level (CSAWM_SIGNIFICANCE_ALPHA)
    lock: threading.Lock = field(default_factory=threading.Lock)
    key: tuple[Any, ...] | None = None
    boards: dict[tuple[str, bool], _Board] = field(default_factory=dict)  # (phase, best per team)
    as_of: datetime | None = None  # the boards as they stood then (`server.leaderboard.history`)

    def version(self, session: Session, references: BoardReferences | None) -> tuple[Any, ...]:
        """The board's current version; entries of any other are dropped."""
        key = (*service.version_key(session.connection()), references.labels_sha256 if references else None)
        with self.lock:
            if key != self.key:
                self.key, self.boards = key, {}
        return key

    def rows(
        self, session: Session, references: BoardReferences | None, phase: PhaseView, best: bool = True
    ) -> tuple[tuple[Any, ...], list[BoardRow]]:
        """(the version, the masking board of `phase`)."""
        key = self.version(session, references)
        return key, self._built(self._board(key, phase, best), session, references, phase, best).rows

    def board(
        self, session: Session, references: BoardReferences | None, phase: PhaseView, best: bool = True
    ) -> service.Board:
        """`phase`'s masking board with the significance map of its ranked rows and its stability table."""
        board = self._board(self.version(session, references), phase, best)
        return self._built(board, session, references, phase, best)

    def clinical(
        self, session: Session, references: BoardReferences | None, phase: PhaseView, best: bool = True
    ) -> list[ClinicalRow]:
        """The clinical view of `phase` (models, then the LIBRA density rows)."""
        board = self._board(self.version(session, references), phase, best)
        if board.clinical is None:
            board.clinical = service.build_clinical(
                session, best_per_team=best, references=references, phase=phase, as_of=self.as_of
            )
        return board.clinical

    def body(
        self,
        session: Session,
        references: BoardReferences | None,
        phase: PhaseView,
        best: bool,
        view: str,
        note: str | None,
        reference: str | None,
        group: str | None,
    ) -> tuple[bytes, bytes]:
        """The API's ``rows`` array of `phase` in `view` (masking, clinical or strata), ordered by
        `reference` and grouped by `group` (`server.leaderboard.ordering.arrange`), and the object of
        the figures beside it (``alpha``, ``stability``, ``reference``, ``groups``), both serialised
        once per `note` (`server.disclosure.disclose.board_figures_note`: the rank figures withheld,
        or None), `reference` and `group`. An as-of clinical view has no stability table."""
        board = self._board(self.version(session, references), phase, best)
        key = (view, note, reference, group)
        if key not in board.bodies:
            extra = UNARRANGED
            untabled = view == "clinical" and self.as_of is not None
            built = None if untabled else self._built(board, session, references, phase, best)
            if view == "clinical":
                rows_json = [row.to_json() for row in self.clinical(session, references, phase, best)]
            else:  # as a viewer with `note` sees them (`withheld`)
                assert built is not None
                shown = withheld(built.rows, note)
                if view == "strata":
                    rows_json = [row.to_strata_json() for row in shown]
                else:
                    shaped = ordering.arrange(shown, reference=reference, group=group, note=note)
                    rows_json, extra = shaped.rows_json(), shaped.extra_json()
            stability = built.stability if built is not None else None
            figures = {"alpha": self.alpha, "stability": stability and stability.to_json(note), **extra}
            board.bodies[key] = (_dumps(rows_json), _dumps(figures))
        return board.bodies[key]

    def _board(self, key: tuple[Any, ...], phase: PhaseView, best: bool) -> _Board:
        with self.lock:
            if key != self.key:  # the version moved on since `key` was read: build, keep nothing
                return _Board()
            return self.boards.setdefault((phase.name, best), _Board())

    def _built(
        self, board: _Board, session: Session, refs: BoardReferences | None, phase: PhaseView, best: bool
    ) -> service.Board:
        if board.built is None:
            board.built = service.build_board(
                session, best_per_team=best, references=refs, phase=phase, alpha=self.alpha, as_of=self.as_of
            )
        return board.built
