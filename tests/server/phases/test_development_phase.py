"""A development phase (``test_set: public``, issue 15 item 1): its runs are scored on the public
split (level layout, the public manifest recorded, never paired with a private run), re-scored the
same way, and its board shows its own runs only (baselines, experts and density rows are figures
of the private set). Its hidden stage mounts the public images only (issue 19 item 2); the real
engine's view of it is in test_development_inputs.py."""

from __future__ import annotations

import dataclasses
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from phasetest import make_phase
from srvtest import factories as f
from srvtest.app import Api, make_settings, running_api
from srvtest.archives import write_archive
from srvtest.fakes import FakeRunner, predictions_for

from runner.spec import RunSpec
from server.benchmark.dataset import Benchmark
from server.clock import utcnow
from server.models import Role, Submission
from server.phases import service as phases
from server.runs import store
from server.runs.rescore import rescore
from server.worker.evaluation import EvaluationSet, NoPublicTestSet
from server.worker.loop import Worker
from server.worker.stages import score_report

HOUR = timedelta(hours=1)


def _submit(api: Api, token: str, path: Path, name: str) -> int:
    write_archive(path, seed=name)
    r = api.client.post(
        "/api/v1/submissions", params={"name": name}, content=path.read_bytes(), headers=f.auth(token)
    )
    assert r.status_code == 201, r.text
    return int(r.json()["id"])


def _detail(api: Api, token: str, sub_id: int) -> dict[str, Any]:
    body = api.client.get(f"/api/v1/submissions/{sub_id}", headers=f.auth(token)).json()
    assert isinstance(body, dict)
    return body


def test_a_development_phase_scores_on_the_public_split(
    tmp_path: Path, sqlite_url: str, synthetic_benchmark: Path
) -> None:
    settings = make_settings(tmp_path, sqlite_url, benchmark_dir=synthetic_benchmark, bootstrap_resamples=100)
    bench = Benchmark.open(synthetic_benchmark)
    n_public, n_private = len(bench.read_public().filenames), len(bench.read_private().filenames)  # type: ignore[union-attr]
    assert n_public != n_private  # the counts below tell the two sets apart
    with running_api(settings) as api:
        alice = f.member_token(api.db)
        maud = f.user(api.db, "m@x.org", role=Role.MAINTAINER)
        evaluation = EvaluationSet.prepare(synthetic_benchmark, settings.data_dir, 4)
        assert evaluation.public_manifest_digest is not None

        make_phase(api, "final", -3 * HOUR, HOUR)  # a private phase: one run, then it closes
        private_run = _submit(api, alice, tmp_path / "p.tar", "private-run")
        with api.db.transaction() as session:
            phases.update(session, "final", {"closes_at": utcnow() - 2 * HOUR}, actor="test")
        make_phase(api, "dev", -HOUR, HOUR, test_set="public")
        dev_run = _submit(api, alice, tmp_path / "d.tar", "dev-run")
        assert _detail(api, alice, dev_run)["phase"] == "dev"
        runner = FakeRunner()
        worker = Worker(api.settings, api.db, runner)
        assert worker.run_once() and worker.run_once()

        dev, private = _detail(api, maud, dev_run), _detail(api, maud, private_run)
        assert dev["status"] == private["status"] == "succeeded", (dev, private)
        # what each hidden stage mounted: the public images alone for the development run
        mounted = {
            int(spec.run_id.split("-")[1]): (spec.input_dir, spec.input_folder)
            for spec in runner.started
            if spec.phase == "hidden"
        }
        assert mounted == {
            dev_run: (evaluation.public_input, "public"),
            private_run: (evaluation.hidden_input, "hidden"),
        }
        dev_names = (mounted[dev_run][0] / "manifest.csv").read_text().split()[1:]
        assert dev_names == list(bench.read_public().filenames)  # type: ignore[union-attr]
        assert set(dev_names).isdisjoint(bench.read_private().filenames)

        def counts(run: dict[str, Any]) -> tuple[int, int]:
            return run["reproducibility"]["n_hidden_images"], run["reproducibility"]["n_private_images"]

        assert counts(dev) == (n_public, 0)
        assert counts(private) == (n_public + n_private, n_private)
        assert (dev["metrics"]["n_images"], dev["metrics"]["label_layout"]) == (n_public, "level")
        assert (private["metrics"]["n_images"], private["metrics"]["label_layout"]) == (n_private, "rank")
        assert dev["reproducibility"]["test_set"] == "public"
        assert dev["reproducibility"]["test_set_manifest_sha256"] == evaluation.public_manifest_digest
        assert private["reproducibility"]["test_set_manifest_sha256"] == evaluation.manifest_digest
        reports = api.client.get(f"/api/v1/submissions/{dev_run}/reports", headers=f.auth(maud)).json()
        assert [r["test_set_sha256"] for r in reports] == [evaluation.public_manifest_digest]

        # its board: its own run only, no private-set reference rows; the private board keeps them
        approve = {"action": "approve", "reason": "ok"}
        for sub_id in (dev_run, private_run):
            r = api.client.post(
                f"/api/v1/admin/submissions/{sub_id}/review", json=approve, headers=f.auth(maud)
            )
            assert r.status_code == 200, r.text
        dev_board = api.client.get("/api/v1/leaderboard", params={"phase": "dev"}).json()["rows"]
        assert [(row["kind"], row["submission_id"]) for row in dev_board] == [("submission", dev_run)]
        clinical = api.client.get("/api/v1/leaderboard", params={"phase": "dev", "view": "clinical"}).json()
        assert [row["kind"] for row in clinical["rows"]] == ["submission"]
        final_board = api.client.get("/api/v1/leaderboard", params={"phase": "final"}).json()["rows"]
        assert {row["kind"] for row in final_board} == {"submission", "expert"}
        assert dev_run not in [row.get("submission_id") for row in final_board]

        # re-scored on the phase's own set again
        done = rescore(
            api.db, api.settings, evaluation, [dev_run, private_run], actor="test", scorer=score_report
        )
        assert sorted(done.done) == sorted([dev_run, private_run]), done.skipped
        dev = _detail(api, maud, dev_run)
        assert dev["reproducibility"]["test_set_manifest_sha256"] == evaluation.public_manifest_digest
        assert dev["metrics"]["label_layout"] == "level"
        assert _detail(api, maud, private_run)["metrics"]["label_layout"] == "rank"

        # a development run scored before issue 19 mounted every image: re-scored from those rows
        legacy = store.save(api.settings.data_dir, predictions_for(evaluation.hidden_input))
        with api.db.transaction() as session:
            sub = session.get(Submission, dev_run)
            assert sub is not None
            sub.predictions_sha256 = legacy
            sub.reproducibility = {**(sub.reproducibility or {}), "n_hidden_images": n_public + n_private}
        done = rescore(api.db, api.settings, evaluation, [dev_run], actor="test", scorer=score_report)
        assert done.done == [dev_run], done.skipped
        assert _detail(api, maud, dev_run)["metrics"]["n_images"] == n_public


def test_a_run_is_scored_on_the_input_it_was_given_when_its_phase_changes_meanwhile(
    tmp_path: Path, sqlite_url: str, synthetic_benchmark: Path
) -> None:
    """A maintainer turns the development phase private while its run is in its hidden stage: the
    run was given the public images, so it is read and scored on them (not `output_invalid`)."""
    settings = make_settings(tmp_path, sqlite_url, benchmark_dir=synthetic_benchmark, bootstrap_resamples=100)
    n_public = len(Benchmark.open(synthetic_benchmark).read_public().filenames)  # type: ignore[union-attr]
    with running_api(settings) as api:
        alice = f.member_token(api.db)
        maud = f.user(api.db, "m@x.org", role=Role.MAINTAINER)
        make_phase(api, "dev", -HOUR, HOUR, test_set="public")
        dev_run = _submit(api, alice, tmp_path / "d.tar", "dev-run")

        class FlippingRunner(FakeRunner):
            def start(self, spec: RunSpec) -> str:
                if spec.phase == "hidden":
                    with api.db.transaction() as session:
                        phases.update(session, "dev", {"test_set": "private"}, actor="test")
                return super().start(spec)

        runner = FlippingRunner()
        assert Worker(api.settings, api.db, runner).run_once()
        assert [spec.input_folder for spec in runner.started] == ["preflight", "public"]
        dev = _detail(api, maud, dev_run)
        assert dev["status"] == "succeeded", dev["error_message"]
        assert (dev["metrics"]["n_images"], dev["reproducibility"]["test_set"]) == (n_public, "public")
        assert dev["reproducibility"]["n_private_images"] == 0


def test_a_development_run_without_a_public_set_ends_before_its_hidden_stage(
    tmp_path: Path, sqlite_url: str, private_only_benchmark: Path
) -> None:
    """No public set to mount: ``infra_error`` (refunded), and the model never runs on the hidden set."""
    settings = make_settings(tmp_path, sqlite_url, benchmark_dir=private_only_benchmark)
    with running_api(settings) as api:
        alice = f.member_token(api.db)
        make_phase(api, "dev", -HOUR, HOUR, test_set="public")
        dev_run = _submit(api, alice, tmp_path / "d.tar", "dev-run")
        runner = FakeRunner()
        assert Worker(api.settings, api.db, runner).run_once()
        with api.db.transaction(write=False) as session:
            sub = session.get(Submission, dev_run)
            assert sub is not None
            assert (sub.status.value, sub.error_code, sub.failed_phase) == ("failed", "infra_error", "hidden")
            assert "no public labels" in (sub.error_detail or "")
        assert [spec.phase for spec in runner.started] == ["preflight"]  # synthetic images only
        assert f.ledger(api.db, dev_run) == ["charge", "refund"]


def test_a_benchmark_without_public_labels_cannot_score_a_development_run(
    tmp_path: Path, synthetic_benchmark: Path
) -> None:
    evaluation = EvaluationSet.prepare(synthetic_benchmark, tmp_path, 4)
    assert evaluation.scored_on("private") is evaluation
    public = evaluation.scored_on("public")
    assert public.private is evaluation.public and public.public is None
    assert public.hidden_input == evaluation.public_input and public.hidden_private_images == 0
    without = dataclasses.replace(evaluation, public=None, public_manifest_digest=None, public_input=None)
    with pytest.raises(NoPublicTestSet, match="no public labels"):
        without.scored_on("public")
    with pytest.raises(ValueError, match="test set must be one of"):
        evaluation.scored_on("training")
