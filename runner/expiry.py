"""Run objects past their deadline label: removed by whoever finds them.

A process SIGKILLed mid-run (a worker, a `csawm check`) cannot remove its own container or Job;
every run object carries its deadline, so the next worker's janitor (`server.worker.janitor`) or the
next `csawm check` removes it. It lives in the runner because the researcher's client, which has no
database, needs it as much as the server does.
"""

from __future__ import annotations

from datetime import UTC, datetime

from runner.spec import Runner


def sweep_expired(runner: Runner, *, run_prefix: str) -> None:
    """Remove the run objects whose run id starts with `run_prefix` and whose deadline has passed."""
    now = datetime.now(UTC)
    for obj in runner.list_runs():
        if obj.run_id.startswith(run_prefix) and obj.deadline is not None and obj.deadline < now:
            remove_run(runner, obj.handle)


def remove_run(runner: Runner, handle: str) -> None:
    """Stop a run object, then remove it and its files whether or not stopping worked."""
    try:
        runner.cancel(handle)
    finally:
        runner.cleanup(handle)
