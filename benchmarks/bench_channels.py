"""Benchmark: what a submitter can learn of a hidden run, channel by channel, under each
``CSAWM_HIDDEN_RUNTIME`` level (issue 19 item 3). It plays the attacker.

A model on the hidden images can compute any bits it likes from them; what bounds the leak is what it
can *send*: what its team reads back per run. The attacker's model (``tests/server/srvtest/image/
model.py``, ``covert``) encodes a random message in every channel at once: its exit code, its ending
(succeeded, ``nonzero_exit``, ``oom``, ``timeout``, ``output_missing``, ``output_invalid``), its peak
memory, its CPU time, its running time (hence every timestamp after it) and, on a succeeded run, the
prefix of its predictions' sha256 (steered by trailing zeros the reader ignores). Each run is a real
upload to a real server process (``csawm serve``), run by a worker with the real Docker engine; a
poller watches the run's status over the API meanwhile, and a webhook receiver on loopback records
the notices. The message is then decoded from what the team's API shows at each level (a server
process per level reads the same database; the webhook bodies are the dispatcher's
``server.notifications.events.body`` of the stored payloads, checked against the real delivery
made at the default level), and from the maintainers' view, which is what the API showed everyone
before this issue (the column ``before``; the exit code then stood in the message).

Two figures per channel and level, in bits per run:

* **recovered**: the bits of the code used here (sized for runs of seconds) times the share of runs
  decoded exactly, corrected for chance: ``bits * max(0, (p - 1/M) / (1 - 1/M))``. The decoder
  calibrates its offset on the *other* runs (leave one out), as an attacker calibrates on earlier ones.
* **capacity**: the levels a model can tell apart within the production limits (``CSAWM_RUN_TIMEOUT``
  30 min, ``CSAWM_RUN_MEMORY`` 4 GiB, ``CSAWM_RUN_CPUS`` 2), given the noise seen here: with the
  residuals r of the exact figures (observed − offset − sent), a half-width ``h = max(3·sd(r),
  max|r|)``; an exact figure allows ``R / max(2h, resolution) + 1`` levels, one rounded to a unit u
  (a minute, a GiB) ``R / u`` while ``2h < u`` (else every ``ceil(2h/u)+1``-th unit), a withheld
  one 1. Timestamps rounded to the minute are decoded against the exact submission time. The
  predictions hash allows ``log2(hashes per second × CPU seconds of a run)`` bits (brute force).

Where a full run per sample would be too slow (minutes per level of a minute-rounded figure), the
capacity is the computed one; every recovered figure is from the real runs here.

Usage::

    .venv/bin/python benchmarks/bench_channels.py [--quick] [--seed 0] [--runs 6]

``--runs N``: N failed and N succeeded runs with random messages (default 6), plus one run per
other ending unless ``--quick`` (one failed, one succeeded, no other endings). Prints the table
(markdown) and one JSON line. Needs the Docker engine and ``csawm-base/python:bookworm``.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import platform
import re
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import docker
import httpx

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "tests" / "server"))

from srvtest import factories as f  # noqa: E402
from srvtest import images  # noqa: E402
from srvtest.notify import Receiver, serving  # noqa: E402
from srvtest.served import served  # noqa: E402

from runner.docker_backend import DockerRunner  # noqa: E402
from server.benchmark.synth import generate  # noqa: E402
from server.core.db import Database  # noqa: E402
from server.core.settings import RunSettings, load_settings  # noqa: E402
from server.disclosure.run_view import GIB, MINUTE_S, Viewer  # noqa: E402
from server.models import Delivery, Role  # noqa: E402
from server.notifications import events  # noqa: E402
from server.worker.loop import Worker  # noqa: E402

LEVELS = ("submitters", "coarse", "maintainers")
VIEWS = ("before", *LEVELS)
MiB = 2**20
POLL_S = 0.1  # the live poller's interval
RUN_TIMEOUT_S = 20  # the hidden run's limit here (the `timeout` ending waits this long)
ENDINGS = ("ok", "exit", "oom", "timeout", "missing", "invalid")
ERROR_ENDING = {
    None: "ok",
    "nonzero_exit": "exit",
    "oom": "oom",
    "timeout": "timeout",
    "output_missing": "missing",
    "output_invalid": "invalid",
}
HASH_HEX = 4  # the succeeded runs steer 16 bits of their predictions hash


@dataclass(frozen=True)
class Code:
    """A channel's code for these runs: symbol s is sent as ``base + s * step`` (in `unit`s)."""

    base: float
    step: float
    bits: int
    unit: float = 1.0

    def sent(self, symbol: int) -> float:
        return (self.base + symbol * self.step) * self.unit


MEMORY = Code(base=64, step=48, bits=4, unit=MiB)  # 64..784 MiB held
CPU = Code(base=1.0, step=0.5, bits=3)  # 1..4.5 s of CPU (absolute, the model's own clock)
WALL = Code(base=6.0, step=1.5, bits=3)  # 6..16.5 s from the model's start


@dataclass(frozen=True)
class Plan:
    """One run: what the model sends."""

    group: str  # "failed", "succeeded" or "ending"
    ending: str
    exit_code: int
    memory: int
    cpu: int
    wall: int
    prefix: str | None

    def args(self) -> tuple[str, ...]:
        mib = round(MEMORY.sent(self.memory) / MiB) if self.ending != "oom" else 0
        ending = {"ok": "exit"}.get(self.ending, self.ending)
        return (
            str(self.exit_code),
            str(mib),
            str(CPU.sent(self.cpu)),
            str(WALL.sent(self.wall)),
            self.prefix or "-",
            ending,
        )


@dataclass
class Observed:
    """A run as one view shows it: the raw fields a decoder reads."""

    detail: dict[str, Any]
    reports: list[dict[str, Any]]
    hook: dict[str, Any] | None


@dataclass
class Run:
    plan: Plan
    sub_id: int = 0
    live: dict[str, float] = field(default_factory=dict)  # status -> first seen (monotonic)
    views: dict[str, Observed] = field(default_factory=dict)


def _plans(rng: Any, runs: int, quick: bool) -> list[Plan]:
    plans = []
    for group in ("failed", "succeeded"):
        for _ in range(runs):
            plans.append(
                Plan(
                    group=group,
                    ending="exit" if group == "failed" else "ok",
                    exit_code=rng.randrange(1, 256) if group == "failed" else 0,
                    memory=rng.randrange(2**MEMORY.bits),
                    cpu=rng.randrange(2**CPU.bits),
                    wall=rng.randrange(2**WALL.bits),
                    prefix=f"{rng.randrange(16**HASH_HEX):0{HASH_HEX}x}" if group == "succeeded" else None,
                )
            )
    if not quick:
        for ending in ("oom", "timeout", "missing", "invalid"):
            plans.append(Plan("ending", ending, 0, 0, 0, 0, None))
    return plans


# -- the runs ----------------------------------------------------------------------------------------


@contextmanager
def _poller(url: str, token: str, run: Run) -> Iterator[None]:
    """Watch the run's status over the API every POLL_S, as a submitter can, noting when each status
    was first seen."""
    stop = threading.Event()

    def poll() -> None:
        with httpx.Client(base_url=url, headers=f.auth(token), timeout=10) as client:
            while not stop.is_set():
                r = client.get(f"/api/v1/submissions/{run.sub_id}")
                if r.status_code == 200:
                    run.live.setdefault(r.json()["status"], time.monotonic())
                stop.wait(POLL_S)

    thread = threading.Thread(target=poll, daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join(10)


def _read(url: str, token: str, ids: list[int]) -> dict[int, Observed]:
    with httpx.Client(base_url=url, headers=f.auth(token), timeout=30) as client:
        seen = {}
        for sub_id in ids:
            detail = client.get(f"/api/v1/submissions/{sub_id}").json()
            reports = client.get(f"/api/v1/submissions/{sub_id}/reports").json()
            seen[sub_id] = Observed(detail=detail, reports=reports, hook=None)
        return seen


def _env(benchmark: Path, level: str, dispatcher: bool) -> dict[str, str]:
    return {
        "CSAWM_HIDDEN_RUNTIME": level,
        "CSAWM_BENCHMARK_DIR": str(benchmark),
        "CSAWM_BOOTSTRAP_RESAMPLES": "100",
        "CSAWM_WEBHOOK_ALLOW_PRIVATE": "true",  # the receiver is on 127.0.0.1
        "CSAWM_MAX_UPLOAD_BYTES": str(1024**3),
        "CSAWM_RUN_TIMEOUT": f"{RUN_TIMEOUT_S}s",
        "CSAWM_RUN_MEMORY": "1g",
        "CSAWM_EMBEDDED_DISPATCHER": "true" if dispatcher else "false",
        "CSAWM_QUOTA_PER_DAY": "1000",
        "CSAWM_QUOTA_PER_WEEK": "1000",
    }


def play(root: Path, plans: list[Plan], log: Callable[[str], None]) -> tuple[list[Run], list[dict[str, Any]]]:
    """Build, upload and run every plan; read back every view. Returns the runs and the webhook
    bodies received at the default level."""
    client = docker.from_env()
    images.ensure_base(client)
    benchmark = root / "benchmark"
    generate(benchmark, seed=7, n_train=48, n_public=64, n_private=60, resolution=(64, 52), workers=1)
    runs = [Run(plan) for plan in plans]
    tags: list[str] = []
    try:
        with serving(Receiver()) as receiver:
            with served(root, _env(benchmark, "maintainers", dispatcher=True)) as server:
                db = Database.connect(server.db_url)
                settings = load_settings(
                    data_dir=root / "state",
                    database_url=server.db_url,
                    benchmark_dir=benchmark,
                    bootstrap_resamples=100,
                    run_timeout=RUN_TIMEOUT_S,
                    run_memory="1g",
                    max_upload_bytes=1024**3,
                    embedded_worker=False,
                    embedded_dispatcher=False,
                    retry_backoff=0,
                    hidden_end_grid=0,  # the runs show the live channel without the grid (`before`)
                )
                f.team(db, "attackers")
                team = f.user(db, "eve@attackers.example", team="attackers")
                staff = f.user(db, "maud@maintainers.example", role=Role.MAINTAINER)
                with db.transaction() as session:
                    from server.accounts import service as accounts

                    accounts.set_quota(
                        session, "attackers", {"active": 1, "per_day": 1000, "per_week": 1000}, actor="bench"
                    )
                hook = httpx.post(
                    f"{server.url}/api/v1/teams/me/webhooks", json={"url": receiver.url}, headers=f.auth(team)
                )
                assert hook.status_code == 201, hook.text
                worker = Worker(settings, db, DockerRunner(), name="bench-channels")
                for i, run in enumerate(runs, 1):
                    t0 = time.monotonic()
                    tag = images.build(client, "covert", *run.plan.args())
                    tags.append(tag)
                    archive = images.save(tag, root / "model.tar")
                    r = httpx.post(
                        f"{server.url}/api/v1/submissions",
                        params={"name": f"run-{i}"},
                        content=archive.read_bytes(),
                        headers=f.auth(team),
                        timeout=300,
                    )
                    assert r.status_code == 201, r.text
                    run.sub_id = int(r.json()["id"])
                    t1 = time.monotonic()
                    with _poller(server.url, team, run):
                        assert worker.run_once()
                        time.sleep(3 * POLL_S)
                    t2 = time.monotonic()
                    log(
                        f"run {i}/{len(runs)} ({run.plan.group}, {run.plan.ending}):"
                        f" built and uploaded in {t1 - t0:.1f} s, ran in {t2 - t1:.1f} s"
                    )
                ids = [run.sub_id for run in runs]
                hooks = [json.loads(r.body) for r in receiver.wait_for(len(runs), timeout=120)]
                views = {"before": _read(server.url, staff, ids), "maintainers": _read(server.url, team, ids)}
                db.engine.dispose()
            for level in ("coarse", "submitters"):
                with served(root, _env(benchmark, level, dispatcher=False)) as server:
                    views[level] = _read(server.url, team, ids)
        db = Database.connect(f"sqlite:///{root / 'state' / 'csawm.db'}")
        with db.transaction(write=False) as session:
            payloads = {d.submission_id: (d.payload, d.id) for d in session.query(Delivery)}
        db.engine.dispose()
    finally:
        for tag in tags:
            with suppress(docker.errors.APIError):
                client.images.remove(tag, force=True)
    for run in runs:
        payload, delivery_id = payloads[run.sub_id]
        for view, seen in views.items():
            observed = seen[run.sub_id]
            level = "submitters" if view == "before" else view
            observed.hook = events.body(payload, delivery_id, "", Viewer(staff=False, level=level))  # type: ignore[arg-type]
            run.views[view] = observed
    return runs, hooks


# -- decoding ----------------------------------------------------------------------------------------


def _at(value: str | None) -> datetime | None:
    return None if value is None else datetime.fromisoformat(value.replace("Z", "+00:00"))


def _hidden(observed: Observed, key: str) -> float | None:
    phases = (observed.detail.get("runtime") or {}).get("phases") or {}
    value = (phases.get("hidden") or {}).get(key)
    return float(value) if isinstance(value, int | float) else None


def _memory(observed: Observed) -> float | None:
    """The hidden run's peak memory (the decoder's offset absorbs the interpreter's own)."""
    return _hidden(observed, "peak_memory_bytes")


def _end_of_hidden(observed: Observed) -> datetime | None:
    """When the hidden stage ended, as the timeline shows it: the first event after ``running``."""
    for event in observed.detail["events"]:
        if event["from_status"] == "running":
            return _at(event["at"])
    return None


def _since(later: datetime | None, earlier: datetime | None) -> float | None:
    return None if later is None or earlier is None else (later - earlier).total_seconds()


#: channel -> (what the submitter reads, how a view's figure for it is read, its code)
TIMED: dict[str, tuple[str, Callable[[Observed], float | None], Code]] = {
    "memory": (
        "`runtime.phases.hidden.peak_memory_bytes`, `reproducibility.peak_memory_bytes`",
        _memory,
        MEMORY,
    ),
    "cpu": ("`runtime.phases.hidden.cpu_s`", lambda o: _hidden(o, "cpu_s"), CPU),
    "wall": (
        "`container_s`, `wall_s`, `timings.hidden_s`, `durations_s`",
        lambda o: _hidden(o, "container_s"),
        WALL,
    ),
    "timestamps": (
        "events' `at`, `finished_at`, the report's `created_at`, the webhook's `occurred_at`",
        lambda o: _since(_end_of_hidden(o), _at(o.detail["created_at"])),
        WALL,
    ),
}
#: other timestamps the timestamps row covers (decoded the same way; the JSON has each)
TIMESTAMP_SOURCES: dict[str, Callable[[Observed], float | None]] = {
    "event_at": lambda o: _since(_end_of_hidden(o), _at(o.detail["created_at"])),
    "finished_at": lambda o: _since(_at(o.detail["finished_at"]), _at(o.detail["created_at"])),
    "report_created_at": lambda o: _since(
        _at(o.reports[-1]["created_at"]) if o.reports else None, _at(o.detail["created_at"])
    ),
    "webhook_occurred_at": lambda o: _since(
        _at((o.hook or {}).get("occurred_at")), _at(o.detail["created_at"])
    ),
}


def _symbol(plan: Plan, channel: str) -> int:
    return {"memory": plan.memory, "cpu": plan.cpu, "wall": plan.wall, "timestamps": plan.wall}[channel]


def _chance_corrected(bits: float, hits: int, total: int, alphabet: float) -> float:
    if total == 0:
        return 0.0
    p = hits / total
    return bits * max(0.0, (p - 1 / alphabet) / (1 - 1 / alphabet))


def decode_figures(
    figures: list[float | None], runs: list[Run], code: Code, channel: str
) -> tuple[float, list[float]]:
    """Recovered bits of a timed channel from the `figures` read off `runs`, and the residuals
    (observed − offset − sent). Each run's offset is calibrated on the other runs (leave one out)."""
    sent = [code.sent(_symbol(run.plan, channel)) for run in runs]
    hits, residuals = 0, []
    for j, (figure, value) in enumerate(zip(figures, sent, strict=True)):
        others = [
            x - s for k, (x, s) in enumerate(zip(figures, sent, strict=True)) if k != j and x is not None
        ]
        if figure is None or not others:
            continue
        offset = statistics.median(others)
        symbol = round((figure - offset - code.base * code.unit) / (code.step * code.unit))
        hits += symbol == _symbol(runs[j].plan, channel)
        residuals.append(figure - offset - value)
    return _chance_corrected(code.bits, hits, len(runs), 2**code.bits), residuals


def decode_timed(
    runs: list[Run], view: str, read: Callable[[Observed], float | None], code: Code, channel: str
) -> tuple[float, list[float]]:
    return decode_figures([read(run.views[view]) for run in runs], runs, code, channel)


def decode_live(runs: list[Run]) -> tuple[float, list[float]]:
    """The hidden run's length as a poller sees it: from ``running`` first seen to the next status."""
    figures: list[float | None] = []
    for run in runs:
        after = [t for status, t in run.live.items() if status not in ("queued", "preflight", "running")]
        start = run.live.get("running")
        figures.append(min(after) - start if after and start is not None else None)
    return decode_figures(figures, runs, WALL, "wall")


def decode_exit(runs: list[Run], view: str) -> float:
    hits = 0
    for run in runs:
        detail = run.views[view].detail
        text = (detail.get("error_detail") or "") if view == "before" else (detail.get("error_message") or "")
        found = re.search(r"code (\d+)", text)
        hits += found is not None and int(found.group(1)) == run.plan.exit_code
    return _chance_corrected(math.log2(255), hits, len(runs), 255)


def decode_ending(runs: list[Run], view: str) -> float:
    hits = sum(ERROR_ENDING.get(run.views[view].detail["error_code"]) == run.plan.ending for run in runs)
    return _chance_corrected(math.log2(len(ENDINGS)), hits, len(runs), len(ENDINGS))


def decode_hash(runs: list[Run], view: str) -> float:
    hits = 0
    for run in runs:
        sha = (run.views[view].detail.get("reproducibility") or {}).get("predictions_sha256") or ""
        hits += bool(sha) and sha.startswith(run.plan.prefix or "?")
    return _chance_corrected(4 * HASH_HEX, hits, len(runs), 16**HASH_HEX)


# -- capacity within the production limits --------------------------------------------------------


def _half_width(residuals: list[float]) -> float:
    if not residuals:
        return math.inf
    spread = statistics.pstdev(residuals) if len(residuals) > 1 else 0.0
    return max(3 * spread, max(abs(r) for r in residuals))


def levels(span: float, half: float, unit: float | None, resolution: float) -> int:
    """How many values a model can tell apart within `span` when the figure is off by up to `half`
    and shown exactly (`unit` None) or rounded to `unit`."""
    if not math.isfinite(half):
        return 1
    if unit is None:
        return int(span // max(2 * half, resolution)) + 1
    spacing = unit if 2 * half < unit else unit * (math.ceil(2 * half / unit) + 1)
    return max(1, int(span // spacing))


def hash_rate() -> float:
    """sha256 variants per second of the model's steering loop (hidden-set sized predictions)."""
    rows = [f"image_{i:04d}.png;0.{i:06d}" for i in range(972)]
    state = hashlib.sha256(("\n".join(rows[:-12]) + "\n").encode())
    tail = rows[-12:]
    n, started = 20_000, time.perf_counter()
    for variant in range(n):
        h = state.copy()
        h.update("".join(r + "0" * ((variant >> 2 * i) & 3) + "\n" for i, r in enumerate(tail)).encode())
        h.hexdigest()
    return n / (time.perf_counter() - started)


@dataclass
class Limits:
    timeout_s: float
    memory_bytes: float
    cpus: float

    @classmethod
    def production(cls) -> Limits:
        """The defaults of ``CSAWM_RUN_TIMEOUT``, ``CSAWM_RUN_MEMORY`` and ``CSAWM_RUN_CPUS``."""
        fields = RunSettings.model_fields
        return cls(
            timeout_s=fields["timeout"].default.total_seconds(),
            memory_bytes=float(fields["memory"].default),
            cpus=float(fields["cpus"].default),
        )


#: How each view shows a channel's figure: None exactly, a number rounded to that unit, 0 not at all.
SHOWN: dict[str, dict[str, float | None]] = {
    "before": {"memory": None, "cpu": None, "wall": None, "timestamps": None},
    "submitters": {"memory": None, "cpu": None, "wall": None, "timestamps": None},
    "coarse": {"memory": GIB, "cpu": MINUTE_S, "wall": MINUTE_S, "timestamps": MINUTE_S},
    "maintainers": {"memory": 0, "cpu": 0, "wall": 0, "timestamps": MINUTE_S},
}
RESOLUTION = {"memory": 4096.0, "cpu": 0.001, "wall": 0.001, "timestamps": 1e-6}


def capacities(residuals: dict[str, list[float]], rate: float, limits: Limits) -> dict[str, dict[str, float]]:
    """Bits per run a model can send in each channel within `limits`, per view."""
    span = {
        "memory": limits.memory_bytes,
        "cpu": limits.cpus * limits.timeout_s,
        "wall": limits.timeout_s,
        "timestamps": limits.timeout_s,
    }
    out: dict[str, dict[str, float]] = {}
    for view in VIEWS:
        row = {}
        for channel, unit in SHOWN[view].items():
            half = _half_width(residuals[channel])
            row[channel] = (
                0.0 if unit == 0 else math.log2(levels(span[channel], half, unit, RESOLUTION[channel]))
            )
        row["exit"] = math.log2(255) if view == "before" else 0.0
        row["ending"] = math.log2(len(ENDINGS))
        row["hash"] = (
            min(256.0, math.log2(rate * limits.cpus * limits.timeout_s)) if view == "before" else 0.0
        )
        # Under `coarse` and `maintainers` the hidden stage ends on CSAWM_HIDDEN_END_GRID (a minute):
        # computed from the grid, not played (tests/server/worker/test_end_grid.py holds the rule).
        grid = None if view in ("before", "submitters") else MINUTE_S
        row["live"] = math.log2(levels(limits.timeout_s, _half_width(residuals["live"]), grid, POLL_S))
        out[view] = row
    return out


# -- the table -----------------------------------------------------------------------------------------

ROWS = (
    ("exit", "exit code in the message", "failed", "`error_message`"),
    ("ending", "the ending chosen", "both", "`status`, `error_code`"),
    ("memory", "peak memory", "both", TIMED["memory"][0]),
    ("cpu", "CPU time", "both", TIMED["cpu"][0]),
    ("wall", "running time", "both", TIMED["wall"][0]),
    ("timestamps", "timestamps", "both", TIMED["timestamps"][0]),
    ("hash", "predictions hash prefix", "succeeded", "`reproducibility.predictions_sha256`"),
)


def _total(row: dict[str, float], group: str) -> float:
    """Bits of one run: the running time, the timestamps and the live status carry the same figure (the
    largest counts)."""
    total = row["ending"] + row["memory"] + row["cpu"] + max(row["wall"], row["timestamps"], row["live"])
    return total + (row["exit"] if group == "failed" else row["hash"])


def table(recovered: dict[str, dict[str, dict[str, float]]], capacity: dict[str, dict[str, float]]) -> str:
    head = "| channel | run | what the submitter reads | " + " | ".join(
        f"`{v}`" + (" (default)" if v == "maintainers" else "") for v in VIEWS
    )
    lines = [head + " |", "| --- | --- | --- |" + " --- |" * len(VIEWS)]

    def cell(view: str, channel: str, group: str) -> str:
        got = recovered[group][view].get(channel)
        return (
            f"{got:.1f} / {capacity[view][channel]:.1f}"
            if got is not None
            else f"– / {capacity[view][channel]:.1f}"
        )

    for channel, name, run, reads in ROWS:
        group = "succeeded" if run == "succeeded" else "failed"
        lines.append(
            f"| {name} | {run} | {reads} | " + " | ".join(cell(v, channel, group) for v in VIEWS) + " |"
        )
    for group in ("failed", "succeeded"):
        cells = [
            f"**{_total(recovered[group][v], group):.1f} / {_total(capacity[v], group):.1f}**" for v in VIEWS
        ]
        lines.append(f"| **total per run** | {group} | | " + " | ".join(cells) + " |")
    live = " | ".join(
        f"{recovered['failed'][v]['live']:.1f} / {capacity[v]['live']:.1f}"
        if v in ("before", "submitters")
        else f"– / {capacity[v]['live']:.1f}"
        for v in VIEWS
    )
    lines.append(
        "| live observation (held to `CSAWM_HIDDEN_END_GRID` under `coarse` and `maintainers`) | both |"
        f" the status while it runs (polled every {POLL_S} s) | {live} |"
    )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    import random

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=6)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    runs_each = 1 if args.quick else args.runs
    rng = random.Random(args.seed)
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="bench-channels-") as tmp:
        runs, hooks = play(Path(tmp), _plans(rng, runs_each, args.quick), lambda m: print(m, file=sys.stderr))
    # the real delivery at the default level is what events.body gives for it
    by_id = {h["submission_id"]: h for h in hooks}
    for run in runs:
        real = by_id[run.sub_id]
        assert real["occurred_at"] == (run.views["maintainers"].hook or {})["occurred_at"], (real, run.views)
    groups = {g: [r for r in runs if r.plan.group == g] for g in ("failed", "succeeded")}
    endings = [r for r in runs if r.plan.group == "ending"]
    recovered: dict[str, dict[str, dict[str, float]]] = {g: {} for g in groups}
    residuals: dict[str, list[float]] = {"live": []}
    sources: dict[str, dict[str, float]] = {}
    for group, members in groups.items():
        live_bits, live_residuals = decode_live(members)
        residuals["live"] += live_residuals
        for view in VIEWS:
            row: dict[str, float] = {
                "exit": decode_exit(members, view) if group == "failed" else 0.0,
                "ending": decode_ending(members + endings, view),
                "hash": decode_hash(members, view) if group == "succeeded" else 0.0,
                "live": live_bits if view in ("before", "submitters") else 0.0,  # runs without the grid
            }
            for channel, (_, read, code) in TIMED.items():
                row[channel], found = decode_timed(members, view, read, code, channel)
                if view == "before":
                    residuals.setdefault(channel, []).extend(found)
            bits = {
                src: decode_timed(members, view, read, WALL, "timestamps")[0]
                for src, read in TIMESTAMP_SOURCES.items()
            }
            sources[f"{group}/{view}"] = bits
            row["timestamps"] = max(bits.values())
            recovered[group][view] = row
    rate = hash_rate()
    capacity = capacities(residuals, rate, Limits.production())
    print(table(recovered, capacity))
    print(
        json.dumps(
            {
                "runs": len(runs),
                "seconds": round(time.monotonic() - started, 1),
                "machine": platform.machine(),
                "recovered": recovered,
                "capacity": capacity,
                "timestamp_sources": sources,
                "half_widths": {k: _half_width(v) for k, v in residuals.items()},
                "hash_rate_per_s": round(rate),
            }
        )
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
