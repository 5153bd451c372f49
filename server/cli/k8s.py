"""``csawm k8s render-job``: print the Job the Kubernetes runner would create (docs/cli.md, docs/design.md).

The manifest comes from the same pure builder the runner uses (`runner.kubernetes.manifest`), so
operators can review it and tools (``kubectl apply --dry-run=server -f -``, kubernetes-validate,
policy checkers) can check it. The runner's config comes from the ``CSAWM_K8S_*`` settings and the
run limits from ``CSAWM_RUN_*`` (the preflight timeout for ``--phase preflight``), through the same
functions the worker uses (`kubernetes_runner_config`, `run_limits`); flags override them
(``--phase hidden --input public``: the hidden Job of a development phase, which mounts the public
images only). Exit code 2 for bad input.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta
from pathlib import Path
from typing import Annotated

import typer
import yaml

from runner.kubernetes.config import KubernetesConfigError
from runner.kubernetes.manifest import ManifestError, build_job
from runner.spec import RunSpec
from server.cli import fail
from server.core.k8s_settings import kubernetes_runner_config
from server.core.settings import SettingsError, load_settings
from server.worker.backend import run_limits

app = typer.Typer(help="Kubernetes runner tools.", no_args_is_help=True)


@app.command("render-job")
def render_job(
    image: Annotated[str, typer.Option("--image", help="Model image pinned by digest (repo@sha256:...)")],
    run_id: Annotated[str, typer.Option("--run-id", help="Run id the Job is named after")],
    attempt: Annotated[int, typer.Option("--attempt", help="Attempt number (>= 1)")] = 1,
    phase: Annotated[str, typer.Option("--phase", help="preflight or hidden")] = "hidden",
    input_name: Annotated[
        str | None,
        typer.Option(
            "--input",
            help="The test-images volume folder mounted at /input: preflight, hidden, or public (the "
            "hidden run of a development phase); default: the phase's own",
        ),
    ] = None,
    gpus: Annotated[int | None, typer.Option("--gpus", help="GPUs (default: CSAWM_RUN_GPUS)")] = None,
    timeout_s: Annotated[
        float | None, typer.Option("--timeout-s", help="Run timeout in seconds (default: from settings)")
    ] = None,
    namespace: Annotated[
        str | None, typer.Option("--namespace", help="Evaluation namespace (default: CSAWM_K8S_NAMESPACE)")
    ] = None,
    collector_image: Annotated[
        str | None,
        typer.Option(
            "--collector-image",
            help="The server image running the collector (default: CSAWM_K8S_COLLECTOR_IMAGE)",
        ),
    ] = None,
    runtime_class: Annotated[
        str | None,
        typer.Option("--runtime-class", help="RuntimeClass, e.g. gvisor (default: CSAWM_K8S_RUNTIME_CLASS)"),
    ] = None,
    queue: Annotated[
        str | None, typer.Option("--queue", help="Kueue LocalQueue name (default: CSAWM_K8S_KUEUE_QUEUE)")
    ] = None,
) -> None:
    """Print the Job manifest (YAML) the Kubernetes runner would create for this run."""
    try:
        settings = load_settings()
        limits = run_limits(settings, phase)
        if timeout_s is not None:
            limits = replace(limits, timeout=timedelta(seconds=timeout_s))
        if gpus is not None:
            limits = replace(limits, gpus=gpus)
        overrides: dict[str, object] = {
            key: value
            for key, value in (
                ("namespace", namespace),
                ("collector_image", collector_image),
                ("runtime_class_name", runtime_class),
                ("kueue_queue", queue),
            )
            if value is not None
        }
        config = kubernetes_runner_config(settings.k8s, **overrides)
        spec = RunSpec(
            run_id=run_id,
            image=image,
            input_dir=Path("/input"),  # unused by this backend: inputs come from the PVC
            output_dir=Path("/output"),
            limits=limits,
            attempt=attempt,
            phase=phase,
            input_name=input_name,
        )
        manifest = build_job(spec, config)
    except (SettingsError, KubernetesConfigError, ManifestError) as exc:
        raise fail(str(exc)) from None
    typer.echo(yaml.safe_dump(manifest, sort_keys=False), nl=False)
