"""The run policy: one table from how a run stopped to what happens next.

Every ending of a run — a model that crashed, an engine that went away, a cancel, a worker shutting
down — is described as a `Fault` (stage, fault kind, error code) and handed to `decide`, which
reads `RULES` top to bottom; the first matching rule wins (as in Kubernetes'
``podFailurePolicy`` or Prefect's exit-code table). The rule says:

* **action** — ``retry`` (back to the queue, resumed at the same stage after `backoff`; bounded by
  ``CSAWM_MAX_ATTEMPTS``), ``fail`` (terminal: ``failed`` or ``cancelled``) or ``hand_back``
  (the worker is stopping: the run goes back to the queue at once, no attempt burned, no charge);
* **payer** — who pays if the run ends here: the ``submitter`` (the quota charge stands) or the
  ``project`` (refunded). A model fault once the hidden run started is always the submitter's:
  were it refundable, the hidden images could be probed for free (issue 19), so
  ``CSAWM_CHARGE_USER_FAILURES`` no longer decides anything;
* **told** — what the submitter sees: ``full`` (the message and the log: preflight runs on public
  or synthetic images), ``code`` (the error code and a fixed message: nothing derived from the hidden
  images), ``generic`` (our failure: no host paths, hostnames or exception text). Maintainers always
  see the full message and log; ``alert`` marks endings that need an operator (a broken deployment,
  a scorer crash), ``hold`` those after which the team's further runs wait for a maintainer
  (`server.runs.holds`): the scorer failed on a model's output, and re-running it — or the team's
  next image, one layer apart — could turn the crash into a channel; ``counts_for_duplicates``
  whether a run that ended by the rule still blocks its team from submitting the same image again
  (a cancel or our failure does not: `server.runs.lifecycle.earlier_duplicate`).

Retries that run out become ``fail`` with ``infra_error``, paid by the project. No other code
decides refunds: the worker applies `Decision` (`server.worker.endings`), the API's cancel asks
`decide` with stage ``queued``.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import timedelta

from runner.errors import FaultKind
from runner.spec import ErrorCode


class Stage(enum.StrEnum):
    """Where a run was when it stopped. ``queued`` covers a cancel before any container started."""

    QUEUED = "queued"
    PREFLIGHT = "preflight"
    HIDDEN = "hidden"
    SCORING = "scoring"


class Action(enum.StrEnum):
    RETRY = "retry"
    FAIL = "fail"
    HAND_BACK = "hand_back"


class Payer(enum.StrEnum):
    SUBMITTER = "submitter"
    PROJECT = "project"


class Told(enum.StrEnum):
    FULL = "full"
    CODE = "code"
    GENERIC = "generic"


@dataclass(frozen=True)
class Fault:
    """How a run stopped. `message` is the full text (for maintainers); `exit_code` may be shown."""

    stage: Stage
    kind: FaultKind
    code: ErrorCode
    message: str
    exit_code: int | None = None


@dataclass(frozen=True)
class Rule:
    """One row of the table; ``None`` in `stages`/`kinds`/`codes` matches anything."""

    stages: frozenset[Stage] | None
    kinds: frozenset[FaultKind] | None
    codes: frozenset[ErrorCode] | None
    action: Action
    payer: Payer
    told: Told
    reason: str  # the ledger / timeline reason
    backoff: bool = False  # retry after base * 2**retries (base: CSAWM_RETRY_BACKOFF)
    alert: bool = False
    hold: bool = False  # the team's further runs wait for a maintainer (server.runs.holds)
    code: ErrorCode | None = None  # the error code stored, when the rule sets it (else the fault's)
    counts_for_duplicates: bool = True  # False: the team may submit the same image again

    def matches(self, fault: Fault) -> bool:
        return (
            (self.stages is None or fault.stage in self.stages)
            and (self.kinds is None or fault.kind in self.kinds)
            and (self.codes is None or fault.code in self.codes)
        )


def _set(*items: Stage | FaultKind | ErrorCode) -> frozenset:  # type: ignore[type-arg]
    return frozenset(items)


_USER_FAULTS = _set(FaultKind.MODEL, FaultKind.TIMEOUT)

RULES: tuple[Rule, ...] = (
    Rule(None, _set(FaultKind.SHUTDOWN), None, Action.HAND_BACK, Payer.PROJECT, Told.GENERIC,
         "the worker stopped; the run is handed back"),
    Rule(_set(Stage.QUEUED, Stage.PREFLIGHT), _set(FaultKind.CANCELLED), None, Action.FAIL,
         Payer.PROJECT, Told.FULL, "cancelled before the hidden run started",
         code=ErrorCode.CANCELLED, counts_for_duplicates=False),
    Rule(None, _set(FaultKind.CANCELLED), None, Action.FAIL, Payer.SUBMITTER, Told.FULL,
         "cancelled after the hidden run started", code=ErrorCode.CANCELLED, counts_for_duplicates=False),
    Rule(_set(Stage.PREFLIGHT), _USER_FAULTS, None, Action.FAIL, Payer.PROJECT, Told.FULL,
         "preflight failure costs no quota"),
    Rule(_set(Stage.HIDDEN), _USER_FAULTS, None, Action.FAIL, Payer.SUBMITTER, Told.CODE,
         "model failure on the hidden images"),
    Rule(_set(Stage.SCORING), _set(FaultKind.MODEL), _set(ErrorCode.OUTPUT_INVALID), Action.FAIL,
         Payer.SUBMITTER, Told.CODE, "invalid predictions for the hidden images"),
    Rule(_set(Stage.SCORING), _set(FaultKind.SCORER), None, Action.FAIL, Payer.SUBMITTER, Told.GENERIC,
         "the scorer failed on the model's predictions; the team is held for review",
         alert=True, hold=True, code=ErrorCode.INFRA_ERROR, counts_for_duplicates=False),
    Rule(None, _set(FaultKind.TRANSIENT_INFRA), None, Action.RETRY, Payer.PROJECT, Told.GENERIC,
         "infrastructure failure", backoff=True, code=ErrorCode.INFRA_ERROR, counts_for_duplicates=False),
    Rule(None, _set(FaultKind.PERMANENT_INFRA), None, Action.FAIL, Payer.PROJECT, Told.GENERIC,
         "infrastructure failure", alert=True, code=ErrorCode.INFRA_ERROR, counts_for_duplicates=False),
    # Anything else (a model fault where none can happen, say) is our bug: fail, refund, alert.
    Rule(None, None, None, Action.FAIL, Payer.PROJECT, Told.GENERIC, "unexpected ending", alert=True),
)  # fmt: skip

# The error codes a run ends with when its rule frees the image: a run stored with one of them does
# not block a resubmission. Each such rule names its code, so the stored code tells the rule apart.
DUPLICATE_FREE_CODES: frozenset[ErrorCode] = frozenset(
    r.code for r in RULES if not r.counts_for_duplicates and r.code is not None
)


@dataclass(frozen=True)
class Decision:
    """What to do with a run that stopped, and what to tell whom."""

    action: Action
    refund: bool  # only meaningful for FAIL: the quota charge is given back
    code: ErrorCode
    told: Told
    reason: str
    backoff: timedelta
    alert: bool
    hold: bool  # only with FAIL: hold the team's further runs (server.runs.holds)
    rule: Rule


MAX_BACKOFF = timedelta(minutes=5)


def decide(
    fault: Fault,
    *,
    retries: int,
    max_attempts: int,
    backoff_base: timedelta = timedelta(seconds=2),
) -> Decision:
    """The decision for `fault`, given how many retries the run already had.

    A ``retry`` rule becomes ``fail`` with ``infra_error`` once ``retries + 1 >= max_attempts``
    (every try counts, the first included). Backoff doubles per retry: ``backoff_base * 2**retries``,
    capped at `MAX_BACKOFF`.
    """
    rule = next(r for r in RULES if r.matches(fault))
    action, code = rule.action, rule.code or fault.code
    if action is Action.RETRY and retries + 1 >= max_attempts:
        action, code = Action.FAIL, ErrorCode.INFRA_ERROR
    backoff = timedelta(0)
    if action is Action.RETRY and rule.backoff:
        backoff = min(backoff_base * (2**retries), MAX_BACKOFF)
    reason = rule.reason if action is rule.action else f"{rule.reason}; retries exhausted"
    return Decision(
        action=action,
        refund=action is Action.FAIL and rule.payer is Payer.PROJECT,
        code=code,
        told=rule.told,
        reason=reason,
        backoff=backoff,
        alert=rule.alert or (action is not rule.action),
        hold=rule.hold and action is Action.FAIL,
        rule=rule,
    )
