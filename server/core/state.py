"""What the app holds for its lifetime, built in the lifespan (never at import)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from server.agreements.document import Agreement
from server.core.db import Database
from server.core.metrics import Metrics
from server.core.settings import Settings


@dataclass
class AppState:
    settings: Settings
    db: Database
    metrics: Metrics
    agreement: Agreement | None = None  # CSAWM_DUA_FILE, read once in create_app
    worker: Any = None
    dispatcher: Any = None
    extras: dict[str, Any] = field(default_factory=dict)
