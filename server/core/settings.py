"""Operator settings (docs/settings.md), read from the environment with the prefix ``CSAWM_``.

The embedded default (SQLite under ``./.csawm``, Docker runner, loopback host) needs no setting at
all; anything unsafe or inconsistent refuses to start with a message naming the setting.

`Settings` holds the server-wide values and four typed groups, each a frozen `BaseSettings` that
reads its own variables and checks them together: `Settings.run` (`RunSettings`: what a model
container is given), `Settings.registry` (`RegistrySettings`), `Settings.mail` (`MailSettings`)
and `Settings.k8s` (`K8sSettings`). A check that spans groups (the Kubernetes runner needs a
registry) stays on `Settings`. The variable names are unchanged; `VARIABLES` says where each lands.

Overrides (tests, CLI flags) are keyword arguments named like the variable without ``CSAWM_``, in
lower case (``load_settings(run_memory="8g", smtp_host="mail")``): `Settings` routes each to its
group, so there is one spelling for the environment and for code.
"""

from __future__ import annotations

import os
import re
from datetime import timedelta
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic.functional_validators import AfterValidator, BeforeValidator
from pydantic_core import InitErrorDetails
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
    if isinstance(value, str) and (match := _DURATION_RE.match(value)):
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
    if isinstance(value, str) and (match := _SIZE_RE.match(value)):
        return int(float(match.group(1)) * _SIZE_UNITS[match.group(2).lower()])
    raise ValueError(f"not a size: {value!r} (expected bytes or a number with k/m/g/t, e.g. '4g')")


def _positive(value: timedelta) -> timedelta:
    if value <= timedelta(0):
        raise ValueError("must be a positive duration")
    return value


def _not_negative(value: timedelta) -> timedelta:
    if value < timedelta(0):
        raise ValueError("must be a positive duration")
    return value


# A setting's duration (`parse_duration`): positive, or for a `Delay` also zero; a byte size (`parse_size`).
Duration = Annotated[timedelta, BeforeValidator(parse_duration), AfterValidator(_positive)]
Delay = Annotated[timedelta, BeforeValidator(parse_duration), AfterValidator(_not_negative)]
Size = Annotated[int, BeforeValidator(parse_size)]


def _empty_is_none(value: object) -> object:
    return None if value == "" else value


def _absolute(value: Path | None) -> Path | None:
    """Every path is made absolute at load, against the working directory of the process that read
    the settings: a runner, a container mount or a worker in another directory never sees a relative
    path (issue 10: a relative ``CSAWM_DATA_DIR`` reached the Docker runner)."""
    if value is None or str(value) == "":
        return None
    return Path(os.path.abspath(value.expanduser()))


class RunSettings(BaseSettings):
    """What a model container is given: its limits on the hidden set and the preflight's.

    ``CSAWM_RUN_*`` and ``CSAWM_PREFLIGHT_*``; both runners (Docker and Kubernetes) read them
    (`server.worker.backend`). Which runner runs the container (``CSAWM_RUNNER``) and how often a
    run is retried (``CSAWM_MAX_ATTEMPTS``) are server-wide and stay on `Settings`.
    """

    model_config = SettingsConfigDict(
        env_prefix="CSAWM_RUN_", extra="ignore", frozen=True, populate_by_name=True
    )

    timeout: Duration = timedelta(minutes=30)
    memory: int = 4 * 1024**3
    cpus: float = Field(default=2.0, gt=0)
    gpus: int = Field(default=0, ge=0)
    runtime: Literal["runc", "runsc"] = "runc"  # runsc: gVisor, registered by scripts/ensure-docker
    preflight_timeout: Duration = Field(
        default=timedelta(minutes=5), validation_alias="CSAWM_PREFLIGHT_TIMEOUT"
    )
    preflight_images: int = Field(default=4, ge=1, le=64, validation_alias="CSAWM_PREFLIGHT_IMAGES")

    @field_validator("memory", mode="before")
    @classmethod
    def _memory(cls, value: object) -> int:
        size = parse_size(value)
        if size < 64 * 1024**2:
            raise ValueError("must be at least 64 MiB")
        return size


class RegistrySettings(BaseSettings):
    """The OCI registry (issue 13, `server.registry`): every accepted archive is pushed to
    HOST/csawm/<team>@sha256:..., registry references are checked there before they are charged.

    The credentials need push and pull on csawm/*; ``ca``: a PEM file trusted for the registry's
    TLS; ``insecure``: plain HTTP, allowed for loopback registries only (tests, a registry on the
    same host).
    """

    model_config = SettingsConfigDict(
        env_prefix="CSAWM_REGISTRY_", extra="ignore", frozen=True, populate_by_name=True
    )

    host: str | None = Field(default=None, validation_alias="CSAWM_REGISTRY")
    username: str | None = None
    password: SecretStr | None = None
    ca: Path | None = None
    insecure: bool = False

    _empty = field_validator("host", "username", "password", "ca", mode="before")(_empty_is_none)

    @field_validator("host")
    @classmethod
    def _host(cls, value: str | None) -> str | None:
        if value is not None and ("/" in value or "@" in value or " " in value):
            raise ValueError("must be a registry host[:port], e.g. registry.example.org:5000")
        return value

    @field_validator("ca")
    @classmethod
    def _ca(cls, value: Path | None) -> Path | None:
        path = _absolute(value)
        if path is not None and not path.is_file():
            raise ValueError(f"{path} is not a file (expected a PEM CA bundle)")
        return path

    @model_validator(mode="after")
    def _consistent(self) -> RegistrySettings:
        if self.host is None:
            if self.username or self.password or self.ca or self.insecure:
                raise ValueError("CSAWM_REGISTRY_* settings are set but CSAWM_REGISTRY is not")
            return self
        if (self.username is None) != (self.password is None):
            raise ValueError(
                "CSAWM_REGISTRY_USERNAME and CSAWM_REGISTRY_PASSWORD go together: set both or neither"
            )
        if self.insecure:
            name = self.host.rsplit(":", 1)[0] if not self.host.endswith("]") else self.host
            if name not in ("localhost", "[::1]") and not name.startswith("127."):
                raise ValueError(
                    f"CSAWM_REGISTRY_INSECURE (plain HTTP) is allowed for a loopback registry only, "
                    f"not {self.host!r}: credentials and images would cross the network unencrypted"
                )
            if self.ca is not None:
                raise ValueError("CSAWM_REGISTRY_CA and CSAWM_REGISTRY_INSECURE exclude each other")
        return self


class MailSettings(BaseSettings):
    """Email of notifications (issue 15 item 6, `server.notifications.mail`): ``CSAWM_SMTP_*``.

    Unset host: no email. A password crosses the network only encrypted, unless the SMTP server is
    on loopback.
    """

    model_config = SettingsConfigDict(env_prefix="CSAWM_SMTP_", extra="ignore", frozen=True)

    host: str | None = None
    port: int = Field(default=587, ge=1, le=65535)
    username: str | None = None
    password: SecretStr | None = None
    sender: str | None = None
    tls: Literal["starttls", "tls", "none"] = "starttls"

    _empty = field_validator("host", "username", "password", "sender", mode="before")(_empty_is_none)

    @model_validator(mode="after")
    def _consistent(self) -> MailSettings:
        if self.host is None:
            if self.username or self.password or self.sender:
                raise ValueError("CSAWM_SMTP_* settings are set but CSAWM_SMTP_HOST is not")
            return self
        if self.sender is None or "@" not in self.sender or any(c in self.sender for c in "\r\n"):
            raise ValueError(
                "CSAWM_SMTP_SENDER must be the From address of the mail, e.g. leaderboard@example.org"
            )
        if (self.username is None) != (self.password is None):
            raise ValueError("CSAWM_SMTP_USERNAME and CSAWM_SMTP_PASSWORD go together: set both or neither")
        loopback = self.host in ("localhost", "::1") or self.host.startswith("127.")
        if self.tls == "none" and self.username is not None and not loopback:
            raise ValueError(
                "CSAWM_SMTP_TLS=none with a password is allowed for a loopback SMTP server only: "
                "the password would cross the network unencrypted"
            )
        return self

    @property
    def enabled(self) -> bool:
        return self.host is not None


class K8sSettings(BaseSettings):
    """The Kubernetes runner (``CSAWM_RUNNER=kubernetes``): ``CSAWM_K8S_*``. Formats and the mapping
    onto `KubernetesRunnerConfig` are in `server.core.k8s_settings`; the defaults match k8s/.

    Checked whichever runner is chosen, so a typo is reported when it is made.
    """

    model_config = SettingsConfigDict(env_prefix="CSAWM_K8S_", extra="ignore", frozen=True)

    namespace: str = "csawm-eval"
    service_account: str = "csawm-model"
    collector_image: str = "csawm-leaderboard:latest"
    node_selector: Annotated[dict[str, str], NoDecode] = Field(default_factory=dict)
    tolerations: Annotated[tuple[Toleration, ...], NoDecode] = (Toleration(key="nvidia.com/gpu"),)
    runtime_class: str | None = None
    gpu_resource: str = Field(default="nvidia.com/gpu", pattern=r"^[a-z0-9.-]+/[A-Za-z0-9._-]+$")
    test_images_pvc: str = "csawm-test-images"
    input_sub_path: str = "{phase}"
    recursive_read_only: bool = False
    image_pull_secrets: Annotated[tuple[str, ...], NoDecode] = ()
    image_pull_policy: Literal["IfNotPresent", "Always"] = "IfNotPresent"
    kueue_queue: str | None = Field(default=None, pattern=r"^([a-z0-9]([-a-z0-9]*[a-z0-9])?)?$")
    ttl_seconds: Duration = timedelta(hours=1)
    startup_allowance: Duration = timedelta(minutes=15)
    schedule_timeout: Duration = timedelta(minutes=10)
    queue_timeout: Duration = timedelta(hours=24)
    max_collect_bytes: Size = 4 * 1024**2
    # The test-images volume's MANIFEST.sha256 (server.worker.test_set), mounted read-only into the
    # worker; a worker with CSAWM_RUNNER=kubernetes leases nothing until it matches its test set.
    test_set_digest_file: Path | None = None

    _empty = field_validator("runtime_class", "kueue_queue", mode="before")(_empty_is_none)
    _paths = field_validator("test_set_digest_file")(_absolute)
    _node_selector = field_validator("node_selector", mode="before")(k8s_settings.parse_node_selector)
    _tolerations = field_validator("tolerations", mode="before")(k8s_settings.parse_tolerations)
    _name_list = field_validator("image_pull_secrets", mode="before")(k8s_settings.parse_name_list)

    _config_field = field_validator(*k8s_settings.CONFIG_FIELD_OF_SETTING)(k8s_settings.check_config_field)

    @model_validator(mode="after")
    def _consistent(self) -> K8sSettings:
        try:
            k8s_settings.kubernetes_runner_config(self)
        except ValueError as exc:
            raise ValueError(f"CSAWM_K8S_* settings: {exc}") from None
        return self


GROUPS: dict[str, type[BaseSettings]] = {
    "run": RunSettings,
    "registry": RegistrySettings,
    "mail": MailSettings,
    "k8s": K8sSettings,
}


def _variable_of(group: type[BaseSettings], field: str) -> str:
    """The environment variable of `field` of `group`: its alias, or the group's prefix + name."""
    alias = group.model_fields[field].validation_alias
    return alias if isinstance(alias, str) else f"{group.model_config.get('env_prefix', '')}{field}".upper()


# Override name (the variable without CSAWM_, lower case) -> (group, field) for every group field.
_GROUP_OVERRIDES: dict[str, tuple[str, str]] = {
    _variable_of(cls, field).removeprefix("CSAWM_").lower(): (group, field)
    for group, cls in GROUPS.items()
    for field in cls.model_fields
}


class Settings(BaseSettings):
    """Everything the server, the worker and the admin commands read from the environment."""

    model_config = SettingsConfigDict(env_prefix="CSAWM_", extra="ignore", frozen=True)

    # The groups; built by `_build_groups`, each reading its own variables (NoDecode: the plain
    # CSAWM_REGISTRY host is routed to `registry.host`, never parsed as the group).
    run: Annotated[RunSettings, NoDecode]
    registry: Annotated[RegistrySettings, NoDecode]
    mail: Annotated[MailSettings, NoDecode]
    k8s: Annotated[K8sSettings, NoDecode]

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

    max_upload_bytes: Size = 16 * 1024**3
    keep_archives: bool = False

    # Hostile clients (issue 12): a JSON or form body over `max_json_bytes` is refused with 413 while
    # it streams; at most `max_concurrent_uploads` archive uploads per team at once (429 beyond); an
    # upload whose body sends nothing for `upload_idle_timeout` is dropped (408); proxy headers
    # (X-Forwarded-Proto/-For) are trusted only from the comma-separated `forwarded_allow_ips`.
    max_json_bytes: Size = Field(default=64 * 1024, ge=1024, le=64 * 1024**2)
    max_concurrent_uploads: int = Field(default=2, ge=1, le=1000)
    upload_idle_timeout: Duration = timedelta(seconds=60)
    forwarded_allow_ips: str | None = None

    @field_validator("forwarded_allow_ips", mode="before")
    @classmethod
    def _proxies(cls, value: object) -> object:
        return None if value is None or (isinstance(value, str) and not value.strip()) else value

    # Slow clients (issue 19 item 7, server.core.slow_clients): a request head must arrive whole
    # within `header_timeout`; a body within `body_timeout` plus one second per `min_body_rate`
    # bytes received; at most `max_connections` open connections, `max_connections_per_client` of
    # them from one address (the addresses of `forwarded_allow_ips` excepted).
    header_timeout: Duration = timedelta(seconds=15)
    body_timeout: Duration = timedelta(seconds=30)
    min_body_rate: Size = Field(default=32 * 1024, ge=1024)
    max_connections: int = Field(default=512, ge=1, le=100_000)
    max_connections_per_client: int = Field(default=32, ge=1, le=100_000)

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

    # A data-use agreement in Markdown (issue 15): a researcher accepts its current version (the
    # sha256 of the file's bytes) before submitting. Read once by the server when it starts
    # (server.agreements.document); the worker and the admin commands never read it.
    dua_file: Path | None = None

    # Self-registration (issue 22 item 1, server.registrations): a team has at most max_team_size
    # members; registration_questions is a YAML list of {id, text, required} the applicant answers.
    max_team_size: int = Field(default=5, ge=1, le=1000)
    registration_questions: Path | None = None

    # Run policy (issue 11). Who sees the hidden run's output: server.runs.disclosure.
    hidden_logs: Literal["maintainers", "none", "submitters"] = "maintainers"
    # A redacted hint of a hidden failure for submitters (issue 23): none, or the name of a built-in
    # exception class found in the hidden log (a closed list): server.runs.disclosure.exception_hint.
    hidden_hint: Literal["none", "exception_type"] = "none"
    # Hidden-stage runtime figures and run timestamps a submitter sees (issue 19): server.disclosure.run_view.
    hidden_runtime: Literal["maintainers", "coarse", "submitters"] = "maintainers"
    # The hidden stage's end is held to a multiple of this after the stage began (0: off; not applied
    # with hidden_runtime "submitters" or to baselines): server.worker.stages.hold_to_grid.
    hidden_end_grid: Delay = timedelta(minutes=1)
    # Uploads are refused (507) while the data dir has less free space; default: 2x max_upload_bytes.
    min_free_bytes: int | None = None
    # Engine images of finished runs are removed once unused this long (the janitor).
    image_ttl: Duration = timedelta(hours=24)

    # Notifications (issue 15 item 6, server.notifications, docs/notifications.md): webhooks and
    # email (`mail`) from a durable outbox. A failed delivery is retried after notify_backoff *
    # 2^(n-1) (capped at notify_backoff_max) until notify_max_attempts, then dead. Webhook URLs that
    # resolve to loopback, private, link-local, multicast or reserved addresses are refused unless
    # webhook_allow_private. public_url: the server's address as a team sees it (the run link).
    public_url: str | None = None
    embedded_dispatcher: bool = True
    notify_max_attempts: int = Field(default=8, ge=1, le=50)
    notify_backoff: Duration = timedelta(seconds=30)
    notify_backoff_max: Duration = timedelta(hours=1)
    webhook_timeout: Duration = timedelta(seconds=10)
    webhook_allow_private: bool = False

    @field_validator("public_url")
    @classmethod
    def _public_url(cls, value: str | None) -> str | None:
        if value is None:
            return None
        if not re.match(r"^https?://[^\s/?#]+(/[^\s?#]*)?$", value):
            raise ValueError("must be the server's http(s) address, e.g. https://leaderboard.example.org")
        return value.rstrip("/")

    embedded_worker: bool = True
    lease_ttl: Duration = timedelta(seconds=60)
    poll_interval: Duration = timedelta(seconds=1)
    # Remote workers' lease calls that may wait for a run at once (each holds a server thread).
    worker_long_polls: int = Field(default=8, ge=0, le=64)
    max_attempts: int = Field(default=2, ge=1, le=10)
    retry_backoff: Delay = timedelta(seconds=2)  # first retry's wait; doubles per retry (runs.policy)
    bootstrap_resamples: int = Field(default=2000, ge=100)
    bootstrap_seed: int = 0
    significance_top: int = Field(default=20, ge=2, le=200)  # rows of the board's significance map
    significance_alpha: float = Field(default=0.05, gt=0, lt=1)  # level of the board's tier tests (Holm)
    min_stratum: int = Field(default=30, ge=1)  # rows below which a report's stratum is suppressed

    @model_validator(mode="before")
    @classmethod
    def _build_groups(cls, data: Any) -> Any:
        """Build each group from the environment and the overrides named for its variables.

        A group field given a dict would not read the environment, so each group is constructed
        here; their errors are reported together, located at (group, field).
        """
        if not isinstance(data, dict):
            return data
        data = dict(data)
        overrides: dict[str, dict[str, Any]] = {group: {} for group in GROUPS}
        for name, (group, field) in _GROUP_OVERRIDES.items():
            if name in data:
                overrides[group][field] = data.pop(name)
        errors: list[InitErrorDetails] = []
        for group, group_cls in GROUPS.items():
            try:
                data[group] = group_cls(**overrides[group])
            except ValidationError as exc:
                errors.extend(
                    InitErrorDetails(
                        type=err["type"], loc=(group, *err["loc"]), input=err["input"], ctx=err.get("ctx", {})
                    )
                    for err in exc.errors()
                )
        if errors:
            raise ValidationError.from_exception_data(cls.__name__, errors)
        return data

    _paths = field_validator("data_dir", "benchmark_dir", "dua_file")(_absolute)
    _empty = field_validator("dua_file", "registration_questions", "public_url", mode="before")(
        _empty_is_none
    )

    @field_validator("min_free_bytes", mode="before")
    @classmethod
    def _optional_size(cls, value: object) -> int | None:
        return None if value is None or value == "" else parse_size(value)

    @model_validator(mode="after")
    def _consistent(self) -> Settings:
        if self.runner == "kubernetes" and self.registry.host is None:
            raise ValueError(
                "CSAWM_RUNNER=kubernetes needs CSAWM_REGISTRY: the cluster pulls every model "
                "image from it (uploaded archives are pushed there first)"
            )
        if self.max_upload_bytes < 1024:
            raise ValueError("CSAWM_MAX_UPLOAD_BYTES must be at least 1 KiB")
        if self.lease_ttl < timedelta(seconds=3):
            raise ValueError("CSAWM_LEASE_TTL must be at least 3 seconds (the heartbeat runs every third)")
        if self.notify_backoff_max < self.notify_backoff:
            raise ValueError("CSAWM_NOTIFY_BACKOFF_MAX must be at least CSAWM_NOTIFY_BACKOFF")
        if self.database_url is not None and not self.database_url.startswith(("sqlite", "postgresql")):
            raise ValueError("CSAWM_DATABASE_URL must be a sqlite:// or postgresql:// URL")
        return self

    @property
    def session_info(self) -> dict[str, object]:
        """What every database session carries (`server.core.db.Database.connect`)."""
        return {"csawm.notify_email": self.mail.enabled}

    @property
    def effective_public_url(self) -> str:
        """``CSAWM_PUBLIC_URL``, or the address `csawm serve` listens on."""
        if self.public_url:
            return self.public_url
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    @property
    def effective_database_url(self) -> str:
        """The configured URL, or an SQLite file inside `data_dir`."""
        if self.database_url:
            return re.sub(r"^postgresql://", "postgresql+psycopg://", self.database_url)
        return f"sqlite:///{(self.data_dir / 'csawm.db').resolve()}"

    @property
    def effective_min_free_bytes(self) -> int:
        """``CSAWM_MIN_FREE_BYTES``, or twice ``CSAWM_MAX_UPLOAD_BYTES`` (an upload and its copy)."""
        return self.min_free_bytes if self.min_free_bytes is not None else 2 * self.max_upload_bytes

    @property
    def is_sqlite(self) -> bool:
        return self.effective_database_url.startswith("sqlite")


# Every CSAWM_* variable -> (group or None for Settings itself, field): the one table that names
# where a variable lands (docs/settings.md, the error messages of `load_settings`).
VARIABLES: dict[str, tuple[str | None, str]] = {
    **{f"CSAWM_{field.upper()}": (None, field) for field in Settings.model_fields if field not in GROUPS},
    **{_variable_of(GROUPS[group], field): (group, field) for group, field in _GROUP_OVERRIDES.values()},
}


def _variable_at(loc: tuple[int | str, ...]) -> str:
    """The variable an error at `loc` concerns; ``settings`` for a check of several."""
    if not loc:
        return "settings"
    head = str(loc[0])
    if head not in GROUPS:
        return f"CSAWM_{head.upper()}"
    if len(loc) == 1:
        return "settings"
    field = str(loc[1])
    return field if field.startswith("CSAWM_") else _variable_of(GROUPS[head], field)


def load_settings(**overrides: object) -> Settings:
    """Read settings from the environment; `overrides` win (used by tests and CLI flags).

    Raises `SettingsError` naming each offending ``CSAWM_*`` variable.
    """
    try:
        return Settings(**overrides)  # type: ignore[arg-type]
    except ValidationError as exc:
        problems = [f"{_variable_at(err['loc'])}: {err['msg']}" for err in exc.errors()]
        raise SettingsError("invalid settings: " + "; ".join(problems)) from None
