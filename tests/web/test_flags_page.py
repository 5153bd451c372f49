"""The review console's flags section (issue 15 item 4): the evidence is shown to maintainers, escaped;
researchers get 403 and their pages never mention flags.

Its own seeded site (the `seed` of conftest.py, in a TestClient) with a planted copy: Beta's
approved run stores the very predictions of Alpha's, Gamma's run reuses Alpha's image digest, and
Alpha's pending run is given a tau-b far above Alpha's earlier best with a narrow CI (a jump), and
Alpha's failed run plus one more end ``infra_error`` (repeated infra errors, issue 19).
"""

from __future__ import annotations

import copy
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote

import numpy as np
import pytest
from fastapi.testclient import TestClient
from sqlalchemy.orm import undefer

from server.app import create_app
from server.benchmark.dataset import Benchmark
from server.core.security import hash_token
from server.core.settings import load_settings
from server.models import Submission, Team
from server.runs import store
from server.web.session import SESSION_COOKIE, SessionSigner

from .a11y import audit_html
from .conftest import RESAMPLES, seed

TEAM = '<b>Alpha & "Co"</b>'
RUN = "<script>alert(1)</script>"
FLAG_WORDS = ("flags-heading", "Review flags", "correlated", "Spearman", "flag-same_image", "sudden jump")


class Console:
    def __init__(
        self, client: TestClient, ids: dict[str, int], tokens: dict[str, str], best: float | None
    ) -> None:
        self.client, self.ids, self.tokens, self.best = client, ids, tokens, best
        signer = client.app.state.csawm.parts.get(SessionSigner)  # type: ignore[attr-defined]
        self.cookies = {
            who: signer.serializer.dumps({"t": hash_token(tokens[who]), "s": f"flags-{who}"})
            for who in ("alice", "maud")
        }

    def get(self, path: str, who: str) -> tuple[int, str]:
        self.client.cookies.clear()
        self.client.cookies.set(SESSION_COOKIE, self.cookies[who])
        response = self.client.get(path, follow_redirects=False)
        return response.status_code, response.text


@pytest.fixture(scope="module")
def console(synthetic_benchmark: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Console]:
    state = tmp_path_factory.mktemp("flags-web")
    settings = load_settings(
        data_dir=state,
        database_url=f"sqlite:///{state / 'csawm.db'}",
        embedded_worker=False,
        benchmark_dir=synthetic_benchmark,
        bootstrap_resamples=RESAMPLES,
    )
    app = create_app(settings, embedded_worker=False, migrate_on_start=True)
    with TestClient(app) as client:
        db = app.state.csawm.db
        bench = Benchmark.open(synthetic_benchmark)
        tokens, ids = seed(db, settings, bench)
        names = bench.read_private().filenames
        scores = np.random.default_rng(15).normal(size=len(names))
        body = "Filename;Final_score\n" + "".join(
            f"{n};{s!r}\n" for n, s in zip(names, scores.tolist(), strict=True)
        )
        sha = store.save(settings.data_dir, body.encode())
        with db.transaction() as session:
            original = session.get(Submission, ids["alpha_approved"])
            copied = session.get(Submission, ids["beta_approved"])
            reuse = session.get(Submission, ids["gamma_pending"])
            assert original is not None and copied is not None and reuse is not None
            original.predictions_sha256 = copied.predictions_sha256 = sha
            original.name = RUN
            reuse.image_digest = original.image_digest
            jump = session.get(Submission, ids["alpha_pending"], options=[undefer(Submission.metrics)])
            assert jump is not None and jump.metrics is not None
            metrics = copy.deepcopy(jump.metrics)
            metrics["masking"]["kendall_tau_b"] = {"value": 0.99, "ci95": [0.98, 0.995]}
            jump.metrics, jump.kendall_tau_b = metrics, 0.99
            best = original.kendall_tau_b
            team = session.get(Team, original.team_id)
            assert team is not None
            team.name = TEAM
            broken = session.get(Submission, ids["alpha_failed"])
            assert broken is not None
            broken.error_code = "infra_error"
            again = Submission(
                team_id=team.id, name="alpha-broken-again", phase=broken.phase, status=broken.status,
                image_digest="sha256:" + "e" * 64, error_code="infra_error", created_at=broken.created_at,
            )  # fmt: skip
            session.add(again)
        yield Console(client, ids, tokens, best)


def test_maintainers_see_the_flags_with_their_evidence_escaped(console: Console) -> None:
    status, html = console.get("/admin", "maud")
    assert status == 200
    section = html[html.index('id="flags-heading"') : html.index('id="approved-heading"')]
    assert "Review flags (4)" in section
    assert "2 runs ended <code>infra_error</code> (flagged from 2)" in section
    assert "Spearman ρ = 1.0000" in section and "byte-identical predictions" in section
    assert f"#{console.ids['alpha_approved']} &lt;script&gt;alert(1)&lt;/script&gt;" in section
    assert f"#{console.ids['beta_approved']} beta-vit" in section
    assert "&lt;b&gt;Alpha &amp; &#34;Co&#34;&lt;/b&gt;, Beta" in section
    assert "same image" in section and f"#{console.ids['gamma_pending']} gamma-effnet" in section
    assert console.best is not None and console.best < 0.99 - 3 * 0.015
    earlier = f"best earlier {console.best:.3f} (#{console.ids['alpha_approved']})"
    assert f"τ-b 0.990 − {earlier} = {0.99 - console.best:+.3f} &gt; 3 × CI width 0.015 = 0.045" in section
    assert RUN not in html and TEAM not in html
    assert audit_html(html) == []


def test_researchers_get_403_and_their_pages_never_mention_flags(console: Console) -> None:
    status, html = console.get("/admin", "alice")
    assert status == 403 and "flags-heading" not in html
    api = console.client.get(
        "/api/v1/admin/flags", headers={"Authorization": f"Bearer {console.tokens['alice']}"}
    )
    assert api.status_code == 403
    console.client.cookies.clear()
    assert console.client.get("/api/v1/admin/flags").status_code == 401
    pages = [f"/teams/{quote(TEAM, safe='')}", f"/submissions/{console.ids['alpha_approved']}", "/"]
    for path in pages:
        status, html = console.get(path, "alice")
        assert status == 200, path
        assert not [word for word in FLAG_WORDS if word in html], path
