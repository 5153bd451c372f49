from __future__ import annotations

import re
from datetime import timedelta
from pathlib import Path

import pytest

from server.core.settings import SettingsError, load_settings, parse_size


def test_embedded_default_needs_no_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    for key in list(__import__("os").environ):
        if key.startswith("CSAWM_"):
            monkeypatch.delenv(key)
    settings = load_settings()
    assert settings.data_dir == Path.cwd() / ".csawm"
    assert settings.effective_database_url == f"sqlite:///{(Path('.csawm') / 'csawm.db').resolve()}"
    assert (settings.quota_per_day, settings.quota_per_week, settings.quota_total, settings.quota_active) == (
        2,
        5,
        20,
        1,
    )
    assert settings.runner == "docker"


def test_relative_paths_are_made_absolute_at_load(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Issue 10 item 0: a relative CSAWM_DATA_DIR reached the Docker runner, which refuses it."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("CSAWM_DATA_DIR", "state")
    monkeypatch.setenv("CSAWM_BENCHMARK_DIR", "state/../bench")
    settings = load_settings()
    assert settings.data_dir == tmp_path / "state"
    assert settings.benchmark_dir == tmp_path / "bench"
    assert load_settings(data_dir=Path("other")).data_dir == tmp_path / "other"


def test_a_worker_with_a_relative_data_dir_gives_the_runner_absolute_paths(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, synthetic_benchmark: Path
) -> None:
    """Issue 10 item 0, end to end through the worker: every run directory the runner sees is absolute
    (hardening.container_kwargs refuses anything else)."""
    from srvtest import factories as f
    from srvtest.app import open_api
    from srvtest.archives import write_archive
    from srvtest.fakes import FakeRunner

    from server.accounts import service as accounts
    from server.worker.loop import Worker

    monkeypatch.chdir(tmp_path)
    settings = load_settings(
        data_dir=Path(".csawm"), benchmark_dir=synthetic_benchmark, embedded_worker=False,
        bootstrap_resamples=100, max_upload_bytes=1024**2,
    )  # fmt: skip
    for api in open_api(settings):
        f.team(api.db, "alpha")
        with api.db.transaction() as session:
            accounts.set_quota(session, "alpha", {"active": 5}, actor="test")
        token = f.user(api.db, "a@x.org", team="alpha")
        digest = write_archive(tmp_path / "m.tar", seed="rel")
        response = api.client.post(
            "/api/v1/submissions",
            params={"name": "rel"},
            content=(tmp_path / "m.tar").read_bytes(),
            headers=f.auth(token),
        )
        assert response.status_code == 201, response.text
        runner = FakeRunner()
        assert Worker(settings, api.db, runner).run_once()
        assert [s.phase for s in runner.started] == ["preflight", "hidden"]
        for spec in runner.started:
            assert spec.input_dir.is_absolute() and spec.output_dir.is_absolute()
            assert spec.output_dir.is_relative_to(tmp_path / ".csawm")
        assert digest in runner.loaded


def test_environment_values_are_parsed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CSAWM_RUN_TIMEOUT", "10m")
    monkeypatch.setenv("CSAWM_RUN_MEMORY", "2g")
    monkeypatch.setenv("CSAWM_MAX_UPLOAD_BYTES", "512MiB")
    monkeypatch.setenv("CSAWM_DATABASE_URL", "postgresql://u@db/x")
    settings = load_settings()
    assert settings.run.timeout == timedelta(minutes=10)
    assert settings.run.memory == 2 * 1024**3
    assert settings.max_upload_bytes == 512 * 1024**2
    assert settings.effective_database_url == "postgresql+psycopg://u@db/x"
    assert not settings.is_sqlite


@pytest.mark.parametrize(
    ("name", "value", "needle"),
    [
        ("CSAWM_PORT", "0", "CSAWM_PORT"),
        ("CSAWM_RUNNER", "podman", "CSAWM_RUNNER"),
        ("CSAWM_RUN_TIMEOUT", "-5", "CSAWM_RUN_TIMEOUT"),
        ("CSAWM_RUN_MEMORY", "lots", "CSAWM_RUN_MEMORY"),
        ("CSAWM_DATABASE_URL", "mysql://x", "sqlite:// or postgresql://"),
        ("CSAWM_REGISTRY", "https://reg/x", "CSAWM_REGISTRY"),
        ("CSAWM_QUOTA_PER_DAY", "-1", "CSAWM_QUOTA_PER_DAY"),
        # The typed groups (settings.run, .registry, .mail, .k8s) still name the variable.
        ("CSAWM_RUN_MEMORY", "1m", "CSAWM_RUN_MEMORY: Value error, must be at least 64 MiB"),
        ("CSAWM_RUN_CPUS", "0", "CSAWM_RUN_CPUS:"),
        ("CSAWM_RUN_RUNTIME", "kata", "CSAWM_RUN_RUNTIME:"),
        ("CSAWM_PREFLIGHT_TIMEOUT", "0", "CSAWM_PREFLIGHT_TIMEOUT:"),
        ("CSAWM_PREFLIGHT_IMAGES", "0", "CSAWM_PREFLIGHT_IMAGES:"),
        ("CSAWM_REGISTRY_INSECURE", "maybe", "CSAWM_REGISTRY_INSECURE:"),
        ("CSAWM_SMTP_PORT", "0", "CSAWM_SMTP_PORT:"),
        ("CSAWM_SMTP_TLS", "ssl", "CSAWM_SMTP_TLS:"),
        ("CSAWM_K8S_TTL_SECONDS", "0", "CSAWM_K8S_TTL_SECONDS:"),
        ("CSAWM_K8S_MAX_COLLECT_BYTES", "lots", "CSAWM_K8S_MAX_COLLECT_BYTES:"),
    ],
)
def test_bad_settings_fail_fast_naming_the_variable(
    monkeypatch: pytest.MonkeyPatch, name: str, value: str, needle: str
) -> None:
    monkeypatch.setenv(name, value)
    with pytest.raises(SettingsError, match=re.escape(needle)):
        load_settings()


@pytest.mark.parametrize(
    ("override", "variable"),
    [
        ({"run_memory": "1m"}, "CSAWM_RUN_MEMORY"),
        ({"preflight_images": 65}, "CSAWM_PREFLIGHT_IMAGES"),
        ({"registry": "reg.example.org/x"}, "CSAWM_REGISTRY"),
        ({"smtp_port": 70000}, "CSAWM_SMTP_PORT"),
        ({"k8s_namespace": "Bad_NS"}, "CSAWM_K8S_NAMESPACE"),
        ({"lease_ttl": "0"}, "CSAWM_LEASE_TTL"),
    ],
)
def test_a_bad_override_names_its_variable(override: dict[str, object], variable: str) -> None:
    """Overrides are named like the variable without CSAWM_ and reach the group that holds it."""
    with pytest.raises(SettingsError, match=f"{variable}:"):
        load_settings(**override)


def test_overrides_land_in_their_group() -> None:
    settings = load_settings(
        run_memory="8g", preflight_images=8, registry="127.0.0.1:5000", registry_insecure=True,
        smtp_host="127.0.0.1", smtp_sender="board@example.org", k8s_namespace="ns-b", lease_ttl="9s",
    )  # fmt: skip
    assert (settings.run.memory, settings.run.preflight_images) == (8 * 1024**3, 8)
    assert (settings.registry.host, settings.registry.insecure) == ("127.0.0.1:5000", True)
    assert settings.mail.enabled and settings.mail.sender == "board@example.org"
    assert (settings.k8s.namespace, settings.lease_ttl) == ("ns-b", timedelta(seconds=9))


def test_errors_of_several_groups_are_reported_together() -> None:
    with pytest.raises(SettingsError) as info:
        load_settings(run_gpus=-1, smtp_port=0, k8s_queue_timeout="0")
    message = str(info.value)
    for name in ("CSAWM_RUN_GPUS", "CSAWM_SMTP_PORT", "CSAWM_K8S_QUEUE_TIMEOUT"):
        assert f"{name}:" in message


def test_the_kubernetes_runner_needs_a_registry_a_check_across_groups() -> None:
    with pytest.raises(SettingsError, match="CSAWM_RUNNER=kubernetes needs CSAWM_REGISTRY"):
        load_settings(runner="kubernetes")
    assert load_settings(runner="kubernetes", registry="127.0.0.1:5000").registry.host == "127.0.0.1:5000"


def test_parse_size() -> None:
    assert parse_size("1k") == 1024
    assert parse_size("1.5 GiB") == int(1.5 * 1024**3)
    assert parse_size(77) == 77
    with pytest.raises(ValueError, match="not a size"):
        parse_size("12 parsecs")


def test_hostile_client_settings_issue_12(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("MAX_JSON_BYTES", "MAX_CONCURRENT_UPLOADS", "UPLOAD_IDLE_TIMEOUT", "FORWARDED_ALLOW_IPS"):
        monkeypatch.delenv(f"CSAWM_{name}", raising=False)
    default = load_settings()
    assert (default.max_json_bytes, default.max_concurrent_uploads) == (64 * 1024, 2)
    assert default.upload_idle_timeout == timedelta(seconds=60) and default.forwarded_allow_ips is None
    monkeypatch.setenv("CSAWM_MAX_JSON_BYTES", "128k")
    monkeypatch.setenv("CSAWM_UPLOAD_IDLE_TIMEOUT", "2m")
    monkeypatch.setenv("CSAWM_FORWARDED_ALLOW_IPS", "10.0.0.1,10.0.0.2")
    settings = load_settings()
    assert (settings.max_json_bytes, settings.upload_idle_timeout) == (128 * 1024, timedelta(minutes=2))
    assert settings.forwarded_allow_ips == "10.0.0.1,10.0.0.2"
    monkeypatch.setenv("CSAWM_FORWARDED_ALLOW_IPS", " ")
    assert load_settings().forwarded_allow_ips is None
    for name, value in (
        ("MAX_JSON_BYTES", "10"),
        ("UPLOAD_IDLE_TIMEOUT", "0"),
        ("MAX_CONCURRENT_UPLOADS", "0"),
    ):
        monkeypatch.setenv(f"CSAWM_{name}", value)
        with pytest.raises(SettingsError, match=f"CSAWM_{name}"):
            load_settings()
        monkeypatch.delenv(f"CSAWM_{name}")
