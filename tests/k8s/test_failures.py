"""`classify`: one observation of a Job, its Pods and Events -> a verdict. Cases the contract tests
do not reach through the fake controller (orderings, partial states) are pinned here."""

from __future__ import annotations

from typing import Any

import pytest

from runner.kubernetes.failures import Observation, Verdict, classify
from runner.spec import ErrorCode

JOB = "csawm-run-1-a1"


def _job(*conditions: tuple[str, str], suspend: bool = False) -> dict[str, Any]:
    return {
        "metadata": {"name": JOB, "uid": "u1"},
        "spec": {"suspend": suspend},
        "status": {
            "conditions": [
                {"type": t, "status": "True", "reason": r, "message": f"{r} msg"} for t, r in conditions
            ]
        },
    }


def _pod(
    name: str = "p1",
    *,
    phase: str = "Pending",
    model: dict[str, Any] | None = None,
    collector: dict[str, Any] | None = None,
    conditions: list[dict[str, Any]] | None = None,
    created: str = "2026-01-01T00:00:00Z",
    **status: Any,
) -> dict[str, Any]:
    return {
        "metadata": {"name": name, "creationTimestamp": created, **status.pop("meta", {})},
        "status": {
            "phase": phase,
            "conditions": conditions or [],
            "initContainerStatuses": [{"name": "model", "state": model}] if model else [],
            "containerStatuses": [{"name": "collector", "state": collector}] if collector else [],
            **status,
        },
    }


def _classify(
    job: dict[str, Any] | None,
    *pods: dict[str, Any],
    events: tuple[dict[str, Any], ...] = (),
    seen: bool = False,
) -> Verdict:
    return classify(Observation(JOB, job, tuple(pods), events, model_seen=seen))


RUNNING = {"running": {"startedAt": "2026-01-01T00:00:01Z"}}
DONE = {
    "terminated": {
        "exitCode": 0,
        "reason": "Completed",
        "startedAt": "2026-01-01T00:00:01Z",
        "finishedAt": "2026-01-01T00:01:41Z",
    }
}


def test_success_needs_the_collector_to_have_finished() -> None:
    assert _classify(_job(), _pod(model=DONE, collector={"running": {}})).kind == "running"
    verdict = _classify(
        _job(), _pod(phase="Succeeded", model=DONE, collector={"terminated": {"exitCode": 0}})
    )
    assert verdict.kind == "succeeded" and verdict.pod_name == "p1"
    assert verdict.exit_code == 0 and verdict.duration_s == 100.0


def test_job_complete_before_pod_status_catches_up() -> None:
    assert _classify(_job(("Complete", "CompletionsReached")), _pod(model=DONE)).kind == "succeeded"


def test_deadline_is_timeout_once_the_model_ran_and_infra_before() -> None:
    deadline = _job(("FailureTarget", "DeadlineExceeded"))
    assert _classify(deadline, _pod(model=RUNNING)).error_code == ErrorCode.TIMEOUT
    never_ran = _pod(model={"waiting": {"reason": "ContainerCreating"}})
    assert _classify(deadline, never_ran).error_code == ErrorCode.INFRA_ERROR
    assert _classify(deadline, never_ran, seen=True).error_code == ErrorCode.TIMEOUT
    assert _classify(deadline).error_code == ErrorCode.TIMEOUT  # the Pod went with the deadline


def test_pod_being_deleted_is_not_decisive() -> None:
    killed = _pod(
        model={"terminated": {"exitCode": 143, "reason": "Error"}},
        meta={"deletionTimestamp": "2026-01-01T00:02:00Z"},
    )
    assert _classify(_job(), killed).kind == "running"
    assert _classify(_job(("Failed", "DeadlineExceeded")), killed).error_code == ErrorCode.TIMEOUT


def test_disrupted_pods_are_ignored_and_counted() -> None:
    preempted = _pod(
        "p1",
        phase="Failed",
        model=RUNNING,
        conditions=[{"type": "DisruptionTarget", "status": "True", "reason": "PreemptionByScheduler"}],
    )
    replacement = _pod("p2", created="2026-01-01T00:05:00Z", model=RUNNING)
    verdict = _classify(_job(), preempted, replacement)
    assert verdict.kind == "running" and verdict.disruptions == 1 and verdict.pod_name == "p2"


def test_node_pressure_eviction_is_a_disruption_but_own_limit_eviction_fails() -> None:
    pressure = _pod(
        phase="Failed",
        reason="Evicted",
        message="The node was low on resource: memory.",
        conditions=[{"type": "DisruptionTarget", "status": "True"}],
    )
    assert _classify(_job(), pressure).kind == "pending"
    own = _pod(
        phase="Failed",
        reason="Evicted",
        message="Pod ephemeral local storage usage exceeds the total limit of containers 1Gi.",
        conditions=[{"type": "DisruptionTarget", "status": "True"}],
    )
    replacement = _pod("p2", created="2026-01-01T00:05:00Z")
    verdict = _classify(_job(), own, replacement)
    assert verdict.error_code == ErrorCode.NONZERO_EXIT and "disk limit" in verdict.message


def test_collector_problems_are_ours() -> None:
    pull = _pod(model=DONE, collector={"waiting": {"reason": "ImagePullBackOff", "message": "no"}})
    assert _classify(_job(), pull).error_code == ErrorCode.INFRA_ERROR
    crashed = _pod(phase="Failed", model=DONE, collector={"terminated": {"exitCode": 1, "reason": "Error"}})
    verdict = _classify(_job(), crashed)
    assert verdict.error_code == ErrorCode.INFRA_ERROR and "collector failed" in verdict.message


@pytest.mark.parametrize(
    ("reason", "code"),
    [
        ("ErrImagePull", ErrorCode.IMAGE_INVALID),
        ("ImagePullBackOff", ErrorCode.IMAGE_INVALID),
        ("InvalidImageName", ErrorCode.IMAGE_INVALID),
        ("ErrImageNeverPull", ErrorCode.IMAGE_INVALID),
        ("RunContainerError", ErrorCode.IMAGE_INVALID),
        ("CreateContainerError", ErrorCode.IMAGE_INVALID),
        ("CreateContainerConfigError", ErrorCode.INFRA_ERROR),
    ],
)
def test_waiting_reasons(reason: str, code: ErrorCode) -> None:
    verdict = _classify(_job(), _pod(model={"waiting": {"reason": reason, "message": "detail"}}))
    assert verdict.kind == "failed" and verdict.error_code == code and "detail" in verdict.message


def test_harmless_waiting_reasons_keep_waiting() -> None:
    for reason in ("ContainerCreating", "PodInitializing"):
        verdict = _classify(_job(), _pod(model={"waiting": {"reason": reason}}))
        assert verdict.kind == "pending" and reason in verdict.message


def test_exit_codes_go_through_the_shared_table() -> None:
    def ended(code: int, reason: str = "Error") -> dict[str, Any]:
        return _pod(phase="Failed", model={"terminated": {"exitCode": code, "reason": reason}})

    assert _classify(_job(), ended(137, "OOMKilled")).error_code == ErrorCode.OOM
    assert _classify(_job(), ended(137)).error_code == ErrorCode.NONZERO_EXIT  # SIGKILL, not OOM
    assert _classify(_job(), ended(126)).error_code == ErrorCode.IMAGE_INVALID
    assert _classify(_job(), ended(1)).exit_code == 1


def test_queued_states_carry_their_reason() -> None:
    unschedulable = _pod(
        conditions=[
            {
                "type": "PodScheduled",
                "status": "False",
                "reason": "Unschedulable",
                "message": "0/2 nodes: Insufficient nvidia.com/gpu",
            }
        ]
    )
    verdict = _classify(_job(), unschedulable)
    assert verdict.kind == "pending" and verdict.unschedulable and "Insufficient" in verdict.message
    suspended = _classify(_job(suspend=True))
    assert suspended.kind == "pending" and suspended.queued and "Kueue" in suspended.message
    assert _classify(_job()).kind == "pending" and not _classify(_job()).queued


def test_failed_create_event_fails_only_while_there_is_no_pod() -> None:
    event = {
        "reason": "FailedCreate",
        "message": "exceeded quota: gpu",
        "lastTimestamp": "2026-01-01T00:00:00Z",
    }
    verdict = _classify(_job(), events=(event,))
    assert verdict.error_code == ErrorCode.INFRA_ERROR and "exceeded quota" in verdict.message
    assert _classify(_job(), _pod(model=RUNNING), events=(event,)).kind == "running"


def test_job_failed_without_a_telling_pod_and_job_gone() -> None:
    verdict = _classify(_job(("Failed", "BackoffLimitExceeded")))
    assert verdict.error_code == ErrorCode.INFRA_ERROR and "BackoffLimitExceeded" in verdict.message
    gone = _classify(None)
    assert gone.error_code == ErrorCode.INFRA_ERROR and "deleted before it finished" in gone.message
