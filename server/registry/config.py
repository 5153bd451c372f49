"""How to reach the registry: host, credentials, TLS. Built once from the ``CSAWM_REGISTRY*`` settings."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from server.core.settings import Settings


@dataclass(frozen=True)
class RegistryConfig:
    """Connection settings of one registry.

    `insecure` means plain HTTP; the settings allow it for loopback hosts only. `ca_file` is a PEM
    bundle trusted for the registry's TLS certificate instead of the system store.
    """

    host: str
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    ca_file: Path | None = None
    insecure: bool = False

    @property
    def base_url(self) -> str:
        return f"{'http' if self.insecure else 'https'}://{self.host}"

    @property
    def has_credentials(self) -> bool:
        return self.username is not None and self.password is not None

    @classmethod
    def from_settings(cls, settings: Settings) -> RegistryConfig | None:
        """The configured registry, or None when ``CSAWM_REGISTRY`` is unset."""
        registry = settings.registry
        if registry.host is None:
            return None
        return cls(
            host=registry.host,
            username=registry.username,
            password=registry.password.get_secret_value() if registry.password is not None else None,
            ca_file=registry.ca,
            insecure=registry.insecure,
        )
