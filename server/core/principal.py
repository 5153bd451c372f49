"""Who is calling: a small frozen value resolved once per request from the bearer token."""

from __future__ import annotations

from dataclasses import dataclass

from server.models import Role


@dataclass(frozen=True)
class Principal:
    user_id: int
    email: str
    role: Role
    team_id: int | None
    team_name: str | None

    @property
    def is_staff(self) -> bool:
        """Maintainers and admins see every team's submissions."""
        return self.role in (Role.MAINTAINER, Role.ADMIN)

    @property
    def audit_name(self) -> str:
        return self.email
