"""The one exit-code table and the fault taxonomy."""

from __future__ import annotations

import pytest

from runner.errors import (
    FaultKind,
    ImageInvalidError,
    PermanentInfraError,
    TransientInfraError,
    classify_exit,
    fault_kind,
    terminal_state,
)
from runner.spec import ErrorCode, TerminalState


@pytest.mark.parametrize(
    ("exit_code", "flags", "code", "message"),
    [
        (0, {}, None, "The model exited with code 0."),
        (3, {}, ErrorCode.NONZERO_EXIT, "The model exited with code 3."),
        (1, {}, ErrorCode.NONZERO_EXIT, "The model exited with code 1."),
        (125, {}, ErrorCode.IMAGE_INVALID, "The container could not be started (exit code 125)."),
        (126, {}, ErrorCode.IMAGE_INVALID, "The image's entrypoint is not executable (exit code 126)."),
        (
            127,
            {},
            ErrorCode.IMAGE_INVALID,
            "The image's entrypoint or a command it runs was not found (exit code 127).",
        ),
        (137, {}, ErrorCode.NONZERO_EXIT, "The model was killed by SIGKILL (exit code 137)."),
        (139, {}, ErrorCode.NONZERO_EXIT, "The model was killed by SIGSEGV (exit code 139)."),
        (
            137,
            {"oom_killed": True, "memory_bytes": 64 * 1024**2},
            ErrorCode.OOM,
            "The model ran out of memory (limit of 64 MiB, swap disabled) and was killed.",
        ),
        (
            1,
            {"oom_killed": True},
            ErrorCode.OOM,
            "The model ran out of memory (limit, swap disabled) and was killed.",
        ),
        (0, {"oom_killed": True}, None, "The model exited with code 0."),  # a child was killed, it coped
        (
            137,
            {"timed_out": True, "timeout_s": 2.0},
            ErrorCode.TIMEOUT,
            "The model ran past its wall-time limit of 2 s and was stopped.",
        ),
        (
            137,
            {"timed_out": True, "oom_killed": True, "cancelled": True},
            ErrorCode.CANCELLED,
            "The run was cancelled.",
        ),
        (None, {}, ErrorCode.NONZERO_EXIT, "The model exited without an exit status."),
    ],
)
def test_exit_code_table(
    exit_code: int | None, flags: dict[str, object], code: ErrorCode | None, message: str
) -> None:
    outcome = classify_exit(exit_code, **flags)  # type: ignore[arg-type]
    assert (outcome.error_code, outcome.message) == (code, message)


def test_taxonomy() -> None:
    assert fault_kind(ErrorCode.OOM) is FaultKind.MODEL
    assert fault_kind(ErrorCode.TIMEOUT) is FaultKind.TIMEOUT
    assert fault_kind(ErrorCode.CANCELLED) is FaultKind.CANCELLED
    assert fault_kind(ErrorCode.INFRA_ERROR) is FaultKind.PERMANENT_INFRA
    submitters = (FaultKind.MODEL, FaultKind.TIMEOUT)  # whose failures are shown to them and charged
    assert fault_kind(ErrorCode.OUTPUT_INVALID) in submitters and fault_kind(ErrorCode.TIMEOUT) in submitters
    assert fault_kind(ErrorCode.INFRA_ERROR) not in submitters
    assert fault_kind(ErrorCode.CANCELLED) not in submitters
    assert terminal_state(None) is TerminalState.SUCCEEDED
    assert terminal_state(ErrorCode.CANCELLED) is TerminalState.CANCELLED
    assert terminal_state(ErrorCode.OOM) is TerminalState.FAILED
    for exc, kind, code in (
        (TransientInfraError("x"), FaultKind.TRANSIENT_INFRA, ErrorCode.INFRA_ERROR),
        (PermanentInfraError("x"), FaultKind.PERMANENT_INFRA, ErrorCode.INFRA_ERROR),
        (ImageInvalidError("x"), FaultKind.MODEL, ErrorCode.IMAGE_INVALID),
    ):
        assert (exc.kind, exc.code, exc.message) == (kind, code, "x")
