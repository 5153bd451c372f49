"""The run policy table (issue 11, issue 19): every (stage, fault kind, error code) cell, written out
by hand here and compared with `decide`, plus retries, backoff, charges and holds."""

from __future__ import annotations

import itertools
from datetime import timedelta

import pytest

from runner.errors import FaultKind
from runner.spec import ErrorCode
from server.runs.disclosure import submitter_message
from server.runs.policy import RULES, Action, Fault, Stage, Told, decide

# What should happen, stated independently of the table: (action, refunded, told) per stage and kind,
# for a run on its first try.
A, F, H = Action.RETRY, Action.FAIL, Action.HAND_BACK
EXPECTED: dict[tuple[Stage, FaultKind], tuple[Action, bool, Told]] = {}
for stage in Stage:
    EXPECTED[stage, FaultKind.SHUTDOWN] = (H, False, Told.GENERIC)
    EXPECTED[stage, FaultKind.TRANSIENT_INFRA] = (A, False, Told.GENERIC)
    EXPECTED[stage, FaultKind.PERMANENT_INFRA] = (F, True, Told.GENERIC)
    EXPECTED[stage, FaultKind.CANCELLED] = (F, stage in (Stage.QUEUED, Stage.PREFLIGHT), Told.FULL)
    EXPECTED[stage, FaultKind.SCORER] = (F, True, Told.GENERIC)  # only scoring has a scorer: else our bug
# The scorer failed on the model's predictions: ours, but a hidden run happened; charged, not retried.
EXPECTED[Stage.SCORING, FaultKind.SCORER] = (F, False, Told.GENERIC)
for kind in (FaultKind.MODEL, FaultKind.TIMEOUT):
    EXPECTED[Stage.PREFLIGHT, kind] = (F, True, Told.FULL)  # preflight failures cost nothing
    EXPECTED[Stage.HIDDEN, kind] = (F, False, Told.CODE)  # always charged; nothing of the hidden run shown
    EXPECTED[Stage.QUEUED, kind] = (F, True, Told.GENERIC)  # cannot happen: ours, refunded
EXPECTED[Stage.SCORING, FaultKind.TIMEOUT] = (F, True, Told.GENERIC)


def _expected(stage: Stage, kind: FaultKind, code: ErrorCode) -> tuple[Action, bool, Told]:
    if (stage, kind) == (Stage.SCORING, FaultKind.MODEL):
        # only invalid predictions are the model's fault at scoring; anything else is our bug
        return (F, False, Told.CODE) if code is ErrorCode.OUTPUT_INVALID else (F, True, Told.GENERIC)
    return EXPECTED[stage, kind]


CELLS = list(itertools.product(Stage, FaultKind, ErrorCode))


@pytest.mark.parametrize(("stage", "kind", "code"), CELLS, ids=lambda v: getattr(v, "value", str(v)))
def test_every_cell_of_the_table(stage: Stage, kind: FaultKind, code: ErrorCode) -> None:
    d = decide(Fault(stage, kind, code, "boom"), retries=0, max_attempts=3)
    assert (d.action, d.refund, d.told) == _expected(stage, kind, code)
    if kind is FaultKind.PERMANENT_INFRA:
        assert d.code is ErrorCode.INFRA_ERROR and d.alert
    scorer_crash = (stage, kind) == (Stage.SCORING, FaultKind.SCORER)
    assert d.hold is scorer_crash  # only a scorer crash holds the team
    if scorer_crash:
        assert (d.code, d.alert) == (ErrorCode.INFRA_ERROR, True)


def test_only_impossible_cells_reach_the_catch_all() -> None:
    """The last rule (our bug: refund, alert) is reached only by cells no stage can produce: a model
    fault before any container ran, a timeout while scoring, a model fault at scoring other than
    invalid predictions, a scorer fault outside scoring."""
    last = RULES[-1]
    assert (last.stages, last.kinds, last.codes) == (None, None, None)
    caught = {
        (p, k, c) for p, k, c in CELLS if next(r for r in RULES if r.matches(Fault(p, k, c, ""))) is last
    }
    expected = {(Stage.QUEUED, k, c) for k in (FaultKind.MODEL, FaultKind.TIMEOUT) for c in ErrorCode}
    expected |= {(Stage.SCORING, FaultKind.TIMEOUT, c) for c in ErrorCode}
    expected |= {(Stage.SCORING, FaultKind.MODEL, c) for c in ErrorCode if c is not ErrorCode.OUTPUT_INVALID}
    expected |= {(p, FaultKind.SCORER, c) for p in Stage if p is not Stage.SCORING for c in ErrorCode}
    assert caught == expected


def test_retries_run_out_into_a_refunded_infra_error() -> None:
    fault = Fault(Stage.HIDDEN, FaultKind.TRANSIENT_INFRA, ErrorCode.INFRA_ERROR, "engine away")
    assert decide(fault, retries=0, max_attempts=2).action is Action.RETRY
    last = decide(fault, retries=1, max_attempts=2)
    assert (last.action, last.refund, last.code, last.alert) == (
        Action.FAIL,
        True,
        ErrorCode.INFRA_ERROR,
        True,
    )
    assert "retries exhausted" in last.reason
    only = decide(fault, retries=0, max_attempts=1)
    assert only.action is Action.FAIL


def test_backoff_doubles_per_retry_and_is_capped() -> None:
    fault = Fault(Stage.PREFLIGHT, FaultKind.TRANSIENT_INFRA, ErrorCode.INFRA_ERROR, "x")
    waits = [
        decide(fault, retries=n, max_attempts=20, backoff_base=timedelta(seconds=3)).backoff
        for n in range(10)
    ]
    assert waits[:3] == [timedelta(seconds=3), timedelta(seconds=6), timedelta(seconds=12)]
    assert waits[-1] == timedelta(minutes=5)
    assert decide(fault, retries=0, max_attempts=2, backoff_base=timedelta(0)).backoff == timedelta(0)


def test_every_hidden_stage_model_fault_uses_the_quota_slot() -> None:
    """Issue 19: a model fault once the hidden run started is never refunded (else the hidden images
    could be probed for free); a preflight failure always is. No setting changes either."""
    hidden_stage = [
        Fault(Stage.HIDDEN, kind, code, "")
        for kind in (FaultKind.MODEL, FaultKind.TIMEOUT)
        for code in ErrorCode
    ]
    hidden_stage.append(Fault(Stage.SCORING, FaultKind.MODEL, ErrorCode.OUTPUT_INVALID, ""))
    hidden_stage.append(Fault(Stage.SCORING, FaultKind.SCORER, ErrorCode.INFRA_ERROR, ""))
    for fault in hidden_stage:
        for retries in (0, 5):
            d = decide(fault, retries=retries, max_attempts=3)
            assert (d.action, d.refund) == (Action.FAIL, False), fault
    preflight = Fault(Stage.PREFLIGHT, FaultKind.MODEL, ErrorCode.NONZERO_EXIT, "")
    assert decide(preflight, retries=0, max_attempts=2).refund


def test_a_scorer_crash_is_not_retried_alerts_and_holds_the_team() -> None:
    fault = Fault(Stage.SCORING, FaultKind.SCORER, ErrorCode.INFRA_ERROR, "ZeroDivisionError")
    d = decide(fault, retries=0, max_attempts=5)
    assert (d.action, d.refund, d.code, d.alert, d.hold) == (
        Action.FAIL, False, ErrorCode.INFRA_ERROR, True, True
    )  # fmt: skip
    # the transient faults of scoring (the database away) are still retried, and hold nobody
    transient = Fault(Stage.SCORING, FaultKind.TRANSIENT_INFRA, ErrorCode.INFRA_ERROR, "db away")
    assert decide(transient, retries=0, max_attempts=5).action is Action.RETRY
    assert not decide(transient, retries=4, max_attempts=5).hold  # retries ran out: refunded, no hold


def test_submitter_messages_never_quote_the_hidden_run() -> None:
    """Told.CODE and Told.GENERIC texts are fixed: nothing of the fault's own message gets through."""
    marker = "HIDDEN-MARKER-/srv/host-42"
    for code in ErrorCode:
        for told in (Told.CODE, Told.GENERIC):
            fault = Fault(Stage.HIDDEN, FaultKind.MODEL, code, f"{marker} row 3: {marker}", exit_code=3)
            assert marker not in submitter_message(fault, told, code)
    # nor the exit code the model chose (issue 19): one text for all 256
    texts = {
        submitter_message(
            Fault(Stage.HIDDEN, FaultKind.MODEL, ErrorCode.NONZERO_EXIT, marker, exit_code=n),
            Told.CODE,
            ErrorCode.NONZERO_EXIT,
        )
        for n in range(256)
    }
    assert len(texts) == 1 and "exit code" not in texts.pop()
    preflight = Fault(Stage.PREFLIGHT, FaultKind.MODEL, ErrorCode.NONZERO_EXIT, "preflight failed: boom")
    assert submitter_message(preflight, Told.FULL, ErrorCode.NONZERO_EXIT) == "preflight failed: boom"
