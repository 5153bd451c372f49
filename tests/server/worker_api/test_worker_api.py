"""The worker API (issue 25) played by a scripted remote worker and by attackers, in process.

Each test goes through the HTTP API exactly as `csawm worker --server` does; the run's state is then
read back through the public API and the database (one report, the right ledger)."""

from __future__ import annotations

import hashlib
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from srvtest import factories as f
from srvtest.app import Api, make_settings, open_api, running_api
from srvtest.archives import write_archive
from srvtest.fakes import predictions_for
from srvtest.web import web_login

from server.models import Role, RunStatus, Submission, SubmissionReport
from server.scoring.results import RunRecord
from server.worker.images_digest import images_digest
from server.worker_api import accounts, service

INSTANCE = "node-1:42:abc123"


@pytest.fixture
def wapi(tmp_path: Path, db_url: str, synthetic_benchmark: Path) -> Iterator[Api]:
    settings = make_settings(
        tmp_path, db_url, benchmark_dir=synthetic_benchmark, bootstrap_resamples=100, hidden_end_grid=0
    )
    yield from open_api(settings)


def _worker(api: Api, name: str = "gpu-1") -> str:
    with api.db.transaction() as session:
        return accounts.create_worker(session, name, actor="test")[1]


def _submit(api: Api, token: str, tmp_path: Path, seed: str = "a") -> int:
    path = tmp_path / f"{seed}.tar"
    write_archive(path, seed=seed)
    response = api.client.post(
        "/api/v1/submissions", params={"name": seed}, content=path.read_bytes(), headers=f.auth(token)
    )
    assert response.status_code == 201, response.text
    return int(response.json()["id"])


def _lease(api: Api, wtoken: str, bench: Path, *, instance: str = INSTANCE, wait_s: float = 0) -> Any:
    digest = images_digest(bench)
    body = {"instance": instance, "version": "test", "images_digest": digest.images}
    body |= {"public_digest": digest.public, "wait_s": wait_s}
    return api.client.post("/api/v1/worker/lease", json=body, headers=f.auth(wtoken))


def _lease_ok(api: Api, wtoken: str, bench: Path, **kw: Any) -> dict[str, Any]:
    response = _lease(api, wtoken, bench, **kw)
    assert response.status_code == 200, response.text
    lease = response.json()["lease"]
    assert lease is not None
    return dict(lease)


def _at(lease: dict[str, Any]) -> dict[str, Any]:
    return {"owner": lease["owner"], "attempt": lease["attempt"]}


def _hidden_predictions(api: Api) -> bytes:
    return predictions_for(service.evaluation(api.settings).hidden_input)


def _put(api: Api, wtoken: str, lease: dict[str, Any], data: bytes, sha: str | None = None) -> Any:
    sub_id = lease["submission_id"]
    headers = f.auth(wtoken) | {"X-Predictions-SHA256": sha or hashlib.sha256(data).hexdigest()}
    return api.client.put(
        f"/api/v1/worker/runs/{sub_id}/predictions", params=_at(lease), content=data, headers=headers
    )


def _reports(api: Api, sub_id: int) -> int:
    with api.db.transaction(write=False) as session:
        return session.query(SubmissionReport).filter_by(submission_id=sub_id).count()


def _status(api: Api, sub_id: int) -> RunStatus:
    with api.db.transaction(write=False) as session:
        sub = session.get(Submission, sub_id)
        assert sub is not None
        return sub.status


def _run_to_the_end(api: Api, wtoken: str, lease: dict[str, Any]) -> str:
    sub_id = lease["submission_id"]
    w = f.auth(wtoken)
    base = f"/api/v1/worker/runs/{sub_id}"
    assert api.client.post(
        f"{base}/handle", json=_at(lease) | {"handle": "c-1", "started": True}, headers=w
    ).json()["held"]
    r = api.client.post(f"{base}/preflight", json=_at(lease) | {"log_tail": "pre ok"}, headers=w)
    assert r.status_code == 200, r.text
    assert _put(api, wtoken, lease, _hidden_predictions(api)).status_code == 200
    r = api.client.post(f"{base}/hidden", params={"test_set": lease["test_set"]}, json=_at(lease), headers=w)
    assert r.status_code == 200, r.text
    return str(r.json()["status"])


def test_remote_run_is_scored_on_the_server_once(
    wapi: Api, tmp_path: Path, synthetic_benchmark: Path
) -> None:
    token, wtoken = f.member_token(wapi.db), _worker(wapi)
    sub_id = _submit(wapi, token, tmp_path)
    lease = _lease_ok(wapi, wtoken, synthetic_benchmark)
    assert lease["submission_id"] == sub_id and lease["owner"] == f"gpu-1/{INSTANCE}"
    assert lease["archive"] and lease["test_set"] == "private"
    archive = wapi.client.get(
        f"/api/v1/worker/runs/{sub_id}/archive", params=_at(lease), headers=f.auth(wtoken)
    )
    assert archive.status_code == 200
    assert hashlib.sha256(archive.content).hexdigest() == archive.headers["x-archive-sha256"]
    assert _run_to_the_end(wapi, wtoken, lease) == "succeeded"
    view = wapi.client.get(f"/api/v1/submissions/{sub_id}", headers=f.auth(token)).json()
    assert view["status"] == "succeeded" and view["metrics"]
    assert _reports(wapi, sub_id) == 1
    assert f.ledger(wapi.db, sub_id) == ["charge"]


def test_tokens_reach_only_their_own_api(wapi: Api, synthetic_benchmark: Path) -> None:
    token, wtoken = f.member_token(wapi.db), _worker(wapi)
    assert _lease(wapi, token, synthetic_benchmark).status_code == 401  # a researcher's token
    assert _lease(wapi, "", synthetic_benchmark).status_code in (401, 403)  # no token
    anon = wapi.client.post("/api/v1/worker/lease", json={})
    assert anon.status_code in (401, 403, 422) and anon.status_code != 200
    r = wapi.client.get("/api/v1/submissions", headers=f.auth(wtoken))  # a worker token elsewhere
    assert r.status_code == 403 and "worker API" in r.text
    with wapi.db.transaction() as session:
        accounts.revoke_worker(session, "gpu-1", actor="test")
    assert _lease(wapi, wtoken, synthetic_benchmark).status_code == 401


def test_worker_with_another_test_set_leases_nothing(
    wapi: Api, tmp_path: Path, synthetic_benchmark: Path
) -> None:
    token, wtoken = f.member_token(wapi.db), _worker(wapi)
    sub_id = _submit(wapi, token, tmp_path)
    other = tmp_path / "other"
    shutil.copytree(synthetic_benchmark / "images", other / "images")
    victim = sorted((other / "images" / "preprocessed" / "private").iterdir())[0]
    victim.write_bytes(victim.read_bytes() + b"\0")  # one image differs by one byte
    response = _lease(wapi, wtoken, other)
    assert response.status_code == 409 and response.json()["error"]["code"] == "test_set_mismatch"
    assert _status(wapi, sub_id) is RunStatus.QUEUED


def test_uploads_outside_the_lease_or_broken_are_refused(
    wapi: Api, tmp_path: Path, synthetic_benchmark: Path
) -> None:
    token, wtoken, other = f.member_token(wapi.db), _worker(wapi), _worker(wapi, "gpu-2")
    sub_id = _submit(wapi, token, tmp_path)
    lease = _lease_ok(wapi, wtoken, synthetic_benchmark)
    base, w = f"/api/v1/worker/runs/{sub_id}", f.auth(wtoken)
    assert wapi.client.post(f"{base}/preflight", json=_at(lease), headers=w).status_code == 200
    good = _hidden_predictions(wapi)
    # another worker account cannot act under this lease, even naming its owner
    assert _put(wapi, other, lease, good).status_code == 403
    # a lease this worker does not hold (a stale attempt)
    assert _put(wapi, wtoken, lease | {"attempt": lease["attempt"] + 1}, good).status_code == 409
    # a hash that does not match, an oversized upload
    assert _put(wapi, wtoken, lease, good, sha="0" * 64).status_code == 400
    big = b"x" * (service.predictions_cap(wapi.settings) + 1)
    assert _put(wapi, wtoken, lease, big).status_code == 413
    # the hidden stage cannot end without predictions uploaded under this lease
    r = wapi.client.post(f"{base}/hidden", params={"test_set": "private"}, json=_at(lease), headers=w)
    assert r.status_code == 409
    assert _status(wapi, sub_id) is RunStatus.RUNNING and _reports(wapi, sub_id) == 0
    # a worker cannot claim the scorer's fault: scoring is the server's
    fault = _at(lease) | {"stage": "scoring", "kind": "scorer", "code": "infra_error", "message": "x"}
    assert wapi.client.post(f"{base}/fault", json=fault, headers=w).status_code == 400
    # predictions the reader refuses (a row missing) are the model's fault, judged by the policy table
    bad = predictions_for(service.evaluation(wapi.settings).hidden_input, drop_last=True)
    assert _put(wapi, wtoken, lease, bad).status_code == 200
    r = wapi.client.post(f"{base}/hidden", params={"test_set": "private"}, json=_at(lease), headers=w)
    assert r.status_code == 200 and r.json()["status"] == "failed"
    view = wapi.client.get(f"/api/v1/submissions/{sub_id}", headers=f.auth(token)).json()
    assert view["error_code"] == "output_invalid" and _reports(wapi, sub_id) == 0


def test_hand_back_and_takeover(wapi: Api, tmp_path: Path, synthetic_benchmark: Path) -> None:
    from datetime import timedelta

    from server.clock import utcnow

    token, wtoken = f.member_token(wapi.db), _worker(wapi)
    sub_id = _submit(wapi, token, tmp_path)
    lease = _lease_ok(wapi, wtoken, synthetic_benchmark)
    w = f.auth(wtoken)
    r = wapi.client.post(f"/api/v1/worker/runs/{sub_id}/hand-back", json=_at(lease), headers=w)
    assert r.status_code == 200 and r.json()["status"] == "queued"
    second = _lease_ok(wapi, wtoken, synthetic_benchmark, instance="node-2:1:x")
    assert second["submission_id"] == sub_id and second["attempt"] == lease["attempt"] + 1
    # the first instance's lease is gone: it cannot renew
    renew = wapi.client.post(f"/api/v1/worker/runs/{sub_id}/renew", json=_at(lease), headers=w)
    assert renew.json() == {"held": False, "cancel_requested": False}
    # the second instance dies (its lease expires): a third takes over, the run is scored once
    with wapi.db.transaction() as session:
        sub = session.get(Submission, sub_id)
        assert sub is not None
        sub.lease_expires_at = utcnow() - timedelta(seconds=1)
    third = _lease_ok(wapi, wtoken, synthetic_benchmark, instance="node-3:1:y")
    assert third["recovered_from"] == second["owner"] and third["retries"] == 1
    assert _run_to_the_end(wapi, wtoken, third) == "succeeded"
    assert _reports(wapi, sub_id) == 1 and f.ledger(wapi.db, sub_id) == ["charge"]


def _expire(api: Api, sub_id: int) -> None:
    from datetime import timedelta

    from server.clock import utcnow

    with api.db.transaction() as session:
        sub = session.get(Submission, sub_id)
        assert sub is not None
        sub.lease_expires_at = utcnow() - timedelta(seconds=1)


def test_revoked_worker_loses_its_run_to_the_next(
    wapi: Api, tmp_path: Path, synthetic_benchmark: Path
) -> None:
    token, wtoken, spare = f.member_token(wapi.db), _worker(wapi), _worker(wapi, "gpu-2")
    sub_id = _submit(wapi, token, tmp_path)
    lease = _lease_ok(wapi, wtoken, synthetic_benchmark)
    with wapi.db.transaction() as session:
        accounts.revoke_worker(session, "gpu-1", actor="test")
    renew = wapi.client.post(f"/api/v1/worker/runs/{sub_id}/renew", json=_at(lease), headers=f.auth(wtoken))
    assert renew.status_code == 401  # the revoked worker stops; its lease runs out
    _expire(wapi, sub_id)
    taken = _lease_ok(wapi, spare, synthetic_benchmark)
    assert taken["submission_id"] == sub_id and taken["recovered_from"] == lease["owner"]
    assert _run_to_the_end(wapi, spare, taken) == "succeeded" and _reports(wapi, sub_id) == 1


def test_run_left_at_scoring_is_scored_by_the_server_not_handed_out(
    wapi: Api, tmp_path: Path, synthetic_benchmark: Path
) -> None:
    """The worker died after its upload moved the run to scoring: the next lease call scores it."""
    from server.runs.lifecycle import Progress
    from server.worker import stages

    token, wtoken = f.member_token(wapi.db), _worker(wapi)
    sub_id = _submit(wapi, token, tmp_path)
    lease = _lease_ok(wapi, wtoken, synthetic_benchmark)
    w, base = f.auth(wtoken), f"/api/v1/worker/runs/{sub_id}"
    assert wapi.client.post(f"{base}/preflight", json=_at(lease), headers=w).status_code == 200
    assert _put(wapi, wtoken, lease, _hidden_predictions(wapi)).status_code == 200
    run = service.leased(wapi.db, wapi.settings, sub_id, lease["owner"], lease["attempt"])
    sha = hashlib.sha256(_hidden_predictions(wapi)).hexdigest()
    progress = Progress(
        predictions_sha256=sha, reproducibility=RunRecord.read(None).rescored(test_set="private")
    )
    stages._move(run.env, run.ctx, RunStatus.SCORING, "hidden run finished", progress)
    _expire(wapi, sub_id)
    assert _lease(wapi, wtoken, synthetic_benchmark).json() == {"lease": None}
    assert _status(wapi, sub_id) is RunStatus.SUCCEEDED and _reports(wapi, sub_id) == 1


def test_database_and_remote_workers_serve_one_queue(
    wapi: Api, tmp_path: Path, synthetic_benchmark: Path
) -> None:
    from server.worker.queue import lease_next

    token, wtoken = f.member_token(wapi.db), _worker(wapi)
    first, second = _submit(wapi, token, tmp_path, "a"), _submit(wapi, token, tmp_path, "b")
    remote = _lease_ok(wapi, wtoken, synthetic_benchmark)
    local = lease_next(wapi.db, "db-worker", wapi.settings.lease_ttl)
    assert local is not None and {remote["submission_id"], local.submission_id} == {first, second}
    assert _lease(wapi, wtoken, synthetic_benchmark).json() == {"lease": None}


def test_admin_page_lists_remote_workers_with_heartbeat_version_and_digest(wapi: Api) -> None:
    """Issue 25 item 4: operators see each remote worker on /admin (its last call, version and
    test-set digest); a revoked one says so; a name cannot put markup on the page."""
    wtoken = _worker(wapi, "gpu-1")
    _worker(wapi, "gpu-2")
    _lease(wapi, wtoken, wapi.settings.benchmark_dir or Path("."))
    with wapi.db.transaction() as session:
        accounts.revoke_worker(session, "gpu-2", actor="test")
    maintainer = f.user(wapi.db, "m@x.org", role=Role.MAINTAINER)
    web_login(wapi.client, maintainer, "/admin")
    page = wapi.client.get("/admin").text
    digest = images_digest(wapi.settings.benchmark_dir or Path(".")).images
    assert "Remote workers" in page and "<td>gpu-1</td>" in page
    row = page[page.index("<td>gpu-1</td>") : page.index("<td>gpu-2</td>")]
    assert "test" in row and digest[:16] in row and "–</td>" not in row.split("</td>")[2]
    assert "revoked" in page[page.index("<td>gpu-2</td>") :].split("</tr>")[0]


def test_long_polls_beyond_the_bound_look_once_and_answer_at_once(
    tmp_path: Path, sqlite_url: str, synthetic_benchmark: Path
) -> None:
    """Each waiting lease call holds a server thread: past CSAWM_WORKER_LONG_POLLS they do not wait."""
    import threading
    import time

    settings = make_settings(tmp_path, sqlite_url, benchmark_dir=synthetic_benchmark, worker_long_polls=1)
    with running_api(settings) as api:
        wtoken = _worker(api)
        waited: list[float] = []

        def hold() -> None:
            started = time.monotonic()
            assert _lease(api, wtoken, synthetic_benchmark, instance="a:1:x", wait_s=3).json() == {
                "lease": None
            }
            waited.append(time.monotonic() - started)

        holder = threading.Thread(target=hold)
        holder.start()
        deadline = time.monotonic() + 5
        while service.LONG_POLLS.waiting < 1 and time.monotonic() < deadline:
            time.sleep(0.01)
        assert service.LONG_POLLS.waiting == 1
        started = time.monotonic()
        second = _lease(api, wtoken, synthetic_benchmark, instance="b:1:y", wait_s=3)
        assert second.status_code == 200 and second.json() == {"lease": None}
        assert time.monotonic() - started < 1.0  # looked once, did not wait
        holder.join(10)
        assert waited and waited[0] >= 2.9  # the first one did wait its 3 s
        assert service.LONG_POLLS.waiting == 0
