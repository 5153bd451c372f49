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
from typing import Any

from sqlalchemy.orm import Session

from server.leaderboard import ordering, service
from server.leaderboard.ordering import Stability
from server.leaderboard.references import BoardReferences
from server.leaderboard.rows import BoardRow, ClinicalRow, withheld
from server.leaderboard.standing import SignificanceMap
from server.phases.service import PhaseView
from server.scoring.ranking import DEFAULT_ALPHA


@dataclass
class _Board:
    """One phase's board at one version: each part made on first use."""

    rows: list[BoardRow] | None = None
    significance: SignificanceMap | None = None  # of the ranked rows, made with `rows`
    stability: Stability | None = None  # of the model rows, made with `rows`
    clinical: list[ClinicalRow] | None = None
    bodies: dict[tuple[str, str | None], bytes] = field(default_factory=dict)  # rows array, by view, note
    # the rows array and the response's ``reference`` and ``groups``, by note, reference and group
    arranged: dict[tuple[str | None, str | None, str | None], tuple[bytes, dict[str, Any]]] = field(
        default_factory=dict
    )


@dataclass
class BoardCache:
    """The boards of the current version, by phase name and ``best_per_team``."""

    alpha: float = DEFAULT_ALPHA  # the tiers' level (CSAWM_SIGNIFICANCE_ALPHA)
    lock: threading.Lock = field(default_factory=threading.Lock)
    key: tuple[Any, ...] | None = None
    boards: dict[tuple[str, bool], _Board] = field(default_factory=dict)  # (phase, best per team)

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
        return key, self._rows(self._board(key, phase, best), session, references, phase, best)

    def significance(
        self, session: Session, references: BoardReferences | None, phase: PhaseView, best: bool = True
    ) -> SignificanceMap | None:
        """The significance map of `phase`'s ranked rows (None when no row is ranked)."""
        return self._built(session, references, phase, best).significance

    def stability(
        self, session: Session, references: BoardReferences | None, phase: PhaseView, best: bool = True
    ) -> Stability | None:
        """The stability table of `phase`'s model rows (`server.leaderboard.ordering`)."""
        return self._built(session, references, phase, best).stability

    def clinical(
        self, session: Session, references: BoardReferences | None, phase: PhaseView, best: bool = True
    ) -> list[ClinicalRow]:
        """The clinical view of `phase` (models, then the LIBRA density rows)."""
        board = self._board(self.version(session, references), phase, best)
        return self._clinical(board, session, references, phase, best)

    def body(
        self,
        session: Session,
        references: BoardReferences | None,
        phase: PhaseView,
        best: bool,
        view: str,
        note: str | None = None,
    ) -> bytes:
        """The API's ``rows`` array of `phase` in `view` (masking, clinical or strata), serialised once
        per `note` (`server.disclosure.disclose.board_figures_note`: the rank figures withheld, or
        None)."""
        board = self._board(self.version(session, references), phase, best)
        if (view, note) not in board.bodies:
            rows: list[BoardRow] | list[ClinicalRow]
            if view == "clinical":
                rows = self._clinical(board, session, references, phase, best)
            else:
                rows = withheld(self._rows(board, session, references, phase, best), note)
            rows_json = [
                row.to_strata_json() if view == "strata" and isinstance(row, BoardRow) else row.to_json()
                for row in rows
            ]
            board.bodies[view, note] = json.dumps(rows_json, allow_nan=False, separators=(",", ":")).encode()
        return board.bodies[view, note]

    def arranged(
        self,
        session: Session,
        references: BoardReferences | None,
        phase: PhaseView,
        best: bool,
        note: str | None,
        reference: str | None,
        group: str | None,
    ) -> tuple[bytes, dict[str, Any]]:
        """The masking ``rows`` array ordered by `reference` and grouped by `group`
        (`server.leaderboard.ordering.arrange`) and the response's ``reference`` and ``groups``,
        made once per `note`, `reference` and `group`."""
        board = self._board(self.version(session, references), phase, best)
        if (note, reference, group) not in board.arranged:
            rows = withheld(self._rows(board, session, references, phase, best), note)
            shaped = ordering.arrange(rows, reference=reference, group=group, note=note)
            body = json.dumps(shaped.rows_json(), allow_nan=False, separators=(",", ":")).encode()
            board.arranged[note, reference, group] = body, shaped.extra_json()
        return board.arranged[note, reference, group]

    def _board(self, key: tuple[Any, ...], phase: PhaseView, best: bool) -> _Board:
        with self.lock:
            if key != self.key:  # the version moved on since `key` was read: build, keep nothing
                return _Board()
            return self.boards.setdefault((phase.name, best), _Board())

    def _built(self, session: Session, refs: BoardReferences | None, phase: PhaseView, best: bool) -> _Board:
        """`phase`'s board of the current version with its rows, significance map and stability made."""
        board = self._board(self.version(session, refs), phase, best)
        self._rows(board, session, refs, phase, best)
        return board

    def _rows(
        self, board: _Board, session: Session, refs: BoardReferences | None, phase: PhaseView, best: bool
    ) -> list[BoardRow]:
        if board.rows is None:
            built = service.build_board(
                session, best_per_team=best, references=refs, phase=phase, alpha=self.alpha
            )
            board.significance, board.stability, board.rows = built.significance, built.stability, built.rows
        return board.rows

    @staticmethod
    def _clinical(
        board: _Board, session: Session, refs: BoardReferences | None, phase: PhaseView, best: bool
    ) -> list[ClinicalRow]:
        if board.clinical is None:
            board.clinical = service.build_clinical(session, best_per_team=best, references=refs, phase=phase)
        return board.clinical
