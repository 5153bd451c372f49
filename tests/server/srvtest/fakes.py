"""A scripted in-process runner (no Docker) for worker tests.

Behaviour is chosen per image digest: ``good`` writes a valid predictions.csv for the input
manifest; ``crash`` exits 1 with a traceback; ``preflight_crash`` crashes only in preflight;
``hidden_crash`` only on the hidden images (a MemoryError traceback);
``bad_output`` leaves out one row; ``infra`` raises a transient infrastructure error every time,
``infra_once`` only on the first start; ``hang`` blocks until cancelled.
"""

from __future__ import annotations

import hashlib
import threading
from dataclasses import dataclass, field
from pathlib import Path

from runner.errors import TransientInfraError
from runner.imagetar import inspect_archive
from runner.spec import ErrorCode, RunObject, RunResult, RunSpec, TerminalState


def predictions_for(input_dir: Path, *, drop_last: bool = False) -> bytes:
    names = (input_dir / "manifest.csv").read_text().splitlines()[1:]
    if drop_last:
        names = names[:-1]
    rows = ["Filename;Final_score"]
    for name in names:
        score = int(hashlib.sha256(name.encode()).hexdigest()[:8], 16) / 2**32
        rows.append(f"{name};{score:.6f}")
    return ("\n".join(rows) + "\n").encode()


@dataclass
class FakeRunner:
    """Implements `runner.spec.Runner` (mypy checks it where a `Runner` is expected)."""

    behaviours: dict[str, str] = field(default_factory=dict)
    name: str = "fake"
    accepts_archives: bool = True
    mounts_local_inputs: bool = True
    loaded: set[str] = field(default_factory=set)
    started: list[RunSpec] = field(default_factory=list)
    cancelled: list[str] = field(default_factory=list)
    cleaned: list[str] = field(default_factory=list)
    _events: dict[str, threading.Event] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def handle_for(self, spec: RunSpec) -> str:
        return f"fake:{spec.run_id}-a{spec.attempt}"

    def load_archive(self, path: Path) -> str:
        digest = inspect_archive(path).digest
        self.loaded.add(digest)
        return digest

    def image_for_reference(self, reference: str, image_id: str) -> str:
        self.loaded.add(image_id)
        return image_id

    def has_image(self, image: str) -> bool:
        return image in self.loaded

    def remove_image(self, image: str) -> bool:
        if image not in self.loaded:
            return False
        self.loaded.discard(image)
        return True

    def list_runs(self) -> list[RunObject]:
        return []

    def start(self, spec: RunSpec) -> str:
        behaviour = self.behaviours.get(spec.image, "good")
        with self._lock:
            first = not any(s.image == spec.image for s in self.started)
            self.started.append(spec)
            handle = self.handle_for(spec)
            self._events.setdefault(handle, threading.Event())
        if behaviour == "infra" or (behaviour == "infra_once" and first):
            raise TransientInfraError("engine unreachable (scripted)")
        return handle

    def wait(self, handle: str, spec: RunSpec) -> RunResult:
        behaviour = self.behaviours.get(spec.image, "good")

        def result(
            code: ErrorCode | None, message: str = "", log: str = "", out: bytes | None = None
        ) -> RunResult:
            state = (
                TerminalState.SUCCEEDED
                if code is None
                else (TerminalState.CANCELLED if code == ErrorCode.CANCELLED else TerminalState.FAILED)
            )
            return RunResult(
                state=state,
                error_code=code,
                message=message,
                exit_code=0 if code is None else 1,
                duration_s=0.01,
                peak_memory_bytes=1234,
                log_tail=log,
                predictions=out,
                handle=handle,
            )

        if behaviour == "hang":
            self._events[handle].wait(30)
            return result(ErrorCode.CANCELLED, "stopped")
        if behaviour == "crash" or (behaviour == "preflight_crash" and spec.phase == "preflight"):
            return result(
                ErrorCode.NONZERO_EXIT,
                "the model exited with code 1",
                log="Traceback (most recent call last):\nValueError: boom\n",
            )
        if behaviour == "hidden_crash" and spec.phase == "hidden":
            return result(
                ErrorCode.NONZERO_EXIT,
                "the model exited with code 1",
                log="Traceback (most recent call last):\nMemoryError: image 474 of 475\n",
            )
        drop = behaviour == "bad_output" and spec.phase == "hidden"
        return result(
            None, log=f"predicted {spec.phase}\n", out=predictions_for(spec.input_dir, drop_last=drop)
        )

    def cancel(self, handle: str) -> None:
        with self._lock:
            self.cancelled.append(handle)
            self._events.setdefault(handle, threading.Event()).set()

    def cleanup(self, handle: str) -> None:
        self.cleaned.append(handle)
