"""The worker API as a remote worker calls it, and `HttpStore`: the stages' `RunStore` over HTTP.

Every call goes through `server.remote_worker.transport` (TLS rules, retries across a lost
connection or a restarting server). Answers that mean "stop" become the exceptions the stages and
the loop already know:

* 409 on a run (``lease_lost``, or a write the run's status no longer takes): `LeaseLost`: another
  worker, or the server itself, owns the run now; this worker touches it no more;
* 401 / 403: `TokenRefused`: the worker's token was revoked (or is not a worker's): stop;
* 409 ``test_set_mismatch`` on a lease: `TestSetDiffers`: this worker's images are not the server's.
"""

from __future__ import annotations

import hashlib
import logging
import time
from pathlib import Path
from typing import Any

import httpx

from runner.errors import FaultKind
from runner.spec import ErrorCode
from server.models import RunStatus
from server.runs.transitions import LeaseLost
from server.worker.context import RunContext, StageFault, fault
from server.worker.images_digest import ImagesDigest
from server.worker.stages import runtime_of
from server.worker_api.schemas import RunFacts

from .transport import ApiError, Transport, TransportError

log = logging.getLogger("csawm.remote_worker")

LOG_TAIL_CHARS = 64 * 1024  # the worker API's cap on a log tail (schemas.ProgressIn)
MESSAGE_CHARS = 4000


class TokenRefused(Exception):
    """The server refused the worker token (401/403): revoked, or not a worker's."""


class TestSetDiffers(Exception):
    """409 ``test_set_mismatch``: this worker's test images differ from the server's test set."""


def _translate(exc: ApiError, sub_id: int | None = None) -> Exception:
    if exc.status in (401, 403):
        return TokenRefused(f"the server refused the worker token: {exc.message}")
    if exc.code == "test_set_mismatch":
        return TestSetDiffers(exc.message)
    if exc.status == 409 and sub_id is not None:
        return LeaseLost(f"run {sub_id}: {exc.message}")
    return exc


class WorkerApi:
    """The calls of ``/api/v1/worker/`` for one worker process (`instance`) with its test set."""

    def __init__(self, transport: Transport, instance: str, version: str, digest: ImagesDigest) -> None:
        self.transport, self.instance, self.version, self.digest = transport, instance, version, digest

    def call(self, method: str, path: str, sub_id: int | None = None, **kw: Any) -> httpx.Response:
        """One call, its refusals translated (module docstring)."""
        try:
            return self.transport.call(method, path, **kw)
        except ApiError as exc:
            raise _translate(exc, sub_id) from None

    def post(self, path: str, body: dict[str, Any], sub_id: int | None = None, **kw: Any) -> dict[str, Any]:
        return dict(self.call("POST", path, sub_id, json=body, **kw).json())

    def lease(self, wait_s: float) -> RunFacts | None:
        """Long-poll for a run; None when none came within `wait_s`."""
        body = {
            "instance": self.instance, "version": self.version, "images_digest": self.digest.images,
            "public_digest": self.digest.public, "wait_s": wait_s,
        }  # fmt: skip
        answer = self.post("/lease", body)["lease"]
        return None if answer is None else RunFacts.model_validate(answer)

    @staticmethod
    def at(ctx: RunContext) -> dict[str, Any]:
        """The run's lease, as every call under it names it."""
        return {"owner": ctx.lease.owner, "attempt": ctx.lease.attempt}

    def renew(self, ctx: RunContext) -> tuple[bool, bool]:
        """(still held, cancel requested)."""
        answer = self.post(f"/runs/{ctx.sub_id}/renew", self.at(ctx))
        return bool(answer["held"]), bool(answer.get("cancel_requested"))

    def progress(self, ctx: RunContext, log_tail: str = "") -> dict[str, Any]:
        timings = {k: float(v) for k, v in ctx.timings.items() if isinstance(v, int | float)}
        return self.at(ctx) | {
            "timings": timings, "runtime": runtime_of(ctx), "log_tail": log_tail[-LOG_TAIL_CHARS:],
        }  # fmt: skip

    def report_fault(self, ctx: RunContext, pf: StageFault) -> str:
        f = pf.fault
        body = self.progress(ctx, pf.log_tail) | {
            "stage": f.stage.value, "kind": f.kind.value, "code": f.code.value,
            "message": f.message[:MESSAGE_CHARS], "exit_code": f.exit_code,
        }  # fmt: skip
        return str(self.post(f"/runs/{ctx.sub_id}/fault", body, ctx.sub_id)["status"])

    def hand_back(self, ctx: RunContext) -> str:
        return str(self.post(f"/runs/{ctx.sub_id}/hand-back", self.progress(ctx), ctx.sub_id)["status"])

    def download_archive(self, ctx: RunContext, target: Path) -> Path:
        """Stream the run's stored archive to `target` and check it against ``X-Archive-SHA256``;
        a cut-off or corrupted download is retried within the transport's window, then raised as
        a transient infrastructure fault (the run is retried, nobody charged)."""
        target.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        deadline = time.monotonic() + self.transport.retry_for_s
        delay = 0.5
        while True:
            try:
                with self.transport.client.stream(
                    "GET", f"/runs/{ctx.sub_id}/archive", params=self.at(ctx)
                ) as response:
                    if response.status_code < 500:
                        if response.status_code >= 400:
                            response.read()
                            self.transport.raise_for(response)
                        expected = response.headers.get("X-Archive-SHA256", "")
                        digest = hashlib.sha256()
                        with target.open("wb") as out:
                            for chunk in response.iter_bytes(1 << 20):
                                digest.update(chunk)
                                out.write(chunk)
                        if digest.hexdigest() == expected:
                            return target
                        problem = f"sha256 {digest.hexdigest()[:12]} is not the declared {expected[:12]}"
                    else:
                        problem = f"HTTP {response.status_code}"
            except ApiError as exc:
                raise _translate(exc, ctx.sub_id) from None
            except httpx.TransportError as exc:
                problem = f"{exc.__class__.__name__}: {exc}"
            target.unlink(missing_ok=True)
            if time.monotonic() + delay > deadline:
                raise fault(
                    ctx.stage, FaultKind.TRANSIENT_INFRA, ErrorCode.INFRA_ERROR,
                    f"the run's archive could not be downloaded ({problem})",
                )  # fmt: skip
            log.warning("run %s: archive download: %s; retrying in %.1f s", ctx.sub_id, problem, delay)
            time.sleep(delay)
            delay = min(delay * 2, 10.0)


class HttpStore:
    """The remote worker's `server.worker.stages.RunStore`: every write is a worker API call under
    the run's lease, and the server writes the run's rows with the same functions as the database
    worker. The hidden predictions are uploaded, then the server scores them at once."""

    def __init__(self, api: WorkerApi, facts: RunFacts) -> None:
        self.api, self.facts = api, facts

    def record_handle(self, ctx: RunContext, handle: str, *, started: bool) -> bool:
        body = self.api.at(ctx) | {"handle": handle, "started": started}
        return bool(self.api.post(f"/runs/{ctx.sub_id}/handle", body, ctx.sub_id)["held"])

    def test_set(self, ctx: RunContext) -> str:
        return self.facts.test_set

    def preflight_passed(self, ctx: RunContext, log_tail: str) -> None:
        answer = self.api.post(f"/runs/{ctx.sub_id}/preflight", self.api.progress(ctx, log_tail), ctx.sub_id)
        ctx.status = RunStatus(str(answer["status"]))

    def hidden_done(self, ctx: RunContext, predictions: bytes, test_set: str, log_tail: str) -> None:
        headers = {"X-Predictions-SHA256": hashlib.sha256(predictions).hexdigest()}
        path = f"/runs/{ctx.sub_id}/predictions"
        self.api.call("PUT", path, ctx.sub_id, params=self.api.at(ctx), content=predictions, headers=headers)
        path, body = f"/runs/{ctx.sub_id}/hidden", self.api.progress(ctx, log_tail)
        answer = self.api.post(path, body, ctx.sub_id, params={"test_set": test_set})
        ctx.status = RunStatus(str(answer["status"]))


__all__ = ["HttpStore", "TestSetDiffers", "TokenRefused", "TransportError", "WorkerApi"]
