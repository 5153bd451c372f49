"""``csawm check IMAGE --robust``: the image run as the hidden run will, at the hidden set's full scale.

A plain check runs a few images; a model can pass it and still fail on the hidden images (it keeps
every image in memory, indexes a fixed-size array, expects a size, divides by an image's spread).
The robust check runs it once on inputs that follow the hidden set's contract
(`server.benchmark.robust`: the full count, the name patterns, the size and bit depth, content at the
extremes) under the hidden run's time, memory, CPU and GPU limits, with the same runner and
predictions reader as a plain check. The shape and limits come from the server the client talks to
(``--server`` / ``CSAWM_SERVER_URL``: ``GET /api/v1/test-set/shape``), else the CSAW-M defaults, and
the report says which. An option given on the command line (``--timeout``, ``--memory``, ``--cpus``,
``--gpus``) replaces the server's limit.

When the full run fails for the model's fault, the check says which inputs fail: it runs the image
on each kind of input alone (the ordinary images at the hidden size, then each extreme); the kinds
that fail alone are named with their files and how they failed; when every kind passes alone, the
model fails only at the full count.

Exit codes (docs/cli.md): 0 passed; 1 the model failed; 2 bad arguments or a rejected archive;
3 the configured server could not be asked (unreachable, or an answer that is not the API's).
"""

from __future__ import annotations

import tempfile
from dataclasses import asdict, dataclass, field, replace
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx

from runner.docker_backend import DockerRunner
from runner.spec import ErrorCode, RunLimits, TerminalState
from server.benchmark.robust import EXTREMES, ORDINARY, RobustInput, generate_inputs
from server.benchmark.shape import CSAW_M, HiddenSetShape
from server.cli.check import MIN_IMAGES, CheckReport, resolve_image, run_images

SHAPE_PATH = "/api/v1/test-set/shape"
DEFAULTS_NO_SERVER = "CSAW-M defaults (no server configured: --server / CSAWM_SERVER_URL)"
#: Codes of a model fault, the ones worth diagnosing input by input.
_MODEL_FAULTS = frozenset(
    {
        ErrorCode.TIMEOUT,
        ErrorCode.OOM,
        ErrorCode.NONZERO_EXIT,
        ErrorCode.OUTPUT_MISSING,
        ErrorCode.OUTPUT_INVALID,
    }
)


class ShapeUnavailable(RuntimeError):
    """The configured server could not be asked for its test set's shape."""


@dataclass(frozen=True)
class ServerShape:
    """What the check runs on and under, and where each came from (said in the report)."""

    shape: HiddenSetShape
    shape_source: str
    limits: RunLimits | None  # None: the server gave none (no server): the command's own
    limits_source: str


@dataclass
class FailingInput:
    """A kind of input that fails on its own, with its files and how it failed."""

    kind: str
    files: list[str]
    error_code: str | None
    exit_code: int | None
    message: str


@dataclass
class RobustReport:
    """The verdict of the full-scale run, what it ran on, and (after a failure) the failing inputs."""

    status: str
    error_code: str | None
    error_message: str
    shape: dict[str, Any]
    shape_source: str
    limits: dict[str, Any]
    limits_source: str
    run: CheckReport
    failing_inputs: list[FailingInput] = field(default_factory=list)
    diagnosis: str = ""


def fetch_shape(server: str | None, *, timeout_s: float = 30.0) -> ServerShape:
    """The hidden set's shape and the hidden run's limits from `server`, or the CSAW-M defaults.

    Raises
    ------
    ShapeUnavailable
        `server` is set but unreachable, answers with an error, or answers what is not a shape.
    """
    if not server:
        return ServerShape(CSAW_M, DEFAULTS_NO_SERVER, None, "this command's options")
    url = server.rstrip("/") + SHAPE_PATH
    try:
        response = httpx.get(url, timeout=timeout_s)
    except (httpx.HTTPError, ValueError) as exc:
        raise ShapeUnavailable(f"cannot reach {url}: {exc.__class__.__name__}: {exc}") from None
    if response.status_code == 404:  # a server from before the shape endpoint
        return ServerShape(
            CSAW_M, f"CSAW-M defaults ({server} publishes no shape)", None, "this command's options"
        )
    if response.status_code != 200:
        raise ShapeUnavailable(f"{url} answered HTTP {response.status_code}")
    try:
        body = response.json()
        raw = body["limits"]
        limits = RunLimits(
            timeout=timedelta(seconds=float(raw["timeout_s"])),
            memory_bytes=int(raw["memory_bytes"]),
            cpus=float(raw["cpus"]),
            gpus=int(raw["gpus"]),
        )
        test_set = body["test_set"]
        if test_set is None:
            return ServerShape(CSAW_M, f"CSAW-M defaults ({server} holds no test set)", limits, server)
        patterns = test_set["name_patterns"]
        shape = HiddenSetShape(
            private_images=int(test_set["private_images"]),
            public_images=int(test_set["public_images"]),
            width=int(test_set["width"]),
            height=int(test_set["height"]),
            bit_depth=int(test_set["bit_depth"]),
            private_pattern=patterns["private"],
            public_pattern=patterns["public"],
        )
    except (ValueError, KeyError, TypeError) as exc:
        raise ShapeUnavailable(f"{url} answered what is not a test-set shape: {exc}") from None
    return ServerShape(shape, server, limits, server)


def _diagnose(
    runner: DockerRunner,
    image: str,
    image_info: dict[str, Any],
    inputs: list[RobustInput],
    limits: RunLimits,
    work: Path,
) -> list[FailingInput]:
    """Each kind of input alone (up to `MIN_IMAGES` ordinary ones): the kinds that fail."""
    failing = []
    for kind in [ORDINARY, *EXTREMES]:
        paths = [i.path for i in inputs if i.kind == kind][:MIN_IMAGES]
        if not paths:
            continue
        report = run_images(runner, image, image_info, paths, limits, work / kind)
        if report.status != TerminalState.SUCCEEDED.value:
            failing.append(
                FailingInput(
                    kind, [p.name for p in paths], report.error_code, report.exit_code, report.error_message
                )
            )
    return failing


def run_robust(
    target: str,
    *,
    source: ServerShape,
    limits: RunLimits,
    runner: DockerRunner,
) -> RobustReport:
    """Run `target` at the full scale of `source.shape` under `limits`; never raises for a model fault.

    Raises
    ------
    ImageArchiveError
        The archive was rejected by inspection (nothing was loaded).
    """
    image, image_info = resolve_image(runner, target)
    shape = source.shape
    with tempfile.TemporaryDirectory(prefix="csawm-robust-") as tmp:
        work = Path(tmp)
        inputs = generate_inputs(shape, work / "images")
        run = run_images(runner, image, image_info, [i.path for i in inputs], limits, work / "full")
        report = RobustReport(
            status=run.status,
            error_code=run.error_code,
            error_message=run.error_message,
            shape=asdict(shape),
            shape_source=source.shape_source,
            limits={
                "timeout_s": limits.timeout.total_seconds(),
                "memory_bytes": limits.memory_bytes,
                "cpus": limits.cpus,
                "gpus": limits.gpus,
            },
            limits_source=source.limits_source,
            run=run,
        )
        if run.status == TerminalState.SUCCEEDED.value:
            report.error_message = (
                f"The model passed at the hidden set's scale: valid predictions for all {shape.total} "
                f"images ({shape.height}x{shape.width}, {shape.bit_depth}-bit, every extreme included)."
            )
            return report
        if run.error_code is None or ErrorCode(run.error_code) not in _MODEL_FAULTS:
            return report  # the engine's fault or a cancel: nothing to learn input by input
        report.failing_inputs = _diagnose(runner, image, image_info, inputs, limits, work / "diagnosis")
    kinds = ", ".join(f.kind for f in report.failing_inputs)
    report.diagnosis = (
        f"fails on these inputs alone: {kinds}"
        if kinds
        else (
            f"every kind of input passes alone: the model fails only at the full count "
            f"({shape.private_images} private + {shape.public_images} public images)"
        )
    )
    report.error_message = f"at the hidden set's scale ({shape.total} images): {run.error_message}"
    return report


def merged_limits(
    server_limits: RunLimits | None,
    *,
    timeout: float | None,
    memory_bytes: int | None,
    cpus: float | None,
    gpus: int | None,
) -> RunLimits:
    """The server's limits (or the plain check's: 600 s, the rest `RunLimits`'s defaults), each
    replaced by the option given."""
    base = server_limits or RunLimits(timeout=timedelta(seconds=600))
    return replace(
        base,
        timeout=timedelta(seconds=timeout) if timeout is not None else base.timeout,
        memory_bytes=memory_bytes if memory_bytes is not None else base.memory_bytes,
        cpus=cpus if cpus is not None else base.cpus,
        gpus=gpus if gpus is not None else base.gpus,
    )


def print_lines(report: RobustReport) -> list[str]:
    """The report as a researcher reads it."""
    passed = report.status == TerminalState.SUCCEEDED.value
    shape, limits = report.shape, report.limits
    lines = [
        f"{'PASSED' if passed else 'FAILED'}: {report.error_message}",
        f"test set: {shape['private_images']} private + {shape['public_images']} public images, "
        f"{shape['height']}x{shape['width']} (height x width) {shape['bit_depth']}-bit grey "
        f"(from {report.shape_source})",
        f"limits: {limits['timeout_s']:.0f} s, {limits['memory_bytes'] / 1024**2:.0f} MiB, "
        f"{limits['cpus']:g} CPUs, {limits['gpus']} GPUs (from {report.limits_source})",
    ]
    run = report.run
    if run.error_code:
        lines.append(f"error_code: {run.error_code}")
    if run.exit_code is not None:
        lines.append(f"exit code: {run.exit_code}   duration: {run.duration_s} s")
    if run.peak_memory_bytes:
        lines.append(f"peak memory: {run.peak_memory_bytes / 1024**2:.0f} MiB")
    if report.diagnosis:
        lines.append(f"diagnosis: {report.diagnosis}")
    for fail in report.failing_inputs:
        shown = ", ".join(fail.files[:4]) + (
            f" and {len(fail.files) - 4} more" if len(fail.files) > 4 else ""
        )
        how = fail.error_code or "failed"
        exit_code = f", exit code {fail.exit_code}" if fail.exit_code is not None else ""
        lines.append(f"  {fail.kind} ({shown}): {how}{exit_code}: {fail.message}")
    if run.log_tail:
        lines += ["--- log tail of the full-scale run ---", run.log_tail]
    return lines
