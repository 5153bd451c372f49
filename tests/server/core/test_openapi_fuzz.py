"""Schemathesis against the whole API (issue 12): generated requests with a researcher's and an
admin's token, over real HTTP to the app served by uvicorn on loopback. Any 5xx, any response not
matching its documented schema, and any status the document does not list fails the test.

Bounded: `MAX_EXAMPLES` generated requests per operation (plus schemathesis's boundary cases, such
as integers of 2^63), each sent with both tokens; no shrinking and a fixed seed (derandomized), so
the run is the same every time and takes about 30 s of CPU.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)
from srvtest import factories as f
from srvtest.app import make_settings
from srvtest.live import live_server

from server.app import create_app
from server.core.settings import load_settings
from server.models import Role

MAX_EXAMPLES = 8
# Revoking a token would end the fuzzing identity itself; revocation has its own tests.
EXCLUDED = {("DELETE", "/api/v1/admin/tokens/{token_id}")}


@dataclass(frozen=True)
class Target:
    url: str
    tokens: dict[str, str]


@pytest.fixture(scope="module")
def target(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Target]:
    tmp: Path = tmp_path_factory.mktemp("fuzz")
    app_settings = make_settings(tmp, f"sqlite:///{tmp / 'state' / 'csawm.db'}", max_upload_bytes=256 * 1024)
    app = create_app(app_settings, migrate_on_start=True)
    with live_server(app) as url:
        db = app.state.csawm.db
        f.team(db, "alpha")
        tokens = {
            "researcher": f.user(db, "r@x.org", team="alpha"),
            "admin": f.user(db, "admin@x.org", role=Role.ADMIN),
        }
        yield Target(url, tokens)


def _document() -> dict[str, Any]:
    """The OpenAPI document, generated without starting the app (nothing is opened)."""
    app = create_app(load_settings(data_dir=Path("/nonexistent-csawm-fuzz"), embedded_worker=False))
    return app.openapi()


schema = schemathesis.openapi.from_dict(_document()).exclude(
    func=lambda ctx: (ctx.operation.method.upper(), ctx.operation.path) in EXCLUDED
)


FUZZ_SETTINGS = settings(
    max_examples=MAX_EXAMPLES,
    derandomize=True,
    deadline=None,
    phases=[Phase.explicit, Phase.generate],
    suppress_health_check=list(HealthCheck),
    database=None,
)
CHECKS = [not_a_server_error, response_schema_conformance, status_code_conformance, content_type_conformance]


@schema.parametrize()
@FUZZ_SETTINGS
def test_no_server_error_and_every_response_documented(case: Any, target: Target) -> None:
    """Each generated request is sent once with each token (one generation, two identities)."""
    for role in ("researcher", "admin"):
        headers = {"Authorization": f"Bearer {target.tokens[role]}"}
        case.call_and_validate(base_url=target.url, headers=headers, checks=CHECKS, timeout=30)
