"""Remote workers as real processes: a worker account made by the CLI, ``csawm worker --server``
started against a served server (srvtest.served), and what the server's database says of a run."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import func, select

from server.core.db import Database
from server.models import RunEvent, Submission, SubmissionReport
from srvtest import factories as f
from srvtest.served import REPO


def cli_env(**values: str) -> dict[str, str]:
    """The test's environment without its CSAWM_* settings, with `values` and this tree first."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("CSAWM_")}
    return env | {"PYTHONPATH": str(REPO)} | values


def create_worker(db_url: str, root: Path, name: str) -> str:
    """``csawm admin create-worker NAME``: the worker's token (alone on stdout)."""
    env = cli_env(CSAWM_DATABASE_URL=db_url, CSAWM_DATA_DIR=str(root / "state"))
    done = subprocess.run(
        [sys.executable, "-m", "server.cli.main", "admin", "create-worker", name],
        env=env, capture_output=True, text=True, check=True, cwd=REPO,
    )  # fmt: skip
    return done.stdout.strip()


def start_worker(
    url: str, token: str, benchmark: Path, root: Path, name: str, **settings: str
) -> subprocess.Popen[bytes]:
    """``csawm worker --server URL --name NAME`` with its own data dir under `root` and no
    database setting; its output in ``root/NAME.log``."""
    env = cli_env(
        CSAWM_WORKER_TOKEN=token, CSAWM_DATA_DIR=str(root / name), CSAWM_BENCHMARK_DIR=str(benchmark),
        CSAWM_HIDDEN_END_GRID="0", CSAWM_POLL_INTERVAL="0.2", **settings,
    )  # fmt: skip
    with (root / f"{name}.log").open("w") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "server.cli.main", "worker", "--server", url, "--name", name],
            env=env, cwd=REPO, stdout=out, stderr=subprocess.STDOUT,
        )  # fmt: skip


def worker_log(root: Path, name: str) -> str:
    return (root / f"{name}.log").read_text()[-4000:]


def submit(url: str, token: str, archive: Path, name: str) -> int:
    r = httpx.post(
        f"{url}/api/v1/submissions", params={"name": name}, content=archive.read_bytes(),
        headers=f.auth(token), timeout=120,
    )  # fmt: skip
    assert r.status_code == 201, r.text
    return int(r.json()["id"])


def run_row(db_url: str, sub_id: int) -> Submission:
    db = Database.connect(db_url)
    try:
        with db.transaction(write=False) as session:
            sub = session.get(Submission, sub_id)
            assert sub is not None
            session.expunge(sub)
            return sub
    finally:
        db.dispose()


def scored_once(db_url: str, sub_id: int) -> tuple[int, int]:
    """(reports stored, ``succeeded`` events) of the run: (1, 1) when it was scored exactly once."""
    db = Database.connect(db_url)
    try:
        with db.transaction(write=False) as session:
            reports = session.scalar(
                select(func.count())
                .select_from(SubmissionReport)
                .where(SubmissionReport.submission_id == sub_id)
            )
            succeeded = session.scalar(
                select(func.count())
                .select_from(RunEvent)
                .where(RunEvent.submission_id == sub_id, RunEvent.to_status == "succeeded")
            )
            return int(reports or 0), int(succeeded or 0)
    finally:
        db.dispose()


def until(predicate: Callable[[], Any], timeout: float = 120.0, what: str = "condition") -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.2)
