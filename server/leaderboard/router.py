"""`GET /api/v1/leaderboard`: public, no auth. The serialised body is cached per phase until a
scored submission, a phase or a selection changes (new result, review action) or the test set does,
so a busy leaderboard costs a few small queries and two file stats. Two requests racing on a stale
cache may both rebuild it; they produce the same bytes."""

from __future__ import annotations

import json
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query, Response

from server.clock import utcnow
from server.core.deps import StateDep
from server.core.openapi import error_responses
from server.leaderboard import pending
from server.leaderboard.cache import BoardCache
from server.leaderboard.references import board_references
from server.phases.service import board_phase

router = APIRouter(prefix="/api/v1/leaderboard", tags=["leaderboard"])


_LEADERBOARD_DOC: dict[str, Any] = {
    "responses": {
        "200": {
            "description": '{"rows": [...], "pending": [...]}: rows in the metric registry\'s order '
            "(docs/api.md); view=clinical gives AUC and OR Q4 per endpoint and the LIBRA density rows "
            "(kind density); pending lists the baselines training, building, queued or running"
        }
    }
}


@router.get("", openapi_extra=_LEADERBOARD_DOC, responses=error_responses(404))
def get_leaderboard(
    state: StateDep,
    best_per_team: bool = True,
    view: Literal["masking", "clinical"] = "masking",
    phase: Annotated[str | None, Query(min_length=1, max_length=64)] = None,
) -> Response:
    """Public. ``{"phase": ..., "rows": [...], "pending": [...]}``: the phase shown (default: the
    current one; 404 for an unknown one), the rows in leaderboard order (docs/api.md) and the
    baselines on their way (`server.leaderboard.pending`, read on every request: it changes with
    each training step while the rows' cached body does not)."""
    references = board_references(state)
    with state.db.session() as session:  # one connection for the whole request
        shown = board_phase(session, state.settings, phase)
        body = state.parts.get(BoardCache).body(session, references, shown, best_per_team, view)
        coming = json.dumps(pending.pending_baselines(session), separators=(",", ":")).encode()
    described = json.dumps(shown.to_json(utcnow()), separators=(",", ":")).encode()
    content = b"".join((b'{"phase":', described, b',"rows":', body, b',"pending":', coming, b"}"))  # one copy
    return Response(content=content, media_type="application/json")
