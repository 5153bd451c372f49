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

For a run that failed or was cancelled, `outcome` says what a submitter is told of its end (issue 23):
whether it was charged or refunded and why, what became of its log (the hidden run's is withheld
unless ``CSAWM_HIDDEN_LOGS=submitters``), the next step that helps (`NEXT_STEP`; after a failure on
the hidden images: a check at the hidden set's full scale under its limits, since a plain check
passed the preflight already)
and, where ``CSAWM_HIDDEN_HINT=exception_type``, the name of a built-in exception class found in the
hidden log (`server.runs.disclosure.exception_hint`: a closed list, a few bits a run).
Every surface gets these fields through `server.disclosure.disclose`, so the pages show what the API shows.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal, overload

from sqlalchemy import select
from sqlalchemy.orm import Session

from server.disclosure.hints import HiddenHint, HiddenLogs, exception_hint
from server.models import FailedPhase, LedgerKind, QuotaEntry, ReviewState, RunStatus, Submission
from server.scoring.results import RunRecord

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
    logs: HiddenLogs = "maintainers"
    hint: HiddenHint = "none"

    @property
    def figures(self) -> Figures:
        """How this viewer gets the hidden-stage figures."""
        if self.staff or self.level == "submitters":
            return "exact"
        return "coarse" if self.level == "coarse" else "withheld"


def shown_review(sub: Submission) -> ReviewState | None:
    """A run's review state as the API, the webhooks and the pages show it: none for a run that
    failed or was cancelled and that no maintainer hid or disqualified (there is nothing to review,
    and "pending" would never end)."""
    ended = sub.status in (RunStatus.FAILED, RunStatus.CANCELLED)
    return None if ended and sub.review_state is ReviewState.PENDING else sub.review_state


#: What to do after a failed run, by error code (docs/submitting.md, "What happens to a run"). ``IMAGE``
#: stands for the image; a client puts in the name or archive it submitted.
NEXT_STEP: dict[str, str] = {
    "image_invalid": "the image could not be used (format, architecture, entrypoint): fix it and run "
    "`csawm check IMAGE` before submitting again",
    "timeout": "the run reached its wall-time limit (the server's limits are on /guide/submitting): "
    "make the model faster and reproduce with `csawm check IMAGE --timeout SECONDS`",
    "oom": "the run reached its memory limit: use less memory (smaller batches) and reproduce with "
    "`csawm check IMAGE --memory SIZE`",
    "nonzero_exit": "the model exited with an error: read the log tail, fix it, and reproduce with "
    "`csawm check IMAGE`",
    "output_missing": "the model wrote no /output/predictions.csv: write it (see `csawm init` for an "
    "example) and reproduce with `csawm check IMAGE`",
    "output_invalid": "predictions.csv broke the contract (the message names the row and column); "
    "`csawm check IMAGE` validates it with the same reader",
    "infra_error": "not your model's fault: submit again later or ask the maintainers",
    "cancelled": "the run was cancelled; submit again when ready",
}
#: After a model's failure on the hidden images: the preflight (and a plain `csawm check`) passed, so
#: only a run at the hidden set's scale and contents can reproduce it.
ROBUST_STEP = (
    "the preflight passed, so reproduce it at the hidden set's full scale (CSAW-M: 475 private + 497 "
    "public images, 632x512 8-bit) under the hidden run's limits, with the same server configured: "
    "`csawm check IMAGE --robust`"
)
_HIDDEN_PHASES = (FailedPhase.HIDDEN, FailedPhase.SCORING)
_ROBUST_CODES = frozenset(
    {"timeout", "oom", "nonzero_exit", "output_missing", "output_invalid", "image_invalid"}
)


@dataclass(frozen=True)
class Charge:
    """A run's quota ledger: whether it was charged, and the reason of its refund, if refunded."""

    charged: bool
    refund_reason: str | None


def ledger_charge(session: Session, submission_id: int) -> Charge:
    """The quota ledger's word on run `submission_id` (one charge, and at most one refund of it)."""
    kinds = session.execute(
        select(QuotaEntry.kind, QuotaEntry.reason).where(QuotaEntry.submission_id == submission_id)
    ).all()
    refund = next((reason for kind, reason in kinds if kind is LedgerKind.REFUND), None)
    return Charge(charged=any(kind is LedgerKind.CHARGE for kind, _ in kinds), refund_reason=refund)


@dataclass(frozen=True)
class Outcome:
    """What a submitter is told of a run that failed or was cancelled."""

    charged: bool  # the quota slot stays used
    charge: str  # "charged: …" or "refunded: …" or "not charged: …", with the rule's reason
    log: str  # where the log is, and who can read the hidden run's
    next_step: str  # with ``IMAGE`` for the image
    hint: str | None  # CSAWM_HIDDEN_HINT=exception_type: a built-in exception name or "other"


def _charge_words(sub: Submission, charge: Charge) -> tuple[bool, str]:
    if charge.refund_reason is not None:
        return False, f"refunded: {charge.refund_reason}; the quota slot is free again"
    if not charge.charged:
        return False, "not charged: this run used no quota slot"
    if sub.failed_phase in _HIDDEN_PHASES and sub.error_code != "infra_error":
        why = (
            "a failure on the hidden images always uses its quota slot (a refund would make them "
            "free to probe)"
        )
    elif sub.status is RunStatus.CANCELLED:
        why = "it was cancelled after the hidden run started"
    else:
        why = "the model ran on the hidden images, so the run keeps its quota slot"
    return True, f"charged: {why}"


def _log_words(sub: Submission, viewer: Viewer) -> str:
    if sub.failed_phase not in _HIDDEN_PHASES:
        return f"the log tail is shown in full: `csawm logs {sub.id}`"
    if viewer.staff or viewer.logs == "submitters":
        return f"the hidden run's log tail: `csawm logs {sub.id}`"
    if viewer.logs == "none":
        return "the hidden run's log is not kept on this server: nobody can read it"
    return (
        "the hidden run's log is withheld: only the maintainers can read it (a model's output on the "
        "hidden images could carry them out)"
    )


def outcome_of(sub: Submission, viewer: Viewer, charge: Charge) -> Outcome | None:
    """What `viewer` is told of the end of `sub` (None unless it failed or was cancelled)."""
    if sub.status not in (RunStatus.FAILED, RunStatus.CANCELLED):
        return None
    code = sub.error_code or "cancelled"
    hidden_fault = sub.failed_phase in _HIDDEN_PHASES and code in _ROBUST_CODES
    charged, words = _charge_words(sub, charge)
    hint = None
    if hidden_fault and viewer.hint == "exception_type" and sub.failed_phase is FailedPhase.HIDDEN:
        hint = exception_hint(sub.hidden_log_tail)
    return Outcome(
        charged=charged,
        charge=words,
        log=_log_words(sub, viewer),
        next_step=ROBUST_STEP if hidden_fault else NEXT_STEP.get(code, NEXT_STEP["infra_error"]),
        hint=hint,
    )


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
    outcome: Outcome | None = None


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
            if figures == "exact" or name in BEFORE_HIDDEN_PHASES:
                out["phases"][name] = values
            elif figures == "coarse" and isinstance(values, Mapping):
                out["phases"][name] = {k: coarse_figure(k, v) for k, v in values.items()}
    return out


def _reproducibility(repro: Mapping[str, Any] | None, viewer: Viewer) -> dict[str, Any] | None:
    """The stored record (read as `RunRecord`, written back as it was), less what `viewer` may not
    see: the maintainer-only keys and the hidden stages' figures beyond `viewer.figures`."""
    if repro is None:
        return None
    record = RunRecord.read(repro)
    out = record.to_json()
    if viewer.staff:
        return out
    figures = viewer.figures
    for key in MAINTAINER_ONLY_REPRO:
        out.pop(key, None)
    if record.durations_s is not None:
        out["durations_s"] = _timings(record.durations_s, figures)
    if record.peak_memory_bytes is not None:
        memory = {
            phase: _shown(figures, phase in BEFORE_HIDDEN_PHASES, "peak_memory_bytes", value)
            for phase, value in record.peak_memory_bytes.items()
        }
        out["peak_memory_bytes"] = {k: v for k, v in memory.items() if v is not _WITHHELD}
    return out


def run_view(sub: Submission, viewer: Viewer, charge: Charge | None = None) -> RunView:
    """The one view of a run's figures, timestamps and maintainer texts (`viewer` decides), and,
    given its ledger `charge`, the `outcome` of a failed or cancelled run."""
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
        outcome=None if charge is None else outcome_of(sub, viewer, charge),
    )
