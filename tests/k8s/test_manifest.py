"""The pure Job builder: names, quantities, the Pod's shape, and clear errors for bad input."""

from __future__ import annotations

import re
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from runner.kubernetes.config import KubernetesConfigError, KubernetesRunnerConfig
from runner.kubernetes.manifest import (
    ManifestError,
    active_deadline_seconds,
    build_job,
    format_bytes,
    format_cpus,
    handle_for,
    job_name,
    parse_handle,
    run_label_value,
)
from runner.spec import RunLimits, RunSpec

IMAGE = "registry.example.org/team/model@sha256:" + "ab" * 32
DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")


def _spec(**overrides: Any) -> RunSpec:
    values: dict[str, Any] = {
        "run_id": "run-1",
        "image": IMAGE,
        "input_dir": Path("/i"),
        "output_dir": Path("/o"),
    }
    values.update(overrides)
    return RunSpec(**values)


@pytest.mark.parametrize(
    "run_id", ["run-1", "RUN_1", "a" * 200, "---", "über/run 1", "7f9c2ba4-e88f-11ee-8c90"]
)
@pytest.mark.parametrize("attempt", [1, 12])
def test_job_names_are_dns_labels(run_id: str, attempt: int) -> None:
    name = job_name(run_id, attempt)
    assert DNS_LABEL.fullmatch(name) and len(name) <= 63 and name.endswith(f"-a{attempt}")
    value = run_label_value(run_id)
    assert len(value) <= 63 and re.fullmatch(r"([A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?)?", value)


def test_names_are_readable_when_possible_and_distinct_always() -> None:
    assert job_name("run-1", 1) == "csawm-run-1-a1"
    assert run_label_value("run-1") == "run-1"
    assert job_name("Run-1", 1) != job_name("run-1", 1)  # case folding must not merge runs
    assert job_name("x" * 100 + "1", 1) != job_name("x" * 100 + "2", 1)
    assert job_name("run-1", 1) != job_name("run-1", 2)


def test_handles_round_trip_and_reject_garbage() -> None:
    assert parse_handle(handle_for("ns", "job")) == ("ns", "job")
    for bad in ("docker:abc", "k8s:ns", "k8s:/job", "k8s:a/b/c"):
        with pytest.raises(ValueError, match="not a Kubernetes run handle"):
            parse_handle(bad)


@pytest.mark.parametrize(
    ("n", "text"),
    [
        (4 * 1024**3, "4Gi"),
        (512 * 1024**2, "512Mi"),
        (3072, "3Ki"),
        (1536, "1536"),
        (1000, "1000"),
        (1024**4, "1Ti"),
    ],
)
def test_format_bytes(n: int, text: str) -> None:
    assert format_bytes(n) == text


@pytest.mark.parametrize(("cpus", "text"), [(2.0, "2"), (1.5, "1500m"), (0.25, "250m"), (0.001, "1m")])
def test_format_cpus(cpus: float, text: str) -> None:
    assert format_cpus(cpus) == text


def test_deadline_adds_the_startup_allowance() -> None:
    config = KubernetesRunnerConfig(startup_allowance=timedelta(minutes=5))
    assert active_deadline_seconds(timedelta(seconds=60.2), config) == 361


def test_pod_shape() -> None:
    job = build_job(
        _spec(limits=RunLimits(gpus=1, memory_bytes=8 * 1024**3, cpus=4)), KubernetesRunnerConfig()
    )
    pod = job["spec"]["template"]["spec"]
    (model,) = pod["initContainers"]
    (collector,) = pod["containers"]
    assert model["image"] == IMAGE
    assert {e["name"]: e["value"] for e in model["env"]} == {
        "CSAWM_INPUT_DIR": "/input",
        "CSAWM_OUTPUT_DIR": "/output",
        "CSAWM_CONTRACT": "1",
        "HOME": "/tmp",
    }
    assert (
        model["resources"]["limits"]
        == model["resources"]["requests"]
        == {"cpu": "4", "memory": "8Gi", "ephemeral-storage": "1280Mi", "nvidia.com/gpu": "1"}
    )
    assert collector["command"] == ["python3", "-m", "runner.kubernetes.collector"]
    assert collector["args"] == ["--output-dir", "/output", "--max-bytes", str(4 * 1024**2)]
    assert {m["mountPath"]: m.get("readOnly", False) for m in collector["volumeMounts"]} == {"/output": True}
    mounts = {m["mountPath"]: m for m in model["volumeMounts"]}
    assert mounts["/input"] == {"name": "input", "mountPath": "/input", "readOnly": True, "subPath": "hidden"}
    volumes = {v["name"]: v for v in pod["volumes"]}
    assert volumes["input"]["persistentVolumeClaim"] == {"claimName": "csawm-test-images", "readOnly": True}
    assert volumes["tmp"]["emptyDir"] == {"medium": "Memory", "sizeLimit": "512Mi"}
    assert volumes["output"]["emptyDir"] == {"sizeLimit": "1Gi"}
    assert pod["tolerations"] == [{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}]
    assert "runtimeClassName" not in pod and "imagePullSecrets" not in pod and "nodeSelector" not in pod
    assert "kueue.x-k8s.io/queue-name" not in job["metadata"]["labels"]


def test_options_appear_only_when_set() -> None:
    config = KubernetesRunnerConfig(
        runtime_class_name="gvisor",
        kueue_queue="team-a",
        image_pull_secrets=("pull",),
        node_selector=(("pool", "gpu"),),
    )
    job = build_job(_spec(phase="preflight"), config)
    pod = job["spec"]["template"]["spec"]
    assert pod["runtimeClassName"] == "gvisor" and pod["imagePullSecrets"] == [{"name": "pull"}]
    assert pod["nodeSelector"] == {"pool": "gpu"}
    assert job["metadata"]["labels"]["kueue.x-k8s.io/queue-name"] == "team-a"
    assert "kueue.x-k8s.io/queue-name" not in job["spec"]["template"]["metadata"]["labels"]
    assert pod["initContainers"][0]["volumeMounts"][0]["subPath"] == "preflight"


@pytest.mark.parametrize(
    ("phase", "input_name", "template", "sub_path"),
    [
        ("preflight", None, "{phase}", "preflight"),
        ("hidden", None, "{phase}", "hidden"),
        ("hidden", "public", "{phase}", "public"),  # a development phase's hidden run
        ("hidden", "public", "v2/{phase}", "v2/public"),
    ],
)
def test_the_input_mount_is_the_runs_own_folder(
    phase: str, input_name: str | None, template: str, sub_path: str
) -> None:
    """Issue 19 item 2: a development phase's hidden Job mounts public/, never hidden/."""
    config = KubernetesRunnerConfig(input_sub_path=template)
    job = build_job(_spec(phase=phase, input_name=input_name), config)
    model = job["spec"]["template"]["spec"]["initContainers"][0]
    mount = next(m for m in model["volumeMounts"] if m["mountPath"] == "/input")
    assert mount["subPath"] == sub_path and mount["readOnly"] is True
    assert job["metadata"]["labels"]["csawm.io/phase"] == phase


def test_builder_is_pure() -> None:
    spec, config = _spec(), KubernetesRunnerConfig()
    assert build_job(spec, config) == build_job(spec, config)


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"image": "registry.example.org/team/model:latest"}, "pinned by digest"),
        ({"image": "sha256:" + "a" * 64}, "pinned by digest"),
        ({"phase": "training"}, "phase must be one of"),
        ({"input_name": "../hidden"}, "input must be one of"),
        ({"input_name": "labels"}, "input must be one of"),
        ({"attempt": 0}, "attempt must be >= 1"),
        ({"run_id": ""}, "run_id must be"),
        ({"run_id": "tab\there"}, "run_id must be"),
        ({"limits": RunLimits(timeout=timedelta(0))}, "limits.timeout must be positive"),
        ({"limits": RunLimits(memory_bytes=0)}, "limits.memory_bytes must be positive"),
        ({"limits": RunLimits(cpus=0.0)}, "cpus must be a positive number"),
        ({"limits": RunLimits(gpus=-1)}, "limits.gpus must be >= 0"),
    ],
)
def test_bad_specs_are_refused_with_a_named_field(overrides: dict[str, Any], message: str) -> None:
    with pytest.raises(ManifestError, match=message):
        build_job(_spec(**overrides), KubernetesRunnerConfig())


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"namespace": "Eval"}, "namespace"),
        ({"input_pvc": "bad_name"}, "input_pvc"),
        ({"image_pull_secrets": ("UPPER",)}, "image_pull_secrets"),
        ({"run_as_user": 0}, "non-root"),
        ({"input_sub_path": "../labels"}, "input_sub_path"),
        # one folder (or the whole volume) for every run: a development run would see hidden/
        ({"input_sub_path": ""}, "must contain {phase}"),
        ({"input_sub_path": "hidden"}, "must contain {phase}"),
        ({"input_sub_path": "{phase}/{other}"}, "no other placeholder"),
        ({"schedule_timeout": timedelta(0)}, "schedule_timeout"),
        ({"job_name_prefix": "a-very-long-prefix-for-jobs"}, "job_name_prefix"),
    ],
)
def test_bad_config_is_refused(overrides: dict[str, Any], message: str) -> None:
    with pytest.raises(KubernetesConfigError, match=message):
        KubernetesRunnerConfig(**overrides)
