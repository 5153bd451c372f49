"""Issue 19 item 3 with the attacker's model, the real Docker engine and a real server process.

The model (srvtest/image/model.py ``covert``) reads nothing real here, but it does on the hidden
images what an attacker's model would to send bits out: it exits with a chosen code, holds a chosen
amount of memory, burns a chosen amount of CPU and ends at a chosen time. Under each
``CSAWM_HIDDEN_RUNTIME`` level the submitter's API, report page, delivery log, ledger and webhook
are read and must show none of it (``maintainers``, the default), only whole minutes and GiB
(``coarse``), or the exact figures (``submitters``: the explicit opt-in; it proves the attack is
real). Maintainers always see everything; no submitter ever sees the exit code, the predictions'
hash or the worker's host and name.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import docker
import httpx
import pytest
from srvtest import factories as f
from srvtest import images
from srvtest.app import make_settings
from srvtest.notify import Receiver, serving
from srvtest.served import served
from srvtest.web import as_shown, page_times, repro_record, runtime_table, web_login

from runner.docker_backend import DockerRunner
from server.core.db import Database
from server.models import Role
from server.worker.loop import Worker

pytestmark = [pytest.mark.docker, pytest.mark.timeout(400)]

EXIT, MIB, CPU_S, WALL_S = 77, 300, 2.0, 4.0
STEERED = "c0f"  # the succeeded run's predictions hash starts with this: 12 bits the model chose
GIB = 1024**3
BEFORE_HIDDEN = {"image_load_s", "preflight_s"}


@pytest.fixture(scope="module")
def covert_archives(
    docker_client: docker.DockerClient, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[dict[str, Path]]:
    """The attacker's model, failing with exit code 77 and succeeding, as `docker save` archives."""
    images.ensure_base(docker_client)
    tags = {
        "failed": images.build(docker_client, "covert", str(EXIT), str(MIB), str(CPU_S), str(WALL_S)),
        "succeeded": images.build(docker_client, "covert", "0", str(MIB), str(CPU_S), str(WALL_S), STEERED),
    }
    folder = tmp_path_factory.mktemp("covert")
    yield {kind: images.save(tag, folder / f"{kind}.tar") for kind, tag in tags.items()}
    for tag in tags.values():
        docker_client.images.remove(tag, force=True)


@dataclass
class Seen:
    """What one reader got of the two runs."""

    runs: dict[str, dict[str, Any]]  # kind -> GET /api/v1/submissions/{id}
    texts: list[str]  # every response body and page, for substring checks
    times: list[datetime]  # every timestamp but the submissions' created_at
    pages: dict[str, str]  # kind -> report page HTML (researchers)
    hooks: list[dict[str, Any]]  # webhook bodies (researchers)


def _parse(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


def _read(url: str, token: str, ids: dict[str, int], *, web: bool) -> Seen:
    runs: dict[str, dict[str, Any]] = {}
    texts: list[str] = []
    times: list[datetime] = []
    pages: dict[str, str] = {}
    with httpx.Client(base_url=url, headers=f.auth(token), timeout=30) as client:
        for kind, sub_id in ids.items():
            r = client.get(f"/api/v1/submissions/{sub_id}")
            assert r.status_code == 200, r.text
            runs[kind] = body = r.json()
            texts.append(r.text)
            times += [_parse(body[k]) for k in ("started_at", "finished_at")]
            times += [_parse(e["at"]) for e in body["events"]]
            reports = client.get(f"/api/v1/submissions/{sub_id}/reports")
            texts.append(reports.text)
            times += [_parse(rep["created_at"]) for rep in reports.json()]
        listed = client.get("/api/v1/submissions")
        texts.append(listed.text)
        for row in listed.json():
            times += [_parse(row[k]) for k in ("started_at", "finished_at") if row[k]]
        if web:
            deliveries = client.get("/api/v1/teams/me/deliveries")
            texts.append(deliveries.text)
            for d in deliveries.json():
                times += [_parse(d[k]) for k in ("created_at", "delivered_at", "next_attempt_at") if d[k]]
                times += [_parse(a["at"]) for a in d["attempt_log"]]
            ledger = client.get("/api/v1/quota/ledger")
            texts.append(ledger.text)
            times += [_parse(e["created_at"]) for e in ledger.json() if e["kind"] == "refund"]
    with httpx.Client(base_url=url, timeout=30) as browser:
        web_login(browser, token)
        for kind, sub_id in ids.items():
            page = browser.get(f"/submissions/{sub_id}")
            assert page.status_code == 200
            pages[kind] = page.text
            texts.append(page.text)
        texts.append(browser.get("/team").text if web else "")
    return Seen(runs=runs, texts=texts, times=times, pages=pages, hooks=[])


def _hidden_runs(tmp_path: Path, benchmark: Path, archives: dict[str, Path], level: str) -> tuple[Seen, Seen]:
    """Both attacker runs through a real server process at `level` and the real engine: what the
    team (API, pages, webhook) and a maintainer (API) see of them."""
    root = tmp_path / level
    env = {
        "CSAWM_HIDDEN_RUNTIME": level,
        "CSAWM_BENCHMARK_DIR": str(benchmark),
        "CSAWM_BOOTSTRAP_RESAMPLES": "100",
        "CSAWM_WEBHOOK_ALLOW_PRIVATE": "true",  # the receiver is on 127.0.0.1
        "CSAWM_MAX_UPLOAD_BYTES": str(1024**3),
    }
    with serving(Receiver()) as receiver, served(root, env) as server:
        settings = make_settings(
            root,
            server.db_url,
            benchmark_dir=benchmark,
            bootstrap_resamples=100,
            hidden_runtime=level,
            max_upload_bytes=1024**3,
        )
        db = Database.connect(server.db_url)
        f.team(db, "alpha")
        team = f.user(db, "a@x.org", team="alpha")
        staff = f.user(db, "m@x.org", role=Role.MAINTAINER)
        hook = httpx.post(
            f"{server.url}/api/v1/teams/me/webhooks", json={"url": receiver.url}, headers=f.auth(team)
        )
        assert hook.status_code == 201, hook.text
        ids: dict[str, int] = {}
        worker = Worker(settings, db, DockerRunner(), name="covert-test")
        for kind, archive in archives.items():
            r = httpx.post(
                f"{server.url}/api/v1/submissions",
                params={"name": kind},
                content=archive.read_bytes(),
                headers=f.auth(team),
                timeout=120,
            )
            assert r.status_code == 201, r.text
            ids[kind] = r.json()["id"]
            assert worker.run_once()
        hooks = [json.loads(req.body) for req in receiver.wait_for(2, timeout=60)]
        seen = _read(server.url, team, ids, web=True)
        seen.hooks = hooks
        seen.texts += [json.dumps(h) for h in hooks]
        seen.times += [_parse(h["occurred_at"]) for h in hooks]
        maintainer = _read(server.url, staff, ids, web=False)
        db.engine.dispose()
    assert seen.runs["failed"]["status"] == "failed" and seen.runs["failed"]["failed_phase"] == "hidden"
    assert seen.runs["succeeded"]["status"] == "succeeded"
    return seen, maintainer


def _hidden_figures(run: dict[str, Any]) -> dict[str, Any]:
    """Every figure of `run` measured from the hidden stage on, by where it is."""
    phases = (run["runtime"] or {}).get("phases") or {}
    repro = run["reproducibility"] or {}
    groups = {
        "timings": run["timings"] or {},
        "durations_s": repro.get("durations_s") or {},
        "peak_memory": repro.get("peak_memory_bytes") or {},
    }
    found = {f"runtime.{p}.{k}": v for p, vs in phases.items() if p != "preflight" for k, v in vs.items()}
    for group, values in groups.items():
        found |= {f"{group}.{k}": v for k, v in values.items() if k not in BEFORE_HIDDEN | {"preflight"}}
    return found


def _never_to_submitters(seen: Seen, maintainer: Seen) -> None:
    """The exit code, the predictions' hash and the worker's host and name, whatever the level."""
    failed = seen.runs["failed"]
    assert str(EXIT) not in failed["error_message"] and "exit code" not in failed["error_message"]
    assert all(str(EXIT) not in (e["note"] or "") for e in failed["events"])
    assert f"code {EXIT}" in maintainer.runs["failed"]["error_detail"]  # the maintainers have it
    staff_repro = maintainer.runs["succeeded"]["reproducibility"]
    sha = staff_repro["predictions_sha256"]
    assert len(sha) == 64 and sha.startswith(STEERED)
    for text in seen.texts:
        assert sha[:12] not in text
        assert staff_repro["host"] not in text and staff_repro["worker"] not in text
    repro = seen.runs["succeeded"]["reproducibility"]
    assert not {"predictions_sha256", "host", "worker"} & set(repro)
    # the maintainers see the attacker's figures exactly
    hidden = maintainer.runs["succeeded"]["runtime"]["phases"]["hidden"]
    assert hidden["cpu_s"] >= CPU_S * 0.9 and hidden["wall_s"] >= WALL_S
    assert hidden["peak_memory_bytes"] is None or hidden["peak_memory_bytes"] >= MIB * 2**20


def _page_matches_api(seen: Seen) -> None:
    """Item 5: the report page shows exactly the API's figures and timestamps (researcher)."""
    for kind, run in seen.runs.items():
        html = seen.pages[kind]
        api_times = {_parse(run["created_at"]), _parse(run["started_at"]), _parse(run["finished_at"])}
        api_times |= {_parse(e["at"]) for e in run["events"]}
        assert set(page_times(html)) == api_times
        phases = run["runtime"]["phases"]
        assert runtime_table(html) == {
            p: {k: values.get(k) for k in ("wall_s", "container_s", "cpu_s", "gpu_s", "peak_memory_bytes")}
            for p, values in phases.items()
        }
        assert repro_record(html) == as_shown(run["reproducibility"] or {})


@pytest.mark.parametrize("level", ["maintainers", "coarse", "submitters"])
def test_hidden_runtime_channels_reach_submitters_only_as_the_level_allows(
    tmp_path: Path, synthetic_benchmark: Path, covert_archives: dict[str, Path], level: str
) -> None:
    seen, maintainer = _hidden_runs(tmp_path, synthetic_benchmark, covert_archives, level)
    _never_to_submitters(seen, maintainer)
    _page_matches_api(seen)
    for kind, run in seen.runs.items():
        exact = _hidden_figures(maintainer.runs[kind])
        shown = _hidden_figures(run)
        assert exact, "the maintainers' view holds the hidden figures"
        if level == "maintainers":
            assert run["hidden_figures"] == "withheld"
            assert shown == {}
            assert set(run["runtime"]["phases"]) == {"preflight"}
        elif level == "coarse":
            assert run["hidden_figures"] == "coarse"
            assert set(shown) == set(exact)
            for key, value in shown.items():
                if exact[key] is None:
                    assert value is None
                elif "memory" in key:
                    assert value == math.ceil(exact[key] / GIB) * GIB
                else:
                    assert value == math.ceil(exact[key] / 60) * 60
            assert shown["runtime.hidden.cpu_s"] == 60 and shown["runtime.hidden.wall_s"] == 60
        else:
            assert run["hidden_figures"] == "exact"
            assert shown == exact and shown["runtime.hidden.cpu_s"] >= CPU_S * 0.9
        # the preflight (sample images) stays exact for everyone
        assert (
            run["runtime"]["phases"]["preflight"] == maintainer.runs[kind]["runtime"]["phases"]["preflight"]
        )
    if level == "submitters":
        assert any(t.second or t.microsecond for t in seen.times)  # the exact times are there
    else:
        assert seen.times and all(t.second == 0 and t.microsecond == 0 for t in seen.times)
        assert any(t.second or t.microsecond for t in maintainer.times)
    assert {h["event"] for h in seen.hooks} == {"run.failed", "run.finished"}
