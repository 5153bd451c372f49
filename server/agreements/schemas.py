"""Bodies of ``/api/v1/agreements``."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field

SHA256_HEX = r"^[0-9a-f]{64}$"


class AgreementOut(BaseModel):
    required: bool = Field(description="whether this server has an agreement (CSAWM_DUA_FILE)")
    version: str | None = Field(description="sha256 of the agreement file; null when none")
    text: str | None = Field(description="the agreement in Markdown; null when none")
    accepted: bool = Field(description="whether the caller accepted this version")
    accepted_at: datetime | None
    url: str | None = Field(description="the web page that shows the agreement and accepts it")


class AgreementIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    version: str = Field(pattern=SHA256_HEX, description="the version being accepted (as GET returns it)")
