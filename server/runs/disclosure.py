"""Who sees what of a run: the submitter's view is safe by construction.

The hidden run is the one place where a model sees the private images, so anything it controls —
its log, its exit message, the content of an invalid ``predictions.csv`` that a parser error would
quote — is a channel out of the private set. The worker therefore stores two texts for every
ending and every timeline note: a *public* one (``error_message``, ``RunEvent.note``, ``log_tail``)
written from `submitter_message` below, and a *detail* for maintainers (``error_detail``,
``RunEvent.detail``, ``hidden_log_tail``). ``CSAWM_HIDDEN_LOGS`` decides where the hidden run's log
tail goes: ``maintainers`` (default), ``none`` (not kept at all) or ``submitters`` (explicit opt-in:
it is shown in the public log too).

A hidden-stage ending's message is a fixed text per error code: not even the exit code, which the
model chooses. The figures and timestamps of a run are `server.disclosure.run_view`'s.
"""

from __future__ import annotations

from dataclasses import dataclass

from runner.spec import ErrorCode
from server.disclosure.hints import HiddenLogs
from server.models import Submission
from server.runs.policy import Fault, Stage, Told

# Fixed texts per error code: nothing in them depends on what the model did with the hidden images.
_HIDDEN_MESSAGES: dict[ErrorCode, str] = {
    ErrorCode.IMAGE_INVALID: "The image could not be run on the hidden images.",
    ErrorCode.TIMEOUT: "The model ran past its wall-time limit on the hidden images and was stopped.",
    ErrorCode.OOM: "The model ran out of memory on the hidden images and was killed.",
    ErrorCode.NONZERO_EXIT: "The model exited with an error on the hidden images.",
    ErrorCode.OUTPUT_MISSING: "The model wrote no /output/predictions.csv for the hidden images.",
    ErrorCode.OUTPUT_INVALID: (
        "The predictions.csv written for the hidden images is invalid. The details are withheld (they"
        " would quote the model's output on the hidden images); the same checks run in preflight and"
        " in `csawm check`, which show them in full."
    ),
    ErrorCode.CANCELLED: "The run was cancelled.",
}
# Our failure, whatever its code: refunded.
_GENERIC = (
    "The run stopped because of a failure on our side, not your model's; your quota was refunded."
    " The maintainers have the details."
)
# Our failure after the hidden run took place (the scorer crashed on its predictions): still charged.
_GENERIC_CHARGED = (
    "The run stopped because of a failure on our side after the model ran on the hidden images, so it"
    " keeps its quota slot. The maintainers have been alerted and have the details."
)
RETRY_NOTE = "interrupted by a failure on our side; it will resume where it stopped"
HANDED_BACK_NOTE = "the worker stopped; the run waits for the next worker and resumes where it stopped"


def submitter_message(fault: Fault, told: Told, code: ErrorCode, *, refunded: bool = True) -> str:
    """The error message a submitter gets for an ending decided with `told` and final `code`
    (`refunded`: whether the decision gave the quota charge back)."""
    if told is Told.FULL:
        return fault.message
    if told is Told.CODE:  # never the exit code: the model picks it (8 bits a run, issue 19)
        return _HIDDEN_MESSAGES.get(code, _HIDDEN_MESSAGES[ErrorCode.NONZERO_EXIT])
    return _GENERIC if refunded else _GENERIC_CHARGED


@dataclass(frozen=True)
class StageLogs:
    """Where a stage's log tail is stored: ``log_tail`` (submitters read it) and ``hidden_log_tail``
    (maintainers only); None leaves the column as it is."""

    public: str | None
    kept: str | None

    def write(self, sub: Submission) -> None:
        if self.public is not None:
            sub.log_tail = self.public
        if self.kept is not None:
            sub.hidden_log_tail = self.kept


def stage_logs(hidden_logs: HiddenLogs, stage: Stage, tail: str) -> StageLogs:
    """The one decision of who may read a stage's log `tail`, for a stage that passed and for an
    ending alike: a preflight log (public or synthetic images) is the submitter's; a later stage's
    goes by ``CSAWM_HIDDEN_LOGS`` (maintainers only, nobody, or — opted in — submitters too)."""
    if stage is Stage.PREFLIGHT:
        return StageLogs(public=tail, kept=None)
    return StageLogs(
        public=tail if hidden_logs == "submitters" else None,
        kept=None if hidden_logs == "none" else tail,
    )
