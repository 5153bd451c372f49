"""Per-app caches of the pages' expensive parts: rendered SVG plots, and the leaderboard rows (the
API's one cache, `server.leaderboard.cache`).

The plots are a field of the `AppState` (made at startup, never at import) and are keyed by what
they depend on, so they never need explicit invalidation: a plot by its submission's ``updated_at``
(or the board version), the board by the API's version key (count and latest ``updated_at`` of the
succeeded submissions), which every new result and review action changes.

Those keys stay on the server. A page's plot URL carries only `plot_version`, an HMAC of the key
(issue 19 item 6): spelled out, the board's key told anyone how many runs had succeeded, when the
latest one ended (to the microsecond) and how many selections a sealed round had.
"""

from __future__ import annotations

import hashlib
import hmac
import threading
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

from sqlalchemy.orm import Session

from server.core.principal import Principal
from server.core.settings import Settings
from server.core.state import AppState
from server.disclosure.disclose import board_figures_note
from server.leaderboard.cache import BoardCache
from server.leaderboard.references import board_references
from server.leaderboard.rows import BoardRow, ClinicalRow, withheld
from server.phases.service import PhaseView
from server.web import plots
from server.web.session import session_key

PLOT_CACHE_SIZE = 256
PLOT_VERSION_CHARS = 16  # 64 bits: a change is never missed by chance


def plot_version(state: AppState, *key: object) -> str:
    """The ``?v=`` of a plot URL: it changes whenever `key` (the cache key of the plot) does and
    tells nothing of it. HMAC-SHA256 under a key derived from the web session key, so nobody
    without the server's secret can test a guess of the board's state against it; servers behind
    one load balancer that share ``CSAWM_SESSION_SECRET`` write the same URL."""
    message = "\x1f".join(str(part) for part in key).encode()
    return hmac.new(state.plot_key, message, hashlib.sha256).hexdigest()[:PLOT_VERSION_CHARS]


def plot_key(settings: Settings) -> bytes:
    """The key of `plot_version`, derived from the web session key (made once, at startup)."""
    return hmac.new(session_key(settings), b"csawm plot version", hashlib.sha256).digest()


class PlotCache:
    """Rendered SVGs keyed by what they depend on (a row's `updated_at`, the board version)."""

    def __init__(self, size: int) -> None:
        self.size = size
        self.items: OrderedDict[tuple[Any, ...], plots.Plot] = OrderedDict()
        self.lock = threading.Lock()

    def get(self, key: tuple[Any, ...], build: Callable[[], plots.Plot]) -> plots.Plot:
        with self.lock:
            if key in self.items:
                self.items.move_to_end(key)
                return self.items[key]
        plot = build()
        with self.lock:
            self.items[key] = plot
            while len(self.items) > self.size:
                self.items.popitem(last=False)
        return plot


def board(
    session: Session, state: AppState, phase: PhaseView, viewer: Principal | None
) -> tuple[tuple[Any, ...], list[BoardRow]]:
    """The board rows of `phase` as `viewer` may see them (rank figures withheld where
    `board_figures_note` says so) and the board's version with that note (`server.leaderboard.cache`:
    rebuilt only when a scored submission, a phase, a selection or the test set changed)."""
    version, rows = state.parts.get(BoardCache).rows(session, board_references(state), phase)
    note = board_figures_note(phase, viewer)
    return (*version, phase.name, note), withheld(rows, note)


def clinical_board(session: Session, state: AppState, phase: PhaseView) -> list[ClinicalRow]:
    """The clinical view's rows (models, then LIBRA density rows), cached with the board."""
    return state.parts.get(BoardCache).clinical(session, board_references(state), phase)
