"""What the worker needs to know about a backend beyond `runner.spec.Runner`.

`expected_handle`: the handle a backend will give a spec, known before the run starts. A worker
records it *before* calling ``start``, so that if the worker dies between starting the container
(or Job) and writing down what it started, the worker that takes the run over still knows what to
stop: a run never executes twice at once. Backends name their objects from ``(run_id, attempt)``
(runner.spec), which makes the handle computable.
"""

from __future__ import annotations

from typing import Any

from runner.spec import RunSpec


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
