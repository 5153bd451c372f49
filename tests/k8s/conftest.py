"""Fixtures for the Kubernetes layers (see k8s/README.md, "What each test layer proves").

``fake_cluster``: a fresh `FakeCluster` (kmock on 127.0.0.1 + fake controllers) per test.
``make_runner``: a factory for the real `KubernetesRunner` on the real official client, pointed at
it, with short watch, backoff and grace periods so scenario tests finish in seconds.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
from kubernetes import client

from runner.kubernetes.executor import KubernetesRunner, Progress
from tests.k8s.factories import fast_config
from tests.k8s.fake_cluster import FakeCluster


@pytest.fixture
def fake_cluster() -> Iterator[FakeCluster]:
    cluster = FakeCluster().start()
    try:
        yield cluster
    finally:
        cluster.stop()


@pytest.fixture
def make_runner(fake_cluster: FakeCluster) -> Iterator[Callable[..., KubernetesRunner]]:
    clients: list[client.ApiClient] = []

    def factory(progress: list[Progress] | None = None, **overrides: Any) -> KubernetesRunner:
        api = client.ApiClient(client.Configuration(host=fake_cluster.url))
        clients.append(api)
        return KubernetesRunner(
            fast_config(**overrides),
            api_client=api,
            on_progress=None if progress is None else progress.append,
        )

    yield factory
    for api in clients:
        api.close()  # type: ignore[no-untyped-call]
