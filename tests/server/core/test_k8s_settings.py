"""``CSAWM_K8S_*`` settings: parsing, fail-fast errors naming the variable, the mapping onto
`KubernetesRunnerConfig`, and the ConfigMap in ``k8s/`` (issue 7 wiring)."""

from __future__ import annotations

import os
from dataclasses import fields
from datetime import timedelta
from pathlib import Path

import pytest
import yaml

from runner.kubernetes.config import KubernetesConfigError, KubernetesRunnerConfig, Toleration
from server.core.k8s_settings import (
    CONFIG_FIELD_OF_SETTING,
    kubernetes_runner_config,
    parse_name_list,
    parse_node_selector,
    parse_tolerations,
)
from server.core.settings import K8sSettings, SettingsError, load_settings

CONFIGMAP = Path(__file__).resolve().parents[3] / "k8s" / "settings.yaml"


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for key in list(os.environ):
        if key.startswith("CSAWM_"):
            monkeypatch.delenv(key)


def test_defaults_map_to_the_runner_defaults() -> None:
    assert kubernetes_runner_config(load_settings().k8s) == KubernetesRunnerConfig()


def test_every_setting_names_a_config_field() -> None:
    config_fields = {f.name for f in fields(KubernetesRunnerConfig)}
    assert set(CONFIG_FIELD_OF_SETTING.values()) <= config_fields
    assert set(CONFIG_FIELD_OF_SETTING) <= set(K8sSettings.model_fields)


def test_environment_values_reach_the_config(monkeypatch: pytest.MonkeyPatch) -> None:
    env = {
        "CSAWM_K8S_NAMESPACE": "eval-gpu",
        "CSAWM_K8S_SERVICE_ACCOUNT": "model-sa",
        "CSAWM_K8S_COLLECTOR_IMAGE": "reg.example.org/csawm@sha256:" + "c" * 64,
        "CSAWM_K8S_NODE_SELECTOR": "pool=gpu, nvidia.com/gpu.product=A100",
        "CSAWM_K8S_TOLERATIONS": (
            '[{"key": "dedicated", "operator": "Equal", "value": "eval", "effect": null}]'
        ),
        "CSAWM_K8S_RUNTIME_CLASS": "gvisor",
        "CSAWM_K8S_GPU_RESOURCE": "amd.com/gpu",
        "CSAWM_K8S_TEST_IMAGES_PVC": "hidden-inputs",
        "CSAWM_K8S_INPUT_SUB_PATH": "v2/{phase}",
        "CSAWM_K8S_RECURSIVE_READ_ONLY": "true",
        "CSAWM_K8S_IMAGE_PULL_SECRETS": "pull-a,pull-b",
        "CSAWM_K8S_IMAGE_PULL_POLICY": "Always",
        "CSAWM_K8S_KUEUE_QUEUE": "csawm",
        "CSAWM_K8S_TTL_SECONDS": "600",
        "CSAWM_K8S_STARTUP_ALLOWANCE": "20m",
        "CSAWM_K8S_SCHEDULE_TIMEOUT": "5m",
        "CSAWM_K8S_QUEUE_TIMEOUT": "2h",
        "CSAWM_K8S_MAX_COLLECT_BYTES": "2m",
    }
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    config = kubernetes_runner_config(load_settings().k8s)
    assert config == KubernetesRunnerConfig(
        namespace="eval-gpu",
        service_account="model-sa",
        collector_image="reg.example.org/csawm@sha256:" + "c" * 64,
        node_selector=(("nvidia.com/gpu.product", "A100"), ("pool", "gpu")),
        tolerations=(Toleration(key="dedicated", operator="Equal", value="eval", effect=None),),
        runtime_class_name="gvisor",
        gpu_resource_name="amd.com/gpu",
        input_pvc="hidden-inputs",
        input_sub_path="v2/{phase}",
        recursive_read_only=True,
        image_pull_secrets=("pull-a", "pull-b"),
        image_pull_policy="Always",
        kueue_queue="csawm",
        ttl_after_finished=timedelta(seconds=600),
        startup_allowance=timedelta(minutes=20),
        schedule_timeout=timedelta(minutes=5),
        queue_timeout=timedelta(hours=2),
        max_collect_bytes=2 * 1024**2,
    )


def test_overrides_win_over_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CSAWM_K8S_NAMESPACE", "from-env")
    monkeypatch.setenv("CSAWM_K8S_RUNTIME_CLASS", "kata")
    config = kubernetes_runner_config(load_settings().k8s, namespace="from-flag")
    assert (config.namespace, config.runtime_class_name) == ("from-flag", "kata")
    with pytest.raises(KubernetesConfigError, match="namespace 'Bad_NS'"):
        kubernetes_runner_config(load_settings().k8s, namespace="Bad_NS")
    with pytest.raises(KubernetesConfigError, match="unknown Kubernetes runner setting"):
        kubernetes_runner_config(load_settings().k8s, namespaces="x")


def test_empty_strings_mean_unset(monkeypatch: pytest.MonkeyPatch) -> None:
    for key in (
        "CSAWM_K8S_RUNTIME_CLASS",
        "CSAWM_K8S_KUEUE_QUEUE",
        "CSAWM_K8S_NODE_SELECTOR",
        "CSAWM_K8S_IMAGE_PULL_SECRETS",
    ):
        monkeypatch.setenv(key, "")
    monkeypatch.setenv("CSAWM_K8S_TOLERATIONS", "[]")
    config = kubernetes_runner_config(load_settings().k8s)
    assert config.runtime_class_name is None and config.kueue_queue is None
    assert config.node_selector == () and config.image_pull_secrets == () and config.tolerations == ()


@pytest.mark.parametrize(
    ("name", "value", "needle"),
    [
        ("CSAWM_K8S_NAMESPACE", "Bad_NS", "not a DNS-1123 label"),
        ("CSAWM_K8S_SERVICE_ACCOUNT", "Model SA", "not a DNS-1123 subdomain"),
        ("CSAWM_K8S_COLLECTOR_IMAGE", "", "collector_image"),
        ("CSAWM_K8S_NODE_SELECTOR", "pool", "is not key=value"),
        ("CSAWM_K8S_NODE_SELECTOR", "{pool: gpu}", "not a JSON object"),
        ("CSAWM_K8S_NODE_SELECTOR", '{"pool": 1}', "must be strings"),
        ("CSAWM_K8S_NODE_SELECTOR", "bad key=x", "label key"),
        ("CSAWM_K8S_TOLERATIONS", '{"key": "x"}', "expected a JSON list"),
        ("CSAWM_K8S_TOLERATIONS", '[{"key": "x", "efect": "NoSchedule"}]', "unknown field(s) ['efect']"),
        ("CSAWM_K8S_TOLERATIONS", '[{"key": "x", "operator": "In"}]', "'operator' must be one of"),
        ("CSAWM_K8S_TOLERATIONS", '[{"key": "x", "value": "y"}]', "Exists takes no 'value'"),
        ("CSAWM_K8S_TOLERATIONS", '[{"key": "x", "effect": "Never"}]', "'effect' must be one of"),
        ("CSAWM_K8S_TOLERATIONS", "[{", "not a JSON list"),
        ("CSAWM_K8S_RUNTIME_CLASS", "gVisor", "not a DNS-1123 subdomain"),
        ("CSAWM_K8S_GPU_RESOURCE", "gpu", "CSAWM_K8S_GPU_RESOURCE"),
        ("CSAWM_K8S_TEST_IMAGES_PVC", "Test_Images", "not a DNS-1123 subdomain"),
        ("CSAWM_K8S_INPUT_SUB_PATH", "../labels", "without '..'"),
        ("CSAWM_K8S_RECURSIVE_READ_ONLY", "maybe", "valid boolean"),
        ("CSAWM_K8S_IMAGE_PULL_SECRETS", "ok,Not_OK", "not a DNS-1123 subdomain"),
        ("CSAWM_K8S_IMAGE_PULL_POLICY", "Never", "'IfNotPresent' or 'Always'"),
        ("CSAWM_K8S_KUEUE_QUEUE", "Queue!", "CSAWM_K8S_KUEUE_QUEUE"),
        ("CSAWM_K8S_TTL_SECONDS", "0", "positive duration"),
        ("CSAWM_K8S_STARTUP_ALLOWANCE", "soon", "CSAWM_K8S_STARTUP_ALLOWANCE"),
        ("CSAWM_K8S_SCHEDULE_TIMEOUT", "-1", "valid timedelta"),
        ("CSAWM_K8S_QUEUE_TIMEOUT", "0s", "positive duration"),
        ("CSAWM_K8S_MAX_COLLECT_BYTES", "0", "max_collect_bytes must be positive"),
    ],
)
def test_bad_values_fail_fast_naming_the_variable(
    monkeypatch: pytest.MonkeyPatch, name: str, value: str, needle: str
) -> None:
    monkeypatch.setenv(name, value)
    with pytest.raises(SettingsError) as info:
        load_settings()
    message = str(info.value)
    assert f"{name}:" in message and needle in message


def test_bad_k8s_values_fail_even_with_the_docker_runner(monkeypatch: pytest.MonkeyPatch) -> None:
    """A typo is reported when it is made, not when someone later switches the runner."""
    monkeypatch.setenv("CSAWM_RUNNER", "docker")
    monkeypatch.setenv("CSAWM_K8S_NAMESPACE", "Bad_NS")
    with pytest.raises(SettingsError, match="CSAWM_K8S_NAMESPACE"):
        load_settings()


def test_parsers_accept_both_forms() -> None:
    assert parse_node_selector('{"a": "1", "b/c": ""}') == {"a": "1", "b/c": ""}
    assert parse_node_selector("a=1,,b=2") == {"a": "1", "b": "2"}
    assert parse_name_list('["x", "y"]') == parse_name_list(" x , y ") == ("x", "y")
    assert parse_tolerations('[{"key": "k"}]') == (Toleration(key="k"),)
    with pytest.raises(ValueError, match="JSON list of strings"):
        parse_name_list("[1]")


def test_the_configmap_carries_every_setting_at_its_default(monkeypatch: pytest.MonkeyPatch) -> None:
    """``k8s/settings.yaml`` names every CSAWM_K8S_* setting, and its values load to the defaults."""
    docs = list(yaml.safe_load_all(CONFIGMAP.read_text()))
    (configmap,) = [d for d in docs if d and d.get("kind") == "ConfigMap"]
    data: dict[str, str] = configmap["data"]
    assert {key for key in data if key.startswith("CSAWM_K8S_")} == {
        f"CSAWM_K8S_{setting.upper()}" for setting in CONFIG_FIELD_OF_SETTING
    }
    assert all(isinstance(value, str) for value in data.values())  # ConfigMap data must be strings
    for key, value in data.items():
        monkeypatch.setenv(key, value)
    settings = load_settings()
    assert settings.runner == "kubernetes"
    # the one value the base sets on purpose: the registry's pull Secret (k8s/registry, issue 13)
    assert kubernetes_runner_config(settings.k8s) == KubernetesRunnerConfig(
        image_pull_secrets=("csawm-registry-pull",)
    )
