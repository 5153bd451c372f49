"""What the worker needs to know about a backend beyond `runner.spec.Runner`.

`run_limits`: the limits of one stage from the ``CSAWM_RUN_*`` settings, the same for every backend
(``csawm k8s render-job`` uses it too, so the Job it prints carries the worker's limits).
"""

from __future__ import annotations

from dataclasses import replace

from runner.spec import RunLimits
from server.core.settings import Settings

# A preflight failure shows the submitter the whole log (it runs on public or synthetic images).
PREFLIGHT_LOG_LINES = 2000
PREFLIGHT_LOG_BYTES = 256 * 1024


def run_limits(settings: Settings, stage: str) -> RunLimits:
    """Limits of a ``preflight`` or ``hidden`` run: ``CSAWM_RUN_MEMORY``, ``CSAWM_RUN_CPUS``,
    ``CSAWM_RUN_GPUS``, and ``CSAWM_PREFLIGHT_TIMEOUT`` or ``CSAWM_RUN_TIMEOUT``."""
    limits = RunLimits(
        timeout=settings.run.preflight_timeout if stage == "preflight" else settings.run.timeout,
        memory_bytes=settings.run.memory,
        cpus=settings.run.cpus,
        gpus=settings.run.gpus,
    )
    if stage == "preflight":
        return replace(limits, log_tail_lines=PREFLIGHT_LOG_LINES, log_tail_bytes=PREFLIGHT_LOG_BYTES)
    return limits
