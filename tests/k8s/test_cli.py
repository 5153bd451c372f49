"""``csawm k8s render-job``: prints the exact Job the runner would create, valid for the cluster."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import kubernetes_validate
import pytest
import yaml
from typer.testing import CliRunner

from runner.kubernetes.config import KubernetesRunnerConfig
from runner.kubernetes.manifest import build_job
from runner.spec import RunLimits, RunSpec
from server.cli.main import app
from tests.k8s import rules

IMAGE = "registry.example.org/team/model@sha256:" + "ab" * 32


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("CSAWM_RUN_TIMEOUT", "CSAWM_RUN_MEMORY", "CSAWM_RUN_CPUS", "CSAWM_RUN_GPUS"):
        monkeypatch.delenv(name, raising=False)


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
