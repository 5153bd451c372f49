"""A throwaway Docker Distribution registry for the tests: Debian's ``docker-registry serve`` on a
free loopback port, htpasswd (bcrypt) auth, storage in a temporary directory, access log captured.

`RegistryServer` also reads what happened from the outside: the blobs uploaded (from the access
log's ``PUT .../blobs/uploads/...?digest=`` lines) and their sizes in the filesystem store, so a
test can show that a layer the registry already holds is not sent again. `put_blob` and
`put_manifest` upload hand-made content (an index, a wrong platform) through the registry's own
API, for the checks that skopeo would never produce.
"""

from __future__ import annotations

import hashlib
import io
import json
import re
import shutil
import socket
import ssl
import subprocess
import tarfile
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import unquote

import httpx

from .registry_tokens import ISSUER, SERVICE, token_service

REGISTRY_BINARY = "docker-registry"
HTPASSWD_BINARY = "htpasswd"
_UPLOAD_DONE = re.compile(
    r'"PUT /v2/(?P<repo>[^ ]+)/blobs/uploads/[^ ]*digest=(?P<digest>[^ &"]+)[^ ]* HTTP/[\d.]+" 201'
)


def missing_binaries() -> list[str]:
    return [b for b in (REGISTRY_BINARY, HTPASSWD_BINARY) if shutil.which(b) is None]


def free_port() -> int:
    """A loopback port nothing listens on (just now)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass(frozen=True)
class RegistryServer:
    host: str  # 127.0.0.1:PORT
    username: str
    password: str
    storage: Path
    log_path: Path
    ca_file: Path | None = None  # the self-signed certificate when served over TLS

    @property
    def url(self) -> str:
        return f"{'https' if self.ca_file else 'http'}://{self.host}"

    def log_offset(self) -> int:
        return self.log_path.stat().st_size

    def uploaded_blobs(self, since: int = 0) -> list[str]:
        """Digests of the blob uploads completed after log offset `since`, in order."""
        with self.log_path.open("rb") as log:
            log.seek(since)
            text = log.read().decode(errors="replace")
        return [unquote(m["digest"]) for m in _UPLOAD_DONE.finditer(text)]

    def blob_size(self, digest: str) -> int:
        hexpart = digest.removeprefix("sha256:")
        return (
            (self.storage / "docker/registry/v2/blobs/sha256" / hexpart[:2] / hexpart / "data").stat().st_size
        )

    def _http(self) -> httpx.Client:
        return httpx.Client(
            base_url=self.url,
            auth=(self.username, self.password),
            verify=_verify(self.ca_file),
            timeout=30,
            trust_env=False,
        )

    def put_blob(self, repository: str, data: bytes) -> str:
        digest = "sha256:" + hashlib.sha256(data).hexdigest()
        with self._http() as http:
            start = http.post(f"/v2/{repository}/blobs/uploads/")
            start.raise_for_status()
            location = start.headers["location"]
            sep = "&" if "?" in location else "?"
            http.put(f"{location}{sep}digest={digest}", content=data).raise_for_status()
        return digest

    def put_manifest(self, repository: str, body: dict[str, object], media_type: str) -> str:
        raw = json.dumps(body).encode()
        digest = "sha256:" + hashlib.sha256(raw).hexdigest()
        with self._http() as http:
            http.put(
                f"/v2/{repository}/manifests/{digest}", content=raw, headers={"Content-Type": media_type}
            ).raise_for_status()
        return digest


def _verify(ca_file: Path | None) -> ssl.SSLContext | bool:
    return ssl.create_default_context(cafile=str(ca_file)) if ca_file else True


def _wait_ready(process: subprocess.Popen[bytes], url: str, log: Path, ca_file: Path | None) -> None:
    """Poll ``/v2/`` (bounded) until the registry answers; fail with its log if it exits."""
    verify = _verify(ca_file)
    for _ in range(200):
        if process.poll() is not None:
            raise RuntimeError(
                f"docker-registry exited with {process.returncode}:\n{log.read_text()[-3000:]}"
            )
        try:
            if httpx.get(url, timeout=1, trust_env=False, verify=verify).status_code == 401:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.05)
    raise RuntimeError(f"docker-registry did not answer on {url}:\n{log.read_text()[-3000:]}")


def _self_signed(root: Path) -> tuple[Path, Path]:
    """A certificate for 127.0.0.1 (and its key), made with the openssl CLI."""
    cert, key = root / "cert.pem", root / "key.pem"
    subprocess.run(
        [
            "openssl",
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "2",
            "-subj",
            "/CN=127.0.0.1",
            "-addext",
            "subjectAltName=IP:127.0.0.1",
            "-keyout",
            str(key),
            "-out",
            str(cert),
        ],
        check=True,
        capture_output=True,
    )
    return cert, key


@contextmanager
def registry_server(*, tls: bool = False, token_auth: bool = False) -> Iterator[RegistryServer]:
    """Start a registry with one user: htpasswd (Basic) auth, or a token service (Bearer,
    `registry_tokens`) when `token_auth`; over TLS with a self-signed certificate when `tls`.
    Stops it and deletes its storage afterwards."""
    root = Path(tempfile.mkdtemp(prefix="csawm-registry-"))
    with ExitStack() as cleanup:
        cleanup.callback(shutil.rmtree, root, ignore_errors=True)
        port = free_port()
        username, password = "csawm-test", uuid.uuid4().hex
        config: dict[str, Any] = {
            "version": 0.1,
            "log": {"level": "info", "formatter": "text", "accesslog": {"disabled": False}},
            "storage": {"filesystem": {"rootdirectory": str(root / "storage")}, "delete": {"enabled": True}},
            "http": {"addr": f"127.0.0.1:{port}", "secret": uuid.uuid4().hex},
        }
        if token_auth:
            tokens = cleanup.enter_context(token_service(root, username, password))
            config["auth"] = {
                "token": {
                    "realm": tokens.realm,
                    "service": SERVICE,
                    "issuer": ISSUER,
                    "rootcertbundle": str(tokens.cert),
                }
            }
        else:
            line = subprocess.run(
                [HTPASSWD_BINARY, "-nbB", username, password], check=True, capture_output=True, text=True
            ).stdout.strip()
            (root / "htpasswd").write_text(line + "\n")
            config["auth"] = {"htpasswd": {"realm": "csawm-test", "path": str(root / "htpasswd")}}
        ca_file = None
        if tls:
            ca_file, key = _self_signed(root)
            config["http"]["tls"] = {"certificate": str(ca_file), "key": str(key)}
        (root / "config.yml").write_text(json.dumps(config))  # JSON is YAML
        log = root / "registry.log"
        with log.open("wb") as out:
            process = subprocess.Popen(
                [REGISTRY_BINARY, "serve", str(root / "config.yml")], stdout=out, stderr=subprocess.STDOUT
            )
        cleanup.callback(_stop, process)
        server = RegistryServer(f"127.0.0.1:{port}", username, password, root / "storage", log, ca_file)
        _wait_ready(process, f"{server.url}/v2/", log, ca_file)
        yield server


def _stop(process: subprocess.Popen[bytes]) -> None:
    process.terminate()
    try:
        process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


# -- small multi-layer archives ---------------------------------------------------------------------


def _member(tf: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    info.mode = 0o644
    tf.addfile(info, io.BytesIO(data))


def layer_tar(files: dict[str, bytes]) -> bytes:
    """A layer: a tar of `files` (deterministic bytes, so equal contents give equal digests)."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.USTAR_FORMAT) as tf:
        for name, data in files.items():
            _member(tf, name, data)
    return buf.getvalue()


def write_layered_archive(
    path: Path, layers: list[bytes], *, arch: str = "amd64", tag: str = "m:latest"
) -> str:
    """A legacy ``docker save`` archive of one image with these layers; returns its image id."""
    diff_ids = ["sha256:" + hashlib.sha256(layer).hexdigest() for layer in layers]
    config = json.dumps(
        {
            "architecture": arch,
            "os": "linux",
            "config": {"User": "1000", "Cmd": ["/bin/true"]},
            "rootfs": {"type": "layers", "diff_ids": diff_ids},
        }
    ).encode()
    config_hex = hashlib.sha256(config).hexdigest()
    names = [f"{d.removeprefix('sha256:')}/layer.tar" for d in diff_ids]
    manifest = [{"Config": f"{config_hex}.json", "RepoTags": [tag], "Layers": names}]
    with tarfile.open(path, "w") as tf:
        _member(tf, f"{config_hex}.json", config)
        for name, layer in zip(names, layers, strict=True):
            _member(tf, name, layer)
        _member(tf, "manifest.json", json.dumps(manifest).encode())
    return f"sha256:{config_hex}"
