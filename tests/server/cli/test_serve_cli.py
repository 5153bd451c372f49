"""``csawm serve`` as an operator runs it: tokens never reach its access log (issue 12)."""

from __future__ import annotations

from pathlib import Path

import httpx
from srvtest.served import served


def test_a_token_in_a_query_string_is_redacted_from_the_access_log_issue_12(tmp_path: Path) -> None:
    token = "csawm_" + "Zq9" * 14
    with served(tmp_path) as srv:
        assert httpx.get(f"{srv.url}/healthz", params={"token": token}).status_code == 200
        assert httpx.get(f"{srv.url}/api/v1/me", params={"t": token}).status_code == 401
    log = srv.log.read_text()
    assert "GET /healthz?token=[redacted]" in log, log[-2000:]
    assert token not in log
