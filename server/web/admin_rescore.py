"""Re-scoring from the web (issue 23 item 7): ``csawm admin rescore`` as a background job whose
progress the page shows.

The job calls the command's own function, `server.runs.rescore.rescore`, one run at a time, so a
re-score from the page writes the same reports and the same audit entries as the command, and the
page can say "N of M" after each run. One job at a time per server process: a second start while one
runs is refused (409). The job lives in the app's state (`RescoreJobs`, an app part), so its
progress survives a page reload; a server restart ends it (the runs done so far stay re-scored, and
starting it again re-scores the rest and those again, which changes nothing but adds history).
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass, field
from datetime import datetime

from server.clock import utcnow
from server.core import audit
from server.core.db import Database
from server.core.errors import BadRequest, Conflict
from server.core.settings import Settings
from server.runs.rescore import candidates, rescore

log = logging.getLogger("csawm.web.rescore")


@dataclass
class RescoreProgress:
    """One job: what it was asked, and how far it got (read by the page while the thread writes)."""

    number: int
    actor: str
    ids: list[int] | None  # None: every succeeded run with stored predictions
    started_at: datetime
    total: int = 0
    done: list[int] = field(default_factory=list)
    skipped: dict[int, str] = field(default_factory=dict)
    finished_at: datetime | None = None
    error: str | None = None

    @property
    def handled(self) -> int:
        return len(self.done) + len(self.skipped)

    @property
    def running(self) -> bool:
        return self.finished_at is None


class RescoreJobs:
    """The server's re-scoring job: at most one running, the last one kept for the page."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._count = 0
        self.current: RescoreProgress | None = None
        self._thread: threading.Thread | None = None

    def start(
        self,
        db: Database,
        settings: Settings,
        ids: list[int] | None,
        *,
        actor: str,
        actor_user_id: int | None,
    ) -> RescoreProgress:
        """Start a job (audited as ``start_rescore``); Conflict while one runs, BadRequest without a
        test set."""
        if settings.benchmark_dir is None:
            raise BadRequest("CSAWM_BENCHMARK_DIR is not set: re-scoring needs the test set")
        with self._lock:
            if self.current is not None and self.current.running:
                raise Conflict(
                    f"re-scoring job {self.current.number} is still running "
                    f"({self.current.handled} of {self.current.total} runs); wait for it to finish"
                )
            self._count += 1
            job = RescoreProgress(
                number=self._count, actor=actor, ids=ids, started_at=utcnow(), total=len(ids or ())
            )
            with db.transaction() as session:
                audit.record(
                    session, actor=actor, actor_user_id=actor_user_id, action="start_rescore",
                    target_type="rescore_job", target_id=job.number,
                    detail={"submissions": "all" if ids is None else ids},
                )  # fmt: skip
            self.current = job
            self._thread = threading.Thread(
                target=self._run, args=(db, settings, job), name=f"rescore-{job.number}", daemon=True
            )
            self._thread.start()
            return job

    @staticmethod
    def _run(db: Database, settings: Settings, job: RescoreProgress) -> None:
        from server.worker.evaluation import EvaluationSet
        from server.worker.stages import score_report

        try:
            todo = job.ids if job.ids is not None else candidates(db, None)
            job.total = len(todo)
            assert settings.benchmark_dir is not None  # checked by `start`
            evaluation = EvaluationSet.prepare(
                settings.benchmark_dir, settings.data_dir, settings.run.preflight_images
            )
            for sub_id in todo:
                one = rescore(db, settings, evaluation, [sub_id], actor=job.actor, scorer=score_report)
                job.skipped.update(one.skipped)
                job.done.extend(one.done)
        except Exception as exc:  # the page says so; the runs done so far stay re-scored
            log.exception("re-scoring job %d failed", job.number)
            job.error = f"{type(exc).__name__}: {exc}"
        finally:
            job.finished_at = utcnow()
