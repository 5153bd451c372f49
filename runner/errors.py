"""One error taxonomy and one exit-code table for every backend.

Who is told what depends on whose fault a failure is:

* **model fault** (``image_invalid``, ``oom``, ``nonzero_exit``, ``output_missing``,
  ``output_invalid``): the submitter sees the message and the log tail; the run is charged.
* **timeout**: the model ran past its wall-time limit. Shown to the submitter like a model fault,
  kept apart so operators can tell slow models from broken ones.
* **transient infrastructure** (engine unreachable, API hiccup): retried a bounded number of times,
  never charged.
* **permanent infrastructure** (misconfiguration, missing runtime): operators are told, the run is
  refunded.
* **scorer**: the scorer failed on output the reader accepted. Ours, but a hidden run happened and the
  model's output may be what broke the scorer: not retried, charged, and the team held for review.
* **cancelled**: somebody stopped the run; refunded when it had not started.
* **shutdown**: the worker stopped (SIGTERM, Ctrl-C); the run is handed back and resumed later.

Who pays and who is told what is decided in one table, `server.runs.policy`; these kinds are its keys.

Model outcomes come back as data in a `RunResult`; infrastructure failures are raised as
`TransientInfraError` / `PermanentInfraError` so the worker cannot mistake them for a model's fault.
"""

from __future__ import annotations

import enum
import signal
from dataclasses import dataclass

from runner.spec import ErrorCode, TerminalState


class FaultKind(enum.StrEnum):
    """Whose fault a failure is; decides retry, refund and who is told."""

    MODEL = "model"
    TIMEOUT = "timeout"
    TRANSIENT_INFRA = "transient_infra"
    PERMANENT_INFRA = "permanent_infra"
    SCORER = "scorer"  # the scorer failed on predictions the reader accepted (server.worker.stages.score)
    CANCELLED = "cancelled"
    SHUTDOWN = "shutdown"  # the worker itself is stopping (SIGTERM): nobody's fault, the run goes back


_FAULT_OF_CODE: dict[ErrorCode, FaultKind] = {
    ErrorCode.IMAGE_INVALID: FaultKind.MODEL,
    ErrorCode.OOM: FaultKind.MODEL,
    ErrorCode.NONZERO_EXIT: FaultKind.MODEL,
    ErrorCode.OUTPUT_MISSING: FaultKind.MODEL,
    ErrorCode.OUTPUT_INVALID: FaultKind.MODEL,
    ErrorCode.TIMEOUT: FaultKind.TIMEOUT,
    ErrorCode.CANCELLED: FaultKind.CANCELLED,
    # An infra_error stored on a run is whatever was left after retries: permanent by then.
    ErrorCode.INFRA_ERROR: FaultKind.PERMANENT_INFRA,
}


def fault_kind(code: ErrorCode) -> FaultKind:
    """The fault kind of a stored error code (``infra_error`` counts as permanent: retries are over)."""
    return _FAULT_OF_CODE[code]


def terminal_state(code: ErrorCode | None) -> TerminalState:
    """The run's terminal state for an error code (None = success)."""
    if code is None:
        return TerminalState.SUCCEEDED
    if code is ErrorCode.CANCELLED:
        return TerminalState.CANCELLED
    return TerminalState.FAILED


class RunnerError(Exception):
    """Base of errors a backend raises instead of returning a `RunResult`.

    Attributes
    ----------
    kind : FaultKind
    code : ErrorCode
        The code to store when the worker gives up.
    message : str
        What an operator (or, for `ImageInvalidError`, the submitter) is told.
    """

    kind: FaultKind = FaultKind.PERMANENT_INFRA
    code: ErrorCode = ErrorCode.INFRA_ERROR

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class TransientInfraError(RunnerError):
    """The engine or cluster hiccuped (unreachable, 5xx, conflict): retry, bounded, never charge."""

    kind = FaultKind.TRANSIENT_INFRA


class PermanentInfraError(RunnerError):
    """The deployment is wrong (no GPU runtime, bad mount, permissions): tell operators, refund."""

    kind = FaultKind.PERMANENT_INFRA


class ImageInvalidError(RunnerError):
    """The submitted image cannot be run at all (missing, wrong platform, no entrypoint)."""

    kind = FaultKind.MODEL
    code = ErrorCode.IMAGE_INVALID


@dataclass(frozen=True)
class ExitOutcome:
    """How one container exit reads: the error code (None = success) and the user-facing message."""

    error_code: ErrorCode | None
    message: str


_IMAGE_EXITS = {
    125: "The container could not be started (exit code 125).",
    126: "The image's entrypoint is not executable (exit code 126).",
    127: "The image's entrypoint or a command it runs was not found (exit code 127).",
}


def _signal_name(number: int) -> str:
    try:
        return signal.Signals(number).name
    except ValueError:
        return f"signal {number}"


def classify_exit(
    exit_code: int | None,
    *,
    oom_killed: bool = False,
    timed_out: bool = False,
    cancelled: bool = False,
    timeout_s: float | None = None,
    memory_bytes: int | None = None,
) -> ExitOutcome:
    """The one exit-code table every backend goes through.

    Precedence: cancelled, then timeout (the runner killed it), then out-of-memory (the engine says
    the kernel killed a process for the memory limit), then the exit code itself:

    ======== =================== ===========================================================
    exit     error code          meaning
    ======== =================== ===========================================================
    0        (success)           outputs are checked next
    125-127  ``image_invalid``   the entrypoint could not be run (not found / not executable)
    128+n    ``nonzero_exit``    killed by signal n (137 = SIGKILL without the OOM flag)
    other    ``nonzero_exit``    the model exited with an error
    ======== =================== ===========================================================

    Parameters
    ----------
    exit_code : int or None
        The container's exit status (None when it never ran or was not observed).
    oom_killed : bool
        The engine's out-of-memory flag (Docker ``State.OOMKilled``, Kubernetes ``OOMKilled``).
    timed_out, cancelled : bool
        Whether the runner itself stopped the container, and why.
    timeout_s, memory_bytes : float or int, optional
        The limits, only to make the messages concrete.
    """
    if cancelled:
        return ExitOutcome(ErrorCode.CANCELLED, "The run was cancelled.")
    if timed_out:
        limit = f" of {timeout_s:g} s" if timeout_s is not None else ""
        return ExitOutcome(
            ErrorCode.TIMEOUT, f"The model ran past its wall-time limit{limit} and was stopped."
        )
    if oom_killed and exit_code != 0:
        limit = f" of {memory_bytes / 1024**2:.0f} MiB" if memory_bytes else ""
        return ExitOutcome(
            ErrorCode.OOM, f"The model ran out of memory (limit{limit}, swap disabled) and was killed."
        )
    if exit_code is None:
        return ExitOutcome(ErrorCode.NONZERO_EXIT, "The model exited without an exit status.")
    if exit_code == 0:
        return ExitOutcome(None, "The model exited with code 0.")
    if exit_code in _IMAGE_EXITS:
        return ExitOutcome(ErrorCode.IMAGE_INVALID, _IMAGE_EXITS[exit_code])
    if exit_code > 128:
        name = _signal_name(exit_code - 128)
        return ExitOutcome(ErrorCode.NONZERO_EXIT, f"The model was killed by {name} (exit code {exit_code}).")
    return ExitOutcome(ErrorCode.NONZERO_EXIT, f"The model exited with code {exit_code}.")
