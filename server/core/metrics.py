"""Prometheus metrics on a per-app registry (no process-global state).

Queue depth, runs by state and run durations are read from the database at scrape time, so every
server and worker process reports the same truth; upload bytes are counted by the process that
received them.
"""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client import CollectorRegistry, Counter
from prometheus_client.core import GaugeMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import Collector
from sqlalchemy import func, select

from server.core.clock import utcnow
from server.core.db import Database
from server.models import RunStatus, Submission, WorkerHeartbeat

DURATION_BUCKETS = (1.0, 5.0, 15.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1800.0, 3600.0)
PHASE_SAMPLE = 1000


def _histogram(name: str, doc: str, values: list[float]) -> HistogramMetricFamily:
    buckets = [(str(bound), float(sum(1 for v in values if v <= bound))) for bound in DURATION_BUCKETS]
    buckets.append(("+Inf", float(len(values))))
    return HistogramMetricFamily(name, doc, buckets=buckets, sum_value=float(sum(values)))


class _DatabaseCollector(Collector):
    def __init__(self, db: Database) -> None:
        self._db = db

    def collect(self) -> Iterator[Metric]:
        with self._db.session() as session:
            counts = dict(
                session.execute(select(Submission.status, func.count()).group_by(Submission.status)).all()
            )
            codes = session.execute(
                select(Submission.status, Submission.error_code, func.count())
                .where(Submission.error_code.is_not(None))
                .group_by(Submission.status, Submission.error_code)
            ).all()
            phase_rows = session.execute(
                select(Submission.timings)
                .where(Submission.finished_at.is_not(None))
                .order_by(Submission.id.desc())
                .limit(PHASE_SAMPLE)
            ).all()
            beats = session.execute(
                select(WorkerHeartbeat.name, WorkerHeartbeat.state, WorkerHeartbeat.beat_at)
            ).all()
            spans = session.execute(
                select(Submission.started_at, Submission.finished_at).where(
                    Submission.started_at.is_not(None), Submission.finished_at.is_not(None)
                )
            ).all()
        by_state = GaugeMetricFamily("csawm_runs", "Runs by status", labels=["status"])
        for status in RunStatus:
            by_state.add_metric([status.value], float(counts.get(status, 0)))
        yield by_state
        yield GaugeMetricFamily(
            "csawm_queue_depth", "Runs waiting for a worker", value=float(counts.get(RunStatus.QUEUED, 0))
        )
        by_code = GaugeMetricFamily(
            "csawm_runs_by_error", "Ended runs by status and error code", labels=["status", "error_code"]
        )
        for status, code, n in codes:
            by_code.add_metric([status.value, str(code)], float(n))
        yield by_code
        for phase in ("preflight", "hidden", "scoring"):
            values = [
                float(t[f"{phase}_s"])
                for (t,) in phase_rows
                if isinstance(t, dict) and isinstance(t.get(f"{phase}_s"), int | float)
            ]
            yield _histogram(
                f"csawm_phase_{phase}_seconds",
                f"Wall time of the {phase} phase (last {PHASE_SAMPLE} ended runs)",
                values,
            )
        now = utcnow()
        age = GaugeMetricFamily(
            "csawm_worker_heartbeat_age_seconds",
            "Seconds since each worker's heartbeat",
            labels=["worker", "state"],
        )
        for name, state, beat_at in beats:
            age.add_metric([name, state], (now - beat_at).total_seconds())
        yield age
        durations = [(end - start).total_seconds() for start, end in spans if start and end]
        yield _histogram(
            "csawm_run_duration_seconds", "Wall time from leaving the queue to a terminal status", durations
        )


class Metrics:
    """The registry of one app plus the process-local counters."""

    def __init__(self, db: Database) -> None:
        self.registry = CollectorRegistry(auto_describe=False)
        self.registry.register(_DatabaseCollector(db))
        self.upload_bytes = Counter(
            "csawm_upload_bytes", "Bytes of submission archives received", registry=self.registry
        )
        self.uploads = Counter(
            "csawm_uploads", "Submission uploads by outcome", ["outcome"], registry=self.registry
        )
