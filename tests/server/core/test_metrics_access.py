"""Issue 19 item 6: anonymous ``/metrics`` let anyone follow a sealed round (runs by status and
error code, run and stage durations, the workers' names, upload counters). The operator reads
them with ``CSAWM_METRICS_TOKEN``; anyone else gets the queue depth and whether a worker is alive."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families
from srvtest import factories as f
from srvtest.app import METRICS_TOKEN, Api, make_settings, operator_metrics, running_api

from server.clock import utcnow
from server.core.settings import SettingsError, load_settings
from server.models import FailedPhase, Role, RunStatus, Submission
from server.worker import presence

WORKER = "gpu-node-7.example.internal-4242"
PUBLIC = {"csawm_queue_depth", "csawm_workers_up"}


def _families(text: str) -> dict[str, list[tuple[dict[str, str], float]]]:
    return {
        family.name: [(sample.labels, sample.value) for sample in family.samples]
        for family in text_string_to_metric_families(text)
    }


@pytest.fixture
def round_in_progress(api: Api) -> Api:
    """A sealed round as an observer would follow it: one succeeded run, one that failed on the
    hidden images with an error code, one queued, a worker with a telling name, one upload."""
    team_id = f.team(api.db, "alpha")
    now = utcnow()
    with api.db.transaction() as session:
        for name, status, code in (
            ("ok", RunStatus.SUCCEEDED, None),
            ("bad", RunStatus.FAILED, "output_invalid"),
            ("waiting", RunStatus.QUEUED, None),
        ):
            ended = status != RunStatus.QUEUED
            session.add(
                Submission(
                    team_id=team_id, name=name, phase="private-1", image_digest=f"sha256:{name}",
                    status=status, error_code=code,
                    failed_phase=FailedPhase.HIDDEN if code else None,
                    started_at=now - timedelta(seconds=421) if ended else None,
                    finished_at=now if ended else None,
                    timings={"preflight_s": 12.5, "hidden_s": 397.25, "scoring_s": 1.5} if ended else None,
                )
            )  # fmt: skip
    presence.beat(api.db, WORKER, state="busy")
    api.client.app.state.csawm.metrics.upload_bytes.inc(123_456_789)
    return api


def test_anonymous_metrics_show_no_run_error_or_worker_series_issue_19(round_in_progress: Api) -> None:
    response = round_in_progress.client.get("/metrics")
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/plain")
    families = _families(response.text)
    assert set(families) == PUBLIC, sorted(families)
    assert families["csawm_queue_depth"] == [({}, 1.0)]
    assert families["csawm_workers_up"] == [({}, 1.0)]
    for secret in (WORKER, "output_invalid", "succeeded", "failed", "397", "421", "123456789", "1.23456789e"):
        assert secret not in response.text


def test_the_operator_reads_every_series_with_the_metrics_token_issue_19(round_in_progress: Api) -> None:
    families = _families(operator_metrics(round_in_progress))
    assert families["csawm_queue_depth"] == [({}, 1.0)] and families["csawm_workers_up"] == [({}, 1.0)]
    runs = {labels["status"]: value for labels, value in families["csawm_runs"]}
    assert runs["succeeded"] == 1.0 and runs["failed"] == 1.0 and runs["queued"] == 1.0
    assert families["csawm_runs_by_error"] == [({"status": "failed", "error_code": "output_invalid"}, 1.0)]
    assert [labels["worker"] for labels, _ in families["csawm_worker_heartbeat_age_seconds"]] == [WORKER]
    durations = dict((labels.get("le", "sum"), v) for labels, v in families["csawm_run_duration_seconds"])
    assert durations["+Inf"] == 2.0 and durations["300.0"] == 0.0 and durations["600.0"] == 2.0
    hidden = dict((labels.get("le", "sum"), v) for labels, v in families["csawm_phase_hidden_seconds"])
    assert hidden["+Inf"] == 2.0
    assert families["csawm_upload_bytes"][0][1] == 123_456_789.0


@pytest.mark.parametrize(
    "authorization",
    [
        "Bearer wrong-" + "x" * 40,
        "Bearer " + METRICS_TOKEN[:-1],
        "Bearer " + METRICS_TOKEN + "x",
        "Bearer ",
        "Basic " + METRICS_TOKEN,
        METRICS_TOKEN,
    ],
)
def test_a_wrong_metrics_token_is_refused_issue_19(round_in_progress: Api, authorization: str) -> None:
    response = round_in_progress.client.get("/metrics", headers={"Authorization": authorization})
    assert response.status_code == 401, response.text
    assert response.json()["error"]["code"] == "unauthorized"
    assert WORKER not in response.text and "csawm_runs" not in response.text


def test_an_api_token_is_not_a_metrics_token_issue_19(round_in_progress: Api) -> None:
    """Not even a maintainer's API token reads the operator's series: the scraper has its own."""
    maud = f.user(round_in_progress.db, "m@x.org", role=Role.MAINTAINER)
    response = round_in_progress.client.get("/metrics", headers=f.auth(maud))
    assert response.status_code == 401


def test_no_metrics_token_configured_refuses_every_credential_issue_19(
    tmp_path: Path, sqlite_url: str
) -> None:
    settings = make_settings(tmp_path, sqlite_url, metrics_token=None)
    with running_api(settings) as api:
        assert set(_families(api.client.get("/metrics").text)) == PUBLIC
        refused = api.client.get("/metrics", headers={"Authorization": f"Bearer {METRICS_TOKEN}"})
        assert refused.status_code == 401


def test_a_short_metrics_token_is_refused_without_echoing_it_issue_19(tmp_path: Path) -> None:
    with pytest.raises(SettingsError) as caught:
        load_settings(data_dir=tmp_path, metrics_token="hunter2-is-short")
    assert "CSAWM_METRICS_TOKEN" in str(caught.value) and "hunter2" not in str(caught.value)
