"""Review and audit bodies."""

from __future__ import annotations

import enum
from datetime import datetime
from typing import Any

from pydantic import BaseModel, Field

from server.core.text import TextStr


class ReviewAction(enum.StrEnum):
    APPROVE = "approve"
    HIDE = "hide"
    DISQUALIFY = "disqualify"


class ReviewIn(BaseModel):
    action: ReviewAction
    reason: TextStr = Field(default="", max_length=2000, description="Required for hide and disqualify.")


class AuditOut(BaseModel):
    id: int
    actor: str
    action: str
    target_type: str
    target_id: str
    reason: str | None
    detail: dict[str, Any] | None
    created_at: datetime


class FlagKind(enum.StrEnum):
    CORRELATED_PREDICTIONS = "correlated_predictions"
    SAME_IMAGE = "same_image"
    SUDDEN_JUMP = "sudden_jump"
    REPEATED_INFRA_ERRORS = "repeated_infra_errors"
    STARTER_METHOD_CARD = "starter_method_card"


class FlaggedRunOut(BaseModel):
    id: int
    name: str
    team: str
    baseline: bool
    status: str
    review_state: str
    kendall_tau_b: float | None
    created_at: datetime


class CorrelationEvidence(BaseModel):
    """Spearman's rho of `Final_score` between two runs of different teams (server.review.flags)."""

    spearman_rho: float
    n_images: int = Field(description="Images both runs predicted; rho is computed on these.")
    threshold: float
    same_predictions_file: bool = Field(description="The two runs stored byte-identical predictions.")


class ImageEvidence(BaseModel):
    """One image digest submitted by more than one team."""

    image_digest: str
    n_teams: int


class JumpEvidence(BaseModel):
    """tau-b minus the team's best earlier tau-b, against `factor` x the width of this run's 95% CI."""

    kendall_tau_b: float
    previous_best: float
    previous_best_id: int
    jump: float
    ci95: tuple[float, float]
    ci_width: float
    factor: float
    threshold: float = Field(description="factor x ci_width; the jump exceeded it.")


class InfraErrorEvidence(BaseModel):
    """One team's runs that ended ``infra_error``: ours, or a model that breaks what runs it."""

    n_runs: int
    threshold: int = Field(description="Runs ending infra_error from which a team is flagged.")
    held: bool = Field(description="The team is held now: its queued runs wait for a maintainer.")


class StarterCardEvidence(BaseModel):
    """A run whose method card still holds the `csawm init` kit's placeholder text."""

    unedited_fields: list[str] = Field(description="The card's fields that still hold the kit's text.")


class FlagOut(BaseModel):
    kind: FlagKind
    teams: list[str]
    runs: list[FlaggedRunOut]
    evidence: CorrelationEvidence | ImageEvidence | JumpEvidence | InfraErrorEvidence | StarterCardEvidence


class HoldIn(BaseModel):
    reason: TextStr = Field(min_length=1, max_length=2000, description="Why; in the audit log.")


class HoldOut(BaseModel):
    """A held team: none of its queued runs is leased until a maintainer releases it."""

    team: str
    reason: str
    submission_id: int | None = Field(description="The run whose scoring failed, when that caused it.")
    held_by: str = Field(description="A maintainer, cli:<user>, or worker:<name> for a scorer crash.")
    created_at: datetime
    queued_runs: int = Field(description="The team's runs waiting in the queue.")


class FlagsOut(BaseModel):
    generated_at: datetime
    runs_compared: int = Field(description="Succeeded runs whose stored predictions were correlated.")
    rho_threshold: float
    jump_factor: float
    min_common_images: int
    flags: list[FlagOut]
    notes: list[str] = Field(description="What was skipped and why (missing or unreadable predictions).")
