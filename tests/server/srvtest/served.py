"""``csawm serve`` in its own process on a free loopback port, for tests that measure the server
process itself (memory under attack) or need its real uvicorn configuration."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx

from srvtest.live import free_port

REPO = Path(__file__).resolve().parents[3]


@dataclass
class ServedServer:
    url: str
    pid: int
    db_url: str
    log: Path


@contextmanager
def served(
    root: Path, env: dict[str, str] | None = None, *, code: Path = REPO, port: int | None = None
) -> Iterator[ServedServer]:
    """Run ``python -m server.cli.main serve --no-worker`` with the `code` tree first on the path
    and its state under `root` (on `port`, e.g. to restart a server where its clients expect it);
    stop it (SIGTERM, then wait) on exit."""
    port = port or free_port()
    db_url = f"sqlite:///{root / 'state' / 'csawm.db'}"
    child_env = {k: v for k, v in os.environ.items() if not k.startswith("CSAWM_")}
    child_env.update(
        {
            "PYTHONPATH": str(code),
            "CSAWM_DATA_DIR": str(root / "state"),
            "CSAWM_DATABASE_URL": db_url,
            "CSAWM_PORT": str(port),
            "CSAWM_EMBEDDED_WORKER": "false",
            **(env or {}),
        }
    )
    log = root / "server.log"
    root.mkdir(parents=True, exist_ok=True)
    with log.open("w") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "server.cli.main", "serve", "--no-worker"],
            env=child_env,
            cwd=code,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(f"{url}/readyz", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"server did not start:\n{log.read_text()[-3000:]}")
            time.sleep(0.05)
        yield ServedServer(url=url, pid=proc.pid, db_url=db_url, log=log)
    finally:
        proc.terminate()
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(30)
