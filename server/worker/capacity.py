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

from server.core.db import Database
from server.runs import leases


def is_capacity_wait(kind: str, message: str) -> bool:
    """The runner's pending messages that mean "waiting for capacity" (runner/kubernetes/failures.py)."""
    return kind == "pending" and message.startswith(("unschedulable:", "queued:"))


def note_capacity_wait(
    db: Database, submission_id: int, *, owner: str, attempt: int, message: str, gpus: int
) -> bool:
    """Record the wait on the run's timeline (`server.runs.leases.note_under_lease`); True when an
    event was written."""
    note = "waiting for GPU capacity" if gpus > 0 else "waiting for cluster capacity"
    with db.transaction() as session:
        return leases.note_under_lease(
            session, submission_id, owner=owner, attempt=attempt, note=note, detail=message[:2000]
        )
