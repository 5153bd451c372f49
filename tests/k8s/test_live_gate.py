"""The live suite's gate, checked in ordinary CI: required-but-unreachable must FAIL, not skip."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _run_live_suite(
    tmp_path: Path, select: str = "end_to_end", **env: str
) -> subprocess.CompletedProcess[str]:
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text(
        json.dumps(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "current-context": "nowhere",
                # A closed loopback port: connection refused at once, no traffic leaves the machine.
                "clusters": [{"name": "nowhere", "cluster": {"server": "http://127.0.0.1:9"}}],
                "users": [{"name": "u", "user": {"token": "t"}}],
                "contexts": [{"name": "nowhere", "context": {"cluster": "nowhere", "user": "u"}}],
            }
        )
    )
    clean = {
        k: v for k, v in os.environ.items() if not k.startswith(("CSAWM_K8S_LIVE", "KUBERNETES_SERVICE"))
    }
    clean.update({"KUBECONFIG": str(kubeconfig), **env})
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "tests/k8s/test_live.py",
            "-m",
            "k8s_live",
            "-p",
            "no:cacheprovider",
            "-q",
            "-x",
            "-k",
            select,
        ],
        cwd=ROOT,
        env=clean,
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_live_suite_fails_when_required_but_unreachable(tmp_path: Path) -> None:
    images = {
        name: "registry.example.org/x@sha256:" + "0" * 64
        for name in (
            "CSAWM_K8S_LIVE_COLLECTOR_IMAGE",
            "CSAWM_K8S_LIVE_PROBE_IMAGE",
            "CSAWM_K8S_LIVE_MODEL_IMAGE",
        )
    }
    proc = _run_live_suite(tmp_path, CSAWM_K8S_LIVE="1", **images)
    assert proc.returncode == 1, proc.stdout[-3000:]
    assert "no cluster is reachable" in proc.stdout


def test_live_suite_fails_when_required_but_not_configured(tmp_path: Path) -> None:
    proc = _run_live_suite(tmp_path, CSAWM_K8S_LIVE="1")
    assert proc.returncode == 1 and "CSAWM_K8S_LIVE_PROBE_IMAGE" in proc.stdout


def test_live_suite_skips_only_when_not_requested(tmp_path: Path) -> None:
    proc = _run_live_suite(tmp_path)
    assert proc.returncode == 0 and "1 skipped" in proc.stdout


def test_live_upload_to_score_fails_when_required_but_not_configured(tmp_path: Path) -> None:
    """Issue 13: the live end-to-end scenario names its own missing settings instead of skipping."""
    proc = _run_live_suite(tmp_path, "through_the_cluster", CSAWM_K8S_LIVE="1")
    assert proc.returncode == 1 and "CSAWM_K8S_LIVE_REGISTRY" in proc.stdout, proc.stdout[-3000:]


def test_live_upload_to_score_fails_when_required_but_unreachable(tmp_path: Path) -> None:
    env = {name: "x" for name in (
        "CSAWM_K8S_LIVE_REGISTRY", "CSAWM_K8S_LIVE_REGISTRY_USERNAME", "CSAWM_K8S_LIVE_REGISTRY_PASSWORD",
        "CSAWM_K8S_LIVE_MODEL_ARCHIVE", "CSAWM_K8S_LIVE_BENCHMARK_DIR", "CSAWM_K8S_LIVE_TEST_SET_DIGEST_FILE",
    )}  # fmt: skip
    env.update({name: "registry.example.org/x@sha256:" + "0" * 64 for name in (
        "CSAWM_K8S_LIVE_COLLECTOR_IMAGE", "CSAWM_K8S_LIVE_PROBE_IMAGE", "CSAWM_K8S_LIVE_MODEL_IMAGE",
    )})  # fmt: skip
    proc = _run_live_suite(tmp_path, "through_the_cluster", CSAWM_K8S_LIVE="1", **env)
    assert proc.returncode == 1 and "no cluster is reachable" in proc.stdout, proc.stdout[-3000:]
