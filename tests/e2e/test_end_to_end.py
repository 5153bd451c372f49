"""CI end to end (issue 6, "Show"): a real `csawm serve` on a loopback port with its embedded worker
and the real Docker runner, on a small synthetic benchmark.

1. both reference models are trained briefly and built by ``csawm seed-baselines --no-wait``, which
   queues them as baselines of the system team;
2. the same two images, a constant model and a seeded random model are uploaded by a researcher
   through ``POST /api/v1/submissions`` (``docker save`` archives, streamed);
3. every run ends: the reference models ``succeeded`` with tau-b >= 0.5 on the synthetic private set
   (as submissions and as baselines), the constant model has ``null`` tau-b, the random model
   |tau-b| < 0.1;
4. the public leaderboard (no token) shows both baselines and the five expert rows.

Settings kept small for 2 CPU cores: 500 training images at 64x52, trained at 48x40 for 60 steps of
batch 16 (~2 min per model here; tau-b ~0.7 on this set).
"""

from __future__ import annotations

import io
import os
import subprocess
import sys
import tarfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from reference_models.build import image_id, plan_reference_image
from server.benchmark.synth import generate

pytestmark = [pytest.mark.docker, pytest.mark.slow, pytest.mark.timeout(1800)]

REPO_ROOT = Path(__file__).resolve().parents[2]
MODEL_PY = Path(__file__).with_name("images") / "model.py"
PYTHON_BASE = "csawm-base/python:bookworm"
TINY_REPOSITORY = f"csawm-e2e-{os.getpid()}"

N_TRAIN, N_PUBLIC, N_PRIVATE = 500, 32, 475
BENCH_RESOLUTION = "64x52"
STEPS, BATCH, TRAIN_SIZE = 60, 16, (48, 40)
RANDOM_SEED = "7"
RUN_DEADLINE_S = 1200  # bounded wait for all runs (the whole test takes ~7 min on 2 idle cores)


@dataclass(frozen=True)
class Server:
    url: str
    env: dict[str, str]
    researcher: str
    maintainer: str


def _csawm(env: dict[str, str], *args: str, timeout: float = 120) -> str:
    """Run the real console script (as `python -m server.cli.main`); return stdout, fail loudly."""
    result = subprocess.run(
        [sys.executable, "-m", "server.cli.main", *args],
        env=env,
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    assert result.returncode == 0, f"csawm {' '.join(args)} -> {result.returncode}\n{result.stderr[-4000:]}"
    return result.stdout


def _free_port() -> int:
    import socket

    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _build_tiny(behaviour: str, *args: str) -> str:
    """A model image FROM the python base whose CMD is ``model.py <behaviour> <args>``."""
    tag = f"{TINY_REPOSITORY}/{behaviour}:1"
    cmd = ", ".join(f'"{a}"' for a in ("python3", "/opt/model.py", behaviour, *args))
    dockerfile = f"FROM {PYTHON_BASE}\nCOPY model.py /opt/model.py\nUSER 1000\nCMD [{cmd}]\n"
    context = io.BytesIO()
    with tarfile.open(fileobj=context, mode="w") as tar:
        for name, data in (("Dockerfile", dockerfile.encode()), ("model.py", MODEL_PY.read_bytes())):
            info = tarfile.TarInfo(name)
            info.size, info.mode = len(data), 0o644
            tar.addfile(info, io.BytesIO(data))
    subprocess.run(
        ["docker", "build", "--network", "none", "-q", "-t", tag, "-"],
        input=context.getvalue(),
        capture_output=True,
        check=True,
    )
    return tag


def _save(tag: str, path: Path) -> Path:
    with path.open("wb") as out:
        subprocess.run(["docker", "save", tag], stdout=out, check=True)
    return path


def _upload(server: Server, archive: Path, name: str) -> int:
    def chunks() -> Iterator[bytes]:
        with archive.open("rb") as handle:
            while chunk := handle.read(1 << 20):
                yield chunk

    response = httpx.post(
        f"{server.url}/api/v1/submissions",
        params={"name": name},
        content=chunks(),
        headers={
            "Authorization": f"Bearer {server.researcher}",
            "Content-Type": "application/octet-stream",
            "Content-Length": str(archive.stat().st_size),
        },
        timeout=600,
    )
    assert response.status_code in (200, 201, 202), response.text
    return int(response.json()["id"])


def _wait_all(server: Server, ids: list[int]) -> dict[int, dict[str, Any]]:
    headers = {"Authorization": f"Bearer {server.maintainer}"}
    deadline = time.monotonic() + RUN_DEADLINE_S
    while True:
        subs = {i: httpx.get(f"{server.url}/api/v1/submissions/{i}", headers=headers).json() for i in ids}
        if all(s["status"] in ("succeeded", "failed", "cancelled") for s in subs.values()):
            return subs
        assert time.monotonic() < deadline, f"runs not finished in {RUN_DEADLINE_S} s: {subs}"
        time.sleep(2)


def _tau(sub: dict[str, Any]) -> float | None:
    assert sub["metrics"] is not None, f"{sub['name']} has no metrics: {sub}"
    value = sub["metrics"]["masking"]["kendall_tau_b"]["value"]
    return None if value is None else float(value)


@pytest.fixture(scope="module")
def benchmark(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("e2e") / "benchmark"
    height, width = (int(v) for v in BENCH_RESOLUTION.split("x"))
    generate(
        root, seed=0, n_train=N_TRAIN, n_public=N_PUBLIC, n_private=N_PRIVATE, resolution=(height, width)
    )
    return root


@pytest.fixture(scope="module")
def server(benchmark: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    data_dir = tmp_path_factory.mktemp("e2e-state")
    port = _free_port()
    env = {
        **os.environ,
        "CSAWM_DATA_DIR": str(data_dir),
        "CSAWM_BENCHMARK_DIR": str(benchmark),
        "CSAWM_HOST": "127.0.0.1",
        "CSAWM_PORT": str(port),
        "CSAWM_QUOTA_PER_DAY": "20",
        "CSAWM_QUOTA_PER_WEEK": "20",
        "CSAWM_QUOTA_ACTIVE": "20",
        "CSAWM_BOOTSTRAP_RESAMPLES": "200",
        "CSAWM_POLL_INTERVAL": "1",
    }
    env.pop("CSAWM_DATABASE_URL", None)
    _csawm(env, "db", "upgrade")
    _csawm(env, "admin", "create-team", "e2e-lab")
    researcher = _csawm(env, "admin", "create-user", "r@e2e.test", "--team", "e2e-lab").strip()
    maintainer = _csawm(env, "admin", "create-user", "m@e2e.test", "--role", "maintainer").strip()
    log = (data_dir / "serve.log").open("w")
    process = subprocess.Popen(
        [sys.executable, "-m", "server.cli.main", "serve"],
        env=env,
        cwd=REPO_ROOT,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(300):  # bounded: 30 s
            assert process.poll() is None, (data_dir / "serve.log").read_text()[-4000:]
            try:
                if httpx.get(f"{url}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            time.sleep(0.1)
        else:
            pytest.fail("csawm serve did not answer /healthz within 30 s")
        yield Server(url, env, researcher, maintainer)
    finally:
        process.terminate()
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        log.close()
        print((data_dir / "serve.log").read_text()[-3000:])


def test_reference_models_end_to_end(server: Server, benchmark: Path, tmp_path: Path) -> None:
    if image_id(PYTHON_BASE) is None:
        subprocess.run([str(REPO_ROOT / "scripts" / "build-base-images"), "python"], check=True)
    tiny = {"constant": _build_tiny("constant"), "random": _build_tiny("random", RANDOM_SEED)}
    try:
        # The trivial models first: the embedded worker runs them while the references train.
        ids = {
            name: _upload(server, _save(tag, tmp_path / f"{name}.tar"), name) for name, tag in tiny.items()
        }

        seed_args = (
            "seed-baselines",
            "--no-wait",
            "--steps", str(STEPS),
            "--batch-size", str(BATCH),
            "--resolution", f"{TRAIN_SIZE[0]}x{TRAIN_SIZE[1]}",
            "--train-data", str(benchmark),
        )  # fmt: skip
        seeded = _csawm(server.env, *seed_args, timeout=1200)
        baseline_ids = {line.split("\t")[1]: int(line.split("\t")[0]) for line in seeded.splitlines()}
        assert set(baseline_ids) == {"ResNet-34 one-hot", "ResNet-34 multi-hot"}

        # The same images, built by seed-baselines (reused, not retrained), through the upload API.
        tags = {
            kind: plan_reference_image(kind, benchmark, STEPS, TRAIN_SIZE, batch_size=BATCH).tag
            for kind in ("one-hot", "multi-hot")
        }
        assert all(image_id(tag) is not None for tag in tags.values()), tags
        for kind, tag in tags.items():
            archive = _save(tag, tmp_path / f"{kind}.tar")
            ids[kind] = _upload(server, archive, f"resnet34-{kind}")
            archive.unlink()

        subs = _wait_all(server, [*ids.values(), *baseline_ids.values()])
    finally:
        for tag in tiny.values():
            subprocess.run(["docker", "rmi", "-f", tag], capture_output=True, check=False)

    for sub in subs.values():
        assert sub["status"] == "succeeded", sub
    for sub_id in [ids["one-hot"], ids["multi-hot"], *baseline_ids.values()]:
        tau = _tau(subs[sub_id])
        assert tau is not None and tau >= 0.5, f"{subs[sub_id]['name']}: tau-b {tau}"
    assert all(subs[i]["baseline"] for i in baseline_ids.values())
    assert not any(subs[i]["baseline"] for i in ids.values())
    assert _tau(subs[ids["constant"]]) is None
    random_tau = _tau(subs[ids["random"]])
    assert random_tau is not None and abs(random_tau) < 0.1

    # Re-running seed-baselines trains nothing and queues nothing: same images, same baseline rows.
    again = _csawm(server.env, *seed_args, timeout=600)
    assert {line.split("\t")[1]: int(line.split("\t")[0]) for line in again.splitlines()} == baseline_ids

    board = httpx.get(f"{server.url}/api/v1/leaderboard").json()["rows"]
    baselines = {row["name"]: row for row in board if row["kind"] == "baseline"}
    assert set(baselines) == set(baseline_ids)
    for name, row in baselines.items():
        assert row["submission_id"] == baseline_ids[name]
        assert row["kendall_tau_b"]["value"] >= 0.5 and len(row["kendall_tau_b"]["ci95"]) == 2
    experts = [row for row in board if row["kind"] == "expert"]
    assert sorted(row["name"] for row in experts) == [f"Expert_{k}" for k in range(1, 6)]
    # Researcher submissions are not public until a maintainer approves them.
    assert not [row for row in board if row["kind"] == "submission"]
