"""The runner contract: a frozen spec in, an opaque handle out, a small result back.

Every backend (Docker on one machine, Kubernetes Jobs at scale) implements `Runner`. The handle
names the real object (``docker:<container>``, ``k8s:<namespace>/<job>``) so that any process — a
restarted worker, say — can poll, wait for, or cancel a run it did not start.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Protocol


class ErrorCode(enum.StrEnum):
    """Why a run failed (docs/contract.md). Shown to the submitter with a message."""

    IMAGE_INVALID = "image_invalid"
    TIMEOUT = "timeout"
    OOM = "oom"
    NONZERO_EXIT = "nonzero_exit"
    OUTPUT_MISSING = "output_missing"
    OUTPUT_INVALID = "output_invalid"
    INFRA_ERROR = "infra_error"
    CANCELLED = "cancelled"


class TerminalState(enum.StrEnum):
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"


@dataclass(frozen=True)
class RunLimits:
    """Resource limits applied to the model container."""

    timeout: timedelta = timedelta(minutes=30)
    memory_bytes: int = 4 * 1024**3
    cpus: float = 2.0
    gpus: int = 0
    pids: int = 256
    tmp_bytes: int = 512 * 1024**2
    output_bytes: int = 64 * 1024**2
    output_dir_bytes: int = 1024**3  # everything under /output; the runner stops a model past it
    log_tail_lines: int = 200
    log_tail_bytes: int = 16 * 1024


@dataclass(frozen=True)
class RunSpec:
    """Everything a backend needs to run one model image once.

    `input_dir` holds ``images/`` and ``manifest.csv`` (mounted read-only at ``/input``);
    `input_name` names the same input where a backend finds it on a shared volume instead
    (Kubernetes: its folder on the test-images volume; None: the phase's own, ``preflight`` or
    ``hidden``; ``public`` for the hidden stage of a development phase). `output_dir` is a fresh,
    empty per-run directory (mounted at ``/output``). `run_id` names the container or Job, with
    `attempt` so a retry never collides with a leftover of the last one.
    """

    run_id: str
    image: str
    input_dir: Path
    output_dir: Path
    limits: RunLimits = field(default_factory=RunLimits)
    attempt: int = 1
    phase: str = "hidden"  # "preflight" | "hidden"
    input_name: str | None = None  # "preflight" | "hidden" | "public"; None: the phase's

    @property
    def input_folder(self) -> str:
        """The input's name on a shared volume: `input_name`, or the phase's own input."""
        return self.input_name or self.phase


@dataclass(frozen=True)
class RunObject:
    """A container or Job a backend holds for a run: what the janitor needs to decide on it.

    `run_id` and `deadline` come from labels the backend wrote at start (`runner.hardening`), so a
    process that did not start it — or started it and was killed — can tell whose it is and whether
    it has outlived its wall-time limit.
    """

    handle: str
    run_id: str
    deadline: datetime | None


@dataclass(frozen=True)
class RunResult:
    """What came back from one run. `predictions` holds the raw bytes of ``predictions.csv``
    (already size-capped and read without following links) or None when none was read."""

    state: TerminalState
    error_code: ErrorCode | None
    message: str
    exit_code: int | None
    duration_s: float
    peak_memory_bytes: int | None
    log_tail: str
    predictions: bytes | None
    handle: str
    cpu_seconds: float | None = None  # CPU time the container used (cgroup), when the backend can see it


class Runner(Protocol):
    """An execution backend: everything the worker and ``csawm check`` may ask of one.

    The worker is typed against this and nothing else: no backend names, no ``getattr``. A backend
    that cannot load ``docker save`` archives (Kubernetes pulls from a registry) says so with
    `accepts_archives`; its `load_archive` then raises `runner.errors.PermanentInfraError`.
    """

    name: str
    accepts_archives: bool
    # True when the run's /input is a folder of this machine the worker prepares (Docker); False when
    # it is a volume the operator loads (Kubernetes: the worker checks its stamp instead).
    mounts_local_inputs: bool

    def handle_for(self, spec: RunSpec) -> str:
        """The handle `start(spec)` will return, known before it runs: a worker writes it down first,
        so whoever takes a dead worker's run over knows what to stop."""

    def load_archive(self, path: Path) -> str:
        """Inspect and load a ``docker save`` archive; return the image id ``sha256:<config>``."""

    def image_for_reference(self, reference: str, image_id: str) -> str:
        """What to run for a registry reference (``HOST/REPO@sha256:<manifest>``) whose image id was
        checked at submission: Docker pulls it (with the configured credentials) and verifies the id;
        Kubernetes hands the reference to the cluster."""

    def has_image(self, image: str) -> bool:
        """True when the backend already holds `image` (an image id): no need to load it again."""

    def remove_image(self, image: str) -> bool:
        """Remove a loaded image that no run needs any more; False when it was not there."""

    def list_runs(self) -> list[RunObject]:
        """Every run object (container, Job) of this project the backend holds, for the janitor."""

    def start(self, spec: RunSpec) -> str:
        """Start the run and return its handle. Idempotent for the same spec (run id + attempt)."""

    def wait(self, handle: str, spec: RunSpec) -> RunResult:
        """Block until the run ends (enforcing the deadline) and collect its result."""

    def cancel(self, handle: str) -> None:
        """Stop the run if it is still going. Never raises for a run that is already gone."""

    def cleanup(self, handle: str) -> None:
        """Remove whatever the run left behind (container, Job). Idempotent."""
