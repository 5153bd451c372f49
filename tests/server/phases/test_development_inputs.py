"""Issue 19 item 2, played by the attacker on the real Docker engine: a development phase's hidden
run mounts the public images only.

The attacker's model lists every file under ``/input`` and hashes its bytes, and writes what it saw
into its hidden log (the one maintainers see, ``CSAWM_HIDDEN_LOGS=maintainers``). In a development
phase (``test_set: public``) it must see the public images and nothing of the private set, by name
or by content; in a private phase it still sees the private and the public images, as before. The
reproducibility record says what was mounted.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from phasetest import make_phase
from srvtest import factories as f
from srvtest import images
from srvtest.app import Api, make_settings, running_api

from runner.docker_backend import DockerRunner
from server.benchmark.dataset import Benchmark
from server.clock import utcnow
from server.models import Submission
from server.phases import service as phases
from server.worker.loop import Worker

pytestmark = [pytest.mark.docker, pytest.mark.timeout(400)]
HOUR = timedelta(hours=1)


@pytest.fixture(scope="module")
def survey_archives(
    docker_client: Any, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[dict[str, Path]]:
    """Two builds of the surveying model (two image digests: a team may not submit one twice)."""
    images.ensure_base(docker_client)
    folder = tmp_path_factory.mktemp("survey")
    tags = {which: images.build(docker_client, "survey", which) for which in ("private", "dev")}
    try:
        yield {which: images.save(tag, folder / f"{which}.tar") for which, tag in tags.items()}
    finally:
        for tag in tags.values():
            docker_client.images.remove(tag, force=True)


def _sha16(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()[:16]


def _submit(api: Api, token: str, archive: Path, name: str) -> int:
    r = api.client.post(
        "/api/v1/submissions", params={"name": name}, content=archive.read_bytes(), headers=f.auth(token)
    )
    assert r.status_code == 201, r.text
    return int(r.json()["id"])


def _seen(api: Api, sub_id: int) -> tuple[dict[str, str], dict[str, Any]]:
    """What the model printed it saw in its hidden run, and the run's reproducibility record."""
    with api.db.transaction(write=False) as session:
        sub = session.get(Submission, sub_id)
        assert sub is not None
        assert sub.status.value == "succeeded", (sub.error_code, sub.error_detail)
        log, record = sub.hidden_log_tail or "", dict(sub.reproducibility or {})
    (line,) = [line for line in log.splitlines() if line.startswith("survey ")]
    seen: dict[str, str] = json.loads(line.removeprefix("survey "))
    return seen, record


def test_a_development_run_sees_only_the_public_images(
    tmp_path: Path, sqlite_url: str, synthetic_benchmark: Path, survey_archives: dict[str, Path]
) -> None:
    bench = Benchmark.open(synthetic_benchmark)
    public, private = bench.read_public(), bench.read_private()
    assert public is not None and bench.public_images is not None
    public_files = {f"images/{n}": _sha16(bench.public_images / n) for n in public.filenames}
    private_files = {f"images/{n}": _sha16(bench.private_images / n) for n in private.filenames}
    settings = make_settings(
        tmp_path, sqlite_url, benchmark_dir=synthetic_benchmark, bootstrap_resamples=100,
        max_upload_bytes=1024**3,
    )  # fmt: skip
    with running_api(settings) as api:
        token = f.member_token(api.db)
        make_phase(api, "final", -3 * HOUR, HOUR)
        private_run = _submit(api, token, survey_archives["private"], "survey-private")
        with api.db.transaction() as session:
            phases.update(session, "final", {"closes_at": utcnow() - 2 * HOUR}, actor="test")
        make_phase(api, "dev", -HOUR, HOUR, test_set="public")
        dev_run = _submit(api, token, survey_archives["dev"], "survey-dev")
        worker = Worker(api.settings, api.db, DockerRunner())
        assert worker.run_once() and worker.run_once()
        dev_seen, dev_record = _seen(api, dev_run)
        private_seen, private_record = _seen(api, private_run)

    # the development run: the public images and their manifest, nothing else
    assert set(dev_seen) == {"manifest.csv", *public_files}
    assert {k: v for k, v in dev_seen.items() if k != "manifest.csv"} == public_files
    assert not set(dev_seen) & set(private_files)  # no private file name
    assert not set(dev_seen.values()) & set(private_files.values())  # no private image's bytes
    assert (dev_record["n_hidden_images"], dev_record["n_private_images"]) == (len(public_files), 0)
    assert dev_record["test_set"] == "public" and dev_record["public_manifest_sha256"] is None

    # the private phase's run, as before: every private image and every public one
    assert set(private_seen) == {"manifest.csv", *private_files, *public_files}
    assert {k: v for k, v in private_seen.items() if k != "manifest.csv"} == private_files | public_files
    assert (private_record["n_hidden_images"], private_record["n_private_images"]) == (
        len(private_files) + len(public_files), len(private_files)
    )  # fmt: skip
