"""Operator settings (DESIGN.md §5a), read from the environment with the prefix ``CSAWM_``.

The embedded default (SQLite under ``./.csawm``, Docker runner, loopback host) needs no setting at
all; anything unsafe or inconsistent refuses to start with a message naming the setting.
"""

from __future__ import annotations

import re
from datetime import timedelta
from pathlib import Path
from typing import Literal

from pydantic import Field, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

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


class Settings(BaseSettings):
    """Everything the server, the worker and the admin commands read from the environment."""

    model_config = SettingsConfigDict(env_prefix="CSAWM_", extra="ignore", frozen=True)

    data_dir: Path = Path(".csawm")
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
    charge_user_failures: bool = True

    run_timeout: timedelta = timedelta(minutes=30)
    run_memory: int = 4 * 1024**3
    run_cpus: float = Field(default=2.0, gt=0)
    run_gpus: int = Field(default=0, ge=0)
    preflight_timeout: timedelta = timedelta(minutes=5)
    preflight_images: int = Field(default=4, ge=1, le=64)
    max_upload_bytes: int = 16 * 1024**3
    keep_archives: bool = False
    registry: str | None = None

    embedded_worker: bool = True
    lease_ttl: timedelta = timedelta(seconds=60)
    poll_interval: timedelta = timedelta(seconds=1)
    max_attempts: int = Field(default=2, ge=1, le=10)
    bootstrap_resamples: int = Field(default=2000, ge=100)
    bootstrap_seed: int = 0

    @field_validator("run_memory", "max_upload_bytes", mode="before")
    @classmethod
    def _sizes(cls, value: object) -> int:
        return parse_size(value)

    @field_validator("run_timeout", "preflight_timeout", "lease_ttl", "poll_interval", mode="before")
    @classmethod
    def _durations(cls, value: object) -> object:
        return parse_duration(value)

    @field_validator("run_timeout", "preflight_timeout", "lease_ttl", "poll_interval")
    @classmethod
    def _positive_duration(cls, value: timedelta) -> timedelta:
        if value <= timedelta(0):
            raise ValueError("must be a positive duration")
        return value

    @field_validator("registry")
    @classmethod
    def _registry(cls, value: str | None) -> str | None:
        if value is None or value == "":
            return None
        if "/" in value or "@" in value or " " in value:
            raise ValueError("must be a registry host[:port], e.g. registry.example.org:5000")
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
