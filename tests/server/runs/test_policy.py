"""The run policy table (issue 11): every (phase, fault kind, error code) cell, written out by hand
here and compared with `decide`, plus retries, backoff and the charge setting."""

from __future__ import annotations

import itertools
from datetime import timedelta

import pytest

from runner.errors import FaultKind
from runner.spec import ErrorCode
from server.runs.disclosure import submitter_message
from server.runs.policy import RULES, Action, Fault, Phase, Told, decide

# What should happen, stated independently of the table: (action, refunded, told) per phase and kind,
# for a run on its first try with CSAWM_CHARGE_USER_FAILURES on.
A, F, H = Action.RETRY, Action.FAIL, Action.HAND_BACK
EXPECTED: dict[tuple[Phase, FaultKind], tuple[Action, bool, Told]] = {}
for phase in Phase:
    EXPECTED[phase, FaultKind.SHUTDOWN] = (H, False, Told.GENERIC)
    EXPECTED[phase, FaultKind.TRANSIENT_INFRA] = (A, False, Told.GENERIC)
    EXPECTED[phase, FaultKind.PERMANENT_INFRA] = (F, True, Told.GENERIC)
    EXPECTED[phase, FaultKind.CANCELLED] = (F, phase in (Phase.QUEUED, Phase.PREFLIGHT), Told.FULL)
for kind in (FaultKind.MODEL, FaultKind.TIMEOUT):
    EXPECTED[Phase.PREFLIGHT, kind] = (F, True, Told.FULL)  # preflight failures cost nothing
    EXPECTED[Phase.HIDDEN, kind] = (F, False, Told.CODE)  # charged; nothing of the hidden run shown
    EXPECTED[Phase.QUEUED, kind] = (F, True, Told.GENERIC)  # cannot happen: ours, refunded
EXPECTED[Phase.SCORING, FaultKind.TIMEOUT] = (F, True, Told.GENERIC)


def _expected(phase: Phase, kind: FaultKind, code: ErrorCode) -> tuple[Action, bool, Told]:
    if (phase, kind) == (Phase.SCORING, FaultKind.MODEL):
        # only invalid predictions are the model's fault at scoring; anything else is our bug
        return (F, False, Told.CODE) if code is ErrorCode.OUTPUT_INVALID else (F, True, Told.GENERIC)
    return EXPECTED[phase, kind]


CELLS = list(itertools.product(Phase, FaultKind, ErrorCode))


@pytest.mark.parametrize(("phase", "kind", "code"), CELLS, ids=lambda v: getattr(v, "value", str(v)))
def test_every_cell_of_the_table(phase: Phase, kind: FaultKind, code: ErrorCode) -> None:
    d = decide(Fault(phase, kind, code, "boom"), retries=0, max_attempts=3, charge_user_failures=True)
    assert (d.action, d.refund, d.told) == _expected(phase, kind, code)
    if kind is FaultKind.PERMANENT_INFRA:
        assert d.code is ErrorCode.INFRA_ERROR and d.alert


def test_only_impossible_cells_reach_the_catch_all() -> None:
    """The last rule (our bug: refund, alert) is reached only by cells no phase can produce: a model
    fault before any container ran, a timeout while scoring, a model fault at scoring other than
    invalid predictions."""
    last = RULES[-1]
    assert (last.phases, last.kinds, last.codes) == (None, None, None)
    caught = {
        (p, k, c) for p, k, c in CELLS if next(r for r in RULES if r.matches(Fault(p, k, c, ""))) is last
    }
    expected = {(Phase.QUEUED, k, c) for k in (FaultKind.MODEL, FaultKind.TIMEOUT) for c in ErrorCode}
    expected |= {(Phase.SCORING, FaultKind.TIMEOUT, c) for c in ErrorCode}
    expected |= {(Phase.SCORING, FaultKind.MODEL, c) for c in ErrorCode if c is not ErrorCode.OUTPUT_INVALID}
    assert caught == expected


def test_retries_run_out_into_a_refunded_infra_error() -> None:
    fault = Fault(Phase.HIDDEN, FaultKind.TRANSIENT_INFRA, ErrorCode.INFRA_ERROR, "engine away")
    assert decide(fault, retries=0, max_attempts=2, charge_user_failures=True).action is Action.RETRY
    last = decide(fault, retries=1, max_attempts=2, charge_user_failures=True)
    assert (last.action, last.refund, last.code, last.alert) == (
        Action.FAIL,
        True,
        ErrorCode.INFRA_ERROR,
        True,
    )
    assert "retries exhausted" in last.reason
    only = decide(fault, retries=0, max_attempts=1, charge_user_failures=True)
    assert only.action is Action.FAIL


def test_backoff_doubles_per_retry_and_is_capped() -> None:
    fault = Fault(Phase.PREFLIGHT, FaultKind.TRANSIENT_INFRA, ErrorCode.INFRA_ERROR, "x")
    waits = [
        decide(
            fault, retries=n, max_attempts=20, charge_user_failures=True, backoff_base=timedelta(seconds=3)
        ).backoff
        for n in range(10)
    ]
    assert waits[:3] == [timedelta(seconds=3), timedelta(seconds=6), timedelta(seconds=12)]
    assert waits[-1] == timedelta(minutes=5)
    assert decide(
        fault, retries=0, max_attempts=2, charge_user_failures=True, backoff_base=timedelta(0)
    ).backoff == timedelta(0)


@pytest.mark.parametrize("charge", [True, False])
def test_the_charge_setting_decides_model_failures_on_hidden_images(charge: bool) -> None:
    for kind, code in ((FaultKind.MODEL, ErrorCode.OOM), (FaultKind.TIMEOUT, ErrorCode.TIMEOUT)):
        d = decide(
            Fault(Phase.HIDDEN, kind, code, ""), retries=0, max_attempts=2, charge_user_failures=charge
        )
        assert d.refund is (not charge)
    preflight = Fault(Phase.PREFLIGHT, FaultKind.MODEL, ErrorCode.NONZERO_EXIT, "")
    assert decide(preflight, retries=0, max_attempts=2, charge_user_failures=charge).refund


def test_submitter_messages_never_quote_the_hidden_run() -> None:
    """Told.CODE and Told.GENERIC texts are fixed: nothing of the fault's own message gets through."""
    marker = "HIDDEN-MARKER-/srv/host-42"
    for code in ErrorCode:
        for told in (Told.CODE, Told.GENERIC):
            fault = Fault(Phase.HIDDEN, FaultKind.MODEL, code, f"{marker} row 3: {marker}", exit_code=3)
            assert marker not in submitter_message(fault, told, code)
    # nor the exit code the model chose (issue 19): one text for all 256
    texts = {
        submitter_message(
            Fault(Phase.HIDDEN, FaultKind.MODEL, ErrorCode.NONZERO_EXIT, marker, exit_code=n),
            Told.CODE,
            ErrorCode.NONZERO_EXIT,
        )
        for n in range(256)
    }
    assert len(texts) == 1 and "exit code" not in texts.pop()
    preflight = Fault(Phase.PREFLIGHT, FaultKind.MODEL, ErrorCode.NONZERO_EXIT, "preflight failed: boom")
    assert submitter_message(preflight, Told.FULL, ErrorCode.NONZERO_EXIT) == "preflight failed: boom"
