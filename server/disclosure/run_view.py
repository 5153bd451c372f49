"""What a viewer may see of a run's figures and timestamps (issue 19, items 3 and 5).

On the hidden images a model controls how long it runs, how much CPU and memory it uses and when it
ends, so every figure measured from the hidden stage on — and every timestamp it moves — can carry
bits of the private set to whoever reads it (``benchmarks/bench_channels.py`` measures how many).
``CSAWM_HIDDEN_RUNTIME`` decides what a submitter (the team, or anyone who is not a maintainer) sees:

==============  ====================================================================================
level           hidden-stage figures shown to submitters
==============  ====================================================================================
``maintainers`` none (the default)
``coarse``      durations (wall, container, CPU, GPU, queue) rounded up to whole minutes, memory up
                to whole GiB
``submitters``  exact (an explicit opt-in, for a test set that is not secret)
==============  ====================================================================================

Under ``maintainers`` and ``coarse`` every timestamp of a run but its submission time is rounded
down to the minute. Figures measured before the model sees a hidden image (the image load, the
preflight on public or synthetic images) are exact for everyone. Whatever the level, a submitter
never sees the worker's host and name, nor the hidden predictions' hash (a model steers its prefix).
Maintainers see everything.

Every surface that shows these fields — the API (``server.submissions.router``), the report and team
pages (``server.web``), the delivery log, the quota ledger, webhooks and mails — goes through
`run_view` and `shown_time` here, so the pages show exactly what the API shows.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any, Literal, overload

from server.core.principal import Principal
from server.models import Submission

if TYPE_CHECKING:
    from server.core.settings import Settings

HiddenRuntime = Literal["maintainers", "coarse", "submitters"]
Figures = Literal["exact", "coarse", "withheld"]

MINUTE_S = 60
GIB = 1024**3

#: Measured before the model sees a hidden image (image load; preflight on public or synthetic images).
BEFORE_HIDDEN_TIMINGS = frozenset({"image_load_s", "preflight_s"})
BEFORE_HIDDEN_PHASES = frozenset({"preflight"})
#: Never shown to a submitter: where it ran (item 5) and the predictions' hash (its prefix is steered).
MAINTAINER_ONLY_REPRO = frozenset({"host", "worker", "predictions_sha256"})


@dataclass(frozen=True)
class Viewer:
    """Who looks at a run: a maintainer (``staff``) sees everything, anyone else what `level` allows."""

    staff: bool
    level: HiddenRuntime

    @property
    def figures(self) -> Figures:
        """How this viewer gets the hidden-stage figures."""
        if self.staff or self.level == "submitters":
            return "exact"
        return "coarse" if self.level == "coarse" else "withheld"


def viewer_of(user: Principal | None, settings: Settings) -> Viewer:
    return Viewer(staff=user is not None and user.is_staff, level=settings.hidden_runtime)


def team_viewer(settings: Settings) -> Viewer:
    """The reader of a webhook or a mail: the team, a submitter."""
    return Viewer(staff=False, level=settings.hidden_runtime)


@dataclass(frozen=True)
class EventView:
    from_status: str | None
    status: str
    at: datetime
    note: str | None
    detail: str | None


@dataclass(frozen=True)
class RunView:
    """A run's figures and timestamps as one viewer may see them."""

    figures: Figures
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    timings: dict[str, Any] | None
    runtime: dict[str, Any] | None
    reproducibility: dict[str, Any] | None
    error_detail: str | None
    events: tuple[EventView, ...]


@overload
def shown_time(at: datetime, viewer: Viewer) -> datetime: ...
@overload
def shown_time(at: datetime | None, viewer: Viewer) -> datetime | None: ...
def shown_time(at: datetime | None, viewer: Viewer) -> datetime | None:
    """A run timestamp as `viewer` sees it: exact, or rounded down to the minute."""
    if at is None or viewer.figures == "exact":
        return at
    return at.replace(second=0, microsecond=0)


def coarse_figure(key: str, value: Any) -> Any:
    """A hidden-stage figure under ``coarse``: seconds (``*_s``) rounded up to whole minutes, bytes
    (``*_bytes``) up to whole GiB; anything else (or a non-number) is withheld (None)."""
    if not isinstance(value, int | float) or isinstance(value, bool):
        return None
    if key.endswith("_bytes"):
        return math.ceil(value / GIB) * GIB
    if key.endswith("_s"):
        return math.ceil(value / MINUTE_S) * MINUTE_S
    return None


_WITHHELD = object()


def _shown(figures: Figures, before_hidden: bool, key: str, value: Any) -> Any:
    """One figure as `figures` shows it; `_WITHHELD` when it is left out."""
    if figures == "exact" or before_hidden:
        return value
    return coarse_figure(key, value) if figures == "coarse" else _WITHHELD


def _timings(timings: Mapping[str, Any], figures: Figures) -> dict[str, Any]:
    """``timings`` (and ``reproducibility.durations_s``): seconds by stage."""
    shown = {k: _shown(figures, k in BEFORE_HIDDEN_TIMINGS, k, v) for k, v in timings.items()}
    return {k: v for k, v in shown.items() if v is not _WITHHELD}


def _runtime(runtime: Mapping[str, Any] | None, figures: Figures) -> dict[str, Any] | None:
    """``runtime``: per phase wall, container, CPU and GPU seconds and peak memory; image size and load."""
    if runtime is None:
        return None
    out = dict(runtime)
    phases = runtime.get("phases")
    if isinstance(phases, Mapping):
        out["phases"] = {}
        for name, values in phases.items():
            before = name in BEFORE_HIDDEN_PHASES
            if figures == "exact" or before:
                out["phases"][name] = values
            elif figures == "coarse" and isinstance(values, Mapping):
                out["phases"][name] = {k: coarse_figure(k, v) for k, v in values.items()}
    return out


def _reproducibility(repro: Mapping[str, Any] | None, viewer: Viewer) -> dict[str, Any] | None:
    if repro is None or viewer.staff:
        return None if repro is None else dict(repro)
    figures = viewer.figures
    out = {k: v for k, v in repro.items() if k not in MAINTAINER_ONLY_REPRO}
    if isinstance(out.get("durations_s"), Mapping):
        out["durations_s"] = _timings(out["durations_s"], figures)
    if isinstance(out.get("peak_memory_bytes"), Mapping):
        memory = {
            phase: _shown(figures, phase in BEFORE_HIDDEN_PHASES, "peak_memory_bytes", value)
            for phase, value in out["peak_memory_bytes"].items()
        }
        out["peak_memory_bytes"] = {k: v for k, v in memory.items() if v is not _WITHHELD}
    return out


def run_view(sub: Submission, viewer: Viewer) -> RunView:
    """The one view of a run's figures, timestamps and maintainer texts (`viewer` decides)."""
    figures = viewer.figures
    return RunView(
        figures=figures,
        created_at=sub.created_at,
        started_at=shown_time(sub.started_at, viewer),
        finished_at=shown_time(sub.finished_at, viewer),
        timings=None if sub.timings is None else _timings(sub.timings, figures),
        runtime=_runtime(sub.runtime, figures),
        reproducibility=_reproducibility(sub.reproducibility, viewer),
        error_detail=sub.error_detail if viewer.staff else None,
        events=tuple(
            EventView(
                from_status=e.from_status,
                status=e.to_status,
                at=shown_time(e.at, viewer),
                note=e.note,
                detail=e.detail if viewer.staff else None,
            )
            for e in sub.events
        ),
    )
