"""Request and response bodies of the registration endpoints (docs/api.md#registration)."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field, model_validator

from server.core.text import NameStr, TextStr
from server.models import Registration, RegistrationState, TeamAction
from server.registrations.questions import ANSWER_MAX


class TeamChoice(BaseModel):
    """Exactly one of ``create`` (a new team's name) and ``join`` (an existing team's name)."""

    model_config = ConfigDict(extra="forbid")

    create: NameStr | None = Field(default=None, max_length=100)
    join: NameStr | None = Field(default=None, max_length=100)

    @model_validator(mode="after")
    def _one(self) -> TeamChoice:
        if (self.create is None) == (self.join is None):
            raise ValueError('give exactly one of {"create": NAME} and {"join": NAME}')
        return self

    @property
    def action(self) -> tuple[TeamAction, str]:
        if self.create is not None:
            return TeamAction.CREATE, self.create
        assert self.join is not None
        return TeamAction.JOIN, self.join


class RegistrationIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: NameStr = Field(max_length=200)
    email: NameStr = Field(max_length=254)
    affiliation: NameStr = Field(max_length=300)
    orcid: NameStr | None = Field(default=None, max_length=19, description="e.g. 0000-0002-1825-0097")
    team: TeamChoice
    answers: dict[NameStr, TextStr] = Field(
        default_factory=dict, description=f"question id -> answer (at most {ANSWER_MAX} characters each)"
    )


class AcceptedOut(BaseModel):
    status: str = "accepted"
    message: str = (
        "If this address can receive mail, a message with the next step is on its way. "
        "Open the link in it to confirm the address; a maintainer then reviews the registration."
    )


class RejectIn(BaseModel):
    reason: TextStr = Field(min_length=1, max_length=2000)


class RegistrationOut(BaseModel):
    id: int
    email: str
    name: str
    affiliation: str
    orcid: str | None
    team: dict[str, str] = Field(description='{"create": NAME} or {"join": NAME}')
    answers: dict[str, str]
    state: RegistrationState
    created_at: datetime
    verified_at: datetime | None
    decided_at: datetime | None
    reason: str | None

    @classmethod
    def of(cls, reg: Registration) -> RegistrationOut:
        columns = {name: getattr(reg, name) for name in cls.model_fields if name != "team"}
        return cls(**columns, team={reg.team_action.value: reg.team_name})


class JoinRequestOut(BaseModel):
    """What a team's members see of a join request: who asks, not their answers to the operator."""

    id: int
    email: str
    name: str
    affiliation: str
    orcid: str | None
    created_at: datetime
