"""Settings and a running app for one test."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fastapi.testclient import TestClient

from server.app import create_app
from server.core.db import Database
from server.core.settings import Settings, load_settings

#: ``CSAWM_METRICS_TOKEN`` of every test app (`make_settings`): the operator's view of /metrics.
METRICS_TOKEN = "metrics-" + "0123456789abcdef" * 3


def make_settings(tmp_path: Path, db_url: str, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "data_dir": tmp_path / "state",
        "database_url": db_url,
        "embedded_worker": False,
        "embedded_dispatcher": False,  # tests/server/notifications drive the dispatcher themselves
        "max_upload_bytes": 1024**2,
        "retry_backoff": 0,  # retries are leased at once (the policy's backoff is tested on its own)
        "metrics_token": METRICS_TOKEN,
    }
    values.update(overrides)
    return load_settings(**values)


@dataclass
class Api:
    client: TestClient
    settings: Settings

    @property
    def db(self) -> Database:
        db: Database = self.client.app.state.csawm.db  # type: ignore[attr-defined]
        return db


def open_api(settings: Settings, **app_kwargs: Any) -> Iterator[Api]:
    """Start the app (lifespan: migrations, optional worker) and yield its client."""
    app_kwargs.setdefault("migrate_on_start", True)
    app = create_app(settings, **app_kwargs)
    with TestClient(app) as client:
        yield Api(client=client, settings=settings)


def operator_metrics(api: Api) -> str:
    """``/metrics`` as the operator's scraper reads it (with ``CSAWM_METRICS_TOKEN``)."""
    response = api.client.get("/metrics", headers={"Authorization": f"Bearer {METRICS_TOKEN}"})
    assert response.status_code == 200, response.text
    return response.text


running_api = contextmanager(open_api)
"""``with running_api(settings) as api:`` — `open_api` as a context manager."""
