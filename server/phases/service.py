"""Phases: which one is current, creating and changing them, revealing a sealed one (issue 15).

A phase's window is ``opens_at <= t < closes_at`` (``opens_at`` None: open since always;
``closes_at`` None: open-ended). Windows never overlap (refused at create and update), so at any
instant at most one phase is current and a submission goes to it; with none open a submission is
refused with `PhaseClosed` before its body is read.

Every phase is a row (issue 20): migration ``0010_phase_rows`` gives each phase name the stored
submissions use a row, and a server that had none a row for ``CSAWM_PHASE``, open-ended. An
open-ended phase runs until the next one: creating a phase that opens later closes it there.

Everything outside this module reads a phase as a frozen `PhaseView`.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, fields
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from server.clock import iso, utcnow
from server.core import audit
from server.core.errors import BadRequest, Conflict, NotFound, PhaseClosed
from server.core.settings import Settings
from server.models import Disclosure, Phase, TestSet, Visibility

NAME_RE = re.compile(r"^[a-z0-9][a-z0-9._-]{0,63}$")
EDITABLE = (
    "test_set", "opens_at", "closes_at", "quota_total", "quota_per_day", "quota_per_week", "visibility",
    "ladder", "ladder_level", "ladder_step", "max_selected", "disclosure", "compute_budget_s",
)  # fmt: skip


@dataclass(frozen=True)
class PhaseView:
    """A phase as the rest of the server reads it."""

    name: str
    test_set: str
    opens_at: datetime | None
    closes_at: datetime | None
    quota_total: int | None
    quota_per_day: int | None
    quota_per_week: int | None
    visibility: str
    ladder: bool
    ladder_level: float
    ladder_step: float
    max_selected: int
    revealed_at: datetime | None
    disclosure: str  # what submitters see of a report: full, or summary (server/scoring/summary.py)
    id: int | None = None
    compute_budget_s: int | None = None  # per team (server/operations/budgets.py); None: no budget

    @classmethod
    def of(cls, row: Phase) -> PhaseView:
        values = {item.name: getattr(row, item.name) for item in fields(cls)}
        return cls(
            **values
            | {key: kind(values[key]).value for key, kind in _ENUMS.items()}
            | {
                "ladder": bool(row.ladder),
                "ladder_level": float(row.ladder_level),
                "ladder_step": float(row.ladder_step),
                "max_selected": int(row.max_selected),
            }
        )

    @property
    def sealed(self) -> bool:
        """Scores withheld from researchers: a sealed phase before `reveal`."""
        return self.visibility == Visibility.SEALED.value and self.revealed_at is None

    @property
    def ladder_board(self) -> bool:
        """The Ladder applies: a live phase with it on (a sealed phase shows exact scores once
        revealed, to the selected runs only)."""
        return self.ladder and self.visibility == Visibility.LIVE.value

    def is_open(self, now: datetime) -> bool:
        return (self.opens_at is None or self.opens_at <= now) and (
            self.closes_at is None or now < self.closes_at
        )

    def to_json(self, now: datetime | None = None) -> dict[str, Any]:
        now = now or utcnow()
        # "stored" stays on the wire (the board's `phase`) from when a phase could be implicit
        out: dict[str, Any] = {"name": self.name, "stored": True}
        for item in fields(self):
            value = getattr(self, item.name)
            out[item.name] = iso(value) if isinstance(value, datetime) else value
        out.pop("id")
        out["open"] = self.is_open(now)
        return out


_ROWS = select(Phase).order_by(Phase.opens_at.nulls_first(), Phase.id)  # built once: every board request


def rows(session: Session) -> list[Phase]:
    return list(session.scalars(_ROWS))


def current(session: Session, settings: Settings, now: datetime | None = None) -> PhaseView | None:
    """The phase open at `now`; None when none is."""
    now = now or utcnow()
    return next((view for view in map(PhaseView.of, rows(session)) if view.is_open(now)), None)


def shown(session: Session, settings: Settings, now: datetime | None = None) -> PhaseView:
    """The phase the pages and the board default to: the current one; between phases the latest that
    opened; before the first, the first."""
    now = now or utcnow()
    stored = [PhaseView.of(r) for r in rows(session)]
    if not stored:
        raise NotFound("no competition phase exists: run `csawm db upgrade`")
    opened = [v for v in stored if v.opens_at is None or v.opens_at <= now]
    return next((v for v in stored if v.is_open(now)), opened[-1] if opened else stored[0])


def board_phase(
    session: Session, settings: Settings, name: str | None, at: datetime | None = None
) -> PhaseView:
    """The phase a board (as it stood at `at`) shows: `name` (404 when unknown), else the one shown then."""
    return by_name(session, settings, name) if name is not None else shown(session, settings, at)


def next_opening(session: Session, now: datetime) -> datetime | None:
    return session.scalar(select(Phase.opens_at).where(Phase.opens_at > now).order_by(Phase.opens_at))


def require_open(session: Session, settings: Settings, now: datetime | None = None) -> PhaseView:
    """The phase a submission goes to now; `PhaseClosed` (with the next opening) when none is open."""
    now = now or utcnow()
    found = current(session, settings, now)
    if found is not None:
        return found
    nxt = next_opening(session, now)
    when = f"; the next phase opens at {iso(nxt)}" if nxt else "; no phase is scheduled"
    raise PhaseClosed(
        f"no competition phase is open now{when}; nothing was uploaded or charged",
        next_opens_at=iso(nxt) if nxt else None,
    )


def by_name(session: Session, settings: Settings, name: str) -> PhaseView:
    """A phase by name (404 when unknown)."""
    return PhaseView.of(_row(session, name))


def _row(session: Session, name: str, *, lock: bool = False) -> Phase:
    query = select(Phase).where(Phase.name == name)
    row = session.scalar(query.with_for_update() if lock else query)
    if row is None:
        raise NotFound(f"phase {name!r} not found")
    return row


#: The empty window of a phase made for baselines: never open, and before every other window.
BASELINE_WINDOW = datetime(1970, 1, 1, tzinfo=UTC)


def baseline_phase(session: Session, name: str, *, actor: str) -> PhaseView:
    """The phase a baseline is filed under (``CSAWM_PHASE``), its row made here where none is (the
    setting renamed after the upgrade): live, private, ``summary``, with `BASELINE_WINDOW`, so it is
    real for every reader and nothing can be submitted to it."""
    row = session.scalar(select(Phase).where(Phase.name == name))
    if row is None:
        row = Phase(name=name, opens_at=BASELINE_WINDOW, closes_at=BASELINE_WINDOW)
        session.add(row)
        session.flush()
        audit.record(
            session, actor=actor, action="create_phase", target_type="phase", target_id=row.id,
            detail={**PhaseView.of(row).to_json(), "reason": "a baseline's phase (CSAWM_PHASE) had no row"},
        )  # fmt: skip
    return PhaseView.of(row)


# -- maintainer actions ----------------------------------------------------------------------------


# The phase columns stored as enums, by key (`_check`'s message lists their values in this order).
_ENUMS: dict[str, type[TestSet] | type[Visibility] | type[Disclosure]] = {
    "test_set": TestSet,
    "visibility": Visibility,
    "disclosure": Disclosure,
}


def _check(values: dict[str, Any]) -> None:
    """Refuse an inconsistent phase with a message naming the field."""
    for key, kind in _ENUMS.items():
        if values.get(key) not in (None, *(e.value for e in kind)):
            raise BadRequest(f"{key} must be {' or '.join(repr(e.value) for e in kind)}, not {values[key]!r}")
    if values.get("ladder") and values.get("visibility") == Visibility.SEALED.value:
        raise BadRequest(
            "the Ladder is for live phases: a sealed phase shows no score before its reveal and the "
            "selected runs' exact scores after it"
        )
    opens, closes = values.get("opens_at"), values.get("closes_at")
    if opens is not None and closes is not None and closes <= opens:
        raise BadRequest(f"closes_at ({iso(closes)}) must be after opens_at ({iso(opens)})")
    level = values.get("ladder_level")
    if level is not None and not 0.0 < level < 1.0:
        raise BadRequest(f"ladder_level must be between 0 and 1 (exclusive), not {level}")
    step = values.get("ladder_step")
    if step is not None and not 0.0 < step <= 1.0:
        raise BadRequest(f"ladder_step must be in (0, 1], not {step}")
    if values.get("max_selected") is not None and values["max_selected"] < 1:
        raise BadRequest("max_selected must be at least 1")
    for key in ("quota_total", "quota_per_day", "quota_per_week", "compute_budget_s"):
        if values.get(key) is not None and values[key] < 0:
            raise BadRequest(f"{key} must be 0 or more")


def _typed(values: dict[str, Any]) -> dict[str, Any]:
    return {k: _ENUMS[k](v) if k in _ENUMS and v is not None else v for k, v in values.items()}


def _refuse_overlap(
    session: Session, opens: datetime | None, closes: datetime | None, skip: int | None
) -> None:
    for other in (row for row in rows(session) if row.id != skip):
        starts_before_end = closes is None or other.opens_at is None or other.opens_at < closes
        if not starts_before_end or not (other.closes_at is None or opens is None or opens < other.closes_at):
            continue
        since = iso(other.opens_at) if other.opens_at else "always"
        theirs = f"{since} to {iso(other.closes_at) if other.closes_at else 'open-ended'}"
        raise Conflict(
            f"the window overlaps phase {other.name!r} ({theirs}); phases may not overlap, so that "
            "exactly one is current at a time",
            phase=other.name,
        )


def _yield_to(session: Session, opens: datetime, *, actor: str, actor_user_id: int | None) -> None:
    """A new phase opening at `opens` ends the phases whose end was never set: an open-ended one that
    opened before (it runs until the next phase), and one open since always (the upgrade's
    ``CSAWM_PHASE`` row, which has no start to order it by) still open at `opens`. So that row
    never blocks creating a phase. Any other overlap is still refused (`_refuse_overlap`)."""
    for row in rows(session):
        since_always = row.opens_at is None and (row.closes_at is None or opens < row.closes_at)
        open_ended_before = row.closes_at is None and row.opens_at is not None and row.opens_at < opens
        if since_always or open_ended_before:
            row.closes_at = opens
            session.flush()
            audit.record(
                session, actor=actor, actor_user_id=actor_user_id, action="close_phase", target_type="phase",
                target_id=row.id, detail={"closes_at": iso(opens), "reason": "the next phase opens"},
            )  # fmt: skip


def _decide_ladder(session: Session, row: Phase) -> None:
    """A Ladder phase's runs scored before it had the Ladder get their steps now, in finishing order."""
    from server.phases import ladder_steps  # imports this module

    ladder_steps.decide_all(session, row.name)


def create(
    session: Session, values: dict[str, Any], *, actor: str, actor_user_id: int | None = None
) -> Phase:
    name = values.get("name")
    if not isinstance(name, str) or not NAME_RE.fullmatch(name):
        raise BadRequest(
            f"phase name {name!r} must be a slug: lower-case letters, digits, '.', '_' or '-', "
            "starting with a letter or digit, at most 64 characters"
        )
    if session.scalar(select(Phase.id).where(Phase.name == name)) is not None:
        raise Conflict(f"phase {name!r} already exists")
    if values.get("opens_at") is None:
        raise BadRequest("opens_at is required")
    clean = {k: v for k, v in values.items() if k in EDITABLE and v is not None}
    _check(clean)
    clean.setdefault("disclosure", Disclosure.default_for(clean.get("test_set", TestSet.PRIVATE.value)).value)
    _yield_to(session, clean["opens_at"], actor=actor, actor_user_id=actor_user_id)
    _refuse_overlap(session, clean["opens_at"], clean.get("closes_at"), None)
    row = Phase(name=name, **_typed(clean))
    session.add(row)
    session.flush()
    _decide_ladder(session, row)
    audit.record(
        session, actor=actor, actor_user_id=actor_user_id, action="create_phase", target_type="phase",
        target_id=row.id, detail=PhaseView.of(row).to_json(),
    )  # fmt: skip
    return row


def update(
    session: Session, name: str, values: dict[str, Any], *, actor: str, actor_user_id: int | None = None
) -> Phase:
    """Change the given fields (a key present with None clears a nullable field: closes_at, quotas).

    A change of ``test_set`` without ``disclosure`` also sets the new test set's default disclosure,
    so a development phase made private never keeps ``full`` by accident.
    """
    row = _row(session, name, lock=True)
    unknown = sorted(set(values) - set(EDITABLE))
    if unknown:
        raise BadRequest(f"cannot change {', '.join(unknown)} of a phase")
    if row.revealed_at is not None and "visibility" in values:
        raise Conflict(f"phase {name!r} was revealed; its visibility can no longer change")
    merged = {key: getattr(row, key) for key in EDITABLE}
    values = dict(values)
    new_test_set = values.get("test_set")
    if new_test_set is not None and new_test_set != str(row.test_set) and "disclosure" not in values:
        values["disclosure"] = Disclosure.default_for(str(new_test_set)).value
    merged.update(values)
    if "opens_at" in values and values["opens_at"] is None:
        raise BadRequest("opens_at cannot be cleared")
    for required in ("test_set", "visibility", "ladder", "ladder_level", "ladder_step", "disclosure"):
        if merged.get(required) is None:
            raise BadRequest(f"{required} cannot be cleared")
    for key in _ENUMS:
        merged[key] = str(merged[key])
    _check(merged)
    _refuse_overlap(session, merged["opens_at"], merged["closes_at"], row.id)
    for key, value in _typed(values).items():
        setattr(row, key, value)
    session.flush()
    _decide_ladder(session, row)
    audit.record(
        session, actor=actor, actor_user_id=actor_user_id, action="update_phase", target_type="phase",
        target_id=row.id, detail={k: iso(v) if isinstance(v, datetime) else v for k, v in values.items()},
    )  # fmt: skip
    return row


def reveal(
    session: Session, name: str, *, actor: str, actor_user_id: int | None = None, now: datetime | None = None
) -> Phase:
    """End a sealed phase's secrecy: from now on its board ranks the selected runs with exact scores.

    Only after the phase closed, so that no selection can change once a score is known. The callers
    (the API's reveal route, ``csawm admin reveal-phase``) then run the app's `RevealHook` in the
    same transaction: it freezes the revealed board as a snapshot (`server.leaderboard.snapshots`,
    a package above this one).
    """
    now = now or utcnow()
    row = _row(session, name, lock=True)
    if row.visibility != Visibility.SEALED:
        raise Conflict(f"phase {name!r} is live, not sealed: there is nothing to reveal")
    if row.revealed_at is not None:
        raise Conflict(f"phase {name!r} was already revealed at {iso(row.revealed_at)}")
    if row.closes_at is None or row.closes_at > now:
        raise Conflict(
            f"phase {name!r} is still open; close it first (update-phase --closes-at), so that no "
            "selection can change after scores are shown"
        )
    row.revealed_at = now
    session.flush()
    audit.record(
        session, actor=actor, actor_user_id=actor_user_id, action="reveal_phase", target_type="phase",
        target_id=row.id,
    )  # fmt: skip
    return row


@dataclass(frozen=True)
class RevealHook:
    """What a reveal does besides its own rows, in the reveal's transaction: freeze the revealed board
    (issue 22 item 5). The leaderboard package sits above phases (the layers of docs/design.md), so
    the app factory (`server.app.build_state`, an app part) and ``csawm admin reveal-phase`` hand it
    in: `server.leaderboard.snapshots.freeze_revealed`."""

    run: Callable[[Session, Settings, PhaseView, str, int | None], object]

    def __call__(
        self, session: Session, settings: Settings, row: Phase, actor: str, user_id: int | None
    ) -> None:
        self.run(session, settings, PhaseView.of(row), actor, user_id)
