"""One seeded site for the web tests: a real uvicorn on a loopback port, a temp SQLite database, no
embedded worker, and (for the `browser` tests) one headless Debian chromium shared by all of them.

Seeded through the services and models, with reports scored by `server.scoring.report.score_report`
on the `synthetic_benchmark` fixture (predictions = expert consensus + Gaussian noise, so a smaller
noise gives a better tau-b):

=====  ==================  ==============  =========================================
team   name                 state           purpose
=====  ==================  ==============  =========================================
CSAW   ResNet-34 one-hot    baseline        baseline row, forest-plot comparison
CSAW   ResNet-34 multi-hot  baseline        baseline row
Alpha  alpha-convnext       approved        on the board; Alpha's previous best
Alpha  alpha-v2             pending         review queue with a change vs previous best
Alpha  alpha-broken         failed          error and log tail on its report
Beta   beta-vit             approved        another team's report (Alice must get 404)
Gamma  gamma-effnet         pending         approved by the maintainer in a browser test
Beta   beta-queued          queued          active run in the console
=====  ==================  ==============  =========================================
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import numpy as np
import pytest
import uvicorn

from server.accounts import service as accounts
from server.app import create_app
from server.benchmark.dataset import Benchmark
from server.clock import utcnow
from server.core.db import Database
from server.core.settings import Settings, load_settings
from server.models import FailedPhase, ReviewState, Role, RunEvent, RunStatus, Submission, Team
from server.quota import service as quota
from server.scoring.predictions import Predictions
from server.scoring.report import SCORER_VERSION, score_report
from tests.scoring.schema import valid_report

from .helpers import Site

RESAMPLES = 200
URLS = {"alpha_approved": "https://example.org/project", "alpha_failed": "javascript:alert(1)"}
CARD = {"paper_url": "https://example.org/paper", "code_url": "https://example.org/code"}
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _predictions(bench: Benchmark, noise: float, seed: int) -> tuple[Predictions, Any, Any]:
    """Scores = mean expert position (private) or level (public) plus noise scaled to each set."""
    private, public = bench.read_private(), bench.read_public()
    assert public is not None and private.experts is not None and public.label is not None
    rng = np.random.default_rng(seed)
    consensus = np.nanmean(private.experts, axis=1)
    spread = float(np.nanstd(consensus))
    private_score = consensus + rng.normal(0.0, noise * spread, consensus.size)
    public_score = public.label + rng.normal(0.0, noise * float(np.std(public.label)), len(public))
    predictions = Predictions(
        filenames=(*private.filenames, *public.filenames),
        final_score=np.concatenate([private_score, public_score]).astype(np.float64),
        final_pred=None,
        probs=None,
    )
    return predictions, private, public


def _scored(sub: Submission, bench: Benchmark, noise: float, seed: int) -> None:
    predictions, private, public = _predictions(bench, noise, seed)
    report = score_report(predictions, private, public_labels=public, resamples=RESAMPLES, seed=0)
    valid_report(report.data)
    masking = report.data["masking"]
    sub.metrics = report.data
    sub.kendall_tau_b = masking["kendall_tau_b"]["value"]
    sub.amae = masking["amae"]["value"]
    sub.tau_replicates = np.asarray(report.replicates["kendall_tau_b"], dtype=np.float64).tobytes()
    sub.amae_replicates = np.asarray(report.replicates["amae"], dtype=np.float64).tobytes()
    sub.timings = {
        "queue_s": 2.5,
        "image_load_s": 1.5,
        "preflight_s": 4.2,
        "hidden_s": 61.3,
        "scoring_s": 0.4,
    }
    sub.runtime = {
        "phases": {
            "preflight": {
                "wall_s": 4.2,
                "container_s": 3.9,
                "cpu_s": 1.7,
                "gpu_s": None,
                "peak_memory_bytes": 71_000_000,
            },
            "hidden": {
                "wall_s": 61.3,
                "container_s": 60.8,
                "cpu_s": 97.25,
                "gpu_s": None,
                "peak_memory_bytes": 2_100_000_000,
            },
            "scoring": {"wall_s": 0.4},
        },
        "image_bytes": 31_457_280,
        "image_load_s": 1.5,
    }
    sub.reproducibility = {
        "image_digest": sub.image_digest,
        "test_set_manifest_sha256": "ab" * 32,
        "predictions_sha256": "c0ffee" + "0" * 58,
        "scorer_version": SCORER_VERSION,
        "runner_backend": "docker",
        "host": "worker-host-17",
        "worker": "csawm-worker-3",
        "attempt": 1,
        "durations_s": dict(sub.timings),
        "peak_memory_bytes": {"preflight": 71_000_000, "hidden": 2_100_000_000},
        "bootstrap": {"resamples": RESAMPLES, "seed": 0},
    }


def _digest(n: int) -> str:
    return "sha256:" + f"{n:02x}" * 32


def seed(db: Database, settings: Settings, bench: Benchmark) -> tuple[dict[str, str], dict[str, int]]:
    """Create the teams, users, tokens and submissions of the module docstring."""
    tokens: dict[str, str] = {}
    ids: dict[str, int] = {}
    now = utcnow()
    with db.transaction() as session:
        for team in ("CSAW-M authors", "Alpha", "Beta", "Gamma"):
            accounts.create_team(session, team, actor="test")
        for email, team_name, role in (
            ("alice@alpha.example", "Alpha", Role.RESEARCHER),
            ("bob@beta.example", "Beta", Role.RESEARCHER),
            ("maud@maintainers.example", None, Role.MAINTAINER),
        ):
            accounts.create_user(session, email, role=role, team_name=team_name, actor="test")
            _, tokens[email.split("@")[0]] = accounts.issue_token(
                session, email, expires_in=timedelta(days=1), actor="test"
            )
        teams = {t.name: t for t in session.query(Team)}
        ok, failed, queued = RunStatus.SUCCEEDED, RunStatus.FAILED, RunStatus.QUEUED
        approved, pending = ReviewState.APPROVED, ReviewState.PENDING
        authors = "CSAW-M authors"
        plan: list[tuple[str, str, str, RunStatus, ReviewState, float | None, bool]] = [
            ("one_hot", authors, "ResNet-34 one-hot", ok, approved, 0.9, True),
            ("multi_hot", authors, "ResNet-34 multi-hot", ok, approved, 0.8, True),
            ("alpha_approved", "Alpha", "alpha-convnext", ok, approved, 0.5, False),
            ("alpha_pending", "Alpha", "alpha-v2", ok, pending, 0.35, False),
            ("alpha_failed", "Alpha", "alpha-broken", failed, pending, None, False),
            ("beta_approved", "Beta", "beta-vit", ok, approved, 0.7, False),
            ("gamma_pending", "Gamma", "gamma-effnet", ok, pending, 0.3, False),
            ("beta_queued", "Beta", "beta-queued", queued, pending, None, False),
        ]
        for n, (key, team_name, name, status, review, noise, baseline) in enumerate(plan, start=1):
            created = now - timedelta(hours=30 - 3 * n)
            sub = Submission(
                team_id=teams[team_name].id,
                name=name,
                phase=settings.phase,
                baseline=baseline,
                image_digest=_digest(n),
                status=status,
                review_state=review,
                created_at=created,
                url=URLS.get(key),
                method_card=CARD if key == "alpha_approved" else None,
            )
            session.add(sub)
            session.flush()
            ids[key] = sub.id
            steps = [RunStatus.QUEUED]
            if status != RunStatus.QUEUED:
                steps += [RunStatus.PREFLIGHT]
            if status == RunStatus.SUCCEEDED:
                steps += [RunStatus.RUNNING, RunStatus.SCORING, RunStatus.SUCCEEDED]
            if status == RunStatus.FAILED:
                steps += [RunStatus.FAILED]
            previous: str | None = None
            for k, step in enumerate(steps):
                note = "submitted" if step == RunStatus.QUEUED else None
                session.add(
                    RunEvent(
                        submission_id=sub.id,
                        from_status=previous,
                        to_status=step.value,
                        at=created + timedelta(minutes=k),
                        note=note,
                    )
                )
                previous = step.value
            if status != RunStatus.QUEUED:
                sub.started_at = created + timedelta(minutes=1)
                sub.finished_at = created + timedelta(minutes=len(steps) - 1)
            if noise is not None:
                _scored(sub, bench, noise, seed=n)
            if status == RunStatus.FAILED:
                sub.error_code = "nonzero_exit"
                sub.failed_phase = FailedPhase.PREFLIGHT
                sub.error_message = "the model exited with code 1 during preflight"
                sub.log_tail = "Traceback (most recent call last):\nValueError: weights not found\n"
            if not baseline:
                quota.charge(session, teams[team_name], sub, settings)
    return tokens, ids


@pytest.fixture(scope="session")
def site(synthetic_benchmark: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    """The seeded server at ``http://127.0.0.1:PORT`` for the whole session."""
    state = tmp_path_factory.mktemp("web-site")
    settings = load_settings(
        data_dir=state,
        database_url=f"sqlite:///{state / 'csawm.db'}",
        embedded_worker=False,
        benchmark_dir=synthetic_benchmark,
        bootstrap_resamples=RESAMPLES,
        quota_per_day=5,
    )
    app = create_app(settings, embedded_worker=False, migrate_on_start=True)
    port = _free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 60
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("uvicorn did not start")
        time.sleep(0.05)
    try:
        db: Database = app.state.csawm.db
        tokens, ids = seed(db, settings, Benchmark.open(synthetic_benchmark))
        yield Site(url=f"http://127.0.0.1:{port}", db=db, settings=settings, tokens=tokens, ids=ids)
    finally:
        server.should_exit = True
        thread.join(timeout=30)


# -- browser ---------------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def browser() -> Iterator[Any]:
    """One headless Debian chromium for every browser test (the machine has two shared cores)."""
    from playwright.sync_api import sync_playwright

    if not CHROMIUM.exists():
        pytest.fail(f"{CHROMIUM} is missing: run scripts/install-system-deps (apt-get install chromium)")
    with sync_playwright() as pw:
        instance = pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            yield instance
        finally:
            instance.close()


@pytest.fixture
def open_page(browser: Any, site: Site) -> Iterator[Callable[[], Any]]:
    """Open pages, each in a fresh browser context (no cookies); every request of every page is
    recorded and, after the test, checked to have stayed on the test server's own origin."""
    contexts: list[Any] = []
    seen: list[str] = []

    def new_page() -> Any:
        context = browser.new_context(viewport={"width": 1400, "height": 900})
        context.on("request", lambda request: seen.append(request.url))
        contexts.append(context)
        tab = context.new_page()
        tab.set_default_timeout(20_000)
        return tab

    try:
        yield new_page
    finally:
        for context in contexts:
            context.close()
    own = urlsplit(site.url)
    foreign = [
        url
        for url in seen
        if not url.startswith(("data:", "about:"))
        and (urlsplit(url).hostname, urlsplit(url).port) != (own.hostname, own.port)
    ]
    site.requests.extend(seen)
    assert seen, "the browser made no request at all"
    assert not foreign, f"requests left the test server: {foreign}"


@pytest.fixture
def page(open_page: Callable[[], Any]) -> Any:
    """One monitored page (see `open_page`)."""
    return open_page()
