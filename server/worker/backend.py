"""What the worker needs to know about a backend beyond `runner.spec.Runner`.

`run_limits`: the limits of one phase from the ``CSAWM_RUN_*`` settings, the same for every backend
(``csawm k8s render-job`` uses it too, so the Job it prints carries the worker's limits).

`expected_handle`: the handle a backend will give a spec, known before the run starts. A worker
records it *before* calling ``start``, so that if the worker dies between starting the container
(or Job) and writing down what it started, the worker that takes the run over still knows what to
stop: a run never executes twice at once. Backends name their objects from ``(run_id, attempt)``
(runner.spec), which makes the handle computable.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from runner.spec import RunLimits, RunSpec
from server.core.settings import Settings

# A preflight failure shows the submitter the whole log (it runs on public or synthetic images).
PREFLIGHT_LOG_LINES = 2000
PREFLIGHT_LOG_BYTES = 256 * 1024


def run_limits(settings: Settings, phase: str) -> RunLimits:
    """Limits of a ``preflight`` or ``hidden`` run: ``CSAWM_RUN_MEMORY``, ``CSAWM_RUN_CPUS``,
    ``CSAWM_RUN_GPUS``, and ``CSAWM_PREFLIGHT_TIMEOUT`` or ``CSAWM_RUN_TIMEOUT``."""
    limits = RunLimits(
        timeout=settings.preflight_timeout if phase == "preflight" else settings.run_timeout,
        memory_bytes=settings.run_memory,
        cpus=settings.run_cpus,
        gpus=settings.run_gpus,
    )
    if phase == "preflight":
        return replace(limits, log_tail_lines=PREFLIGHT_LOG_LINES, log_tail_bytes=PREFLIGHT_LOG_BYTES)
    return limits


def expected_handle(runner: Any, spec: RunSpec) -> str | None:
    """The handle ``runner.start(spec)`` will return, or None for a backend that cannot say."""
    method = getattr(runner, "handle_for", None)
    if callable(method):
        return str(method(spec))
    backend = getattr(runner, "name", None)
    if backend == "docker":
        from runner.docker_backend import handle_for

        return handle_for(spec)
    if backend == "kubernetes":
        from runner.kubernetes.manifest import handle_for as k8s_handle
        from runner.kubernetes.manifest import job_name

        config = runner.config
        return k8s_handle(
            config.namespace, job_name(spec.run_id, spec.attempt, prefix=config.job_name_prefix)
        )
    return None


def image_present(runner: Any, image_id: str) -> bool:
    """True when the backend's engine already holds the image with this id (``sha256:<config>``).

    Image ids are content addresses, so an image present under that id is the submitted one and the
    archive need not be loaded again (a retry, a takeover, a resubmission by another team).
    Backends that cannot tell answer False.
    """
    if getattr(runner, "name", None) != "docker":
        return False
    try:
        runner.client.images.get(image_id)
    except Exception:  # not found, or the engine is unwell: loading will say which, properly
        return False
    return True
