"""`GET /api/v1/leaderboard`: public, no auth. The serialised body is cached per phase until a
scored submission, a phase or a selection changes (new result, review action) or the test set does,
so a busy leaderboard costs a few small queries and two file stats. Two requests racing on a stale
cache may both rebuild it; they produce the same bytes."""

from __future__ import annotations

import json
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Query, Response
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy.orm import Session

from server.clock import iso, utcnow
from server.core import audit
from server.core.deps import IdPath, MaintainerUser, SessionDep, StateDep
from server.core.openapi import error_responses
from server.core.principal import Principal, authenticate
from server.disclosure.disclose import board_figures_note
from server.leaderboard import history, ordering, pending, snapshots
from server.leaderboard.cache import BoardCache
from server.leaderboard.references import board_references
from server.phases.service import board_phase

router = APIRouter(prefix="/api/v1/leaderboard", tags=["leaderboard"])


_LEADERBOARD_DOC: dict[str, Any] = {
    "responses": {
        "200": {
            "description": '{"rows": [...], "pending": [...]}: rows in the metric registry\'s order '
            "(docs/api.md); view=clinical gives AUC and OR Q4 per endpoint and the LIBRA density rows "
            "(kind density); view=strata adds each model row's tau-b by stratum; pending lists the baselines "
            "training, building, queued or running"
        }
    }
}


_optional_bearer = HTTPBearer(
    auto_error=False, description="Optional: a maintainer's token shows withheld rank figures."
)


CredentialsDep = Annotated[HTTPAuthorizationCredentials | None, Depends(_optional_bearer)]


def _viewer(session: Session, credentials: HTTPAuthorizationCredentials | None) -> Principal | None:
    """The caller when a bearer token is given (a bad one is refused, 401), else None: the board is
    public; a token only matters where `board_figures_note` withholds figures from non-maintainers.
    Read in the request's own session, not as a dependency: a plain `def` dependency costs a
    thread-pool hand-off on every request of the board."""
    if credentials is None or credentials.scheme.lower() != "bearer" or not credentials.credentials:
        return None
    return authenticate(session, credentials.credentials)


PhaseParam = Annotated[str | None, Query(min_length=1, max_length=64)]
ReferenceParam = Annotated[
    str | None, Query(max_length=64, description="expert_1 … expert_5: order the model rows by that expert")
]
GroupParam = Annotated[str | None, Query(max_length=64, description="tier: group the rows by tier")]


def _board_query(view: str, reference: str | None, group: str | None) -> tuple[str | None, str | None]:
    """The parsed ``reference`` and ``group`` (422 in the API's words for any other value)."""
    expert, grouping = ordering.parse_reference(reference), ordering.parse_group(group)
    if view != "masking" and (expert is not None or grouping is not None):
        raise ordering.InvalidBoardQuery(
            f"reference and group arrange the masking board; leave them out with view={view}"
        )
    return expert, grouping


@router.get("", openapi_extra=_LEADERBOARD_DOC, responses=error_responses(400, 401, 404))
def get_leaderboard(
    state: StateDep,
    credentials: CredentialsDep,
    best_per_team: bool = True,
    view: Literal["masking", "clinical", "strata"] = "masking",
    phase: PhaseParam = None,
    as_of: Annotated[str | None, Query(min_length=1, max_length=64)] = None,
    reference: ReferenceParam = None,
    group: GroupParam = None,
) -> Response:
    """Public. ``{"phase": ..., "rows": [...], "pending": [...]}``: the phase shown (default: the
    current one; 404 for an unknown one), the rows in leaderboard order (docs/api.md) and the
    baselines on their way (`server.leaderboard.pending`, read on every request: it changes with
    each training step while the rows' cached body does not).

    With ``as_of`` (ISO 8601 with a time zone): the board as it stood then (`server.leaderboard.
    history`), the phase as it was then (default: the one shown then), ``pending`` empty, and
    ``"as_of"`` added; 400 for a malformed or future instant, 404 for one before the first run.

    ``reference=expert_k`` orders the model rows by their agreement with expert k, ``group=tier``
    lists the rows of each tier (`server.leaderboard.ordering`); 422 for any other value."""
    references = board_references(state)
    cache = state.parts.get(BoardCache)
    with state.db.session() as session:  # one connection for the whole request
        viewer = _viewer(session, credentials)
        expert, grouping = _board_query(view, reference, group)
        at = None if as_of is None else history.parse(session, as_of)
        if at is None:
            shown = board_phase(session, state.settings, phase)
        else:
            shown = history.phase_at(board_phase(session, state.settings, phase, at), at)
            cache = BoardCache(state.settings.significance_alpha, as_of=at)  # this request's only
        note = board_figures_note(shown, viewer)
        rows, figures = cache.body(session, references, shown, best_per_team, view, note, expert, grouping)
        coming = json.dumps(pending.pending_baselines(session) if at is None else [], separators=(",", ":"))
    described = json.dumps(shown.to_json(utcnow() if at is None else at), separators=(",", ":"))
    dated = "" if at is None else f',"as_of":{json.dumps(iso(at))}'
    head = f'{{"phase":{described}{dated},"rows":'.encode()
    # beside the rows: the tiers' level, the stability table, the reference order and the tier groups
    content = b"".join((head, rows, f',"pending":{coming},'.encode(), figures[1:]))  # one copy
    return Response(content=content, media_type="application/json")


snapshots_router = APIRouter(tags=["snapshots"])


class SnapshotIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    phase: Annotated[str | None, Field(min_length=1, max_length=64)] = None  # None: the phase shown now


@snapshots_router.post("/api/v1/admin/snapshots", status_code=201, responses=error_responses(404))
def create_snapshot(
    body: SnapshotIn, state: StateDep, session: SessionDep, user: MaintainerUser
) -> dict[str, Any]:
    """Maintainers. Freeze a phase's board now (`server.leaderboard.snapshots`): 201 with its
    ``id``, ``sha256`` (of the bytes ``GET /api/v1/snapshots/{id}`` returns), citable ``url`` and
    ``created_at``."""
    shown = board_phase(session, state.settings, body.phase)
    made = snapshots.freeze(
        session, state.settings, shown, reason=snapshots.ADMIN, actor=user.audit_name,
        actor_user_id=user.user_id, references=board_references(state),
    )  # fmt: skip
    audit.record(
        session, actor=user.audit_name, actor_user_id=user.user_id, action="create_snapshot",
        target_type="snapshot", target_id=made.id, detail={"phase": made.phase, "sha256": made.sha256},
    )  # fmt: skip
    return made.to_json()


@snapshots_router.get("/api/v1/snapshots")
def list_snapshots(state: StateDep, session: SessionDep) -> list[dict[str, Any]]:
    """Public. Every frozen board, newest first."""
    return [info.to_json() for info in snapshots.listed(session, state.settings)]


@snapshots_router.get("/api/v1/snapshots/{snapshot_id}", responses=error_responses(404))
def get_snapshot(snapshot_id: IdPath, state: StateDep, session: SessionDep) -> Response:
    """Public. The frozen JSON bytes, unchanged since they were made: their SHA-256 is the
    snapshot's ``sha256`` (also sent as the ``ETag``)."""
    info, data = snapshots.one(session, state.settings, snapshot_id)
    return Response(content=data, media_type="application/json", headers={"ETag": f'"{info.sha256}"'})


@router.get("/significance", responses=error_responses(401, 404))
def get_significance(
    state: StateDep,
    credentials: CredentialsDep,
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
        note = board_figures_note(shown, _viewer(session, credentials))
        cache = state.parts.get(BoardCache)
        found = None if note else cache.board(session, references, shown, best_per_team).significance
    count = min(top or state.settings.significance_top, state.settings.significance_top)
    return {"phase": shown.name, "alpha": cache.alpha, "note": note, "map": found and found.top(count)}
