"""The ``CSAWM_REGISTRY*`` settings (issue 13): each bad combination refuses to start, naming it."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from server.core.settings import SettingsError, load_settings


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for key in list(os.environ):
        if key.startswith("CSAWM_"):
            monkeypatch.delenv(key)


def test_a_full_registry_configuration_loads(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    ca = tmp_path / "ca.pem"
    ca.write_text("-----BEGIN CERTIFICATE-----\n")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("CSAWM_REGISTRY", "registry.example.org:5000")
    monkeypatch.setenv("CSAWM_REGISTRY_USERNAME", "csawm")
    monkeypatch.setenv("CSAWM_REGISTRY_PASSWORD", "s3cret-value")
    monkeypatch.setenv("CSAWM_REGISTRY_CA", "ca.pem")
    monkeypatch.setenv("CSAWM_RUNNER", "kubernetes")
    settings = load_settings()
    assert settings.registry.ca == ca  # made absolute at load
    assert settings.registry.password is not None
    assert settings.registry.password.get_secret_value() == "s3cret-value"
    assert "s3cret-value" not in repr(settings)
    assert settings.registry.insecure is False


@pytest.mark.parametrize("host", ["127.0.0.1:5000", "127.0.0.2", "localhost:5000", "[::1]:5000"])
def test_plain_http_is_allowed_for_loopback_registries(host: str) -> None:
    assert load_settings(registry=host, registry_insecure=True).registry.insecure


@pytest.mark.parametrize(
    ("values", "needle"),
    [
        ({"runner": "kubernetes"}, "CSAWM_RUNNER=kubernetes needs CSAWM_REGISTRY"),
        ({"registry": "registry.example.org", "registry_insecure": True}, "loopback registry only"),
        ({"registry": "10.0.0.5:5000", "registry_insecure": True}, "loopback registry only"),
        ({"registry": "reg.example", "registry_username": "u"}, "go together"),
        ({"registry": "reg.example", "registry_password": "p"}, "go together"),
        ({"registry_username": "u", "registry_password": "p"}, "CSAWM_REGISTRY is not"),
        ({"registry_insecure": True}, "CSAWM_REGISTRY is not"),
        ({"registry": "reg.example", "registry_ca": "/no/such/ca.pem"}, "CSAWM_REGISTRY_CA"),
    ],
)
def test_bad_registry_settings_refuse_to_start(values: dict[str, object], needle: str) -> None:
    with pytest.raises(SettingsError) as info:
        load_settings(**values)
    assert needle in str(info.value)


def test_ca_and_plain_http_exclude_each_other(tmp_path: Path) -> None:
    ca = tmp_path / "ca.pem"
    ca.write_text("x")
    with pytest.raises(SettingsError, match="exclude each other"):
        load_settings(registry="127.0.0.1:5000", registry_insecure=True, registry_ca=ca)


def test_empty_values_mean_unset(monkeypatch: pytest.MonkeyPatch) -> None:
    """A ConfigMap carries empty strings for settings it leaves unset (k8s/settings.yaml)."""
    for name in ("USERNAME", "PASSWORD", "CA"):
        monkeypatch.setenv(f"CSAWM_REGISTRY_{name}", "")
    monkeypatch.setenv("CSAWM_REGISTRY", "reg.example")
    settings = load_settings()
    assert (settings.registry.username, settings.registry.password, settings.registry.ca) == (
        None,
        None,
        None,
    )
