"""SQLAlchemy models. Importing this package registers every table on `Base.metadata`."""

from server.models.accounts import ApiToken, Role, Team, User
from server.models.agreements import AgreementAcceptance
from server.models.base import Base
from server.models.baselines import BaselineBuild, BaselineSeed, BuildState
from server.models.holds import TeamHold
from server.models.ladder import LadderStepRow
from server.models.ledger import AuditEntry, LedgerKind, QuotaEntry
from server.models.notifications import Channel, Delivery, DeliveryAttempt, Webhook
from server.models.operations import ComputeAlert, Pause
from server.models.phases import Disclosure, Phase, PhaseSelection, TestSet, Visibility
from server.models.registrations import RateCounter, Registration, RegistrationState, TeamAction
from server.models.report_history import SupersededReplicates
from server.models.snapshots import BoardSnapshot
from server.models.submissions import (
    ACTIVE_STATUSES,
    LEASED_STATUSES,
    TERMINAL_STATUSES,
    FailedPhase,
    ReviewState,
    RunEvent,
    RunStatus,
    Submission,
    SubmissionReport,
    WorkerHeartbeat,
)
from server.models.web import RevokedWebSession
from server.models.workers import WorkerAccount

__all__ = [
    "ACTIVE_STATUSES",
    "LEASED_STATUSES",
    "TERMINAL_STATUSES",
    "AgreementAcceptance",
    "ApiToken",
    "AuditEntry",
    "Base",
    "BaselineBuild",
    "BaselineSeed",
    "BoardSnapshot",
    "BuildState",
    "Channel",
    "ComputeAlert",
    "Delivery",
    "DeliveryAttempt",
    "Disclosure",
    "FailedPhase",
    "LadderStepRow",
    "LedgerKind",
    "Pause",
    "Phase",
    "PhaseSelection",
    "QuotaEntry",
    "RateCounter",
    "Registration",
    "RegistrationState",
    "ReviewState",
    "RevokedWebSession",
    "Role",
    "RunEvent",
    "RunStatus",
    "Submission",
    "SubmissionReport",
    "SupersededReplicates",
    "Team",
    "TeamAction",
    "TeamHold",
    "TestSet",
    "User",
    "Visibility",
    "Webhook",
    "WorkerAccount",
    "WorkerHeartbeat",
]
