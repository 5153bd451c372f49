"""Helpers of the phase tests: phases and scored runs written through the real services and models."""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

import numpy as np
from fastapi.testclient import TestClient
from sqlalchemy.orm import Session
from srvtest import factories as f
from srvtest.app import Api
from srvtest.web import web_login

from server.cli import client as cli
from server.clock import utcnow
from server.models import ReviewState, RunStatus, Submission
from server.phases import service as phases
from server.runs import reports
from server.scoring.report import ScoreReport

RESAMPLES = 400


def leaked(text: str, numbers: tuple[str, ...]) -> list[str]:
    """The `numbers` written in `text` as numbers: not inside a longer run of digits (a timestamp's
    microseconds "…23.62…" does not show the odds ratio 3.62)."""
    return [n for n in numbers if re.search(rf"(?<![0-9]){re.escape(n)}(?![0-9])", text)]


def make_phase(api: Api, name: str, opens: timedelta, closes: timedelta | None, **values: Any) -> None:
    """A phase whose window is relative to now (negative: in the past)."""
    now = utcnow()
    with api.db.transaction() as session:
        phases.create(
            session,
            {"name": name, "opens_at": now + opens, "closes_at": now + closes if closes is not None else None,
             **values},
            actor="test",
        )  # fmt: skip


def report(tau: float, amae: float, auc: float = 0.681234) -> dict[str, Any]:
    endpoint = {
        "auc": {"value": auc, "ci95": [auc - 0.0412, auc + 0.0412]},
        "odds_ratios": {"Q4": {"value": 3.618254, "ci95": [1.512345, 8.712349], "p_one_sided": 0.004219}},
    }
    return {
        "scorer_version": "2",
        "masking": {
            "kendall_tau_b": {"value": tau, "ci95": [tau - 0.0381, tau + 0.0381]},
            "amae": {"value": amae, "ci95": [amae - 2.1, amae + 2.1], "unit": "rank"},
            "levels": {
                "kendall_tau_b": {"value": tau - 0.01, "ci95": None},
                "confusion_matrix": [[3 if i == j else 1 for j in range(8)] for i in range(8)],
                "group_amae": {"1-2": 1.25, "3-4": 1.5, "5-6": 1.75, "7-8": 2.0},
            },
        },
        "clinical": {
            "population": "evaluated", "interval_cancer": endpoint, "large_invasive_cancer": endpoint,
            "composite": endpoint,
        },
        "experts": {f"Expert_{k}": {"kendall_tau_b": 0.6 + k / 100, "amae": 40.0 + k} for k in range(1, 6)},
    }  # fmt: skip


def scored(
    api: Api,
    team_id: int,
    name: str,
    phase: str,
    tau: float,
    amae: float,
    reps: np.ndarray | None = None,
    *,
    review: ReviewState = ReviewState.APPROVED,
    finished: datetime | None = None,
    status: RunStatus = RunStatus.SUCCEEDED,
    bootstrap: dict[str, Any] | None = None,
) -> int:
    """A scored run of `phase` with its report history and Ladder step, as the worker leaves it
    (`bootstrap`: the reproducibility record's bootstrap settings, by default seed 0 and the replicates'
    count)."""
    reps = reps if reps is not None else tau + np.random.default_rng(0).normal(0, 0.02, RESAMPLES)
    record = {
        "scorer_version": "2",
        "test_set_manifest_sha256": "a" * 64,
        "bootstrap": bootstrap if bootstrap is not None else {"resamples": int(reps.size), "seed": 0},
    }
    with api.db.transaction() as session:
        sub = Submission(
            team_id=team_id, name=name, phase=phase, image_digest=f"sha256:{name}", status=status,
            tau_replicates=reps.astype(np.float64).tobytes(), review_state=review, reproducibility=record,
            finished_at=finished or utcnow(),
        )  # fmt: skip
        session.add(sub)
        session.flush()
        if status == RunStatus.SUCCEEDED:
            record_score(session, sub, tau, amae, reps, reason=reports.SCORED)
        return sub.id


def record_score(
    session: Session, sub: Submission, tau: float, amae: float, reps: np.ndarray, *, reason: str
) -> None:
    """Store a report of `tau` and `amae` on `sub` the way the worker (reason ``scored``, which also
    decides the run's Ladder step) and ``csawm admin rescore`` (``rescored``) do."""
    reports.record(
        session, sub, ScoreReport(report(tau, amae), {"kendall_tau_b": reps}), reason=reason,
        test_set_sha256="a" * 64, seed=0, resamples=int(reps.size), predictions_sha256=None,
    )  # fmt: skip


def web(api: Api, token: str | None) -> TestClient:
    """A browser of its own (its own cookies) on the same app, logged in with `token`."""
    client = TestClient(api.client.app)
    if token is not None:
        web_login(client, token)
    return client


def cli_status(api: Api, token: str, sub_id: int) -> str:
    """What `csawm status` and `csawm submit --wait` print for the run (the same function)."""
    body = api.client.get(f"/api/v1/submissions/{sub_id}", headers=f.auth(token)).json()
    lines: list[str] = []
    original = cli.typer.echo
    cli.typer.echo = lambda message="", **_: lines.append(str(message))  # type: ignore[assignment,misc]
    try:
        cli._show_status(body, False)
    finally:
        cli.typer.echo = original  # type: ignore[assignment]
    return "\n".join(lines)


def surfaces(api: Api, sub_id: int, phase: str) -> dict[str, Callable[[str | None], str]]:
    """Every place a run's score could be read, as a function of the viewer's token (None: anonymous)."""

    def api_get(path: str, **params: Any) -> Callable[[str | None], str]:
        def get(token: str | None) -> str:
            headers = f.auth(token) if token else {}
            r = api.client.get(path, params=params, headers=headers)
            assert r.status_code in (200, 401, 404), (path, r.status_code, r.text)
            return r.text

        return get

    def web_get(path: str) -> Callable[[str | None], str]:
        def get(token: str | None) -> str:
            r = web(api, token).get(path)
            return r.text if r.status_code == 200 else ""

        return get

    def plots(token: str | None) -> str:
        client = web(api, token)
        out = []
        for name in ("confusion", "group-amae", "odds-ratios", "agreement", "strata"):
            r = client.get(f"/submissions/{sub_id}/plots/{name}.svg")
            out.append(f"{name}:{r.status_code}:{r.text if r.status_code == 200 else ''}")
        return "\n".join(out)

    return {
        "submission": api_get(f"/api/v1/submissions/{sub_id}"),
        "submission-list": api_get("/api/v1/submissions"),
        "reports": api_get(f"/api/v1/submissions/{sub_id}/reports"),
        "leaderboard": api_get("/api/v1/leaderboard"),
        "leaderboard-phase": api_get("/api/v1/leaderboard", phase=phase),
        "leaderboard-all-runs": api_get("/api/v1/leaderboard", best_per_team="false"),
        "leaderboard-clinical": api_get("/api/v1/leaderboard", view="clinical"),
        "leaderboard-strata": api_get("/api/v1/leaderboard", view="strata"),
        "board-page": web_get("/"),
        "board-page-phase": web_get(f"/?phase={phase}"),
        "board-page-strata": web_get(f"/?phase={phase}&view=strata"),
        "board-json": web_get("/leaderboard.json"),
        "board-csv": web_get(f"/leaderboard.csv?phase={phase}"),
        "board-plot": web_get("/plots/leaderboard-tau.svg"),
        "report-page": web_get(f"/submissions/{sub_id}"),
        "team-page": web_get("/teams/alpha"),
        "report-plots": plots,
        "cli-status": lambda token: cli_status(api, token, sub_id) if token else "",
    }
