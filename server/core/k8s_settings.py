"""The ``CSAWM_K8S_*`` settings of the Kubernetes runner and their mapping onto its config.

The runner's deployment settings live in one frozen `runner.kubernetes.config.KubernetesRunnerConfig`;
operators set them as environment variables (the ConfigMap ``k8s/settings.yaml``). This module
holds the parsers for the values that are not plain strings or numbers, the table saying which
setting feeds which config field, and `kubernetes_runner_config`, the one function that builds the
config from the ``CSAWM_K8S_*`` group (`Settings.k8s`): the worker
(`server.worker.loop.build_runner`) and ``csawm k8s render-job`` both call it, so the Job an
operator reviews is the Job the worker creates. The formats are in docs/settings.md and below.
"""

from __future__ import annotations

import json
import re
from dataclasses import fields
from typing import TYPE_CHECKING, Any

from pydantic import ValidationInfo

from runner.kubernetes.config import KubernetesConfigError, KubernetesRunnerConfig, Toleration

if TYPE_CHECKING:
    from server.core.settings import K8sSettings

# Label keys: an optional DNS-subdomain prefix and "/", then a name of at most 63 characters.
_LABEL_NAME = re.compile(r"^[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$")
_DNS1123_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
_TOLERATION_KEYS = frozenset({"key", "operator", "value", "effect"})
_OPERATORS = ("Exists", "Equal")
_EFFECTS = ("NoSchedule", "PreferNoSchedule", "NoExecute")

# K8sSettings field -> KubernetesRunnerConfig field. Every setting here is checked on its own by
# building a config with only that field set (the defaults are valid), so an error names one
# variable.
CONFIG_FIELD_OF_SETTING: dict[str, str] = {
    "namespace": "namespace",
    "service_account": "service_account",
    "collector_image": "collector_image",
    "node_selector": "node_selector",
    "tolerations": "tolerations",
    "runtime_class": "runtime_class_name",
    "gpu_resource": "gpu_resource_name",
    "test_images_pvc": "input_pvc",
    "input_sub_path": "input_sub_path",
    "recursive_read_only": "recursive_read_only",
    "image_pull_secrets": "image_pull_secrets",
    "image_pull_policy": "image_pull_policy",
    "kueue_queue": "kueue_queue",
    "ttl_seconds": "ttl_after_finished",
    "startup_allowance": "startup_allowance",
    "schedule_timeout": "schedule_timeout",
    "queue_timeout": "queue_timeout",
    "max_collect_bytes": "max_collect_bytes",
}


def _label_key_problem(key: str) -> str | None:
    prefix, slash, name = key.rpartition("/")
    if slash and (not _DNS1123_SUBDOMAIN.fullmatch(prefix) or len(prefix) > 253):
        return f"label key {key!r}: prefix {prefix!r} is not a DNS-1123 subdomain"
    if not _LABEL_NAME.fullmatch(name) or len(name) > 63:
        return f"label key {key!r}: name {name!r} must be 1-63 alphanumerics, '-', '_' or '.'"
    return None


def _json(text: str, what: str) -> object:
    try:
        return json.loads(text)
    except ValueError as exc:
        raise ValueError(f"not a JSON {what}: {exc}") from None


def parse_node_selector(value: object) -> dict[str, str]:
    """A node selector from a JSON object or ``k=v,k=v`` (empty string: none).

    >>> parse_node_selector("pool=gpu, nvidia.com/gpu.product=A100")
    {'pool': 'gpu', 'nvidia.com/gpu.product': 'A100'}
    """
    if isinstance(value, str):
        text = value.strip()
        if text.startswith("{"):
            value = _json(text, "object")
        else:
            pairs: dict[str, str] = {}
            for item in filter(None, (part.strip() for part in text.split(","))):
                key, eq, val = item.partition("=")
                if not eq:
                    raise ValueError(f"{item!r} is not key=value (expected a JSON object or k=v,k=v)")
                pairs[key.strip()] = val.strip()
            value = pairs
    if not isinstance(value, dict):
        raise ValueError(f"expected a JSON object or k=v,k=v, got {type(value).__name__}")
    for key, val in value.items():
        if not isinstance(key, str) or not isinstance(val, str):
            raise ValueError(f"keys and values must be strings, got {key!r}: {val!r}")
        if problem := _label_key_problem(key):
            raise ValueError(problem)
        if val and (not _LABEL_NAME.fullmatch(val) or len(val) > 63):
            raise ValueError(
                f"label value {val!r} of {key!r} must be at most 63 alphanumerics, '-', '_', '.'"
            )
    return dict(value)


def parse_tolerations(value: object) -> tuple[Toleration, ...]:
    """Tolerations from a JSON list of ``{"key", "operator", "value", "effect"}`` objects (``[]``: none;
    ``operator`` Exists or Equal; ``effect`` null: every effect)."""
    if isinstance(value, tuple) and all(isinstance(item, Toleration) for item in value):
        return value
    if isinstance(value, str):
        value = _json(value, "list") if value.strip() else []
    if not isinstance(value, list):
        raise ValueError(f"expected a JSON list of toleration objects, got {type(value).__name__}")
    out: list[Toleration] = []
    for index, item in enumerate(value):
        where = f"toleration {index}"
        if not isinstance(item, dict):
            raise ValueError(f"{where}: expected an object, got {item!r}")
        unknown = sorted(set(item) - _TOLERATION_KEYS)
        if unknown:
            raise ValueError(f"{where}: unknown field(s) {unknown}; allowed: {sorted(_TOLERATION_KEYS)}")
        key, operator = item.get("key"), item.get("operator", "Exists")
        tol_value, effect = item.get("value"), item.get("effect", "NoSchedule")
        if not isinstance(key, str) or not key:
            raise ValueError(f"{where}: 'key' must be a non-empty string")
        if problem := _label_key_problem(key):
            raise ValueError(f"{where}: {problem}")
        if operator not in _OPERATORS:
            raise ValueError(f"{where}: 'operator' must be one of {_OPERATORS}, got {operator!r}")
        if operator == "Exists" and tol_value is not None:
            raise ValueError(f"{where}: operator Exists takes no 'value'")
        if operator == "Equal" and not isinstance(tol_value, str):
            raise ValueError(f"{where}: operator Equal needs a string 'value'")
        if effect is not None and effect not in _EFFECTS:
            raise ValueError(f"{where}: 'effect' must be one of {_EFFECTS} or null, got {effect!r}")
        out.append(Toleration(key=key, operator=operator, value=tol_value, effect=effect))
    return tuple(out)


def parse_name_list(value: object) -> tuple[str, ...]:
    """Names from ``a,b`` or a JSON list (empty string: none)."""
    if isinstance(value, str):
        text = value.strip()
        if text.startswith("["):
            value = _json(text, "list")
        else:
            value = [part.strip() for part in text.split(",") if part.strip()]
    if not isinstance(value, list | tuple) or not all(isinstance(item, str) for item in value):
        raise ValueError("expected names separated by commas or a JSON list of strings")
    return tuple(value)


def config_value(setting: str, value: Any) -> Any:
    """`value` of K8sSettings field `setting` converted to the type of its config field."""
    return tuple(sorted(value.items())) if setting == "node_selector" else value


def check_config_field(value: Any, info: ValidationInfo) -> Any:
    """The K8sSettings validator of a `CONFIG_FIELD_OF_SETTING` field: ValueError when the config
    rejects `value` for it (other fields at defaults)."""
    setting = info.field_name
    assert setting is not None
    try:
        KubernetesRunnerConfig(**{CONFIG_FIELD_OF_SETTING[setting]: config_value(setting, value)})
    except KubernetesConfigError as exc:
        raise ValueError(str(exc)) from None
    return value


def kubernetes_runner_config(k8s: K8sSettings, **overrides: Any) -> KubernetesRunnerConfig:
    """The Kubernetes runner's config from the ``CSAWM_K8S_*`` settings; `overrides` (config field
    names, e.g. from CLI flags) win.

    Raises
    ------
    KubernetesConfigError
        An override is invalid (the settings themselves were checked when they were loaded), or an
        override names no config field.
    """
    unknown = sorted(set(overrides) - {f.name for f in fields(KubernetesRunnerConfig)})
    if unknown:
        raise KubernetesConfigError(f"unknown Kubernetes runner setting(s): {unknown}")
    values = {
        config_field: config_value(setting, getattr(k8s, setting))
        for setting, config_field in CONFIG_FIELD_OF_SETTING.items()
    }
    return KubernetesRunnerConfig(**{**values, **overrides})
