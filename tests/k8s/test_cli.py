"""``csawm k8s render-job``: prints the exact Job the runner would create, valid for the cluster."""

from __future__ import annotations

import os
from datetime import timedelta
from pathlib import Path

import kubernetes_validate
import pytest
import yaml
from typer.testing import CliRunner

from runner.kubernetes.config import KubernetesRunnerConfig, Toleration
from runner.kubernetes.manifest import build_job
from runner.spec import RunLimits, RunSpec
from server.cli.main import app
from tests.k8s import rules

IMAGE = "registry.example.org/team/model@sha256:" + "ab" * 32


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.startswith("CSAWM_"):
            monkeypatch.delenv(name)


def test_render_job_prints_the_builders_job(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CSAWM_RUN_MEMORY", "8g")
    monkeypatch.setenv("CSAWM_RUN_GPUS", "1")
    result = CliRunner().invoke(
        app,
        [
            "k8s",
            "render-job",
            "--image",
            IMAGE,
            "--run-id",
            "run-7",
            "--runtime-class",
            "gvisor",
            "--timeout-s",
            "600",
        ],
    )
    assert result.exit_code == 0, result.output
    job = yaml.safe_load(result.stdout)
    expected = build_job(
        RunSpec(
            run_id="run-7",
            image=IMAGE,
            input_dir=Path("/input"),
            output_dir=Path("/output"),
            limits=RunLimits(timeout=timedelta(seconds=600), memory_bytes=8 * 1024**3, gpus=1),
        ),
        KubernetesRunnerConfig(runtime_class_name="gvisor"),
    )
    assert job == expected
    assert kubernetes_validate.validate(job, "1.29", strict=True)
    assert rules.check_model_job(job, gpus=1) == []


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--image", "team/model:latest", "--run-id", "r"], "pinned by digest"),
        (["--image", IMAGE, "--run-id", "r", "--phase", "train"], "phase must be one of"),
        (["--image", IMAGE, "--run-id", "r", "--namespace", "Bad_NS"], "namespace"),
    ],
)
def test_render_job_rejects_bad_input_with_exit_2(args: list[str], message: str) -> None:
    result = CliRunner().invoke(app, ["k8s", "render-job", *args])
    assert result.exit_code == 2
    assert message in result.output


def test_render_job_reflects_the_k8s_settings_and_flags_override(monkeypatch: pytest.MonkeyPatch) -> None:
    """Issue 7 wiring: the CSAWM_K8S_* settings shape the Job exactly as they shape the worker's."""
    env = {
        "CSAWM_K8S_NAMESPACE": "eval-gpu",
        "CSAWM_K8S_COLLECTOR_IMAGE": "registry.example.org/csawm@sha256:" + "cd" * 32,
        "CSAWM_K8S_NODE_SELECTOR": '{"pool": "gpu"}',
        "CSAWM_K8S_TOLERATIONS": '[{"key": "dedicated", "operator": "Equal", "value": "eval"}]',
        "CSAWM_K8S_RUNTIME_CLASS": "gvisor",
        "CSAWM_K8S_TEST_IMAGES_PVC": "hidden-inputs",
        "CSAWM_K8S_IMAGE_PULL_SECRETS": "submissions-pull",
        "CSAWM_K8S_KUEUE_QUEUE": "csawm",
        "CSAWM_K8S_TTL_SECONDS": "900",
        "CSAWM_RUN_GPUS": "2",
        "CSAWM_RUN_CPUS": "6",
        "CSAWM_RUN_MEMORY": "24g",
        "CSAWM_PREFLIGHT_TIMEOUT": "3m",
    }
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    args = ["k8s", "render-job", "--image", IMAGE, "--run-id", "run-8", "--phase", "preflight"]
    result = CliRunner().invoke(app, [*args, "--runtime-class", "kata-qemu"])
    assert result.exit_code == 0, result.output
    job = yaml.safe_load(result.stdout)
    pod = job["spec"]["template"]["spec"]
    assert job["metadata"]["namespace"] == "eval-gpu"
    assert job["metadata"]["labels"]["kueue.x-k8s.io/queue-name"] == "csawm"
    assert job["spec"]["ttlSecondsAfterFinished"] == 900
    assert pod["runtimeClassName"] == "kata-qemu"  # the flag wins over CSAWM_K8S_RUNTIME_CLASS
    assert pod["nodeSelector"] == {"pool": "gpu"}
    assert pod["tolerations"] == [
        {"key": "dedicated", "operator": "Equal", "value": "eval", "effect": "NoSchedule"}
    ]
    assert pod["imagePullSecrets"] == [{"name": "submissions-pull"}]
    assert [c["image"] for c in pod["containers"]] == [env["CSAWM_K8S_COLLECTOR_IMAGE"]]
    volumes = {v["name"]: v for v in pod["volumes"]}
    assert any(
        v.get("persistentVolumeClaim", {}).get("claimName") == "hidden-inputs" for v in volumes.values()
    )
    (model,) = pod["initContainers"]
    assert model["resources"]["limits"]["nvidia.com/gpu"] == "2"
    assert model["resources"]["limits"]["cpu"] == "6"
    expected = build_job(
        RunSpec(
            run_id="run-8",
            image=IMAGE,
            input_dir=Path("/input"),
            output_dir=Path("/output"),
            limits=RunLimits(
                timeout=timedelta(minutes=3),
                memory_bytes=24 * 1024**3,
                cpus=6.0,
                gpus=2,
                log_tail_lines=2000,
                log_tail_bytes=256 * 1024,
            ),
            phase="preflight",
        ),
        KubernetesRunnerConfig(
            namespace="eval-gpu",
            collector_image=env["CSAWM_K8S_COLLECTOR_IMAGE"],
            node_selector=(("pool", "gpu"),),
            tolerations=(Toleration(key="dedicated", operator="Equal", value="eval"),),
            runtime_class_name="kata-qemu",
            input_pvc="hidden-inputs",
            image_pull_secrets=("submissions-pull",),
            kueue_queue="csawm",
            ttl_after_finished=timedelta(seconds=900),
        ),
    )
    assert job == expected
    assert kubernetes_validate.validate(job, "1.29", strict=True)
    assert rules.check_model_job(job, gpus=2) == []


def test_render_job_reports_a_bad_setting_by_name(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CSAWM_K8S_TOLERATIONS", '[{"key": "x", "operator": "In"}]')
    result = CliRunner().invoke(app, ["k8s", "render-job", "--image", IMAGE, "--run-id", "r"])
    assert result.exit_code == 2
    assert "CSAWM_K8S_TOLERATIONS" in result.output


def test_render_job_shows_a_development_phases_hidden_job() -> None:
    """``--input public``: the hidden Job of a development phase mounts public/ (issue 19 item 2)."""
    base = ["k8s", "render-job", "--image", IMAGE, "--run-id", "dev-1", "--phase", "hidden"]
    result = CliRunner().invoke(app, [*base, "--input", "public"])
    assert result.exit_code == 0, result.output
    job = yaml.safe_load(result.stdout)
    (model,) = job["spec"]["template"]["spec"]["initContainers"]
    assert [m.get("subPath") for m in model["volumeMounts"] if m["mountPath"] == "/input"] == ["public"]
    assert kubernetes_validate.validate(job, "1.29", strict=True)
    assert rules.check_model_job(job, gpus=0) == []
    refused = CliRunner().invoke(app, [*base, "--input", "labels"])
    assert refused.exit_code == 2 and "input must be one of preflight, hidden, public" in refused.output
