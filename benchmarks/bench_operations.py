"""Operations benchmark (issue 22): ``GET /api/v1/status`` and a queued run's place under 1,000
queued runs.

The app runs under uvicorn on a loopback port (in this process, one thread), on SQLite, with 1,000
queued runs of 20 teams, 100 succeeded runs (the estimate's durations) and 4 live workers. Measured
over HTTP, alternated in blocks so load changes hit all: ``GET /api/v1/status`` anonymously and with
a maintainer's token, ``GET /api/v1/submissions/{id}`` of the last queued run (position 1,000: the
count runs over the whole queue) and of a finished run (no queue place: the same endpoint without
it), and ``GET /healthz`` as the floor of a request.

Usage: .venv/bin/python benchmarks/bench_operations.py [--queued 1000] [--requests 300]
"""

from __future__ import annotations

import argparse
import socket
import statistics
import sys
import tempfile
import threading
import time
from datetime import timedelta
from pathlib import Path

import httpx
import uvicorn

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from server.accounts import service as accounts  # noqa: E402
from server.app import create_app  # noqa: E402
from server.clock import utcnow  # noqa: E402
from server.core.db import Database  # noqa: E402
from server.core.settings import load_settings  # noqa: E402
from server.models import Role, RunStatus, Submission, Team, WorkerHeartbeat  # noqa: E402


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _seed(db: Database, phase: str, queued: int) -> tuple[str, str, int, int]:
    """20 teams, a researcher and a maintainer, 100 succeeded runs, `queued` queued runs (the last
    one of team0), 4 live workers; the two tokens and the last queued and one finished run's ids."""
    now = utcnow()
    with db.transaction() as session:
        for t in range(20):
            accounts.create_team(session, f"team{t}", actor="bench")
        accounts.create_user(session, "r@x.org", role=Role.RESEARCHER, team_name="team0", actor="bench")
        accounts.create_user(session, "m@x.org", role=Role.MAINTAINER, team_name=None, actor="bench")
        _, researcher = accounts.issue_token(session, "r@x.org", expires_in=timedelta(days=1), actor="bench")
        _, maintainer = accounts.issue_token(session, "m@x.org", expires_in=timedelta(days=1), actor="bench")
        team_ids = [t.id for t in session.query(Team).order_by(Team.id)]
        done = []
        for i in range(100):
            start = now - timedelta(hours=2, minutes=i)
            sub = Submission(
                team_id=team_ids[0], name=f"done{i}", phase=phase, image_digest=f"sha256:d{i}",
                status=RunStatus.SUCCEEDED, created_at=start - timedelta(minutes=3), started_at=start,
                finished_at=start + timedelta(minutes=7),
            )  # fmt: skip
            session.add(sub)
            done.append(sub)
        last = None
        for i in range(queued):
            team = team_ids[i % 20] if i < queued - 1 else team_ids[0]
            last = Submission(team_id=team, name=f"q{i}", phase=phase, image_digest=f"sha256:q{i}")
            session.add(last)
        for w in range(4):
            session.add(WorkerHeartbeat(name=f"w{w}", beat_at=now, state="busy"))
        session.flush()
        assert last is not None
        return researcher, maintainer, last.id, done[0].id


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--queued", type=int, default=1000)
    parser.add_argument("--requests", type=int, default=300)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        settings = load_settings(
            data_dir=Path(tmp) / "state",
            database_url=f"sqlite:///{Path(tmp) / 'state' / 'csawm.db'}",
            embedded_worker=False,
            embedded_dispatcher=False,
        )
        app = create_app(settings, migrate_on_start=True)
        port = _port()
        server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
        thread = threading.Thread(target=server.run, daemon=True)
        thread.start()
        while not server.started:
            time.sleep(0.05)
        researcher, maintainer, last_queued, finished = _seed(app.state.csawm.db, settings.phase, args.queued)
        targets = {
            "status, anonymous": ("/api/v1/status", None),
            "status, maintainer": ("/api/v1/status", maintainer),
            f"queued run at position {args.queued}": (f"/api/v1/submissions/{last_queued}", researcher),
            "finished run (no queue place)": (f"/api/v1/submissions/{finished}", researcher),
            "/healthz (floor)": ("/healthz", None),
        }
        times: dict[str, list[float]] = {name: [] for name in targets}
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30) as client:
            place = client.get(
                f"/api/v1/submissions/{last_queued}", headers={"Authorization": f"Bearer {researcher}"}
            )
            print("queue place of the last run:", place.json()["queue"])
            for _ in range(3):  # warm up
                for path, token in targets.values():
                    client.get(path, headers={"Authorization": f"Bearer {token}"} if token else {})
            block = 50
            for _ in range(max(1, args.requests // block)):
                for name, (path, token) in targets.items():
                    headers = {"Authorization": f"Bearer {token}"} if token else {}
                    for _ in range(block):
                        started = time.perf_counter()
                        response = client.get(path, headers=headers)
                        times[name].append(time.perf_counter() - started)
                        assert response.status_code == 200, response.text
        server.should_exit = True
        thread.join(timeout=30)
    print(f"| request ({args.queued} queued runs, {args.requests} each) | median ms | p95 ms |")
    print("| --- | --- | --- |")
    for name, values in times.items():
        values.sort()
        p95 = values[int(len(values) * 0.95) - 1]
        print(f"| {name} | {statistics.median(values) * 1000:.1f} | {p95 * 1000:.1f} |")


if __name__ == "__main__":
    main()
