"""Contract tests: the real `KubernetesRunner` and the real official client, over HTTP on loopback,
against kmock plus the fake Job controller, kubelet and garbage collector of `fake_cluster.py`.

What this layer proves: the runner speaks the API correctly (paths, selectors, query parameters,
bodies, retries), follows a run through list and watch, maps each simulated failure to the right
error code and message, reads results only from the collector's frame, and cleans up. What it
cannot prove (scheduling, GPUs, NetworkPolicy, admission, real deadlines) is the live suite's job.
"""

from __future__ import annotations

import itertools
import json
import os
import threading
import time
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

import pytest
from kubernetes import client

from runner.errors import ImageInvalidError, PermanentInfraError, TransientInfraError
from runner.kubernetes.executor import KubernetesRunner, Progress
from runner.kubernetes.manifest import build_job, job_name
from runner.spec import ErrorCode, TerminalState
from tests.k8s.factories import fast_config, make_spec
from tests.k8s.fake_cluster import PREDICTIONS, FakeCluster, PodScript, write_predictions

NS = "csawm-eval"
Factory = Callable[..., KubernetesRunner]


def _run(runner: KubernetesRunner, tmp_path: Path, run_id: str = "run-1", **limits: object):  # type: ignore[no-untyped-def]
    spec = make_spec(tmp_path, run_id, **limits)
    handle = runner.start(spec)
    return handle, runner.wait(handle, spec)


def test_success_reads_predictions_from_the_collector_frame(
    fake_cluster: FakeCluster, make_runner: Factory, tmp_path: Path
) -> None:
    runner = make_runner()
    spec = make_spec(tmp_path)
    handle = runner.start(spec)
    result = runner.wait(handle, spec)

    assert handle == f"k8s:{NS}/csawm-run-1-a1"
    assert result.state == TerminalState.SUCCEEDED and result.error_code is None
    assert result.predictions == PREDICTIONS
    assert result.exit_code == 0
    assert "predicting 2 images" in result.log_tail
    requests = fake_cluster.runner_requests()
    create = next(r for r in requests if r.method == "POST")
    assert create.url.path == f"/apis/batch/v1/namespaces/{NS}/jobs"
    assert json.loads(create.body) == build_job(spec, runner.config)  # exactly what the builder makes
    pod_lists = [r for r in requests if r.url.path == f"/api/v1/namespaces/{NS}/pods"]
    assert pod_lists and all(
        r.params["labelSelector"] == "batch.kubernetes.io/job-name=csawm-run-1-a1" for r in pod_lists
    )
    logs = {r.params["container"]: r.params for r in requests if r.url.path.endswith("/log")}
    assert set(logs) == {"model", "collector"}
    assert logs["model"]["tailLines"] == "200"
    # A finished Job is left for cleanup (and the TTL backstop), never deleted by wait.
    assert not [r for r in requests if r.method == "DELETE"]

    runner.cleanup(handle)
    deletes = [r for r in fake_cluster.runner_requests() if r.method == "DELETE"]
    assert [r.params.get("propagationPolicy") for r in deletes] == ["Background"]
    assert fake_cluster.objects("jobs", NS) == [] and _wait_for(
        lambda: fake_cluster.objects("pods", NS) == []
    )


@pytest.mark.parametrize(
    ("script", "code", "message"),
    [
        (
            PodScript(model_exit=3, model_log="Traceback\nValueError: boom\n"),
            ErrorCode.NONZERO_EXIT,
            "code 3",
        ),
        (PodScript(model_exit=137, model_reason="OOMKilled"), ErrorCode.OOM, "out of memory"),
        (PodScript(model_exit=127), ErrorCode.IMAGE_INVALID, "not found"),
        (PodScript(deadline=True), ErrorCode.TIMEOUT, "deadline"),
        (PodScript(pull_error="ErrImagePull"), ErrorCode.IMAGE_INVALID, "cannot be pulled"),
        (PodScript(waiting_reason="InvalidImageName"), ErrorCode.IMAGE_INVALID, "InvalidImageName"),
        (PodScript(waiting_reason="CreateContainerConfigError"), ErrorCode.INFRA_ERROR, "configuration"),
        (
            PodScript(failed_create='pods "x" is forbidden: violates PodSecurity "restricted:latest"'),
            ErrorCode.INFRA_ERROR,
            "violates PodSecurity",
        ),
        (
            PodScript(evicted='Usage of EmptyDir volume "output" exceeds the limit "1Gi".'),
            ErrorCode.NONZERO_EXIT,
            "disk limit",
        ),
        (PodScript(vanish_after_finish=True), ErrorCode.INFRA_ERROR, "gone"),
        (PodScript(corrupt_collector_log=True), ErrorCode.OUTPUT_INVALID, "sha256 mismatch"),
        (PodScript(output=lambda out: None), ErrorCode.OUTPUT_MISSING, "wrote no"),
        (
            PodScript(output=lambda out: (out / "predictions.csv").symlink_to("/etc/passwd")),
            ErrorCode.OUTPUT_INVALID,
            "symbolic link",
        ),
        (
            PodScript(output=lambda out: os.mkfifo(out / "predictions.csv")),
            ErrorCode.OUTPUT_INVALID,
            "regular file",
        ),
        (PodScript(output=write_predictions(b"x" * 5000)), ErrorCode.OUTPUT_INVALID, "over the limit"),
    ],
    ids=[
        "nonzero-exit",
        "oom",
        "entrypoint-missing",
        "deadline",
        "image-pull",
        "invalid-image-name",
        "config-error",
        "failed-create",
        "evicted-disk",
        "logs-vanished",
        "collector-hash-mismatch",
        "output-missing",
        "output-symlink",
        "output-fifo",
        "output-too-large",
    ],
)
def test_failure_mapping(
    fake_cluster: FakeCluster,
    make_runner: Factory,
    tmp_path: Path,
    script: PodScript,
    code: ErrorCode,
    message: str,
) -> None:
    fake_cluster.script("", script)
    runner = make_runner()
    handle, result = _run(runner, tmp_path, output_bytes=4096)

    assert result.state == TerminalState.FAILED
    assert result.error_code == code, result.message
    assert message in result.message
    assert result.predictions is None
    runner.cleanup(handle)
    runner.cleanup(handle)  # idempotent
    assert fake_cluster.objects("jobs", NS) == []


def test_nonzero_exit_reports_exit_code_and_log_tail(
    fake_cluster: FakeCluster, make_runner: Factory, tmp_path: Path
) -> None:
    fake_cluster.script("", PodScript(model_exit=2, model_log="".join(f"line {i}\n" for i in range(500))))
    _, result = _run(make_runner(), tmp_path, log_tail_lines=3)
    assert result.exit_code == 2
    assert result.log_tail == "line 497\nline 498\nline 499\n"


def test_logs_deleted_between_status_and_read_are_an_infrastructure_error(
    fake_cluster: FakeCluster, make_runner: Factory, tmp_path: Path
) -> None:
    # The runner saw the Pod succeed, then the Pod vanished before the collector's log was read.
    fake_cluster.fail_next("GET", r"/log$", 404, times=2)
    _, result = _run(make_runner(), tmp_path)
    assert result.error_code == ErrorCode.INFRA_ERROR
    assert "deleted" in result.message and "before its logs were read" in result.message
    assert "unavailable: 404" in result.log_tail


def test_fail_fast_on_image_pull_stops_the_job(
    fake_cluster: FakeCluster, make_runner: Factory, tmp_path: Path
) -> None:
    fake_cluster.script("", PodScript(pull_error="ErrImagePull"))
    _, result = _run(make_runner(), tmp_path)
    assert result.error_code == ErrorCode.IMAGE_INVALID
    # Decided long before any deadline, and the Job is deleted so the GPU is free again.
    deletes = [r for r in fake_cluster.runner_requests() if r.method == "DELETE"]
    assert len(deletes) == 1 and fake_cluster.objects("jobs", NS) == []


def test_runner_enforces_the_timeout_itself_when_the_cluster_does_not(
    fake_cluster: FakeCluster, make_runner: Factory, tmp_path: Path
) -> None:
    fake_cluster.script("", PodScript(hang=True))
    _, result = _run(make_runner(), tmp_path, timeout=timedelta(seconds=1))
    assert result.error_code == ErrorCode.TIMEOUT
    assert "time limit of 1 s" in result.message
    assert "predicting" in result.log_tail
    assert fake_cluster.objects("jobs", NS) == []  # wait stopped it


def test_collector_time_after_the_model_is_not_the_models_time(
    fake_cluster: FakeCluster, make_runner: Factory, tmp_path: Path
) -> None:
    """Issue 13: the model finished inside its 1 s limit; the collector (its image pull on a fresh
    node, say) then takes 2.5 s. The run succeeds: the model's clock stopped when it exited."""
    fake_cluster.script("", PodScript(collector_seconds=2.5))
    _, result = _run(make_runner(), tmp_path, timeout=timedelta(seconds=1))
    assert result.state == TerminalState.SUCCEEDED, result.message
    assert result.predictions == PREDICTIONS


def test_unschedulable_is_queued_with_reason_until_the_schedule_timeout(
    fake_cluster: FakeCluster, make_runner: Factory, tmp_path: Path
) -> None:
    reason = "0/3 nodes are available: 3 Insufficient nvidia.com/gpu."
    fake_cluster.script("", PodScript(unschedulable=reason))
    progress: list[Progress] = []
    _, result = _run(make_runner(progress), tmp_path)

    queued = [p for p in progress if p.kind == "pending" and reason in p.message]
    assert queued, progress
    assert result.error_code == ErrorCode.INFRA_ERROR
    assert "could not start within" in result.message and reason in result.message
    assert fake_cluster.objects("jobs", NS) == []


def test_kueue_suspended_job_is_queued_until_admitted(
    fake_cluster: FakeCluster, make_runner: Factory, tmp_path: Path
) -> None:
    progress: list[Progress] = []
    runner = make_runner(progress, kueue_queue="team-a", queue_timeout=timedelta(seconds=30))
    spec = make_spec(tmp_path)
    handle = runner.start(spec)
    admitter = threading.Timer(1.5, fake_cluster.admit, args=(NS, job_name("run-1", 1)))
    admitter.start()
    result = runner.wait(handle, spec)
    admitter.join()
    assert result.state == TerminalState.SUCCEEDED, result.message
    assert any(p.kind == "pending" and "Kueue" in p.message for p in progress)
    assert progress[-1].kind == "succeeded"


def test_kueue_queue_wait_is_bounded(fake_cluster: FakeCluster, make_runner: Factory, tmp_path: Path) -> None:
    _, result = _run(make_runner(kueue_queue="team-a", queue_timeout=timedelta(seconds=1)), tmp_path)
    assert result.error_code == ErrorCode.INFRA_ERROR
    assert "could not start within" in result.message and "Kueue" in result.message
    assert fake_cluster.objects("jobs", NS) == []


def test_disrupted_pod_is_replaced_and_the_run_succeeds(
    fake_cluster: FakeCluster, make_runner: Factory, tmp_path: Path
) -> None:
    fake_cluster.script("", PodScript(disruptions=2))
    _, result = _run(make_runner(), tmp_path)
    assert result.state == TerminalState.SUCCEEDED and result.predictions == PREDICTIONS


def test_too_many_disruptions_is_an_infrastructure_error(
    fake_cluster: FakeCluster, make_runner: Factory, tmp_path: Path
) -> None:
    fake_cluster.script("", PodScript(disruptions=3, hang=True))
    _, result = _run(make_runner(max_disruptions=2), tmp_path)
    assert result.error_code == ErrorCode.INFRA_ERROR and "disrupted the run 3 times" in result.message


def test_watch_expiry_410_leads_to_a_relist(
    fake_cluster: FakeCluster, make_runner: Factory, tmp_path: Path
) -> None:
    fake_cluster.expire_watches(3)
    _, result = _run(make_runner(), tmp_path)
    assert result.state == TerminalState.SUCCEEDED and result.predictions == PREDICTIONS
    assert fake_cluster.watch_expiries_served == 3
    requests = fake_cluster.runner_requests()
    watches = [i for i, r in enumerate(requests) if r.params.get("watch") == "true"]
    # After every expired watch the runner lists again before watching anew.
    for before, after in itertools.pairwise(watches):
        assert any(
            r.params.get("watch") != "true" and r.url.path.endswith("/pods")
            for r in requests[before + 1 : after]
        )


def test_api_429_and_5xx_are_retried_with_bounds(
    fake_cluster: FakeCluster, make_runner: Factory, tmp_path: Path
) -> None:
    fake_cluster.fail_next("POST", r"/jobs$", 503, times=2)
    fake_cluster.fail_next("GET", r"/jobs/csawm-run-1-a1$", 429, times=1)
    fake_cluster.fail_next("GET", r"/log$", 500, times=1)
    _, result = _run(make_runner(), tmp_path)
    assert result.state == TerminalState.SUCCEEDED
    posts = [r for r in fake_cluster.runner_requests() if r.method == "POST"]
    assert len(posts) == 3

    fake_cluster.fail_next("POST", r"/jobs$", 503, times=10)
    with pytest.raises(TransientInfraError, match="after 3 tries"):
        make_runner(api_retries=2).start(make_spec(tmp_path, "run-2"))


def test_start_is_idempotent_and_refuses_a_foreign_job(
    fake_cluster: FakeCluster, make_runner: Factory, tmp_path: Path
) -> None:
    fake_cluster.script("", PodScript(hang=True))
    runner = make_runner()
    spec = make_spec(tmp_path)
    assert runner.start(spec) == runner.start(spec)
    assert len(fake_cluster.objects("jobs", NS)) == 1

    other = make_spec(tmp_path, "run-1")
    foreign = type(other)(**{**other.__dict__, "image": other.image.replace("ab", "cd")})
    with pytest.raises(PermanentInfraError, match="already exists for another run or image"):
        runner.start(foreign)


def test_start_rejects_an_image_not_pinned_by_digest(make_runner: Factory, tmp_path: Path) -> None:
    spec = make_spec(tmp_path)
    unpinned = type(spec)(**{**spec.__dict__, "image": "registry.example.org/team/model:latest"})
    with pytest.raises(ImageInvalidError, match="pinned by digest"):
        make_runner().start(unpinned)


def test_cleanup_and_cancel_are_idempotent_and_ignore_404(
    fake_cluster: FakeCluster, make_runner: Factory
) -> None:
    runner = make_runner()
    handle = f"k8s:{NS}/csawm-never-created-a1"
    runner.cleanup(handle)
    runner.cancel(handle)
    runner.cleanup(handle)
    assert [r.method for r in fake_cluster.runner_requests()] == ["DELETE"] * 3


def test_cancel_during_wait(fake_cluster: FakeCluster, make_runner: Factory, tmp_path: Path) -> None:
    fake_cluster.script("", PodScript(hang=True))
    runner = make_runner()
    spec = make_spec(tmp_path)
    handle = runner.start(spec)
    results = []
    waiter = threading.Thread(target=lambda: results.append(runner.wait(handle, spec)))
    waiter.start()
    assert _wait_for(
        lambda: any(p["status"].get("initContainerStatuses") for p in fake_cluster.objects("pods", NS))
    )
    runner.cancel(handle)
    waiter.join(timeout=30)
    assert results and results[0].state == TerminalState.CANCELLED
    assert results[0].error_code == ErrorCode.CANCELLED
    assert _wait_for(lambda: fake_cluster.objects("pods", NS) == [])


@pytest.mark.parametrize("honour_selectors", [True, False], ids=["selectors", "server-ignores-selectors"])
def test_two_jobs_in_one_namespace_are_not_confused(
    make_runner: Factory, tmp_path: Path, honour_selectors: bool, fake_cluster: FakeCluster
) -> None:
    fake_cluster.honour_selectors = honour_selectors
    fake_cluster.script("good", PodScript(output=write_predictions(b"Filename;Final_score\nG.png;1\n")))
    fake_cluster.script("bad", PodScript(model_exit=4, model_log="bad model\n"))
    runner = make_runner()
    results: dict[str, object] = {}

    def go(run_id: str) -> None:
        results[run_id] = _run(runner, tmp_path / run_id, run_id)[1]

    threads = [threading.Thread(target=go, args=(run_id,)) for run_id in ("good", "bad")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    good, bad = results["good"], results["bad"]
    assert good.state == TerminalState.SUCCEEDED and good.predictions == b"Filename;Final_score\nG.png;1\n"  # type: ignore[attr-defined]
    assert bad.error_code == ErrorCode.NONZERO_EXIT and bad.log_tail == "bad model\n"  # type: ignore[attr-defined]
    assert good.handle.endswith(job_name("good", 1)) and bad.handle.endswith(job_name("bad", 1))  # type: ignore[attr-defined]


def test_kubeconfig_fallback_loads_a_client(
    fake_cluster: FakeCluster, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text(
        json.dumps(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "current-context": "fake",
                "clusters": [{"name": "fake", "cluster": {"server": fake_cluster.url}}],
                "users": [{"name": "u", "user": {"token": "t"}}],
                "contexts": [{"name": "fake", "context": {"cluster": "fake", "user": "u"}}],
            }
        )
    )
    monkeypatch.setenv("KUBECONFIG", str(kubeconfig))
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    runner = KubernetesRunner(fast_config())
    runner.cleanup(f"k8s:{NS}/nothing-here")
    (delete,) = fake_cluster.runner_requests()
    assert delete.headers["Authorization"] == "Bearer t"
    assert isinstance(runner._api, client.ApiClient)


def _wait_for(predicate: Callable[[], bool], timeout: float = 10.0) -> bool:
    """Poll a condition on the fake cluster (its controllers run asynchronously)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.02)
    return predicate()
