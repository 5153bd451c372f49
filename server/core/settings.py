"""Operator settings (docs/settings.md), read from the environment with the prefix ``CSAWM_``.

The embedded default (SQLite under ``./.csawm``, Docker runner, loopback host) needs no setting at
all; anything unsafe or inconsistent refuses to start with a message naming the setting.
"""

from __future__ import annotations

import os
import re
from datetime import timedelta
from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, SecretStr, ValidationError, ValidationInfo, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from runner.kubernetes.config import Toleration
from server.core import k8s_settings

_SIZE_RE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([kmgt]?)i?b?\s*$", re.IGNORECASE)
_SIZE_UNITS = {"": 1, "k": 1024, "m": 1024**2, "g": 1024**3, "t": 1024**4}
_DURATION_RE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)?\s*$", re.IGNORECASE)
_DURATION_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}


class SettingsError(ValueError):
    """A setting is missing, malformed or unsafe; the message names the environment variable."""


def parse_duration(value: object) -> object:
    """Accept seconds as a number or string (``"600"``), or a number with a unit (``"30m"``, ``"2h"``).

    Anything else (a `timedelta`, an ISO 8601 duration) is left to pydantic.
    """
    if isinstance(value, int | float) and not isinstance(value, bool):
        return timedelta(seconds=value)
    if isinstance(value, str):
        match = _DURATION_RE.match(value)
        if match:
            unit = (match.group(2) or "s").lower()
            return timedelta(seconds=float(match.group(1)) * _DURATION_UNITS[unit])
    return value


def parse_size(value: object) -> int:
    """Parse a byte size: an int, or a string like ``"4g"``, ``"512MiB"``, ``"1024"`` (binary units)."""
    if isinstance(value, bool):
        raise ValueError(f"not a size: {value!r}")
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, str):
        match = _SIZE_RE.match(value)
        if match:
            return int(float(match.group(1)) * _SIZE_UNITS[match.group(2).lower()])
    raise ValueError(f"not a size: {value!r} (expected bytes or a number with k/m/g/t, e.g. '4g')")


_DURATION_FIELDS = (
    "run_timeout",
    "image_ttl",
    "retry_backoff",
    "hidden_end_grid",
    "preflight_timeout",
    "lease_ttl",
    "poll_interval",
    "k8s_ttl_seconds",
    "k8s_startup_allowance",
    "k8s_schedule_timeout",
    "k8s_queue_timeout",
    "notify_backoff",
    "notify_backoff_max",
    "webhook_timeout",
)


class Settings(BaseSettings):
    """Everything the server, the worker and the admin commands read from the environment."""

    model_config = SettingsConfigDict(env_prefix="CSAWM_", extra="ignore", frozen=True)

    data_dir: Path = Field(default=Path(".csawm"), validate_default=True)
    database_url: str | None = None
    benchmark_dir: Path | None = None
    runner: Literal["docker", "kubernetes"] = "docker"
    host: str = "127.0.0.1"
    port: int = Field(default=8000, ge=1, le=65535)

    quota_per_day: int = Field(default=2, ge=0)
    quota_per_week: int = Field(default=5, ge=0)
    quota_total: int = Field(default=20, ge=0)
    quota_active: int = Field(default=1, ge=0)
    phase: str = Field(default="private-1", min_length=1, max_length=64)
    # Accepted so old configurations still start; decides nothing since issue 19 (docs/settings.md):
    # a model fault on the hidden images always uses the quota slot (server.runs.policy).
    charge_user_failures: bool = True

    run_timeout: timedelta = timedelta(minutes=30)
    run_memory: int = 4 * 1024**3
    run_cpus: float = Field(default=2.0, gt=0)
    run_gpus: int = Field(default=0, ge=0)
    run_runtime: Literal["runc", "runsc"] = "runc"  # runsc: gVisor, registered by scripts/ensure-docker
    preflight_timeout: timedelta = timedelta(minutes=5)
    preflight_images: int = Field(default=4, ge=1, le=64)
    max_upload_bytes: int = 16 * 1024**3
    keep_archives: bool = False
    registry: str | None = None

    # OCI registry (issue 13, server.registry): every accepted archive is pushed to
    # REGISTRY/csawm/<team>@sha256:..., registry references are checked there before they are charged.
    # The credentials need push and pull on csawm/*; CA: a PEM file trusted for the registry's TLS;
    # INSECURE: plain HTTP, allowed for loopback registries only (tests, a registry on the same host).
    registry_username: str | None = None
    registry_password: SecretStr | None = None
    registry_ca: Path | None = None
    registry_insecure: bool = False

    @field_validator("registry_username", "registry_password", "registry_ca", mode="before")
    @classmethod
    def _registry_empty_is_none(cls, value: object) -> object:
        return None if value == "" else value

    @field_validator("registry_ca")
    @classmethod
    def _registry_ca(cls, value: Path | None) -> Path | None:
        if value is None:
            return None
        path = Path(os.path.abspath(value.expanduser()))
        if not path.is_file():
            raise ValueError(f"{path} is not a file (expected a PEM CA bundle)")
        return path

    @model_validator(mode="after")
    def _registry_consistent(self) -> Settings:
        if self.registry is None:
            if self.runner == "kubernetes":
                raise ValueError(
                    "CSAWM_RUNNER=kubernetes needs CSAWM_REGISTRY: the cluster pulls every model "
                    "image from it (uploaded archives are pushed there first)"
                )
            if self.registry_username or self.registry_password or self.registry_ca or self.registry_insecure:
                raise ValueError("CSAWM_REGISTRY_* settings are set but CSAWM_REGISTRY is not")
            return self
        if (self.registry_username is None) != (self.registry_password is None):
            raise ValueError(
                "CSAWM_REGISTRY_USERNAME and CSAWM_REGISTRY_PASSWORD go together: set both or neither"
            )
        if self.registry_insecure:
            host = self.registry.rsplit(":", 1)[0] if not self.registry.endswith("]") else self.registry
            if host not in ("localhost", "[::1]") and not host.startswith("127."):
                raise ValueError(
                    f"CSAWM_REGISTRY_INSECURE (plain HTTP) is allowed for a loopback registry only, "
                    f"not {self.registry!r}: credentials and images would cross the network unencrypted"
                )
            if self.registry_ca is not None:
                raise ValueError("CSAWM_REGISTRY_CA and CSAWM_REGISTRY_INSECURE exclude each other")
        return self

    # Hostile clients (issue 12): a JSON or form body over `max_json_bytes` is refused with 413 while
    # it streams; at most `max_concurrent_uploads` archive uploads per team at once (429 beyond); an
    # upload whose body sends nothing for `upload_idle_timeout` is dropped (408); proxy headers
    # (X-Forwarded-Proto/-For) are trusted only from the comma-separated `forwarded_allow_ips`.
    max_json_bytes: int = Field(default=64 * 1024, ge=1024, le=64 * 1024**2)
    max_concurrent_uploads: int = Field(default=2, ge=1, le=1000)
    upload_idle_timeout: timedelta = timedelta(seconds=60)
    forwarded_allow_ips: str | None = None

    @field_validator("max_json_bytes", mode="before")
    @classmethod
    def _json_size(cls, value: object) -> int:
        return parse_size(value)

    @field_validator("upload_idle_timeout", mode="before")
    @classmethod
    def _idle_duration(cls, value: object) -> object:
        return parse_duration(value)

    @field_validator("upload_idle_timeout")
    @classmethod
    def _idle_positive(cls, value: timedelta) -> timedelta:
        if value <= timedelta(0):
            raise ValueError("must be a positive duration")
        return value

    @field_validator("forwarded_allow_ips", mode="before")
    @classmethod
    def _proxies(cls, value: object) -> object:
        return None if value is None or (isinstance(value, str) and not value.strip()) else value

    # Slow clients (issue 19 item 7, server.core.slow_clients): a request head must arrive whole
    # within `header_timeout`; a body within `body_timeout` plus one second per `min_body_rate`
    # bytes received; at most `max_connections` open connections, `max_connections_per_client` of
    # them from one address (the addresses of `forwarded_allow_ips` excepted).
    header_timeout: timedelta = timedelta(seconds=15)
    body_timeout: timedelta = timedelta(seconds=30)
    min_body_rate: int = Field(default=32 * 1024, ge=1024)
    max_connections: int = Field(default=512, ge=1, le=100_000)
    max_connections_per_client: int = Field(default=32, ge=1, le=100_000)

    @field_validator("header_timeout", "body_timeout", mode="before")
    @classmethod
    def _slow_client_durations(cls, value: object) -> object:
        return parse_duration(value)

    @field_validator("header_timeout", "body_timeout")
    @classmethod
    def _slow_client_positive(cls, value: timedelta) -> timedelta:
        if value <= timedelta(0):
            raise ValueError("must be a positive duration")
        return value

    @field_validator("min_body_rate", mode="before")
    @classmethod
    def _body_rate(cls, value: object) -> int:
        return parse_size(value)

    # The operator's /metrics (issue 19 item 6, server.core.metrics): a scrape presenting
    # `Authorization: Bearer <metrics_token>` gets every series; without it, only the public ones.
    metrics_token: SecretStr | None = None

    @field_validator("metrics_token", mode="before")
    @classmethod
    def _metrics_token(cls, value: object) -> object:
        if value is None or value == "":
            return None
        text = value.get_secret_value() if isinstance(value, SecretStr) else value
        if isinstance(text, str) and (len(text.encode()) < 32 or not text.isprintable() or " " in text):
            # The message must not echo the value: it is a secret.
            raise ValueError("must be 32 or more printable bytes, no spaces (e.g. `openssl rand -hex 32`)")
        return value

    # Signs the web session and CSRF cookies. Unset: a random key kept in DATA_DIR/web-session.key.
    # Set it (the same value everywhere) when several servers sit behind one load balancer.
    session_secret: SecretStr | None = None

    # A data-use agreement in Markdown (issue 15): a researcher accepts its current version (the
    # sha256 of the file's bytes) before submitting. Read once by the server when it starts
    # (server.agreements.document); the worker and the admin commands never read it.
    dua_file: Path | None = None

    @field_validator("dua_file", mode="before")
    @classmethod
    def _dua_empty_is_none(cls, value: object) -> object:
        return None if value == "" else value

    @field_validator("dua_file")
    @classmethod
    def _dua_absolute(cls, value: Path | None) -> Path | None:
        return None if value is None else Path(os.path.abspath(value.expanduser()))

    # Run policy (issue 11). Who sees the hidden run's output: server.runs.disclosure.
    hidden_logs: Literal["maintainers", "none", "submitters"] = "maintainers"
    # A redacted hint of a hidden failure for submitters (issue 23): none, or the name of a built-in
    # exception class found in the hidden log (a closed list): server.runs.disclosure.exception_hint.
    hidden_hint: Literal["none", "exception_type"] = "none"
    # Hidden-stage runtime figures and run timestamps a submitter sees (issue 19): server.runs.run_view.
    hidden_runtime: Literal["maintainers", "coarse", "submitters"] = "maintainers"
    # The hidden stage's end is held to a multiple of this after the stage began (0: off; not applied
    # with hidden_runtime "submitters" or to baselines): server.worker.stages.hold_to_grid.
    hidden_end_grid: timedelta = timedelta(minutes=1)
    # Uploads are refused (507) while the data dir has less free space; default: 2x max_upload_bytes.
    min_free_bytes: int | None = None
    # Engine images of finished runs are removed once unused this long (the janitor).
    image_ttl: timedelta = timedelta(hours=24)

    # Notifications (issue 15 item 6, server.notifications, docs/notifications.md): webhooks and
    # email from a durable outbox. A failed delivery is retried after notify_backoff * 2^(n-1)
    # (capped at notify_backoff_max) until notify_max_attempts, then dead. Webhook URLs that resolve
    # to loopback, private, link-local, multicast or reserved addresses are refused unless
    # webhook_allow_private. public_url: the server's address as a team sees it (the run link).
    public_url: str | None = None
    embedded_dispatcher: bool = True
    notify_max_attempts: int = Field(default=8, ge=1, le=50)
    notify_backoff: timedelta = timedelta(seconds=30)
    notify_backoff_max: timedelta = timedelta(hours=1)
    webhook_timeout: timedelta = timedelta(seconds=10)
    webhook_allow_private: bool = False
    smtp_host: str | None = None
    smtp_port: int = Field(default=587, ge=1, le=65535)
    smtp_username: str | None = None
    smtp_password: SecretStr | None = None
    smtp_sender: str | None = None
    smtp_tls: Literal["starttls", "tls", "none"] = "starttls"

    @field_validator(
        "public_url", "smtp_host", "smtp_username", "smtp_password", "smtp_sender", mode="before"
    )
    @classmethod
    def _notify_empty_is_none(cls, value: object) -> object:
        return None if value == "" else value

    @field_validator("public_url")
    @classmethod
    def _public_url(cls, value: str | None) -> str | None:
        if value is None:
            return None
        if not re.match(r"^https?://[^\s/?#]+(/[^\s?#]*)?$", value):
            raise ValueError("must be the server's http(s) address, e.g. https://leaderboard.example.org")
        return value.rstrip("/")

    @model_validator(mode="after")
    def _smtp_consistent(self) -> Settings:
        if self.notify_backoff_max < self.notify_backoff:
            raise ValueError("CSAWM_NOTIFY_BACKOFF_MAX must be at least CSAWM_NOTIFY_BACKOFF")
        if self.smtp_host is None:
            if self.smtp_username or self.smtp_password or self.smtp_sender:
                raise ValueError("CSAWM_SMTP_* settings are set but CSAWM_SMTP_HOST is not")
            return self
        if (
            self.smtp_sender is None
            or "@" not in self.smtp_sender
            or any(c in self.smtp_sender for c in "\r\n")
        ):
            raise ValueError(
                "CSAWM_SMTP_SENDER must be the From address of the mail, e.g. leaderboard@example.org"
            )
        if (self.smtp_username is None) != (self.smtp_password is None):
            raise ValueError("CSAWM_SMTP_USERNAME and CSAWM_SMTP_PASSWORD go together: set both or neither")
        loopback = self.smtp_host in ("localhost", "::1") or self.smtp_host.startswith("127.")
        if self.smtp_tls == "none" and self.smtp_username is not None and not loopback:
            raise ValueError(
                "CSAWM_SMTP_TLS=none with a password is allowed for a loopback SMTP server only: "
                "the password would cross the network unencrypted"
            )
        return self

    @property
    def email_enabled(self) -> bool:
        return self.smtp_host is not None

    @property
    def session_info(self) -> dict[str, object]:
        """What every database session carries (`server.core.db.Database.connect`)."""
        return {"csawm.notify_email": self.email_enabled}

    @property
    def effective_public_url(self) -> str:
        """``CSAWM_PUBLIC_URL``, or the address `csawm serve` listens on."""
        if self.public_url:
            return self.public_url
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    embedded_worker: bool = True
    lease_ttl: timedelta = timedelta(seconds=60)
    poll_interval: timedelta = timedelta(seconds=1)
    max_attempts: int = Field(default=2, ge=1, le=10)
    retry_backoff: timedelta = timedelta(seconds=2)  # first retry's wait; doubles per retry (runs.policy)
    bootstrap_resamples: int = Field(default=2000, ge=100)
    bootstrap_seed: int = 0

    # Kubernetes runner (CSAWM_RUNNER=kubernetes); formats and the mapping onto
    # KubernetesRunnerConfig in server.core.k8s_settings. The defaults match k8s/.
    k8s_namespace: str = "csawm-eval"
    k8s_service_account: str = "csawm-model"
    k8s_collector_image: str = "csawm-leaderboard:latest"
    k8s_node_selector: Annotated[dict[str, str], NoDecode] = Field(default_factory=dict)
    k8s_tolerations: Annotated[tuple[Toleration, ...], NoDecode] = (Toleration(key="nvidia.com/gpu"),)
    k8s_runtime_class: str | None = None
    k8s_gpu_resource: str = Field(default="nvidia.com/gpu", pattern=r"^[a-z0-9.-]+/[A-Za-z0-9._-]+$")
    k8s_test_images_pvc: str = "csawm-test-images"
    k8s_input_sub_path: str = "{phase}"
    k8s_recursive_read_only: bool = False
    k8s_image_pull_secrets: Annotated[tuple[str, ...], NoDecode] = ()
    k8s_image_pull_policy: Literal["IfNotPresent", "Always"] = "IfNotPresent"
    k8s_kueue_queue: str | None = Field(default=None, pattern=r"^([a-z0-9]([-a-z0-9]*[a-z0-9])?)?$")
    k8s_ttl_seconds: timedelta = timedelta(hours=1)
    k8s_startup_allowance: timedelta = timedelta(minutes=15)
    k8s_schedule_timeout: timedelta = timedelta(minutes=10)
    k8s_queue_timeout: timedelta = timedelta(hours=24)
    k8s_max_collect_bytes: int = 4 * 1024**2
    # The test-images volume's MANIFEST.sha256 (server.worker.test_set), mounted read-only into the
    # worker; a worker with CSAWM_RUNNER=kubernetes leases nothing until it matches its test set.
    k8s_test_set_digest_file: Path | None = None

    @field_validator("data_dir", "benchmark_dir", "k8s_test_set_digest_file")
    @classmethod
    def _absolute(cls, value: Path | None) -> Path | None:
        """Every path is made absolute at load, against the working directory of the process that
        read the settings: a runner, a container mount or a worker in another directory never sees a
        relative path (issue 10: a relative ``CSAWM_DATA_DIR`` reached the Docker runner)."""
        if value is None or str(value) == "":
            return None
        return Path(os.path.abspath(value.expanduser()))

    @field_validator("run_memory", "max_upload_bytes", "k8s_max_collect_bytes", mode="before")
    @classmethod
    def _sizes(cls, value: object) -> int:
        return parse_size(value)

    @field_validator("min_free_bytes", mode="before")
    @classmethod
    def _optional_size(cls, value: object) -> int | None:
        return None if value is None or value == "" else parse_size(value)

    @field_validator(*_DURATION_FIELDS, mode="before")
    @classmethod
    def _durations(cls, value: object) -> object:
        return parse_duration(value)

    @field_validator(*_DURATION_FIELDS)
    @classmethod
    def _positive_duration(cls, value: timedelta, info: ValidationInfo) -> timedelta:
        zero_allowed = info.field_name in ("retry_backoff", "hidden_end_grid")
        if value < timedelta(0) or (value == timedelta(0) and not zero_allowed):
            raise ValueError("must be a positive duration")
        return value

    @field_validator("session_secret", mode="before")
    @classmethod
    def _session_secret(cls, value: object) -> object:
        if value is None or value == "":
            return None
        text = value.get_secret_value() if isinstance(value, SecretStr) else value
        if isinstance(text, str) and len(text.encode()) < 32:
            # The message must not echo the value: it is a secret.
            raise ValueError(
                'must be at least 32 bytes (e.g. the output of `python3 -c "import secrets; '
                'print(secrets.token_urlsafe(32))"`)'
            )
        return value

    @field_validator("registry")
    @classmethod
    def _registry(cls, value: str | None) -> str | None:
        if value is None or value == "":
            return None
        if "/" in value or "@" in value or " " in value:
            raise ValueError("must be a registry host[:port], e.g. registry.example.org:5000")
        return value

    @field_validator("k8s_node_selector", mode="before")
    @classmethod
    def _node_selector(cls, value: object) -> dict[str, str]:
        return k8s_settings.parse_node_selector(value)

    @field_validator("k8s_tolerations", mode="before")
    @classmethod
    def _tolerations(cls, value: object) -> tuple[Toleration, ...]:
        return k8s_settings.parse_tolerations(value)

    @field_validator("k8s_image_pull_secrets", mode="before")
    @classmethod
    def _name_list(cls, value: object) -> tuple[str, ...]:
        return k8s_settings.parse_name_list(value)

    @field_validator("k8s_runtime_class", "k8s_kueue_queue", mode="before")
    @classmethod
    def _empty_is_none(cls, value: object) -> object:
        return None if value == "" else value

    @field_validator(*k8s_settings.CONFIG_FIELD_OF_SETTING)
    @classmethod
    def _k8s_field(cls, value: object, info: ValidationInfo) -> object:
        assert info.field_name is not None
        k8s_settings.check_config_field(info.field_name, value)
        return value

    @model_validator(mode="after")
    def _consistent(self) -> Settings:
        if self.max_upload_bytes < 1024:
            raise ValueError("CSAWM_MAX_UPLOAD_BYTES must be at least 1 KiB")
        if self.run_memory < 64 * 1024**2:
            raise ValueError("CSAWM_RUN_MEMORY must be at least 64 MiB")
        if self.lease_ttl < timedelta(seconds=3):
            raise ValueError("CSAWM_LEASE_TTL must be at least 3 seconds (the heartbeat runs every third)")
        if self.database_url is not None and not self.database_url.startswith(("sqlite", "postgresql")):
            raise ValueError("CSAWM_DATABASE_URL must be a sqlite:// or postgresql:// URL")
        try:
            k8s_settings.kubernetes_runner_config(self)
        except ValueError as exc:
            raise ValueError(f"CSAWM_K8S_* settings: {exc}") from None
        return self

    @property
    def effective_database_url(self) -> str:
        """The configured URL, or an SQLite file inside `data_dir`."""
        if self.database_url:
            url = self.database_url
            if url.startswith("postgresql://"):
                url = "postgresql+psycopg://" + url[len("postgresql://") :]
            return url
        return f"sqlite:///{(self.data_dir / 'csawm.db').resolve()}"

    @property
    def effective_min_free_bytes(self) -> int:
        """``CSAWM_MIN_FREE_BYTES``, or twice ``CSAWM_MAX_UPLOAD_BYTES`` (an upload and its copy)."""
        return self.min_free_bytes if self.min_free_bytes is not None else 2 * self.max_upload_bytes

    @property
    def is_sqlite(self) -> bool:
        return self.effective_database_url.startswith("sqlite")


def load_settings(**overrides: object) -> Settings:
    """Read settings from the environment; `overrides` win (used by tests and CLI flags).

    Raises `SettingsError` naming each offending ``CSAWM_*`` variable.
    """
    try:
        return Settings(**overrides)  # type: ignore[arg-type]
    except ValidationError as exc:
        problems = []
        for err in exc.errors():
            field = ".".join(str(part) for part in err["loc"])
            name = f"CSAWM_{field.upper()}" if field else "settings"
            problems.append(f"{name}: {err['msg']}")
        raise SettingsError("invalid settings: " + "; ".join(problems)) from None
