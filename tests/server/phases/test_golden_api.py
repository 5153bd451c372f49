"""The golden API bodies (issue 20 item 1): the results' redesign does not change the JSON on the wire.

A server with four phase rows (a development phase on the public set, a sealed phase, a Ladder phase
and a private live phase) and runs scored by the real scorer and stored by the real writer
(`server.runs.reports.record`, as the worker does). The leaderboard (every view and phase), a run's
body and report history (as its researcher and as a maintainer), the submission list and the CSV and
JSON exports are compared with ``golden_api.json``, recorded before the redesign. Only what varies
from run to run is normalised: timestamps (the phase windows are relative to now).

``CSAWM_GOLDEN_UPDATE=1`` rewrites the file (only for a deliberate change of the wire).
"""

from __future__ import annotations

import json
import os
import re
from datetime import timedelta
from pathlib import Path
from typing import Any

import numpy as np
from phasetest import make_phase, web
from srvtest import factories as f
from srvtest.app import Api

from server.clock import utcnow
from server.models import ReviewState, Role, RunStatus, Submission, Team
from server.runs import reports
from server.scoring.report import score_report
from tests.scoring.factories import predictions, private_labels, public_labels

GOLDEN = Path(__file__).with_name("golden_api.json")
HOUR = timedelta(hours=1)
RESAMPLES = 60
PRIVATE, PRIVATE_LATENT = private_labels(120)
PUBLIC, PUBLIC_LATENT = public_labels(96)
NAMES = (*PRIVATE.filenames, *PUBLIC.filenames)
# ISO timestamps as the API and the CSV write them, with or without the "T", zone and fraction.
TIMESTAMP = re.compile(r"\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}(:\d{2}(\.\d+)?)?(Z|[+-]\d{2}:?\d{2})?")


def _run(api: Api, team: str, name: str, phase: str, noise_seed: int, *, test_set: str = "private") -> int:
    """A succeeded, approved run of `team` in `phase`, scored by the real scorer (public set for a
    development phase) and stored by the real writer with reason ``scored`` (its Ladder step too)."""
    rng = np.random.default_rng(noise_seed)
    latent = np.concatenate([PRIVATE_LATENT, PUBLIC_LATENT])
    score = latent + rng.normal(scale=0.5 + noise_seed / 10, size=latent.size)
    if test_set == "public":
        report = score_report(predictions(PUBLIC.filenames, score[len(PRIVATE_LATENT) :]), PUBLIC,
                              resamples=RESAMPLES)  # fmt: skip
    else:
        report = score_report(predictions(NAMES, score), PRIVATE, public_labels=PUBLIC, resamples=RESAMPLES)
    record = {
        "image_digest": f"sha256:{name}", "test_set": test_set, "test_set_manifest_sha256": "a" * 64,
        "public_manifest_sha256": "b" * 64, "predictions_sha256": "c" * 64, "scorer_version": "2",
        "runner_backend": "docker", "host": "h", "worker": "w", "attempt": 1, "retries": 0,
        "durations_s": {"hidden_s": 1.0, "scoring_s": 0.5}, "peak_memory_bytes": {"hidden": 1024},
        "bootstrap": {"resamples": RESAMPLES, "seed": 0}, "preflight_source": "public",
        "n_hidden_images": 216, "n_private_images": 120,
    }  # fmt: skip
    with api.db.transaction() as session:
        team_id = session.query(Team).filter_by(name=team).one().id
        sub = Submission(
            team_id=team_id, name=name, phase=phase, image_digest=f"sha256:{name}",
            status=RunStatus.SUCCEEDED, review_state=ReviewState.APPROVED, reproducibility=record,
            finished_at=utcnow(), predictions_sha256="c" * 64,
        )  # fmt: skip
        session.add(sub)
        session.flush()
        reports.record(session, sub, report, reason=reports.SCORED, test_set_sha256="a" * 64, seed=0,
                       resamples=RESAMPLES, predictions_sha256="c" * 64)  # fmt: skip
        return int(sub.id)


def _normalised(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _normalised(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_normalised(v) for v in value]
    if isinstance(value, str):
        return TIMESTAMP.sub("<ts>", value)
    return value


def _bodies(api: Api) -> dict[str, Any]:
    alice = f.member_token(api.db, "alpha", "a@x.org")
    bob = f.member_token(api.db, "beta", "b@x.org")
    maud = f.user(api.db, "m@x.org", role=Role.MAINTAINER)
    make_phase(api, "dev", -5 * HOUR, -4 * HOUR, test_set="public")
    make_phase(api, "sealed", -4 * HOUR, -3 * HOUR, visibility="sealed")
    make_phase(api, "ladder", -3 * HOUR, -2 * HOUR, ladder=True)
    make_phase(api, "live", -HOUR, HOUR)
    runs = {
        "dev-alpha": _run(api, "alpha", "dev-a", "dev", 1, test_set="public"),
        "sealed-alpha": _run(api, "alpha", "sealed-a", "sealed", 2),
        "sealed-beta": _run(api, "beta", "sealed-b", "sealed", 3),
        "ladder-alpha-1": _run(api, "alpha", "ladder-a1", "ladder", 4),
        "ladder-alpha-2": _run(api, "alpha", "ladder-a2", "ladder", 1),
        "ladder-beta": _run(api, "beta", "ladder-b", "ladder", 5),
        "live-alpha": _run(api, "alpha", "live-a", "live", 2),
        "live-beta": _run(api, "beta", "live-b", "live", 6),
    }
    out: dict[str, Any] = {}
    viewers = {"anonymous": None, "researcher": alice, "maintainer": maud}

    def get(path: str, token: str | None, **params: Any) -> Any:
        r = api.client.get(path, params=params, headers=f.auth(token) if token else {})
        assert r.status_code == 200, (path, r.status_code, r.text)
        return r.json()

    for phase in (None, "dev", "sealed", "ladder", "live"):
        for view in ("masking", "clinical"):
            for best in (True, False):
                params: dict[str, Any] = {"view": view, "best_per_team": str(best).lower()}
                if phase:
                    params["phase"] = phase
                key = f"leaderboard {phase or 'current'} {view} best={best}"
                out[key] = get("/api/v1/leaderboard", None, **params)
    for label, sub_id in runs.items():
        owner = alice if "alpha" in label else bob
        for viewer, token in (("researcher", owner), ("maintainer", maud)):
            out[f"submission {label} {viewer}"] = get(f"/api/v1/submissions/{sub_id}", token)
            out[f"reports {label} {viewer}"] = get(f"/api/v1/submissions/{sub_id}/reports", token)
    out["submission-list researcher"] = get("/api/v1/submissions", alice)
    out["submission-list maintainer"] = get("/api/v1/submissions", maud)
    for viewer, token in viewers.items():
        browser = web(api, token)
        for phase in ("dev", "sealed", "ladder", "live"):
            csv = browser.get("/leaderboard.csv", params={"phase": phase})
            assert csv.status_code == 200, csv.text
            out[f"csv {phase} {viewer}"] = csv.text.splitlines()
        out[f"board-json {viewer}"] = browser.get("/leaderboard.json").json()
    return _normalised(out)


def test_the_api_bodies_match_the_golden_file(sqlite_api: Api) -> None:
    bodies = _bodies(sqlite_api)
    if os.environ.get("CSAWM_GOLDEN_UPDATE") == "1":
        GOLDEN.write_text(json.dumps(bodies, indent=1, sort_keys=True, allow_nan=False) + "\n")
    golden = json.loads(GOLDEN.read_text())
    assert sorted(bodies) == sorted(golden)
    for key in golden:
        assert bodies[key] == golden[key], key
