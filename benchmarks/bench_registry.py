"""Registry benchmarks (issue 13): pushing accepted archives through the server, and layer reuse.

A throwaway Docker Distribution registry (Debian's ``docker-registry``, htpasswd auth, loopback;
the tests' fixture `tests/server/srvtest/registry.py`) and ``csawm serve`` as its own process with
``CSAWM_REGISTRY`` set. In one run:

1. ``skopeo copy`` alone: a 1 GiB archive (one layer of random bytes) copied to the registry with
   the very command line the server uses (`server.registry.push.skopeo_command`); wall time and
   skopeo's peak RSS (sampled every 20 ms).
2. the same size uploaded to the server **without** a registry (stream to disk + SHA-256 +
   inspection + queueing), then another 1 GiB archive **with** the registry (the same, plus the
   push and the read-back of its manifest and config); push throughput through the server =
   bytes / (time with - time without). RSS of the server process and, separately, of its
   children (skopeo), peak minus before. Each archive has its own random layer, so no push can
   reuse another's blob.
3. a second image sharing all but one layer with the image of step 2 (its 1 GiB layer plus a new
   64 KiB one), uploaded by the same team: bytes of the blobs the registry received, from its
   access log (completed ``PUT .../blobs/uploads/...?digest=``) and its blob store.

Usage: .venv/bin/python benchmarks/bench_registry.py [--gib 1]
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import io
import json
import os
import subprocess
import sys
import tarfile
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from benchmarks.bench_server import Server, _IterReader, rss_bytes, team_token  # noqa: E402
from server.registry.config import RegistryConfig  # noqa: E402
from server.registry.push import skopeo_command  # noqa: E402
from tests.server.srvtest.registry import RegistryServer, registry_server  # noqa: E402

CHUNK = 1024 * 1024


def write_random_layer(path: Path, size: int, seed: int) -> str:
    """A layer tar holding one file of `size` random bytes; returns its diff id."""
    rng = np.random.default_rng(seed)
    info = tarfile.TarInfo("weights.bin")
    info.size = size

    def chunks() -> Iterator[bytes]:
        left = size
        while left:
            n = min(16 * CHUNK, left)
            yield rng.integers(0, 256, n, dtype=np.uint8).tobytes()
            left -= n

    with path.open("wb") as raw, tarfile.open(fileobj=raw, mode="w") as tf:
        tf.addfile(info, _IterReader(chunks()))  # type: ignore[arg-type]
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        while block := fh.read(8 * CHUNK):
            digest.update(block)
    return "sha256:" + digest.hexdigest()


def write_archive(path: Path, layers: list[tuple[Path, str]], tag: str) -> None:
    """A legacy ``docker save`` archive of one image with these (layer file, diff id) layers."""
    config = json.dumps(
        {
            "architecture": "amd64",
            "os": "linux",
            "config": {"User": "1000", "Cmd": ["true"]},
            "rootfs": {"type": "layers", "diff_ids": [d for _, d in layers]},
        }
    ).encode()
    config_name = hashlib.sha256(config).hexdigest() + ".json"
    names = [f"{d.removeprefix('sha256:')}/layer.tar" for _, d in layers]
    manifest = json.dumps([{"Config": config_name, "RepoTags": [tag], "Layers": names}]).encode()
    with tarfile.open(path, "w") as tf:
        for name, data in ((config_name, config), ("manifest.json", manifest)):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))
        for (layer, _), name in zip(layers, names, strict=True):
            tf.add(layer, arcname=name)


def children_rss(pid: int) -> int:
    """RSS of every descendant of `pid` (skopeo under the server), summed."""
    total = 0
    pending = [pid]
    while pending:
        current = pending.pop()
        for task in Path(f"/proc/{current}/task").glob("*"):
            try:
                kids = [int(k) for k in (task / "children").read_text().split()]
            except OSError:
                continue
            for kid in kids:
                try:
                    total += rss_bytes(kid)
                except (OSError, RuntimeError):
                    continue
                pending.append(kid)
    return total


class Sampler:
    """Peak of `probe()` every 20 ms while running, minus its value at the start."""

    def __init__(self, probe: Callable[[], int]) -> None:
        self.probe, self.start_value, self.peak = probe, probe(), 0
        self.peak = self.start_value
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._done.wait(0.02):
            try:
                self.peak = max(self.peak, self.probe())
            except (OSError, RuntimeError):
                return

    def stop(self) -> int:
        self._done.set()
        self._thread.join()
        return self.peak - self.start_value


def upload(server: Server, token: str, archive: Path, name: str) -> tuple[float, dict[str, Any], int, int]:
    """POST the archive; (seconds, response JSON, server RSS growth, children's peak RSS)."""
    pid = server.proc.pid
    own, kids = Sampler(lambda: rss_bytes(pid)), Sampler(lambda: children_rss(pid))
    total = archive.stat().st_size

    def body() -> Iterator[bytes]:
        with archive.open("rb") as fh:
            while block := fh.read(CHUNK):
                yield block

    start = time.monotonic()
    response = httpx.post(
        f"{server.url}/api/v1/submissions",
        params={"name": name},
        content=body(),
        headers={"Authorization": f"Bearer {token}", "Content-Length": str(total)},
        timeout=1800,
    )
    elapsed = time.monotonic() - start
    growth, kids_peak = own.stop(), kids.stop() + kids.start_value
    if response.status_code != 201:
        raise RuntimeError(f"upload failed: {response.status_code} {response.text}")
    return elapsed, response.json(), growth, kids_peak


def skopeo_alone(archive: Path, registry: RegistryServer, work: Path) -> tuple[float, int]:
    config = RegistryConfig(registry.host, registry.username, registry.password, insecure=True)
    folder = Path(tempfile.mkdtemp(dir=work))
    command = skopeo_command(archive, "bench/alone:v1", config, folder, folder / "digest")
    env = {**os.environ, "TMPDIR": str(folder), "XDG_DATA_HOME": str(work / "skopeo-cache")}
    start = time.monotonic()
    proc = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    peak = 0
    while proc.poll() is None:
        with contextlib.suppress(OSError, RuntimeError):
            peak = max(peak, rss_bytes(proc.pid))
        time.sleep(0.02)
    elapsed = time.monotonic() - start
    if proc.returncode != 0:
        raise RuntimeError(f"skopeo failed: {proc.stderr.read().decode() if proc.stderr else ''}")
    return elapsed, peak


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--gib", type=float, default=1.0)
    args = parser.parse_args()
    size = int(args.gib * 1024**3)
    with tempfile.TemporaryDirectory(prefix="bench-registry-") as tmp, registry_server() as registry:
        root = Path(tmp)
        t0 = time.monotonic()
        layers = {}
        for seed, name in ((1, "alone"), (2, "plain"), (3, "pushed")):
            path = root / f"{name}.layer"
            layers[name] = (path, write_random_layer(path, size, seed))
        small = root / "small.layer"
        small_diff = write_random_layer(small, 64 * 1024, 4)
        archives = {name: root / f"{name}.tar" for name in ("alone", "plain", "pushed", "second")}
        for name in ("alone", "plain", "pushed"):
            write_archive(archives[name], [layers[name]], f"bench/{name}:v1")
        write_archive(archives["second"], [layers["pushed"], (small, small_diff)], "bench/second:v1")
        for path, _ in layers.values():
            path.unlink()
        print(f"  wrote 4 archives in {time.monotonic() - t0:.0f} s", file=sys.stderr)
        nbytes = archives["pushed"].stat().st_size

        alone_s, alone_rss = skopeo_alone(archives["alone"], registry, root)
        archives["alone"].unlink()

        common = {"CSAWM_MAX_UPLOAD_BYTES": str(4 * 1024**3), "CSAWM_EMBEDDED_WORKER": "false"}
        plain = Server(root / "plain-server", common)
        try:
            token = team_token(plain.db_url, "bench", per_day=100, active=100)
            plain_s, _, plain_growth, _ = upload(plain, token, archives["plain"], "plain")
        finally:
            plain.stop()
        archives["plain"].unlink()

        with_registry = {
            **common,
            "CSAWM_REGISTRY": registry.host,
            "CSAWM_REGISTRY_INSECURE": "true",
            "CSAWM_REGISTRY_USERNAME": registry.username,
            "CSAWM_REGISTRY_PASSWORD": registry.password,
        }
        server = Server(root / "registry-server", with_registry)
        try:
            token = team_token(server.db_url, "bench", per_day=100, active=100)
            pushed_s, pushed, pushed_growth, pushed_kids = upload(server, token, archives["pushed"], "pushed")
            offset = registry.log_offset()
            second_s, second, _, _ = upload(server, token, archives["second"], "second")
            blobs = registry.uploaded_blobs(offset)
        finally:
            server.stop()
        sent = sum(registry.blob_size(d) for d in blobs)
        second_total = archives["second"].stat().st_size

    push_s = pushed_s - plain_s
    rows = [
        ("archive size (bytes)", f"{nbytes:,}"),
        ("`skopeo copy` alone: seconds / MB/s", f"{alone_s:.1f} s / {nbytes / alone_s / 1e6:.0f} MB/s"),
        ("`skopeo copy` alone: peak RSS of skopeo", f"{alone_rss / 2**20:.0f} MB"),
        (
            "server upload, no registry: seconds / MB/s",
            f"{plain_s:.1f} s / {nbytes / plain_s / 1e6:.0f} MB/s",
        ),
        ("server upload + push: seconds / MB/s", f"{pushed_s:.1f} s / {nbytes / pushed_s / 1e6:.0f} MB/s"),
        (
            "push through the server (with - without): seconds / MB/s",
            f"{push_s:.1f} s / {nbytes / push_s / 1e6:.0f} MB/s",
        ),
        (
            "server RSS growth: no registry / with push",
            f"{plain_growth / 2**20:.1f} MB / {pushed_growth / 2**20:.1f} MB",
        ),
        ("peak RSS of the server's skopeo child", f"{pushed_kids / 2**20:.0f} MB"),
        ("second image (shares all but a 64 KiB layer): archive bytes", f"{second_total:,}"),
        ("second image: blobs uploaded / bytes uploaded", f"{len(blobs)} / {sent:,}"),
        ("second image: request seconds", f"{second_s:.1f} s"),
    ]
    print(json.dumps({"image_ref": pushed["image_ref"], "second_image_ref": second["image_ref"]}))
    print("| figure | value |\n| --- | --- |")
    for label, value in rows:
        print(f"| {label} | {value} |")


if __name__ == "__main__":
    main()
