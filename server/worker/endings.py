"""Apply a policy decision to a run: requeue it, hand it back, or end it — and clean up after it.

`server.runs.policy.decide` says what to do; this module only does it, in one transaction per
ending: the status change (with the submitter's note and the maintainer's detail), the refund when
the decision says the project pays, the logs each side may see (`server.runs.disclosure`), the
maintainers' alert and the team's hold (`server.runs.holds`). After a terminal ending the run's
working folders and its uploaded archive are deleted (the stored hidden predictions stay, for
re-scoring).

An alert (the policy's ``alert``: a broken deployment, retries run out, a scorer crash) is an
``alert`` entry in the audit log, written in the ending's transaction (``GET
/api/v1/admin/audit?action=alert`` and the review console list them), and an ERROR log line
starting with ``ALERT`` (logger ``csawm.alerts``) for log-based monitoring. It carries the
maintainers' full text; nothing of it reaches a submitter.
"""

from __future__ import annotations

import logging
import shutil

from sqlalchemy.orm import Session

from runner.errors import FaultKind
from runner.spec import ErrorCode
from server.core import audit
from server.models import FailedPhase, RunStatus
from server.quota import service as quota
from server.runs import holds, lifecycle, policy
from server.runs.disclosure import HANDED_BACK_NOTE, RETRY_NOTE, stage_logs, submitter_message
from server.runs.policy import Action, Decision, Stage
from server.runs.transitions import transition
from server.worker.backend import PREFLIGHT_LOG_BYTES
from server.worker.context import RunContext, StageFault, WorkerEnv, fault, run_dir
from server.worker.stages import runtime_of, transact

log = logging.getLogger("csawm.worker")
alerts = logging.getLogger("csawm.alerts")


def decide(env: WorkerEnv, ctx: RunContext, pf: StageFault) -> Decision:
    """The policy table's decision for the stop `pf` (``CSAWM_MAX_ATTEMPTS``, ``CSAWM_RETRY_BACKOFF``)."""
    s = env.settings
    return policy.decide(
        pf.fault, retries=ctx.retries, max_attempts=s.max_attempts, backoff_base=s.retry_backoff
    )


def end(env: WorkerEnv, ctx: RunContext, pf: StageFault) -> Decision:
    """Decide and `apply` the ending of the stop `pf`; a run that goes back to the queue loses its
    attempt's folders."""
    decision = decide(env, ctx, pf)
    apply(env, ctx, pf, decision)
    if decision.action is not Action.FAIL:  # the next attempt needs none of this one's folders
        shutil.rmtree(ctx.attempt_dir(env.settings.data_dir), ignore_errors=True)
    return decision


def take_over(env: WorkerEnv, ctx: RunContext, recovered_from: str | None) -> StageFault | None:
    """The run's previous worker stopped renewing its lease: count the try it used up; the fault
    instead when the policy table ends the run (the caller ends it)."""
    message = f"the worker {recovered_from} stopped renewing its lease"
    pf = fault(ctx.stage, FaultKind.TRANSIENT_INFRA, ErrorCode.INFRA_ERROR, message)
    if decide(env, ctx, pf).action is not Action.RETRY:
        return pf
    ctx.retries += 1
    transact(env, lambda session: lifecycle.count_retry(session, ctx.sub_id, ctx.retries))
    return None


def apply(env: WorkerEnv, ctx: RunContext, pf: StageFault, decision: Decision) -> None:
    """Carry out `decision` for the stop `pf` of the run in `ctx` (under this worker's lease)."""
    f = pf.fault
    log.info("run %s: %s -> %s (%s)", ctx.sub_id, pf, decision.action.value, decision.reason)

    def write(session: Session) -> None:
        why = f"{decision.reason}: {f.message}"[:4000]
        if decision.action is Action.FAIL:
            to = RunStatus.CANCELLED if decision.code is ErrorCode.CANCELLED else RunStatus.FAILED
            public = submitter_message(f, decision.told, decision.code, refunded=decision.refund)
            sub = transition(
                session,
                ctx.sub_id,
                to,
                note=f"{decision.code.value}: {public}"[:2000],
                detail=why,
                owner=env.name,
                attempt=ctx.lease.attempt,
                error_code=decision.code.value,
                failed_phase=FailedPhase.PREFLIGHT if f.stage is Stage.QUEUED else FailedPhase(f.stage.value),
                error_message=public,
                error_detail=f.message,
            )
            if decision.refund:
                quota.refund(session, ctx.sub_id, f"{decision.reason} ({decision.code.value})")
            if decision.hold:
                holds.hold(
                    session, sub.team_id, reason=decision.reason, actor=actor, submission_id=ctx.sub_id
                )
        else:
            retry = decision.action is Action.RETRY
            sub = lifecycle.requeue(
                session,
                ctx.sub_id,
                owner=env.name,
                attempt=ctx.lease.attempt,
                resume_from=ctx.status,
                note=RETRY_NOTE if retry else HANDED_BACK_NOTE,
                detail=why,
                retry_after=decision.backoff if retry else None,
            )
        if decision.alert:
            alerts.error("ALERT run %s: %s (%s)", ctx.sub_id, decision.reason, decision.code.value)
            detail = {"phase": f.stage.value, "kind": f.kind.value, "error_code": decision.code.value}
            audit.record(
                session,
                actor=actor,
                action="alert",
                target_type="submission",
                target_id=ctx.sub_id,
                reason=decision.reason,
                detail=detail,
            )
        if pf.log_tail:
            stage_logs(env.settings.hidden_logs, f.stage, pf.log_tail[-PREFLIGHT_LOG_BYTES:]).write(sub)
        sub.timings = dict(ctx.timings)
        sub.runtime = runtime_of(ctx)

    actor = f"worker:{env.name}"
    transact(env, write)
    if decision.action is Action.FAIL:
        finish(env, ctx)


def finish(env: WorkerEnv, ctx: RunContext) -> None:
    """After a terminal ending: the run's working folders go, and its archive unless kept."""
    shutil.rmtree(run_dir(env.settings.data_dir, ctx.sub_id), ignore_errors=True)
    if ctx.archive is not None and not env.settings.keep_archives:
        ctx.archive.unlink(missing_ok=True)
