"""``csawm check IMAGE|ARCHIVE|REFERENCE``: run a model image locally in exactly the production sandbox.

What the server would do at preflight, on this machine: an archive is inspected (and rejected
before loading, with its reason) and loaded; the image runs on a few synthetic CSAW-M images
(`server.benchmark.synth`) through `DockerRunner` with the same hardening, limits and I/O contract;
``predictions.csv`` is read safely and validated by the scoring module's own reader. The verdict has
the same fields as a submission: ``status``, ``error_code``, ``error_message``, ``log_tail``.
The container runtime is the worker's: ``--runtime`` or ``CSAWM_RUN_RUNTIME`` (``runc`` by default,
``runsc`` for gVisor).

``--robust`` runs it as the hidden run will, at the hidden set's full scale: `server.cli.robust`.

Exit codes: 0 the model passed; 1 the model failed (any run error code); 2 bad arguments or an
archive rejected by inspection, a local image the engine does not hold, a registry tag without its
digest, a reference the engine cannot pull; 3 (``--robust``) the configured server could not be asked
for its test set's shape.
"""

from __future__ import annotations

import contextlib
import json
import re
import signal
import tempfile
import threading
import uuid
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from types import FrameType
from typing import Annotated, Any

import typer

from runner.docker_backend import DockerRunner
from runner.errors import RunnerError
from runner.expiry import sweep_expired
from runner.hardening import check_limits, check_runtime
from runner.imagetar import ImageArchiveError, ImageArchiveInfo, inspect_archive
from runner.io_contract import prepare_input
from runner.spec import ErrorCode, RunLimits, RunResult, RunSpec, TerminalState
from server.benchmark.synth import generate
from server.cli import fail
from server.cli.reference import pull, registry_reference
from server.scoring.predictions import PredictionsError, read_predictions

EXIT_OK = 0
EXIT_MODEL_FAILED = 1
EXIT_INVALID = 2
EXIT_SERVER = 3  # --robust: the configured server could not be asked for its test set's shape
MIN_IMAGES = 8  # the synthetic generator's smallest test split
_UNITS = {"": 1, "k": 1024, "m": 1024**2, "g": 1024**3}
_MEMORY = re.compile(r"(\d+(?:\.\d+)?)\s*([kmg]?)(?:i?b)?")


@dataclass
class CheckReport:
    """The verdict, shaped like a submission (docs/api.md) plus run details."""

    status: str
    error_code: str | None
    error_message: str
    log_tail: str = ""
    exit_code: int | None = None
    duration_s: float | None = None
    peak_memory_bytes: int | None = None
    runtime: str | None = None
    image: dict[str, Any] = field(default_factory=dict)
    predictions: dict[str, Any] | None = None


def parse_memory(text: str) -> int:
    """``4g``, ``512m``, ``512MiB``, ``1048576`` -> bytes (binary units, as Docker reads them)."""
    match = _MEMORY.fullmatch(text.strip().lower())
    if match is None:
        raise ValueError(f"memory {text!r} is not a size like 512m or 4g")
    value = float(match.group(1)) * _UNITS[match.group(2)]
    if value <= 0:
        raise ValueError(f"memory {text!r} must be positive")
    return int(value)


def _failed(code: ErrorCode, message: str, **extra: Any) -> CheckReport:
    return CheckReport(
        status=TerminalState.FAILED.value, error_code=code.value, error_message=message, **extra
    )


CHECK_PREFIX = "check-"


@contextlib.contextmanager
def _removed_on_signal(runner: DockerRunner, handle: str) -> Iterator[None]:
    """While the model runs, SIGINT/SIGTERM remove its container before the process exits."""
    if threading.current_thread() is not threading.main_thread():
        yield  # signal handlers can only be installed from the main thread (tests call run_check)
        return

    def stop(signum: int, frame: FrameType | None) -> None:
        with contextlib.suppress(Exception):
            runner.cancel(handle)
            runner.cleanup(handle)
        raise SystemExit(128 + signum)

    previous = {sig: signal.signal(sig, stop) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


class MissingImage(ValueError):
    """The engine has no image of the name given (a typo, an image not built yet)."""


def run_check(target: str, *, limits: RunLimits, n_images: int, runner: DockerRunner) -> CheckReport:
    """Check one image reference or ``docker save`` archive path on `n_images` synthetic CSAW-M-like
    PNGs (632x512, 8-bit grey, the project's generator); never raises for a model fault, and raises
    what `resolve_image` raises."""
    image, image_info = resolve_image(runner, target)
    with tempfile.TemporaryDirectory(prefix="csawm-check-") as tmp:
        root = Path(tmp) / "synthetic"
        generate(root, seed=0, n_train=0, n_public=MIN_IMAGES, n_private=n_images)
        images = sorted((root / "images" / "preprocessed" / "private").glob("*.png"))
        return run_images(runner, image, image_info, images, limits, Path(tmp) / "run")


def resolve_image(runner: DockerRunner, target: str) -> tuple[str, dict[str, Any]]:
    """What to run for `target` (an archive is inspected, then loaded) and what the report says of it.

    Also removes the containers of killed checks past their deadline first.

    Raises
    ------
    ImageArchiveError
        The archive was rejected by inspection (nothing was loaded).
    MissingImage
        A local image name the engine does not hold.
    """
    # A `csawm check` killed with SIGKILL leaves its container behind; the next one removes every
    # check container past its deadline label (issue 11), so none runs forever.
    with contextlib.suppress(RunnerError):
        sweep_expired(runner, run_prefix=CHECK_PREFIX)
    path = Path(target)
    if path.is_file():
        info: ImageArchiveInfo = inspect_archive(path)
        image_info = {**asdict(info), "repo_tags": list(info.repo_tags), "source": str(path)}
        return runner.load_archive(path), image_info
    if not runner.has_image(target):
        raise MissingImage(
            f"no local image {target!r} (not present on this engine): build it (docker build -t "
            f"{target} .), or pass a docker save archive or a registry reference"
        )
    return target, {"reference": target}


def run_images(
    runner: DockerRunner,
    image: str,
    image_info: dict[str, Any],
    images: list[Path],
    limits: RunLimits,
    work: Path,
) -> CheckReport:
    """Run `image` once on `images` (prepared as /input under `work`, a fresh folder) and validate
    its predictions with the scoring module's reader; never raises for a model fault."""
    names = [p.name for p in images]
    prepare_input(work / "input", images)
    spec = RunSpec(
        run_id=f"{CHECK_PREFIX}{uuid.uuid4().hex[:12]}",
        image=image,
        input_dir=work / "input",
        output_dir=work / "output",
        limits=limits,
        phase="preflight",
    )
    handle = runner.handle_for(spec)
    try:
        with _removed_on_signal(runner, handle):
            runner.start(spec)
            result: RunResult = runner.wait(handle, spec)
    except RunnerError as exc:
        return _failed(exc.code, exc.message, image=image_info, runtime=runner.runtime)
    finally:
        with contextlib.suppress(RunnerError):
            runner.cleanup(handle)
    report = CheckReport(
        status=result.state.value,
        error_code=result.error_code.value if result.error_code else None,
        error_message=result.message,
        log_tail=result.log_tail,
        exit_code=result.exit_code,
        duration_s=round(result.duration_s, 3),
        peak_memory_bytes=result.peak_memory_bytes,
        runtime=runner.runtime,
        image=image_info,
    )
    if result.predictions is not None:
        try:
            preds = read_predictions(result.predictions, expected=names, max_bytes=limits.output_bytes)
        except PredictionsError as exc:
            report.status = TerminalState.FAILED.value
            report.error_code = ErrorCode.OUTPUT_INVALID.value
            report.error_message = f"predictions.csv is invalid: {exc}"
        else:
            report.predictions = {
                "rows": len(preds.filenames),
                "final_pred": preds.final_pred is not None,
                "probs": preds.probs is not None,
            }
            report.error_message = f"The model passed: valid predictions for all {len(names)} images."
    return report


def check(
    target: Annotated[
        str,
        typer.Argument(
            help="Local image (name, tag or id), a docker save archive, or a registry reference "
            "HOST/REPO@sha256:<digest> (pulled first)"
        ),
    ],
    json_output: Annotated[bool, typer.Option("--json", help="Print the verdict as JSON")] = False,
    timeout: Annotated[
        float | None,
        typer.Option("--timeout", help="Wall-time limit in seconds [600; --robust: the server's]"),
    ] = None,
    memory: Annotated[
        str | None,
        typer.Option("--memory", help="Memory limit (no swap), e.g. 4g [4g; --robust: the server's]"),
    ] = None,
    cpus: Annotated[
        float | None, typer.Option("--cpus", help="CPU quota [2; --robust: the server's]")
    ] = None,
    gpus: Annotated[
        int | None,
        typer.Option("--gpus", help="GPUs to request (needs a GPU runtime) [0; --robust: the server's]"),
    ] = None,
    images: Annotated[int, typer.Option("--images", help=f"Synthetic images (>= {MIN_IMAGES})")] = MIN_IMAGES,
    runtime: Annotated[
        str,
        typer.Option(
            "--runtime", envvar="CSAWM_RUN_RUNTIME", help="Container runtime: runc, or runsc (gVisor)"
        ),
    ] = "runc",
    robust: Annotated[
        bool,
        typer.Option(
            "--robust",
            help="Run as the hidden run will: the hidden set's full count, names, size and extreme "
            "contents, under its limits (both from --server, else the CSAW-M defaults)",
        ),
    ] = False,
    server: Annotated[
        str | None,
        typer.Option("--server", envvar="CSAWM_SERVER_URL", help="Server whose test-set shape --robust uses"),
    ] = None,
) -> None:
    """Run an image on synthetic images in the production sandbox; say what the server would."""
    from server.cli import robust as robust_check  # it builds on this module's run_images

    try:
        if timeout is not None and timeout <= 0:
            raise ValueError(f"--timeout must be positive, got {timeout}")
        if images < MIN_IMAGES:
            raise ValueError(f"--images must be at least {MIN_IMAGES}, got {images}")
        memory_bytes = None if memory is None else parse_memory(memory)
        source = None
        if robust:
            try:
                source = robust_check.fetch_shape(server)
            except robust_check.ShapeUnavailable as exc:
                raise fail(str(exc), EXIT_SERVER) from None
            options = {"--timeout": timeout, "--memory": memory, "--cpus": cpus, "--gpus": gpus}
            given = [name for name, value in options.items() if value is not None]
            if given and source.limits is not None:
                source = replace(
                    source, limits_source=f"{source.limits_source}, {', '.join(given)} from the options"
                )
        limits = robust_check.merged_limits(
            source.limits if source else None,
            timeout=timeout,
            memory_bytes=memory_bytes,
            cpus=cpus,
            gpus=gpus,
        )
        checked_runtime = check_runtime(runtime)
        check_limits(limits, checked_runtime)
        reference = None if Path(target).is_file() else registry_reference(target)
        if reference is not None:  # pulled by the engine with the researcher's `docker login`
            pull(reference)
    except ValueError as exc:  # TargetError too: a tag without digest, a failed pull
        raise fail(str(exc), EXIT_INVALID) from None
    result: CheckReport | robust_check.RobustReport
    try:
        runner = DockerRunner(runtime=checked_runtime)
        if source is not None:
            result = robust_check.run_robust(target, source=source, limits=limits, runner=runner)
        else:
            result = run_check(target, limits=limits, n_images=images, runner=runner)
        code = EXIT_OK if result.status == TerminalState.SUCCEEDED.value else EXIT_MODEL_FAILED
    except ImageArchiveError as exc:
        result = _failed(ErrorCode.IMAGE_INVALID, f"archive rejected: {exc}", image={"source": target})
        code = EXIT_INVALID
    except MissingImage as exc:  # bad input (docs/cli.md: exit 2), not a model that failed
        result = _failed(ErrorCode.IMAGE_INVALID, str(exc), image={"reference": target})
        code = EXIT_INVALID
    except RunnerError as exc:  # loading failed in the engine
        result = _failed(exc.code, exc.message, image={"source": target})
        code = EXIT_MODEL_FAILED
    if json_output:
        typer.echo(json.dumps(asdict(result), indent=2))
    elif isinstance(result, CheckReport):
        _print_human(result)
    else:
        typer.echo("\n".join(robust_check.print_lines(result)))
    raise typer.Exit(code)


def _print_human(report: CheckReport) -> None:
    verdict = "PASSED" if report.status == TerminalState.SUCCEEDED.value else "FAILED"
    typer.echo(f"{verdict}: {report.error_message}")
    if report.error_code:
        typer.echo(f"error_code: {report.error_code}")
    if report.image.get("runs_as_root"):
        typer.echo("note: the image's USER is root; the server runs it as uid 65534 anyway")
    if report.exit_code is not None:
        typer.echo(f"exit code: {report.exit_code}   duration: {report.duration_s} s")
    if report.peak_memory_bytes:
        typer.echo(f"peak memory: {report.peak_memory_bytes / 1024**2:.0f} MiB")
    if report.log_tail:
        typer.echo("--- log tail ---")
        typer.echo(report.log_tail)
