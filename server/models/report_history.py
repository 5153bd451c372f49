"""The bootstrap replicates of superseded reports (issue 22 item 5).

A run's current tau-b replicates live on its submission row and belong to its latest report
(`SubmissionReport`). When a re-score replaces them, the old ones are kept here under the report
they belonged to, so that the board as it stood before the re-score (`server.leaderboard.history`)
pairs the replicates the runs had then.
"""

from __future__ import annotations

from sqlalchemy import ForeignKey, LargeBinary
from sqlalchemy.orm import Mapped, mapped_column

from server.models.base import Base


class SupersededReplicates(Base):
    __tablename__ = "superseded_replicates"

    report_id: Mapped[int] = mapped_column(
        ForeignKey("submission_reports.id", ondelete="CASCADE"), primary_key=True
    )
    tau_replicates: Mapped[bytes] = mapped_column(LargeBinary)
