"""`GET /api/v1/leaderboard`: public, no auth. The serialised body is cached until a scored
submission changes (new result, review action) or the test set does, so a busy leaderboard costs one
index-only query and two file stats. Two requests racing on a stale cache may both rebuild it; they
produce the same bytes."""

from __future__ import annotations

import json
from typing import Any, Literal

from fastapi import APIRouter, Response

from server.core.deps import StateDep
from server.leaderboard import pending, service
from server.leaderboard.references import board_references

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


@router.get("", openapi_extra=_LEADERBOARD_DOC)
def get_leaderboard(
    state: StateDep, best_per_team: bool = True, view: Literal["masking", "clinical"] = "masking"
) -> Response:
    """Public. ``{"rows": [...], "pending": [...]}``: the rows in leaderboard order (docs/api.md) and
    the baselines on their way (`server.leaderboard.pending`, read on every request: it changes
    with each training step while the rows' cached body does not)."""
    references = board_references(state)
    with state.db.engine.connect() as conn:
        key = (*service.version_key(conn), references.labels_sha256 if references else None)
    cache: dict[Any, Any] = state.extras.setdefault("leaderboard", {})
    if cache.get("key") != key:
        cache.clear()  # keep only the current version (every view shares it)
        cache["key"] = key
    body = cache.get((best_per_team, view))
    if body is None:
        builder = service.build_clinical if view == "clinical" else service.build
        with state.db.session() as session:
            rows = builder(session, best_per_team=best_per_team, references=references)
        body = json.dumps(rows, allow_nan=False, separators=(",", ":")).encode()
        cache[(best_per_team, view)] = body
    with state.db.session() as session:
        coming = json.dumps(pending.pending_baselines(session), separators=(",", ":")).encode()
    content = b'{"rows":' + body + b',"pending":' + coming + b"}"
    return Response(content=content, media_type="application/json")
