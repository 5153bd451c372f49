"""What the app holds for its lifetime, built once in the lifespan (`server.app.build_state`).

Every per-app object is a typed field made at startup: no cache is made on first use, and there is
no bag of extras. Routes get what they need through the `Annotated` aliases of `server.core.deps`.

The field types of the feature packages are imported for the type checker only: at run time the
core imports none of them (the app factory, which may import every package, builds them).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from server.core.db import Database
from server.core.metrics import Metrics
from server.core.settings import Settings

if TYPE_CHECKING:
    from server.agreements.document import Agreement
    from server.leaderboard.cache import BoardCache
    from server.leaderboard.references import ReferenceCache
    from server.notifications.dispatcher import Dispatcher
    from server.review.flags import RankCache
    from server.submissions.upload import UploadSlots
    from server.web.cache import PlotCache
    from server.web.session import SessionSigner
    from server.worker.loop import Worker


@dataclass
class AppState:
    settings: Settings
    db: Database
    metrics: Metrics
    agreement: Agreement | None  # CSAWM_DUA_FILE, read once in create_app
    upload_slots: UploadSlots  # uploads in flight per team (CSAWM_MAX_CONCURRENT_UPLOADS)
    references: ReferenceCache  # the test set's reference rows of the leaderboard
    leaderboard: BoardCache  # the one leaderboard cache: rows and API bodies (API, pages, downloads)
    web_plots: PlotCache  # the pages' rendered plots
    plot_key: bytes  # the HMAC key of the plots' ``?v=`` (server.web.cache.plot_version)
    signer: SessionSigner  # the web pages' cookie signer
    review_ranks: RankCache  # ranked prediction files of the review flags
    worker: Worker | None = None  # the embedded worker, when this process runs one
    dispatcher: Dispatcher | None = None  # the embedded notification dispatcher, likewise
