"""What a Job, its Pods and its Events say about a run: one pure classifier (docs/design.md, Runners).

`classify` turns one observation of the cluster (wire-form JSON, as read by the executor) into a
`Verdict`: still pending (with the reason shown to the user, e.g. "unschedulable: 0/4 nodes have
a free nvidia.com/gpu"), running, succeeded, or failed with the `ErrorCode` that decides who is
told what. Time-based decisions (the runner's own deadline, the schedule timeout) are the
executor's; everything here depends only on the observation, so every mapping is unit-tested.

Mapping (first match wins; "model" is the init container, "collector" the main container):

========================================================  ================  ==========================
Signal                                                    Code              Whose fault
========================================================  ================  ==========================
Job gone while we wait                                    infra_error       cluster / operator
Job condition ``DeadlineExceeded`` (model started, or    timeout           model
no Pod left to say otherwise)
Job condition ``DeadlineExceeded`` (Pods never started)   infra_error       cluster (queue, pull)
Pod ``Evicted`` for exceeding its own storage limits      nonzero_exit      model
Pod failed with ``DisruptionTarget`` (preemption, drain)  (ignored; the Job replaces it)
model waiting ``ErrImagePull``/``ImagePullBackOff``/      image_invalid     submitter (fail fast)
``InvalidImageName``/``ErrImageNeverPull``
model waiting ``CreateContainerError``/``RunContainerError``  image_invalid  submitter (entrypoint)
model waiting ``CreateContainerConfigError``              infra_error       our Pod config
model terminated non-zero: `runner.errors.classify_exit`  oom (``OOMKilled``), image_invalid (125-127),
                                                          nonzero_exit (other codes)
collector cannot start or exits non-zero                  infra_error       ours
collector terminated 0 / Pod ``Succeeded``                succeeded         (frame decides output_*)
Job ``Failed`` for another reason, no decisive Pod        infra_error       cluster
No Pod and a ``FailedCreate`` Event (admission, quota)    infra_error       cluster / our config
Pod ``PodScheduled=False/Unschedulable``                  pending           (executor times it out)
Job suspended (Kueue), no Pod yet                         pending           (executor times it out)
========================================================  ================  ==========================

A Pod with a ``deletionTimestamp`` is being torn down (deadline, cancel, GC): its container ends
say nothing about the model, so it is never decisive; the Job's condition is.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any, Literal

from runner.errors import classify_exit
from runner.kubernetes.manifest import COLLECTOR_CONTAINER, MODEL_CONTAINER
from runner.spec import ErrorCode

IMAGE_PULL_REASONS = frozenset({"ErrImagePull", "ImagePullBackOff", "InvalidImageName", "ErrImageNeverPull"})
ENTRYPOINT_REASONS = frozenset({"CreateContainerError", "RunContainerError"})
CONFIG_REASONS = frozenset({"CreateContainerConfigError"})
# A model container waiting for one of these reasons ends the run: what the message says, and the code.
_MODEL_WAITING = (
    (IMAGE_PULL_REASONS, "the model image cannot be pulled", ErrorCode.IMAGE_INVALID),
    (ENTRYPOINT_REASONS, "the model container cannot start", ErrorCode.IMAGE_INVALID),
    (CONFIG_REASONS, "the model container's configuration is invalid", ErrorCode.INFRA_ERROR),
)
_OWN_LIMIT = re.compile(r"exceed(s|ed)? (the|its) ([\w ]+ )?limit", re.IGNORECASE)

Kind = Literal["pending", "running", "succeeded", "failed"]


@dataclass(frozen=True)
class Observation:
    """One look at a run: the Job (None when not found), its Pods and the Events about the Job.

    `model_seen` says the observer saw the model running earlier: a Pod deleted at the deadline
    takes that evidence with it.
    """

    job_name: str
    job: dict[str, Any] | None
    pods: tuple[dict[str, Any], ...] = ()
    events: tuple[dict[str, Any], ...] = ()
    model_seen: bool = False


@dataclass(frozen=True)
class Verdict:
    """The classification of one `Observation`.

    `pod_name` names the Pod whose logs hold the result; `model_started` says whether the model
    container ever ran (for the deadline); `unschedulable`/`queued` mark the waits the executor
    bounds with its schedule timeout; `disruptions` counts Pods lost to the cluster.
    """

    kind: Kind
    message: str
    error_code: ErrorCode | None = None
    pod_name: str | None = None
    exit_code: int | None = None
    model_started: bool = False
    model_running: bool = False
    duration_s: float | None = None
    unschedulable: bool = False
    queued: bool = False
    disruptions: int = 0


def classify(obs: Observation) -> Verdict:
    """Map one observation to a `Verdict` (table in the module docstring)."""
    if obs.job is None:
        return Verdict(
            "failed",
            f"the Job {obs.job_name} was deleted before it finished (by an operator or its TTL)",
            ErrorCode.INFRA_ERROR,
        )
    pods = sorted(obs.pods, key=lambda p: (_meta(p).get("creationTimestamp") or "", _meta(p).get("name", "")))
    disrupted = [p for p in pods if _is_disrupted(p) and not _own_limit_eviction(p)]
    current = [p for p in pods if p not in disrupted]
    started = obs.model_seen or any(_model_started(p) for p in pods)
    verdict = _classify_job(obs, pods, current[-1] if current else None, started=started)
    return replace(verdict, disruptions=len(disrupted), model_started=started)


def _classify_job(
    obs: Observation, pods: list[dict[str, Any]], pod: dict[str, Any] | None, *, started: bool
) -> Verdict:
    job = obs.job or {}
    conditions = _true_conditions(job)

    deadline = _condition(conditions, ("Failed", "FailureTarget"), "DeadlineExceeded")
    if deadline is not None:
        # Only a Pod that is still there and never ran proves the model did not start; without
        # any Pod (deleted with the deadline) the deadline is the model's.
        why = deadline.get("message") or "DeadlineExceeded"
        if started or not pods:
            return Verdict(
                "failed", f"the run exceeded its deadline ({why})", ErrorCode.TIMEOUT, pod_name=_name(pod)
            )
        return Verdict(
            "failed",
            f"the Job's deadline passed before the model started (waiting for a node or the image): {why}",
            ErrorCode.INFRA_ERROR,
            pod_name=_name(pod),
        )

    evicted = [p for p in pods if _own_limit_eviction(p)]
    if evicted:
        # Evictions carry DisruptionTarget, so the Job would replace the Pod and let a model that
        # fills its disk retry until the deadline; the runner ends the run instead.
        return Verdict(
            "failed",
            "the model was stopped for exceeding its disk limit: "
            f"{(evicted[-1].get('status') or {}).get('message', '')}",
            ErrorCode.NONZERO_EXIT,
            pod_name=_name(evicted[-1]),
        )

    if pod is not None and not _meta(pod).get("deletionTimestamp"):
        verdict = _classify_pod(pod)
        if verdict is not None:
            return verdict

    failed = _condition(conditions, ("Failed", "FailureTarget"), None)
    if failed is not None:
        return Verdict(
            "failed",
            f"the Job failed ({failed.get('reason', 'unknown reason')}: {failed.get('message', '')}) "
            "and its Pod does not say why",
            ErrorCode.INFRA_ERROR,
            pod_name=_name(pod),
        )
    if _condition(conditions, ("Complete", "SuccessCriteriaMet"), None) is not None:
        return Verdict("succeeded", "the Job completed", pod_name=_name(pod))

    if pod is None:
        refused = [e for e in obs.events if e.get("reason") == "FailedCreate"]
        if refused:
            latest = max(refused, key=lambda e: e.get("lastTimestamp") or e.get("eventTime") or "")
            return Verdict(
                "failed",
                f"the cluster refused to create the Pod: {latest.get('message', '(no message)')}",
                ErrorCode.INFRA_ERROR,
            )
        if (job.get("spec") or {}).get("suspend"):
            return Verdict(
                "pending", "queued: the Job is suspended, waiting for admission (Kueue)", queued=True
            )
        return Verdict("pending", "waiting for the Job controller to create the Pod")

    scheduled = _pod_condition(pod, "PodScheduled")
    if scheduled and scheduled.get("status") == "False" and scheduled.get("reason") == "Unschedulable":
        return Verdict(
            "pending",
            f"unschedulable: {scheduled.get('message', 'no node fits the Pod')}",
            pod_name=_name(pod),
            unschedulable=True,
        )
    model = _container_status(pod, MODEL_CONTAINER, init=True)
    if model is not None and "running" in (model.get("state") or {}):
        return Verdict("running", "the model is running", pod_name=_name(pod), model_running=True)
    if model is not None and _terminated(model) is not None:
        return Verdict("running", "the model finished; collecting its output", pod_name=_name(pod))
    waiting = ((model or {}).get("state") or {}).get("waiting") or {}
    reason = waiting.get("reason") or (pod.get("status") or {}).get("phase") or "Pending"
    return Verdict("pending", f"starting ({reason})", pod_name=_name(pod))


def _classify_pod(pod: dict[str, Any]) -> Verdict | None:
    """A decisive verdict from a live Pod, or None when it does not decide the run yet."""
    name = _name(pod)
    status = pod.get("status") or {}
    model = _container_status(pod, MODEL_CONTAINER, init=True)
    if model is not None:
        waiting = (model.get("state") or {}).get("waiting") or {}
        reason, detail = waiting.get("reason", ""), waiting.get("message", "")
        for reasons, what, error_code in _MODEL_WAITING:
            if reason in reasons:
                return Verdict("failed", f"{what} ({reason}): {detail}", error_code, pod_name=name)
        ended = _terminated(model)
        if ended is not None:
            code = ended.get("exitCode")
            timing: dict[str, Any] = {"exit_code": code, "duration_s": _duration(ended), "pod_name": name}
            outcome = classify_exit(
                code if isinstance(code, int) else None, oom_killed=ended.get("reason") == "OOMKilled"
            )
            if outcome.error_code is not None:
                return Verdict("failed", outcome.message, outcome.error_code, **timing)
    collector = _container_status(pod, COLLECTOR_CONTAINER, init=False)
    if collector is not None:
        waiting = (collector.get("state") or {}).get("waiting") or {}
        reason = waiting.get("reason", "")
        if reason in IMAGE_PULL_REASONS | ENTRYPOINT_REASONS | CONFIG_REASONS:
            return Verdict(
                "failed",
                f"the collector cannot start ({reason}): {waiting.get('message', '')}",
                ErrorCode.INFRA_ERROR,
                pod_name=name,
            )
        ended = _terminated(collector)
        if ended is not None:
            model_ended = _terminated(model) if model is not None else None
            timing = {
                "exit_code": model_ended.get("exitCode") if model_ended else None,
                "duration_s": _duration(model_ended) if model_ended else None,
                "pod_name": name,
            }
            if ended.get("exitCode") == 0:
                return Verdict("succeeded", "the model and the collector finished", **timing)
            return Verdict(
                "failed",
                f"the collector failed (exit code {ended.get('exitCode')}, {ended.get('reason', 'Error')})",
                ErrorCode.INFRA_ERROR,
                **timing,
            )
    if status.get("phase") == "Failed":
        why = f"{status.get('reason', 'unknown')}: {status.get('message', '')}"
        return Verdict("failed", f"the Pod failed ({why})", ErrorCode.INFRA_ERROR, pod_name=name)
    return None


def _meta(obj: dict[str, Any]) -> dict[str, Any]:
    meta = obj.get("metadata")
    return meta if isinstance(meta, dict) else {}


def _name(pod: dict[str, Any] | None) -> str | None:
    return None if pod is None else _meta(pod).get("name")


def _true_conditions(job: dict[str, Any]) -> list[dict[str, Any]]:
    conditions = (job.get("status") or {}).get("conditions") or []
    return [c for c in conditions if isinstance(c, dict) and c.get("status") == "True"]


def _condition(
    conditions: list[dict[str, Any]], types: tuple[str, ...], reason: str | None
) -> dict[str, Any] | None:
    matches = (c for c in conditions if c.get("type") in types and reason in (None, c.get("reason")))
    return next(matches, None)


def _status_entry(pod: dict[str, Any], key: str, field: str, value: str) -> dict[str, Any] | None:
    """The first entry of the Pod's ``status.<key>`` list whose `field` is `value`."""
    entries = (pod.get("status") or {}).get(key) or []
    return next((e for e in entries if isinstance(e, dict) and e.get(field) == value), None)


def _pod_condition(pod: dict[str, Any], kind: str) -> dict[str, Any] | None:
    return _status_entry(pod, "conditions", "type", kind)


def _is_disrupted(pod: dict[str, Any]) -> bool:
    """A failed Pod with ``DisruptionTarget=True``: the podFailurePolicy ignores it."""
    condition = _pod_condition(pod, "DisruptionTarget")
    failed = (pod.get("status") or {}).get("phase") == "Failed"
    return failed and condition is not None and condition.get("status") == "True"


def _own_limit_eviction(pod: dict[str, Any]) -> bool:
    """Evicted by the kubelet for exceeding the Pod's own storage limits (not node pressure)."""
    status = pod.get("status") or {}
    return status.get("reason") == "Evicted" and bool(_OWN_LIMIT.search(status.get("message") or ""))


def _container_status(pod: dict[str, Any], name: str, *, init: bool) -> dict[str, Any] | None:
    return _status_entry(pod, "initContainerStatuses" if init else "containerStatuses", "name", name)


def _terminated(status: dict[str, Any]) -> dict[str, Any] | None:
    ended = (status.get("state") or {}).get("terminated")
    return ended if isinstance(ended, dict) else None


def _model_started(pod: dict[str, Any]) -> bool:
    state = (_container_status(pod, MODEL_CONTAINER, init=True) or {}).get("state") or {}
    return "running" in state or "terminated" in state


def _duration(ended: dict[str, Any]) -> float | None:
    try:
        start = datetime.fromisoformat(str(ended["startedAt"]).replace("Z", "+00:00"))
        end = datetime.fromisoformat(str(ended["finishedAt"]).replace("Z", "+00:00"))
    except (KeyError, ValueError):
        return None
    return max(0.0, (end - start).total_seconds())
