"""Re-scoring stored runs (issue 14 item 5): a scorer-version bump changes only what the new version
changes; the previous report is kept; every re-score is audited; the CLI and the reports API."""

from __future__ import annotations

import copy
import dataclasses
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from srvtest import factories as f
from srvtest.app import Api, make_settings, open_api
from srvtest.archives import write_archive
from srvtest.fakes import FakeRunner
from typer.testing import CliRunner

from server.accounts import service as accounts
from server.cli.main import app as cli
from server.models import AuditEntry, Submission, SubmissionReport
from server.runs.rescore import rescore
from server.scoring.report import SCORER_VERSION
from server.worker.evaluation import EvaluationSet
from server.worker.loop import Worker
from server.worker.stages import score_report


@pytest.fixture
def wapi(tmp_path: Path, sqlite_url: str, synthetic_benchmark: Path) -> Iterator[Api]:
    settings = make_settings(tmp_path, sqlite_url, benchmark_dir=synthetic_benchmark, bootstrap_resamples=100)
    yield from open_api(settings)


def _scored_runs(api: Api, tmp_path: Path, n: int) -> list[int]:
    f.team(api.db, "alpha")
    with api.db.transaction() as session:
        accounts.set_quota(
            session, "alpha", {"active": n, "per_day": n, "per_week": n, "total": n}, actor="t"
        )
    token = f.user(api.db, "a@x.org", team="alpha")
    ids = []
    for i in range(n):
        path = tmp_path / f"m{i}.tar"
        write_archive(path, seed=f"rescore-{i}")
        r = api.client.post(
            "/api/v1/submissions", params={"name": f"m{i}"}, content=path.read_bytes(), headers=f.auth(token)
        )
        assert r.status_code == 201, r.text
        ids.append(r.json()["id"])
    worker = Worker(api.settings, api.db, FakeRunner())
    while worker.run_once():
        pass
    return ids


class _NextVersion:
    """The current scorer plus one new field and a new version: what a scorer bump looks like."""

    def __call__(self, *args: Any) -> Any:
        report = score_report(*args)
        data = {**copy.deepcopy(report.data), "scorer_version": "next"}
        data["masking"]["new_in_next"] = {"value": 1.0}
        return dataclasses.replace(report, data=data)


def _metrics(api: Api, ids: list[int]) -> dict[int, dict[str, Any]]:
    with api.db.transaction(write=False) as session:
        from sqlalchemy.orm import undefer

        rows = session.query(Submission).options(undefer(Submission.metrics)).filter(Submission.id.in_(ids))
        return {s.id: copy.deepcopy(s.metrics) for s in rows}


def _clone(api: Api, sub_id: int, n: int) -> list[int]:
    """`n` more succeeded runs with the same stored predictions and first report (fast setup)."""
    from sqlalchemy import inspect
    from sqlalchemy.orm import undefer

    with api.db.transaction() as session:
        sub = session.query(Submission).options(undefer("*")).filter_by(id=sub_id).one()
        report = session.query(SubmissionReport).options(undefer("*")).filter_by(submission_id=sub_id).one()
        columns = [c.key for c in inspect(Submission).mapper.column_attrs if c.key != "id"]
        clones = []
        for i in range(n):
            clone = Submission(**{c: getattr(sub, c) for c in columns})
            clone.image_digest = f"sha256:{i:064x}"
            session.add(clone)
            clones.append(clone)
        session.flush()
        for clone in clones:
            session.add(SubmissionReport(
                submission_id=clone.id, reason="scored", scorer_version=report.scorer_version,
                test_set_sha256=report.test_set_sha256, bootstrap_seed=report.bootstrap_seed,
                bootstrap_resamples=report.bootstrap_resamples, predictions_sha256=report.predictions_sha256,
                metrics=report.metrics,
            ))  # fmt: skip
        return [sub_id, *(c.id for c in clones)]


def test_rescoring_after_a_version_bump_changes_only_the_new_parts(wapi: Api, tmp_path: Path) -> None:
    (first,) = _scored_runs(wapi, tmp_path, 1)
    ids = _clone(wapi, first, 99)
    before = _metrics(wapi, ids)
    evaluation = EvaluationSet.prepare(wapi.settings.benchmark_dir, wapi.settings.data_dir, 4)  # type: ignore[arg-type]
    result = rescore(wapi.db, wapi.settings, evaluation, None, actor="test", scorer=_NextVersion())
    assert sorted(result.done) == sorted(ids) and result.skipped == {}
    after = _metrics(wapi, ids)
    for sub_id in ids:
        old, new = before[sub_id], after[sub_id]
        assert new["scorer_version"] == "next" and new["masking"].pop("new_in_next") == {"value": 1.0}
        new["scorer_version"] = old["scorer_version"]
        assert new == old  # same predictions, same seed: nothing else moved
    with wapi.db.transaction(write=False) as session:
        assert session.query(SubmissionReport).count() == 200
        audits = session.query(AuditEntry).filter_by(action="rescore").all()
        assert len(audits) == 100 and all(a.detail["scorer_version"][1] for a in audits)  # type: ignore[index]
        repro = session.get(Submission, ids[0]).reproducibility  # type: ignore[union-attr]
        assert repro["test_set_manifest_sha256"] == evaluation.manifest_digest


def test_reports_api_lists_every_scoring(wapi: Api, tmp_path: Path) -> None:
    (sub_id,) = _scored_runs(wapi, tmp_path, 1)
    evaluation = EvaluationSet.prepare(wapi.settings.benchmark_dir, wapi.settings.data_dir, 4)  # type: ignore[arg-type]
    rescore(wapi.db, wapi.settings, evaluation, [sub_id, 999], actor="test", scorer=_NextVersion())
    token = f.user(wapi.db, "b@x.org", team="alpha")
    reports = wapi.client.get(f"/api/v1/submissions/{sub_id}/reports", headers=f.auth(token)).json()
    assert [(r["reason"], r["current"]) for r in reports] == [("scored", False), ("rescored", True)]
    assert (
        reports[1]["scorer_version"] == "next" and reports[0]["test_set_sha256"] == evaluation.manifest_digest
    )
    other = f.user(wapi.db, "c@y.org", team=f.team(wapi.db, "beta") and "beta")
    assert wapi.client.get(f"/api/v1/submissions/{sub_id}/reports", headers=f.auth(other)).status_code == 404


def test_cli_rescore(wapi: Api, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    ids = _scored_runs(wapi, tmp_path, 2)
    s = wapi.settings
    for key in list(os.environ):
        if key.startswith("CSAWM_"):
            monkeypatch.delenv(key)
    env = {
        "CSAWM_DATA_DIR": str(s.data_dir),
        "CSAWM_DATABASE_URL": s.effective_database_url,
        "CSAWM_BENCHMARK_DIR": str(s.benchmark_dir),
        "CSAWM_BOOTSTRAP_RESAMPLES": "100",
    }
    result = CliRunner().invoke(cli, ["admin", "rescore", str(ids[0])], env=env)
    assert result.exit_code == 0, result.output
    assert "re-scored 1 runs" in result.output
    result = CliRunner().invoke(cli, ["admin", "rescore", "--all"], env=env)
    assert result.exit_code == 0 and "re-scored 2 runs" in result.output
    assert CliRunner().invoke(cli, ["admin", "rescore"], env=env).exit_code == 2
    with wapi.db.transaction(write=False) as session:
        assert session.query(SubmissionReport).filter_by(submission_id=ids[0]).count() == 3


def test_rescoring_a_run_whose_record_predates_fields_keeps_its_keys_and_digest(
    wapi: Api, tmp_path: Path
) -> None:
    """A record written before `predictions_sha256` (or with a key this code does not know) is
    re-scored through the one scoring step: the history row still names the stored predictions, the
    record gains only what the scoring decides, and the unknown key is kept as it was."""
    (sub_id,) = _scored_runs(wapi, tmp_path, 1)
    settings = wapi.settings
    old = {"test_set": "private", "scorer_version": "1", "from_an_older_server": {"kept": True}}
    with wapi.db.transaction() as session:
        sub = session.get(Submission, sub_id)
        assert sub is not None
        sub.reproducibility, sha = old, sub.predictions_sha256
    evaluation = EvaluationSet.prepare(wapi.settings.benchmark_dir, wapi.settings.data_dir, 4)  # type: ignore[arg-type]
    result = rescore(wapi.db, wapi.settings, evaluation, [sub_id], actor="test", scorer=_NextVersion())
    assert result.done == [sub_id]
    with wapi.db.transaction(write=False) as session:
        sub = session.get(Submission, sub_id)
        assert sub is not None
        assert sub.reproducibility == {
            **old,
            "scorer_version": SCORER_VERSION,  # the record names the scorer's code, the report its output
            "test_set_manifest_sha256": evaluation.manifest_digest,
            "public_manifest_sha256": evaluation.public_manifest_digest,
            "bootstrap": {"resamples": settings.bootstrap_resamples, "seed": settings.bootstrap_seed},
        }
        newest = session.query(SubmissionReport).filter_by(submission_id=sub_id, reason="rescored").one()
        assert newest.predictions_sha256 == sha and newest.scorer_version == "next"


def _as_version_2(api: Api, ids: list[int]) -> None:
    """Make stored runs look as scorer version 2 left them: no strata, version "2" everywhere."""
    from sqlalchemy.orm import undefer

    def strip(metrics: dict[str, Any]) -> dict[str, Any]:
        old = {k: v for k, v in copy.deepcopy(metrics).items() if k not in ("strata", "strata_differences")}
        old["warnings"] = [w for w in old["warnings"] if not w.startswith("strata")]
        return {**old, "scorer_version": "2"}

    with api.db.transaction() as session:
        for sub in session.query(Submission).options(undefer("*")).filter(Submission.id.in_(ids)):
            sub.metrics = strip(sub.metrics)
            sub.reproducibility = {**sub.reproducibility, "scorer_version": "2"}
        for row in (
            session.query(SubmissionReport)
            .options(undefer("*"))
            .filter(SubmissionReport.submission_id.in_(ids))
        ):
            row.metrics, row.scorer_version = strip(row.metrics), "2"


def test_rescore_all_brings_stored_version_2_runs_to_3_on_the_same_resamples(
    wapi: Api, tmp_path: Path
) -> None:
    """Issue 21 item 3/4: ``rescore --all`` after the strata bump keeps every version-2 figure (same
    predictions, seed and resamples), adds the strata under ``CSAWM_MIN_STRATUM``, and leaves the
    runs on one pairing basis again, so tie tests and the Ladder compare them."""
    from server.scoring.results import RunRecord
    from server.worker.stages import scorer_for
    from tests.scoring.schema import valid_report

    ids = _scored_runs(wapi, tmp_path, 2)
    _as_version_2(wapi, ids)
    before = _metrics(wapi, ids)
    for data in before.values():
        valid_report(data)  # a stored version-2 report stays valid
    settings = wapi.settings.model_copy(update={"min_stratum": 12})
    evaluation = EvaluationSet.prepare(settings.benchmark_dir, settings.data_dir, 4)  # type: ignore[arg-type]
    result = rescore(wapi.db, settings, evaluation, None, actor="test", scorer=scorer_for(settings))
    assert sorted(result.done) == ids
    after = _metrics(wapi, ids)
    for sub_id in ids:
        new = valid_report(after[sub_id])
        assert new["scorer_version"] == "3"
        strata, differences = new.pop("strata"), new.pop("strata_differences")
        new["warnings"] = [w for w in new["warnings"] if not w.startswith("strata")]
        assert {**new, "scorer_version": "2"} == before[sub_id]  # every v2 figure, intervals included
        assert strata["laterality_L"]["n"] + strata["laterality_R"]["n"] == new["n_images"]
        assert strata["density_q1"]["n"] < 30 and strata["density_q1"]["kendall_tau_b"] is not None
        for entry in strata.values():  # the setting's minimum, not the default's, was applied
            if entry["n"] < 12:
                assert entry["kendall_tau_b"] is None and "fewer than the minimum of 12" in entry["reason"]
        assert set(differences) >= {"laterality_L_minus_laterality_R", "cancer_minus_no_cancer"}
    with wapi.db.transaction(write=False) as session:
        records = [RunRecord.read(session.get(Submission, i).reproducibility) for i in ids]  # type: ignore[union-attr]
    bases = [r.pairing() for r in records]
    assert bases[0] == bases[1] and bases[0].scorer_version == "3" and bases[0].missing() == []
