"""A Pod waiting for GPU capacity shows on its run (issue 22 item 2): the worker turns the
runner's "unschedulable" progress into one timeline event, "waiting for GPU capacity", that the
submitter reads on the run (the scheduler's message stays with the maintainers)."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

from runner.kubernetes.executor import KubernetesRunner
from runner.spec import ErrorCode
from server.models import Role, Submission, Team
from server.worker import queue
from server.worker.context import RunContext
from server.worker.loop import Worker
from tests.k8s.factories import make_spec
from tests.k8s.fake_cluster import FakeCluster, PodScript
from tests.server.srvtest import factories as f
from tests.server.srvtest.app import make_settings, running_api

TTL = timedelta(seconds=60)
REASON = "0/3 nodes are available: 3 Insufficient nvidia.com/gpu."


def test_a_pod_waiting_for_gpu_capacity_shows_on_the_run(
    fake_cluster: FakeCluster, make_runner: object, tmp_path: Path
) -> None:
    settings = make_settings(tmp_path, f"sqlite:///{tmp_path / 'state' / 'csawm.db'}", run_gpus=1)
    with running_api(settings) as api:
        token = f.member_token(api.db)
        maintainer = f.user(api.db, "m@x.org", role=Role.MAINTAINER)
        with api.db.transaction() as session:
            team_id = session.query(Team).filter_by(name="alpha").one().id
            sub = Submission(team_id=team_id, name="gpu", phase=settings.phase, image_digest="sha256:gpu")
            session.add(sub)
            session.flush()
            sub_id = sub.id
        runner: KubernetesRunner = make_runner()  # type: ignore[operator]
        worker = Worker(settings, api.db, runner, name="w1")
        assert runner.on_progress == worker._runner_progress  # the worker listens to its runner
        lease = queue.lease_next(api.db, "w1", TTL)
        assert lease is not None and lease.submission_id == sub_id
        ctx = RunContext(lease=lease, status=lease.status, retries=0)
        worker._current = ctx  # as `Worker.process` sets it
        fake_cluster.script("", PodScript(unschedulable=REASON))
        spec = make_spec(tmp_path)
        ctx.handle = runner.start(spec)
        result = runner.wait(ctx.handle, spec)  # waits past the schedule timeout, reporting as it goes
        assert result.error_code == ErrorCode.INFRA_ERROR

        got = api.client.get(f"/api/v1/submissions/{sub_id}", headers=f.auth(token)).json()
        notes = [e["note"] for e in got["events"]]
        assert notes.count("waiting for GPU capacity") == 1, notes  # once per wait, not per poll
        assert got["events"][-1]["status"] == got["status"] == "preflight"  # the status stays
        assert all(
            REASON not in str(e.get("detail")) for e in got["events"]
        )  # the cluster's words: staff only
        staff = api.client.get(f"/api/v1/submissions/{sub_id}", headers=f.auth(maintainer)).json()
        assert any(REASON in (e.get("detail") or "") for e in staff["events"])

        # a worker that lost the lease writes nothing more
        with api.db.transaction() as session:
            session.get(Submission, sub_id).lease_owner = "w2"  # type: ignore[union-attr]
        worker._runner_progress(
            type("P", (), {"handle": ctx.handle, "kind": "pending", "message": "queued: x"})()
        )
        again = api.client.get(f"/api/v1/submissions/{sub_id}", headers=f.auth(token)).json()
        assert len(again["events"]) == len(got["events"])
