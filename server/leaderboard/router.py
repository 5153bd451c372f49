"""`GET /api/v1/leaderboard`: public, no auth. The serialised body is cached until a scored
submission changes (new result, review action), so a busy leaderboard costs one index-only query.
Two requests racing on a stale cache may both rebuild it; they produce the same bytes."""

from __future__ import annotations

import json
from typing import Any

from fastapi import APIRouter, Response

from server.core.deps import StateDep
from server.leaderboard import service

router = APIRouter(prefix="/api/v1/leaderboard", tags=["leaderboard"])

_LEADERBOARD_DOC: dict[str, Any] = {
    "responses": {"200": {"description": '{"rows": [...]} ordered by tau-b then AMAE (docs/api.md)'}}
}


@router.get("", openapi_extra=_LEADERBOARD_DOC)
def get_leaderboard(state: StateDep, best_per_team: bool = True) -> Response:
    """Public. ``{"rows": [...]}`` in leaderboard order (docs/api.md)."""
    with state.db.engine.connect() as conn:
        key = (*service.version_key(conn), best_per_team)
    cache: dict[Any, bytes] = state.extras.setdefault("leaderboard", {})
    body = cache.get(key)
    if body is None:
        with state.db.session() as session:
            rows = service.build(session, best_per_team=best_per_team)
        body = json.dumps({"rows": rows}, allow_nan=False, separators=(",", ":")).encode()
        cache.clear()  # keep only the current version (both best_per_team views share it)
        cache[key] = body
    return Response(content=body, media_type="application/json")
