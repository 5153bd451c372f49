"""Per-app caches of the pages' expensive parts: rendered SVG plots and the leaderboard rows.

Both are fields of the `AppState` (made at startup, never at import) and are keyed by what they
depend on, so they never need explicit invalidation: a plot by its submission's ``updated_at`` (or
the board version), the board by the API's version key (count and latest ``updated_at`` of the
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
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy.orm import Session

from server.core.settings import Settings
from server.core.state import AppState
from server.leaderboard import service as leaderboard_service
from server.leaderboard.references import board_references
from server.phases.service import PhaseView
from server.web import plots, queries
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


def plot_cache(state: AppState) -> PlotCache:
    return state.web_plots


@dataclass
class BoardCache:
    """The pages' board and clinical rows per phase name, for one version key of the board."""

    lock: threading.Lock = field(default_factory=threading.Lock)
    key: tuple[Any, ...] | None = None
    phases: dict[str, tuple[list[queries.BoardRow], list[queries.ClinicalRow]]] = field(default_factory=dict)


def _entry(
    session: Session, state: AppState, phase: PhaseView | None
) -> tuple[tuple[Any, ...], list[queries.BoardRow], list[queries.ClinicalRow]]:
    references = board_references(state)
    version = (
        *leaderboard_service.version_key(session.connection()),
        references.labels_sha256[:16] if references else "",
    )
    name = phase.name if phase else ""
    cache = state.web_board
    with cache.lock:
        if cache.key != version:
            cache.phases = {}
            cache.key = version
        if name not in cache.phases:
            cache.phases[name] = (
                queries.leaderboard_rows(session, references, phase),
                queries.clinical_rows(session, references, phase),
            )
        rows, clinical = cache.phases[name]
    return (*version, name), rows, clinical


def board(
    session: Session, state: AppState, phase: PhaseView | None = None
) -> tuple[tuple[Any, ...], list[queries.BoardRow]]:
    """The board rows of `phase`, rebuilt only when a scored submission, a phase, a selection or the
    test set changed (the API's key)."""
    version, rows, _ = _entry(session, state, phase)
    return version, rows


def clinical_board(
    session: Session, state: AppState, phase: PhaseView | None = None
) -> list[queries.ClinicalRow]:
    """The clinical view's rows (models, then LIBRA density rows), cached with the board."""
    return _entry(session, state, phase)[2]
