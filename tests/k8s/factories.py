"""Factories for the Kubernetes tests: run specs and a runner configuration with short timers."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

from runner.kubernetes.config import KubernetesRunnerConfig
from runner.spec import RunLimits, RunSpec

IMAGE = "registry.example.org/team/model@sha256:" + "ab" * 32


def fast_config(**overrides: Any) -> KubernetesRunnerConfig:
    values: dict[str, Any] = {
        "watch_timeout": timedelta(seconds=1),
        "api_backoff": timedelta(milliseconds=5),
        "api_backoff_max": timedelta(milliseconds=50),
        "runner_grace": timedelta(milliseconds=300),
        "schedule_timeout": timedelta(seconds=1),
    }
    values.update(overrides)
    return KubernetesRunnerConfig(**values)


def make_spec(tmp_path: Path, run_id: str = "run-1", **limits: Any) -> RunSpec:
    values: dict[str, Any] = {"timeout": timedelta(seconds=60), "gpus": 1}
    values.update(limits)
    return RunSpec(
        run_id=run_id,
        image=IMAGE,
        input_dir=tmp_path / "input",
        output_dir=tmp_path / "output",
        limits=RunLimits(**values),
    )
