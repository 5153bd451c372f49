"""`build_runner` and `run_limits`: ``CSAWM_RUNNER`` picks a fully configured backend and the
``CSAWM_RUN_*`` limits reach every backend (issue 7 wiring). No engine or cluster is needed: both
backends create their API clients on first use."""

from __future__ import annotations

import os
from datetime import timedelta
from pathlib import Path

import pytest

from runner.docker_backend import DockerRunner
from runner.errors import PermanentInfraError
from runner.kubernetes.config import KubernetesRunnerConfig, Toleration
from runner.kubernetes.executor import KubernetesRunner
from runner.spec import RunSpec
from server.core.k8s_settings import kubernetes_runner_config
from server.core.settings import SettingsError, load_settings
from server.worker.backend import run_limits
from server.worker.loop import build_runner


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for key in list(os.environ):
        if key.startswith("CSAWM_"):
            monkeypatch.delenv(key)
    # Neither in a cluster nor with a kubeconfig: constructing the runner must not need one.
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    monkeypatch.setenv("KUBECONFIG", str(tmp_path / "no-such-kubeconfig"))


def test_kubernetes_runner_is_built_from_the_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CSAWM_RUNNER", "kubernetes")
    monkeypatch.setenv("CSAWM_REGISTRY", "reg.example.org")
    monkeypatch.setenv("CSAWM_K8S_NAMESPACE", "eval-gpu")
    monkeypatch.setenv("CSAWM_K8S_COLLECTOR_IMAGE", "reg.example.org/csawm@sha256:" + "e" * 64)
    monkeypatch.setenv("CSAWM_K8S_NODE_SELECTOR", "pool=gpu")
    monkeypatch.setenv("CSAWM_K8S_TOLERATIONS", '[{"key": "dedicated", "operator": "Equal", "value": "x"}]')
    monkeypatch.setenv("CSAWM_K8S_IMAGE_PULL_SECRETS", "pull")
    monkeypatch.setenv("CSAWM_K8S_KUEUE_QUEUE", "csawm")
    settings = load_settings()
    runner = build_runner(settings)
    assert isinstance(runner, KubernetesRunner)
    assert runner.config == kubernetes_runner_config(settings.k8s)
    assert runner.config != KubernetesRunnerConfig()
    assert runner.config.namespace == "eval-gpu"
    assert runner.config.node_selector == (("pool", "gpu"),)
    assert runner.config.tolerations == (Toleration(key="dedicated", operator="Equal", value="x"),)
    assert (runner.config.image_pull_secrets, runner.config.kueue_queue) == (("pull",), "csawm")
    # The worker records this handle before starting the Job: it must use the configured namespace.
    spec = RunSpec(
        run_id="abc-1-hidden", image="r/m@sha256:" + "0" * 64, input_dir=Path("/i"), output_dir=Path("/o")
    )
    handle = runner.handle_for(spec)
    assert handle.startswith("k8s:eval-gpu/")


def test_kubernetes_client_is_created_on_first_use_and_fails_as_infrastructure() -> None:
    runner = build_runner(load_settings(runner="kubernetes", registry="reg.example.org"))
    assert isinstance(runner, KubernetesRunner)
    assert runner._apis is None  # nothing loaded yet
    with pytest.raises(PermanentInfraError, match="no Kubernetes configuration"):
        runner.cleanup("k8s:csawm-eval/csawm-x-1")


def test_docker_runner_is_the_default() -> None:
    runner = build_runner(load_settings())
    assert isinstance(runner, DockerRunner)
    assert runner.remove_containers is True


@pytest.mark.parametrize("backend", ["docker", "kubernetes"])
def test_run_limits_come_from_the_settings_for_every_backend(
    monkeypatch: pytest.MonkeyPatch, backend: str
) -> None:
    monkeypatch.setenv("CSAWM_RUNNER", backend)
    monkeypatch.setenv("CSAWM_REGISTRY", "reg.example.org")  # the kubernetes runner needs one
    monkeypatch.setenv("CSAWM_RUN_GPUS", "2")
    monkeypatch.setenv("CSAWM_RUN_CPUS", "3.5")
    monkeypatch.setenv("CSAWM_RUN_MEMORY", "12g")
    monkeypatch.setenv("CSAWM_RUN_TIMEOUT", "45m")
    monkeypatch.setenv("CSAWM_PREFLIGHT_TIMEOUT", "2m")
    settings = load_settings()
    hidden, preflight = run_limits(settings, "hidden"), run_limits(settings, "preflight")
    for limits in (hidden, preflight):
        assert (limits.gpus, limits.cpus, limits.memory_bytes) == (2, 3.5, 12 * 1024**3)
    assert hidden.timeout == timedelta(minutes=45)
    assert preflight.timeout == timedelta(minutes=2)
    assert preflight.log_tail_bytes > hidden.log_tail_bytes  # the preflight shows the whole log


def test_csawm_run_runtime_reaches_the_docker_runner(monkeypatch: pytest.MonkeyPatch) -> None:
    """Issue 12 item 7: runc unless told, runsc (gVisor) when told, anything else refused at start."""
    runner = build_runner(load_settings())
    assert isinstance(runner, DockerRunner) and runner.runtime == "runc"
    monkeypatch.setenv("CSAWM_RUN_RUNTIME", "runsc")
    runner = build_runner(load_settings())
    assert isinstance(runner, DockerRunner) and runner.runtime == "runsc"
    monkeypatch.setenv("CSAWM_RUN_RUNTIME", "gvisor")
    with pytest.raises(SettingsError, match="CSAWM_RUN_RUNTIME"):
        load_settings()
