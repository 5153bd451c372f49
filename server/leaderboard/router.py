"""`GET /api/v1/leaderboard`: public, no auth. The serialised body is cached per phase until a
scored submission, a phase or a selection changes (new result, review action) or the test set does,
so a busy leaderboard costs a few small queries and two file stats. Two requests racing on a stale
cache may both rebuild it; they produce the same bytes."""

from __future__ import annotations

import json
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Query, Response
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from server.clock import utcnow
from server.core.deps import StateDep
from server.core.openapi import error_responses
from server.core.principal import Principal, authenticate
from server.leaderboard import pending
from server.leaderboard.cache import BoardCache
from server.leaderboard.references import board_references
from server.phases.service import board_phase
from server.phases.visibility import board_figures_note

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


_optional_bearer = HTTPBearer(
    auto_error=False, description="Optional: a maintainer's token shows withheld rank figures."
)


def optional_viewer(
    state: StateDep, credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_optional_bearer)]
) -> Principal | None:
    """The caller when a bearer token is given (a bad one is refused, 401), else None: the board is
    public; a token only matters where `board_figures_note` withholds figures from non-maintainers."""
    if credentials is None or credentials.scheme.lower() != "bearer" or not credentials.credentials:
        return None
    with state.db.session() as session:
        return authenticate(session, credentials.credentials)


ViewerDep = Annotated[Principal | None, Depends(optional_viewer)]
PhaseParam = Annotated[str | None, Query(min_length=1, max_length=64)]


@router.get("", openapi_extra=_LEADERBOARD_DOC, responses=error_responses(401, 404))
def get_leaderboard(
    state: StateDep,
    viewer: ViewerDep,
    best_per_team: bool = True,
    view: Literal["masking", "clinical"] = "masking",
    phase: PhaseParam = None,
) -> Response:
    """Public. ``{"phase": ..., "rows": [...], "pending": [...]}``: the phase shown (default: the
    current one; 404 for an unknown one), the rows in leaderboard order (docs/api.md) and the
    baselines on their way (`server.leaderboard.pending`, read on every request: it changes with
    each training step while the rows' cached body does not)."""
    references = board_references(state)
    with state.db.session() as session:  # one connection for the whole request
        shown = board_phase(session, state.settings, phase)
        note = board_figures_note(shown, viewer)
        body = state.parts.get(BoardCache).body(session, references, shown, best_per_team, view, note)
        coming = json.dumps(pending.pending_baselines(session), separators=(",", ":")).encode()
    described = json.dumps(shown.to_json(utcnow()), separators=(",", ":")).encode()
    content = b"".join((b'{"phase":', described, b',"rows":', body, b',"pending":', coming, b"}"))  # one copy
    return Response(content=content, media_type="application/json")


@router.get("/significance", responses=error_responses(401, 404))
def get_significance(
    state: StateDep,
    viewer: ViewerDep,
    best_per_team: bool = True,
    phase: PhaseParam = None,
    top: Annotated[
        int | None, Query(ge=2, description="rows of the map (at most CSAWM_SIGNIFICANCE_TOP)")
    ] = None,
) -> dict[str, Any]:
    """Public. The significance map of the board's top ranked rows (docs/api.md): ``p[i][j]`` and
    ``p_holm[i][j]`` in board order, for the first `top` rows (default and bound:
    ``CSAWM_SIGNIFICANCE_TOP``); ``map`` is null with a ``note`` where the phase withholds it."""
    references = board_references(state)
    with state.db.session() as session:
        shown = board_phase(session, state.settings, phase)
        note = board_figures_note(shown, viewer)
        cache = state.parts.get(BoardCache)
        found = None if note else cache.significance(session, references, shown, best_per_team)
    count = min(top or state.settings.significance_top, state.settings.significance_top)
    return {"phase": shown.name, "note": note, "map": found.top(count) if found is not None else None}
