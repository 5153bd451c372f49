"""Runner overhead and archive-inspection throughput (issue 3, "Measure").

1. End-to-end time of `DockerRunner` (start, wait with sampling, safe output read, log tail,
   container removal) against a bare ``docker run --rm`` with the same sandbox flags
   (`runner.hardening.docker_run_flags`), for a trivial model on 475 small images; the two are
   alternated in the same run so machine noise hits both. Target: ratio of medians <= 1.2.
2. `inspect_archive` on a 1 GiB ``docker save``-layout archive, plain tar and tar.gz, each in a fresh
   child process: throughput (uncompressed bytes / wall time) and the child's peak RSS against a
   child that only imports the module. Target: >= 300 MB/s, flat memory.
3. ``--compare-runtimes`` (issue 12 item 7): `DockerRunner` end to end under runsc (gVisor) against
   runc, alternated in the same run, for the trivial model and for the ResNet-34 reference model
   (briefly trained, as tests/e2e does; reused when an image with the same key exists), each on 475
   synthetic CSAW-M images at the real 632x512. Reports the ratio of medians and the model's own
   run time (the engine's StartedAt -> FinishedAt) under each runtime.

Usage::

    .venv/bin/python benchmarks/bench_runner.py [--rounds 5] [--images 475] [--archive-mib 1024]
    .venv/bin/python benchmarks/bench_runner.py --skip-runner --skip-archive --compare-runtimes

Needs the Docker engine and the ``csawm-base/python:bookworm`` image (scripts/build-base-images);
``--compare-runtimes`` also ``csawm-base/torch:bookworm`` and runsc registered (scripts/ensure-docker).
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import io
import json
import os
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
import uuid
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

import docker
import requests
from PIL import Image

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from reference_models.build import build_reference_image  # noqa: E402
from runner.docker_backend import DockerRunner, handle_for, prepare_output_dir  # noqa: E402
from runner.errors import RunnerError  # noqa: E402
from runner.hardening import RUNTIMES, Runtime, docker_run_flags  # noqa: E402
from runner.io_contract import prepare_input  # noqa: E402
from runner.spec import RunLimits, RunResult, RunSpec, TerminalState  # noqa: E402
from server.benchmark.synth import generate  # noqa: E402

BASE = "csawm-base/python:bookworm"
MODEL = REPO / "tests" / "runner" / "images" / "models.py"


def build_trivial_image(client: docker.DockerClient) -> str:
    tag = f"csawm-bench-trivial:{os.getpid()}"
    buf = io.BytesIO()
    dockerfile = f'FROM {BASE}\nCOPY models.py /opt/models.py\nCMD ["python3", "/opt/models.py", "good"]\n'
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for name, data in (("Dockerfile", dockerfile.encode()), ("models.py", MODEL.read_bytes())):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    buf.seek(0)
    client.images.build(fileobj=buf, custom_context=True, tag=tag, network_mode="none", rm=True)
    return tag


def bench_runner(client: docker.DockerClient, rounds: int, n_images: int) -> dict[str, object]:
    tag = build_trivial_image(client)
    try:
        with tempfile.TemporaryDirectory(prefix="csawm-bench-") as tmp:
            work = Path(tmp)
            os.chmod(work, 0o755)
            src = work / "src"
            src.mkdir()
            paths = []
            for i in range(n_images):
                path = src / f"bench_{i:04d}.png"
                Image.new("L", (64, 52), color=i % 256).save(path)
                paths.append(path)
            prepare_input(work / "input", paths)
            limits = RunLimits(timeout=timedelta(seconds=120), memory_bytes=512 * 1024**2, cpus=1.0)
            runner = DockerRunner(client)
            t_runner: list[float] = []
            t_bare: list[float] = []
            for r in range(rounds):
                for kind in ("runner", "bare") if r % 2 == 0 else ("bare", "runner"):
                    spec = RunSpec(
                        run_id=f"bench-{uuid.uuid4().hex[:8]}",
                        image=tag,
                        input_dir=work / "input",
                        output_dir=work / f"out-{kind}-{r}",
                        limits=limits,
                    )
                    if kind == "runner":
                        t0 = time.perf_counter()
                        result = runner.wait(runner.start(spec), spec)
                        t_runner.append(time.perf_counter() - t0)
                        assert result.state is TerminalState.SUCCEEDED, result
                    else:
                        prepare_output_dir(spec.output_dir)
                        cmd = ["docker", "run", "--rm", *docker_run_flags(spec), tag]
                        t0 = time.perf_counter()
                        subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
                        t_bare.append(time.perf_counter() - t0)
                        assert (spec.output_dir / "predictions.csv").stat().st_size > 0
    finally:
        client.images.remove(tag, force=True)
    med_r, med_b = statistics.median(t_runner), statistics.median(t_bare)
    return {
        "images": n_images,
        "rounds": rounds,
        "runner_s": [round(t, 3) for t in t_runner],
        "bare_docker_run_s": [round(t, 3) for t in t_bare],
        "runner_median_s": round(med_r, 3),
        "bare_median_s": round(med_b, 3),
        "ratio": round(med_r / med_b, 3),
    }


# The e2e test's quick schedule (tests/e2e/test_end_to_end.py): the same key, so its image is reused.
REFERENCE_STEPS, REFERENCE_BATCH, REFERENCE_SIZE = 60, 16, (48, 40)


def reference_image(client: docker.DockerClient, work: Path, kind: str, existing: str | None) -> str:
    """A briefly trained reference image (or `existing`), tagged for this benchmark so that nobody
    removes it meanwhile."""
    tag = existing
    if tag is None:
        root = work / "train-benchmark"
        generate(root, seed=0, n_train=500, n_public=32, n_private=475, resolution=(64, 52))
        tag = build_reference_image(
            kind, root, steps=REFERENCE_STEPS, resolution=REFERENCE_SIZE, batch_size=REFERENCE_BATCH
        )
    own = f"csawm-bench-gvisor-{os.getpid()}/{kind}:1"
    client.images.get(tag).tag(own)
    return own


def _wait_for_engine(client: docker.DockerClient, limit_s: float = 300.0) -> None:
    deadline = time.monotonic() + limit_s
    while True:
        try:
            client.ping()
            return
        except (docker.errors.DockerException, requests.exceptions.RequestException):
            if time.monotonic() > deadline:
                raise
            time.sleep(2)


def _timed_run(
    client: docker.DockerClient, runtime: Runtime, make_spec: Callable[[], RunSpec], disrupted: list[str]
) -> tuple[float, RunResult]:
    """One `DockerRunner` run, start to result: (seconds, result). Redone (bounded) when the
    engine fails under it: other tests restart dockerd on a shared machine, and an interrupted run
    says nothing about the runtimes, so it is recorded in `disrupted`, never averaged in."""
    for _ in range(5):
        spec = make_spec()
        runner = DockerRunner(client, runtime=runtime)
        t0 = time.perf_counter()
        try:
            result = runner.wait(runner.start(spec), spec)
        except (RunnerError, docker.errors.DockerException, requests.exceptions.RequestException) as exc:
            disrupted.append(f"{runtime}: {exc}")
            _wait_for_engine(client)
            with contextlib.suppress(RunnerError):
                runner.cleanup(handle_for(spec))
            continue
        seconds = time.perf_counter() - t0
        assert result.state is TerminalState.SUCCEEDED, result
        return seconds, result
    raise SystemExit(f"five runs in a row were disrupted by the engine: {disrupted[-5:]}")


def bench_runtimes(
    client: docker.DockerClient, rounds: int, n_images: int, kind: str, existing: str | None
) -> dict[str, object]:
    """runsc vs runc: `DockerRunner` start -> result, alternated per round, for two models."""
    missing = set(RUNTIMES) - set(client.info().get("Runtimes") or {})
    if missing:
        raise SystemExit(f"the engine lacks the runtime(s) {sorted(missing)}: run scripts/ensure-docker")
    results: dict[str, object] = {}
    with tempfile.TemporaryDirectory(prefix="csawm-bench-rt-") as tmp:
        work = Path(tmp)
        os.chmod(work, 0o755)
        images: dict[str, str] = {}
        try:
            images["trivial"] = build_trivial_image(client)
            images["reference"] = reference_image(client, work, kind, existing)
            data = work / "test-benchmark"
            generate(data, seed=1, n_train=0, n_public=8, n_private=n_images, resolution=(632, 512))
            pngs = sorted((data / "images" / "preprocessed" / "private").glob("*.png"))
            prepare_input(work / "input", pngs)
            limits = RunLimits(timeout=timedelta(minutes=20), memory_bytes=4 * 1024**3, cpus=2.0)
            for model, tag in images.items():
                wall: dict[str, list[float]] = {rt: [] for rt in RUNTIMES}
                inside: dict[str, list[float]] = {rt: [] for rt in RUNTIMES}
                peak: dict[str, list[int]] = {rt: [] for rt in RUNTIMES}
                disrupted: list[str] = []
                for r in range(rounds):
                    for rt in RUNTIMES if r % 2 == 0 else tuple(reversed(RUNTIMES)):

                        def make_spec(tag: str = tag) -> RunSpec:
                            run_id = f"bench-{uuid.uuid4().hex[:8]}"
                            return RunSpec(
                                run_id=run_id,
                                image=tag,
                                input_dir=work / "input",
                                output_dir=work / f"out-{run_id}",
                                limits=limits,
                            )

                        seconds, result = _timed_run(client, rt, make_spec, disrupted)
                        wall[rt].append(seconds)
                        inside[rt].append(result.duration_s)
                        peak[rt].append(result.peak_memory_bytes or 0)
                med = {rt: statistics.median(wall[rt]) for rt in RUNTIMES}
                per_runtime = {
                    rt: {
                        "runs_s": [round(t, 3) for t in wall[rt]],
                        "median_s": round(med[rt], 3),
                        "container_median_s": round(statistics.median(inside[rt]), 3),
                        "peak_memory_mib": round(max(peak[rt]) / 1024**2),
                    }
                    for rt in RUNTIMES
                }
                results[model] = {
                    "images": len(pngs),
                    "rounds": rounds,
                    "disrupted_runs_redone": len(disrupted),
                    **per_runtime,
                    "ratio_runsc_over_runc": round(med["runsc"] / med["runc"], 3),
                }
        finally:
            _wait_for_engine(client)
            for tag in images.values():
                client.images.remove(tag, force=True)
    return results


def write_archive(path: Path, total_bytes: int, *, gz: bool) -> None:
    """A legacy-layout archive of one image whose layers hold `total_bytes` of incompressible data."""
    layer_bytes = 128 * 1024**2
    n_layers = max(1, total_bytes // layer_bytes)
    block = os.urandom(1024**2)  # repeated 1 MiB blocks: farther apart than deflate's 32 KiB window
    layer_ids = [hashlib.sha256(f"layer{i}".encode()).hexdigest() for i in range(n_layers)]
    config = json.dumps({"architecture": "amd64", "os": "linux", "config": {"User": "1000"}}).encode()
    digest = hashlib.sha256(config).hexdigest()

    class Blocks(io.RawIOBase):
        def __init__(self, size: int) -> None:
            self.left = size

        def readable(self) -> bool:
            return True

        def readinto(self, b: memoryview) -> int:  # type: ignore[override]
            n = min(len(b), self.left, len(block))
            b[:n] = block[:n]
            self.left -= n
            return n

    mode = "w:gz" if gz else "w"
    kwargs = {"compresslevel": 1} if gz else {}
    with tarfile.open(path, mode, **kwargs) as tar:  # type: ignore[call-overload]
        for name, data in ((f"{digest}.json", config),):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
        for lid in layer_ids:
            info = tarfile.TarInfo(f"{lid}/layer.tar")
            info.size = layer_bytes
            tar.addfile(info, io.BufferedReader(Blocks(layer_bytes), buffer_size=1024**2))
        manifest = json.dumps(
            [
                {
                    "Config": f"{digest}.json",
                    "RepoTags": ["bench:1"],
                    "Layers": [f"{i}/layer.tar" for i in layer_ids],
                }
            ]
        ).encode()
        info = tarfile.TarInfo("manifest.json")
        info.size = len(manifest)
        tar.addfile(info, io.BytesIO(manifest))


_CHILD = """
import json, resource, sys, time
from pathlib import Path
sys.path.insert(0, {repo!r})
from runner.imagetar import inspect_archive
t0, c0 = time.perf_counter(), time.process_time()
info = inspect_archive(Path({path!r})) if {run} else None
dt, cpu = time.perf_counter() - t0, time.process_time() - c0
rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
size = info.size_bytes if info else 0
print(json.dumps({{"seconds": dt, "cpu_seconds": cpu, "rss_kib": rss, "size": size}}))
"""


def _child(path: Path, run: bool) -> dict[str, float]:
    code = _CHILD.format(repo=str(REPO), path=str(path), run=run)
    out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True).stdout
    return json.loads(out)


def bench_archive(size_mib: int) -> dict[str, object]:
    results: dict[str, object] = {}
    with tempfile.TemporaryDirectory(prefix="csawm-bench-archive-") as tmp:
        for gz in (False, True):
            path = Path(tmp) / ("a.tar.gz" if gz else "a.tar")
            write_archive(path, size_mib * 1024**2, gz=gz)
            subprocess.run(["cat", str(path)], check=True, stdout=subprocess.DEVNULL)  # warm the page cache
            baseline = _child(path, run=False)
            run = _child(path, run=True)
            entry: dict[str, object] = {
                "archive_bytes": path.stat().st_size,
                "uncompressed_bytes": int(run["size"]),
                "seconds": round(run["seconds"], 3),
                "cpu_seconds": round(run["cpu_seconds"], 3),
                "throughput_mb_s": round(run["size"] / run["seconds"] / 1e6, 1),
                "throughput_mb_per_cpu_s": round(run["size"] / max(run["cpu_seconds"], 1e-6) / 1e6, 1),
                "peak_rss_mib": round(run["rss_kib"] / 1024, 1),
                "import_only_rss_mib": round(baseline["rss_kib"] / 1024, 1),
            }
            if gz:  # the C tool's speed on the same file: the ceiling for any gzip reader
                t0 = time.perf_counter()
                with subprocess.Popen(["gzip", "-dc", str(path)], stdout=subprocess.DEVNULL) as proc:
                    _, status, usage = os.wait4(proc.pid, 0)
                    proc.returncode = os.waitstatus_to_exitcode(status)
                wall = time.perf_counter() - t0
                cpu = usage.ru_utime + usage.ru_stime
                entry["gzip_dc_seconds"] = round(wall, 3)
                entry["gzip_dc_cpu_seconds"] = round(cpu, 3)
                entry["inspect_over_gzip_dc_cpu"] = round(run["cpu_seconds"] / cpu, 2)
            results["tar.gz" if gz else "tar"] = entry
            path.unlink()
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--images", type=int, default=475)
    parser.add_argument("--archive-mib", type=int, default=1024)
    parser.add_argument("--skip-runner", action="store_true")
    parser.add_argument("--skip-archive", action="store_true")
    parser.add_argument("--compare-runtimes", action="store_true", help="runsc vs runc (issue 12)")
    parser.add_argument("--reference-kind", default="one-hot", choices=["one-hot", "multi-hot"])
    parser.add_argument("--reference-image", help="an already built csawm-reference/<kind>:<key> to use")
    args = parser.parse_args()
    report: dict[str, object] = {}
    if not args.skip_runner:
        client = docker.from_env()
        report["runner_vs_bare_docker_run"] = bench_runner(client, args.rounds, args.images)
    if not args.skip_archive:
        report["archive_inspection"] = bench_archive(args.archive_mib)
    if args.compare_runtimes:
        client = docker.from_env()
        report["runsc_vs_runc"] = bench_runtimes(
            client, args.rounds, args.images, args.reference_kind, args.reference_image
        )
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
