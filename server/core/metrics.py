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

from server.core.db import Database
from server.models import RunStatus, Submission

DURATION_BUCKETS = (1.0, 5.0, 15.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1800.0, 3600.0)


class _DatabaseCollector(Collector):
    def __init__(self, db: Database) -> None:
        self._db = db

    def collect(self) -> Iterator[Metric]:
        with self._db.session() as session:
            counts = dict(
                session.execute(select(Submission.status, func.count()).group_by(Submission.status)).all()
            )
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
        durations = sorted((end - start).total_seconds() for start, end in spans if start and end)
        buckets: list[tuple[str, float]] = []
        for bound in DURATION_BUCKETS:
            buckets.append((str(bound), float(sum(1 for d in durations if d <= bound))))
        buckets.append(("+Inf", float(len(durations))))
        yield HistogramMetricFamily(
            "csawm_run_duration_seconds",
            "Wall time from leaving the queue to a terminal status",
            buckets=buckets,
            sum_value=float(sum(durations)),
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
