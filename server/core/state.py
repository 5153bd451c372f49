"""What the app holds for its lifetime, built once in the lifespan (`server.app.build_state`).

The core's own objects are fields. Each feature package's per-app object (a cache, the upload slots,
the embedded worker) is a **part**: one instance per class, made by the app factory at startup and
fetched by its class, so a route gets it typed (`parts.get(UploadSlots)` is an `UploadSlots`) while
the core names no feature package (the layers of docs/design.md). Nothing is made on first use.
A route reads one through its state (``state.parts.get(PlotCache)``) or an alias of its package, e.g.
``PlotCacheDep`` (`server.web.deps`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TypeVar

from server.core.db import Database
from server.core.metrics import Metrics
from server.core.settings import Settings

T = TypeVar("T")


class Parts:
    """The feature packages' per-app objects, at most one per class."""

    def __init__(self, *parts: object) -> None:
        self._by_class: dict[type, object] = {}
        for part in parts:
            self.add(part)

    def add(self, part: object) -> None:
        if type(part) in self._by_class:
            raise ValueError(f"the app already holds a {type(part).__name__}")
        self._by_class[type(part)] = part

    def find(self, kind: type[T]) -> T | None:
        """The part of this class, or None where the app runs without it (the embedded worker)."""
        part = self._by_class.get(kind)
        return part if isinstance(part, kind) else None

    def get(self, kind: type[T]) -> T:
        """The part of this class; the app factory makes every required one at startup."""
        part = self.find(kind)
        if part is None:
            raise LookupError(f"no {kind.__name__} was made at startup (server.app.build_state)")
        return part


@dataclass
class AppState:
    settings: Settings
    db: Database
    metrics: Metrics
    plot_key: bytes  # the HMAC key of the plots' ``?v=`` (server.web.cache.plot_version)
    parts: Parts = field(default_factory=Parts)
