"""A run whose Pod waits for cluster capacity says so on its timeline (issue 22 item 2).

Under the Kubernetes runner a Job may wait for a node with a free GPU (the Pod is
``Unschedulable``) or for admission by Kueue (the Job is suspended). The run's status stays where it
is (preflight or running: the lease holds), but its timeline gets one event with the note
"waiting for GPU capacity" (or "waiting for cluster capacity" where no GPU is asked for), so the
report page, ``csawm status`` and ``csawm submit --wait`` show why nothing happens rather than a
plain "running". The runner's own message (node counts, the queue) goes in the maintainers'
``detail``. The event is written once per wait (not again while the latest event says the same)
and only while this worker still holds the lease.
"""

from __future__ import annotations

from typing import Any

from server.core.db import Database
from server.runs import leases
from server.worker.context import RunContext


def note_capacity_wait(db: Database, ctx: RunContext, owner: str, progress: Any, gpus: int) -> bool:
    """Record a wait for capacity that the runner reports (`progress`, a
    `runner.kubernetes.executor.Progress`: its pending messages ``unschedulable:`` and ``queued:``,
    runner/kubernetes/failures.py) on the run's timeline (`server.runs.leases.note_under_lease`);
    True when an event was written."""
    if progress.kind != "pending" or not progress.message.startswith(("unschedulable:", "queued:")):
        return False
    note = "waiting for GPU capacity" if gpus > 0 else "waiting for cluster capacity"
    detail = progress.message[:2000]
    with db.transaction() as session:
        return leases.note_under_lease(
            session, ctx.sub_id, owner=owner, attempt=ctx.lease.attempt, note=note, detail=detail
        )
