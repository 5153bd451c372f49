"""Pushing an inspected ``docker save`` archive to the registry with Debian's ``skopeo``.

``skopeo copy docker-archive:FILE docker://HOST/REPO:TAG`` reads the archive directly (no engine),
compresses each layer, asks the registry whether it already holds that blob (``HEAD``) and uploads
only those it lacks, then writes the manifest; ``--digestfile`` hands the manifest digest back.
Skipping a known layer works because skopeo's blob-info cache remembers which compressed blob an
uncompressed layer became; the cache lives under ``XDG_DATA_HOME`` (set to a directory of the
server's data dir here, so it persists for a non-root server) or ``/var/lib/containers/cache`` when
the server runs as root.

Credentials go to skopeo in a private auth file, never on its command line (which other users of
the host can read); the signature policy is our own ``insecureAcceptAnything`` file (the archive has
just been inspected; the host's ``/etc/containers/policy.json`` plays no part).
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

from server.registry.config import RegistryConfig
from server.registry.errors import RegistryUnavailable
from server.registry.reference import ImageReference, check_digest

SKOPEO = "skopeo"
PUSH_TIMEOUT_S = 3600.0
_STDERR_TAIL = 2000


@dataclass(frozen=True)
class PushedImage:
    reference: ImageReference  # pinned by the manifest digest skopeo wrote
    tag: str


def _auth_file(config: RegistryConfig, folder: Path) -> Path:
    path = folder / "auth.json"
    auths: dict[str, dict[str, str]] = {}
    if config.has_credentials:
        pair = f"{config.username}:{config.password}".encode()
        auths[config.host] = {"auth": base64.b64encode(pair).decode()}
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as out:
        json.dump({"auths": auths}, out)
    return path


def skopeo_command(
    archive: Path, destination: str, config: RegistryConfig, folder: Path, digest_file: Path
) -> list[str]:
    """The ``skopeo copy`` command line (``folder`` holds its auth, policy and CA files)."""
    policy = folder / "policy.json"
    policy.write_text(json.dumps({"default": [{"type": "insecureAcceptAnything"}]}))
    command = [
        SKOPEO,
        "--policy",
        str(policy),
        "copy",
        "--quiet",
        "--dest-authfile",
        str(_auth_file(config, folder)),
        "--digestfile",
        str(digest_file),
    ]
    if config.insecure:
        command.append("--dest-tls-verify=false")
    elif config.ca_file is not None:
        certs = folder / "certs"
        certs.mkdir()
        shutil.copyfile(config.ca_file, certs / "ca.crt")  # skopeo trusts *.crt files of --dest-cert-dir
        command += ["--dest-cert-dir", str(certs)]
    return [*command, f"docker-archive:{archive}", f"docker://{config.host}/{destination}"]


def push_archive(
    archive: Path,
    repository: str,
    tag: str,
    config: RegistryConfig,
    *,
    work_dir: Path,
    timeout_s: float = PUSH_TIMEOUT_S,
) -> PushedImage:
    """Copy `archive` to ``{config.host}/{repository}:{tag}``; return its reference by digest.

    `work_dir` (on the same volume as the uploads) takes skopeo's temporary files and its blob-info
    cache. Raises `RegistryUnavailable` with skopeo's own message when the copy fails (registry down,
    credentials refused, TLS); the archive has been inspected already, so a failure here is never
    the submitter's fault.
    """
    if shutil.which(SKOPEO) is None:
        raise RegistryUnavailable("skopeo is not installed on the server (apt-get install skopeo)")
    cache = work_dir / "skopeo-cache"
    cache.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="push-", dir=work_dir) as tmp:
        folder = Path(tmp)
        digest_file = folder / "digest"
        command = skopeo_command(archive, f"{repository}:{tag}", config, folder, digest_file)
        env = {**os.environ, "TMPDIR": str(folder), "XDG_DATA_HOME": str(cache)}
        try:
            result = subprocess.run(command, env=env, capture_output=True, text=True, timeout=timeout_s)
        except subprocess.TimeoutExpired:
            raise RegistryUnavailable(
                f"push to {config.host} did not finish within {timeout_s:.0f} s"
            ) from None
        if result.returncode != 0:
            detail = result.stderr.strip()[-_STDERR_TAIL:] or f"exit code {result.returncode}"
            raise RegistryUnavailable(f"push to {config.host}/{repository} failed: {detail}")
        try:
            digest = check_digest(digest_file.read_text().strip())
        except (OSError, ValueError) as exc:
            raise RegistryUnavailable(f"skopeo wrote no manifest digest ({exc})") from None
    return PushedImage(reference=ImageReference(config.host, repository, digest), tag=tag)
