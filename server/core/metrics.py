"""Prometheus metrics on per-app registries (no process-global state).

Queue depth, runs by state and run durations are read from the database at scrape time, so every
server and worker process reports the same truth; upload bytes are counted by the process that
received them.

Two registries (issue 19 item 6): run counts by status and error code, the stage and run duration
histograms, the workers' names and the upload counters let anyone follow a sealed round (when a
team's run ends, how long it took, how it failed), so they are the operator's: served only to a
request that presents ``CSAWM_METRICS_TOKEN`` (`operator_view`). An anonymous scrape gets the
public registry: the queue depth and whether a worker is alive, nothing per run.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Iterator
from datetime import timedelta

from prometheus_client import CollectorRegistry, Counter
from prometheus_client.core import GaugeMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import Collector
from sqlalchemy import func, select

from server.clock import utcnow
from server.core.db import Database
from server.core.errors import Unauthorized
from server.core.settings import Settings
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


class _PublicCollector(Collector):
    """What anyone may read: how long the queue is and whether any worker is alive."""

    def __init__(self, db: Database, alive_within: timedelta) -> None:
        self._db = db
        self._alive_within = alive_within

    def collect(self) -> Iterator[Metric]:
        with self._db.session() as session:
            queued = session.scalar(
                select(func.count()).select_from(Submission).where(Submission.status == RunStatus.QUEUED)
            )
            alive = session.scalar(
                select(func.count())
                .select_from(WorkerHeartbeat)
                .where(WorkerHeartbeat.beat_at >= utcnow() - self._alive_within)
            )
        yield GaugeMetricFamily("csawm_queue_depth", "Runs waiting for a worker", value=float(queued or 0))
        yield GaugeMetricFamily(
            "csawm_workers_up",
            "1 when at least one worker's heartbeat is younger than three lease TTLs, else 0",
            value=1.0 if alive else 0.0,
        )


class Metrics:
    """The two registries of one app plus the process-local counters.

    ``public_registry``: the queue depth and ``csawm_workers_up``, for anyone. ``registry``: those
    and every per-run, per-status, per-worker and upload series, for the operator only.
    """

    def __init__(self, db: Database, *, alive_within: timedelta = timedelta(minutes=3)) -> None:
        public = _PublicCollector(db, alive_within)
        self.public_registry = CollectorRegistry(auto_describe=False)
        self.public_registry.register(public)
        self.registry = CollectorRegistry(auto_describe=False)
        self.registry.register(public)
        self.registry.register(_DatabaseCollector(db))
        self.upload_bytes = Counter(
            "csawm_upload_bytes", "Bytes of submission archives received", registry=self.registry
        )
        self.uploads = Counter(
            "csawm_uploads", "Submission uploads by outcome", ["outcome"], registry=self.registry
        )


def operator_view(authorization: str | None, settings: Settings) -> bool:
    """Whether a ``/metrics`` request gets the operator's registry.

    No ``Authorization`` header: False (the public registry). ``Bearer <CSAWM_METRICS_TOKEN>``:
    True. Any other credential, or any credential while no token is configured: `Unauthorized`,
    so a typo in a scrape configuration fails loudly instead of quietly scraping the public view.
    SHA-256 digests are compared with `hmac.compare_digest`: constant time, whatever the lengths.
    """
    if authorization is None:
        return False
    scheme, _, value = authorization.partition(" ")
    expected = settings.metrics_token
    if scheme.lower() == "bearer" and expected is not None:
        given = hashlib.sha256(value.strip().encode()).digest()
        wanted = hashlib.sha256(expected.get_secret_value().encode()).digest()
        if hmac.compare_digest(given, wanted):
            return True
    raise Unauthorized("wrong metrics token (expected Authorization: Bearer <CSAWM_METRICS_TOKEN>)")
