"""Images through a real registry (issue 13): Debian's ``docker-registry`` on loopback with htpasswd
auth, real ``skopeo`` pushes, checks through the distribution API. Every refusal leaves nothing
queued and nothing charged."""

from __future__ import annotations

import gzip
import hashlib
import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from srvtest import factories as f
from srvtest.app import Api, make_settings, open_api, running_api
from srvtest.archives import write_archive
from srvtest.registry import (
    RegistryServer,
    free_port,
    layer_tar,
    missing_binaries,
    registry_server,
    write_layered_archive,
)

from server.accounts import service as accounts
from server.models import QuotaEntry, Submission
from server.registry.client import OCI_INDEX, OCI_MANIFEST, RegistryClient
from server.registry.config import RegistryConfig
from server.registry.errors import RegistryDenied, RegistryUnavailable
from server.registry.push import push_archive

pytestmark = pytest.mark.skipif(
    bool(missing_binaries()), reason=f"needs {', '.join(missing_binaries())} (scripts/install-system-deps)"
)


@pytest.fixture(scope="module")
def registry() -> Iterator[RegistryServer]:
    with registry_server() as server:
        yield server


def _settings(tmp_path: Path, db_url: str, server: RegistryServer, **overrides: Any) -> Any:
    values: dict[str, Any] = {
        "registry": server.host,
        "registry_insecure": True,
        "registry_username": server.username,
        "registry_password": server.password,
    }
    values.update(overrides)
    return make_settings(tmp_path, db_url, **values)


def _config(registry: RegistryServer) -> RegistryConfig:
    return RegistryConfig(registry.host, registry.username, registry.password, insecure=True)


@pytest.fixture
def reg_api(tmp_path: Path, sqlite_url: str, registry: RegistryServer) -> Iterator[Api]:
    yield from open_api(_settings(tmp_path, sqlite_url, registry))


def _member(api: Api, team: str = "alpha", email: str = "a@x.org") -> str:
    f.team(api.db, team)
    with api.db.transaction() as session:
        accounts.set_quota(session, team, {"active": 5}, actor="test")
    return f.user(api.db, email, team=team)


def _counts(api: Api) -> tuple[int, int]:
    with api.db.transaction(write=False) as session:
        return session.query(Submission).count(), session.query(QuotaEntry).count()


def _leftover_files(api: Api) -> list[Path]:
    return [
        p
        for p in api.settings.data_dir.rglob("*")
        if p.is_file() and p.parent.name in ("uploads", "archives")
    ]


def _upload(api: Api, token: str, archive: Path, name: str = "m") -> Any:
    return api.client.post(
        "/api/v1/submissions", params={"name": name}, content=archive.read_bytes(), headers=f.auth(token)
    )


def _team_repo(api: Api, team: str = "alpha") -> str:
    from server.models import Team

    with api.db.transaction(write=False) as session:
        team_id = session.query(Team).filter_by(name=team).one().id
    return f"csawm/{team}-{team_id}"


# -- push on accept ---------------------------------------------------------------------------------


def test_accepted_archive_is_pushed_and_referenced_by_digest(
    tmp_path: Path, db_url: str, registry: RegistryServer
) -> None:
    """On SQLite and PostgreSQL: the archive is in the registry, by manifest digest, before the
    submission is queued and charged; the manifest's config is the inspected image id."""
    with running_api(_settings(tmp_path, db_url, registry)) as api:
        token = _member(api)
        image_id = write_archive(tmp_path / "m.tar", seed="push")
        response = _upload(api, token, tmp_path / "m.tar")
        assert response.status_code == 201, response.text
        body = response.json()
        repository = _team_repo(api)
        prefix = f"{registry.host}/{repository}@sha256:"
        assert body["image_ref"].startswith(prefix) and body["image_digest"] == image_id
        manifest_digest = body["image_ref"].split("@", 1)[1]
        with RegistryClient(_config(registry)) as client:
            manifest = client.manifest(repository, manifest_digest)
        assert manifest.body["config"]["digest"] == image_id
        assert _counts(api) == (1, 1)
        again = api.client.get(f"/api/v1/submissions/{body['id']}", headers=f.auth(token)).json()
        assert again["image_ref"] == body["image_ref"]


def test_push_failure_is_503_and_charges_nothing(
    tmp_path: Path, sqlite_url: str, registry: RegistryServer
) -> None:
    """Wrong credentials on the server's side: 503 with skopeo's reason, nothing queued or charged,
    the archive deleted."""
    with running_api(_settings(tmp_path, sqlite_url, registry, registry_password="wrong-password")) as api:
        token = _member(api)
        write_archive(tmp_path / "m.tar", seed="badcreds")
        response = _upload(api, token, tmp_path / "m.tar")
        assert response.status_code == 503, response.text
        error = response.json()["error"]
        assert error["code"] == "registry_unavailable"
        assert "unauthorized" in error["message"] and "nothing was charged" in error["message"]
        assert "wrong-password" not in error["message"]
        assert _counts(api) == (0, 0)
        assert _leftover_files(api) == []


def test_unreachable_registry_is_503(tmp_path: Path, sqlite_url: str, registry: RegistryServer) -> None:
    closed = f"127.0.0.1:{free_port()}"  # nothing listens there
    with running_api(_settings(tmp_path, sqlite_url, registry, registry=closed)) as api:
        token = _member(api)
        write_archive(tmp_path / "m.tar", seed="down")
        response = _upload(api, token, tmp_path / "m.tar")
        assert response.status_code == 503 and closed in response.json()["error"]["message"]
        ref = f"{closed}/models/x@sha256:" + "a" * 64
        checked = api.client.post(
            "/api/v1/submissions", json={"name": "r", "image": ref}, headers=f.auth(token)
        )
        assert checked.status_code == 503 and "could not check" in checked.json()["error"]["message"]
        assert _counts(api) == (0, 0)


def test_issue13_a_second_image_uploads_only_the_layer_it_does_not_share(
    reg_api: Api, registry: RegistryServer, tmp_path: Path
) -> None:
    """Two images sharing their two bottom layers: the second push sends one layer blob (and its
    config), not the shared ones; the registry's access log shows every completed blob upload."""
    token = _member(reg_api)
    shared = [layer_tar({f"base/{i}.bin": os.urandom(150_000)}) for i in range(2)]
    first = write_layered_archive(tmp_path / "a.tar", [*shared, layer_tar({"app/a.txt": b"first model\n"})])
    second = write_layered_archive(tmp_path / "b.tar", [*shared, layer_tar({"app/b.txt": b"second model\n"})])
    before = registry.log_offset()
    assert _upload(reg_api, token, tmp_path / "a.tar", "a").status_code == 201
    first_uploads = registry.uploaded_blobs(before)
    middle = registry.log_offset()
    response = _upload(reg_api, token, tmp_path / "b.tar", "b")
    assert response.status_code == 201, response.text
    second_uploads = registry.uploaded_blobs(middle)

    repository = _team_repo(reg_api)
    with RegistryClient(_config(registry)) as client:
        layers = [
            d["digest"]
            for d in client.manifest(repository, response.json()["image_ref"].split("@")[1]).body["layers"]
        ]
    assert len(first_uploads) == 4 and first in first_uploads  # three layers and the config
    assert set(layers[:2]) <= set(first_uploads)  # the shared layers came with the first image
    assert sorted(second_uploads) == sorted([layers[2], second])  # only the new layer and config
    shared_bytes = sum(registry.blob_size(d) for d in layers[:2])
    sent_bytes = sum(registry.blob_size(d) for d in second_uploads)
    assert shared_bytes > 100 * sent_bytes  # the 300 kB of shared random data was not sent again


# -- registry references ----------------------------------------------------------------------------


def _push_by_hand(
    registry: RegistryServer, repository: str, *, arch: str = "amd64", layer: bytes = b"layer"
) -> tuple[str, str, int]:
    """An image put together through the registry API (blob, config, OCI manifest): (manifest
    digest, config digest, manifest size). For shapes skopeo would not produce from an archive."""
    blob = gzip.compress(layer_tar({"app/x": layer}), mtime=0)
    layer_digest = registry.put_blob(repository, blob)
    config = json.dumps(
        {
            "architecture": arch,
            "os": "linux",
            "config": {"User": "1000"},
            "rootfs": {"type": "layers", "diff_ids": []},
        }
    ).encode()
    config_digest = registry.put_blob(repository, config)
    manifest = {
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": {
            "mediaType": "application/vnd.oci.image.config.v1+json",
            "digest": config_digest,
            "size": len(config),
        },
        "layers": [
            {
                "mediaType": "application/vnd.oci.image.layer.v1.tar+gzip",
                "digest": layer_digest,
                "size": len(blob),
            }
        ],
    }
    raw_size = len(json.dumps(manifest).encode())
    return registry.put_manifest(repository, manifest, OCI_MANIFEST), config_digest, raw_size


def _submit_ref(api: Api, token: str, image: str, **extra: Any) -> Any:
    body = {"name": "r", "image": image, **extra}
    return api.client.post("/api/v1/submissions", json=body, headers=f.auth(token))


def test_pushed_reference_is_checked_and_queued(
    reg_api: Api, registry: RegistryServer, tmp_path: Path
) -> None:
    token = _member(reg_api)
    image_id = write_archive(tmp_path / "m.tar", seed="ref")
    pushed = push_archive(
        tmp_path / "m.tar", "models/alpha", "v1", _config(registry), work_dir=tmp_path / "w"
    )
    response = _submit_ref(reg_api, token, str(pushed.reference), method_card={"notes": "n"})
    assert response.status_code == 201, response.text
    body = response.json()
    assert body["method_card"] == {"notes": "n"}
    assert (body["image_ref"], body["image_digest"], body["status"]) == (
        str(pushed.reference),
        image_id,
        "queued",
    )
    assert _counts(reg_api) == (1, 1)
    # the same image again, as an archive this time: the duplicate check compares image ids
    again = _upload(reg_api, token, tmp_path / "m.tar")
    assert again.status_code == 409 and again.json()["error"]["submission_id"] == body["id"]


def test_index_resolves_to_its_linux_amd64_image(reg_api: Api, registry: RegistryServer) -> None:
    token = _member(reg_api)
    amd64, amd64_config, amd64_size = _push_by_hand(registry, "models/multi", layer=b"amd64")
    arm64, _, arm64_size = _push_by_hand(registry, "models/multi", arch="arm64", layer=b"arm64")
    index = {
        "schemaVersion": 2,
        "mediaType": OCI_INDEX,
        "manifests": [
            {
                "mediaType": OCI_MANIFEST,
                "digest": arm64,
                "size": arm64_size,
                "platform": {"os": "linux", "architecture": "arm64"},
            },
            {
                "mediaType": OCI_MANIFEST,
                "digest": amd64,
                "size": amd64_size,
                "platform": {"os": "linux", "architecture": "amd64"},
            },
        ],
    }
    index_digest = registry.put_manifest("models/multi", index, OCI_INDEX)
    response = _submit_ref(reg_api, token, f"{registry.host}/models/multi@{index_digest}")
    assert response.status_code == 201, response.text
    assert response.json()["image_digest"] == amd64_config


def _refusals(registry: RegistryServer, tmp_path: Path) -> dict[str, tuple[str, str]]:
    """Case -> (reference, expected words in the 400 message)."""
    arm64, _, arm64_size = _push_by_hand(registry, "models/arm", arch="arm64", layer=b"arm")
    arm_index = registry.put_manifest(
        "models/arm",
        {
            "schemaVersion": 2,
            "mediaType": OCI_INDEX,
            "manifests": [
                {
                    "mediaType": OCI_MANIFEST,
                    "digest": arm64,
                    "size": arm64_size,
                    "platform": {"os": "linux", "architecture": "arm64"},
                }
            ],
        },
        OCI_INDEX,
    )
    big, _, _ = _push_by_hand(registry, "models/big", layer=os.urandom(1_200_000))  # over the 1 MiB cap
    host = registry.host
    return {
        "tag": (f"{host}/models/arm:latest", "pin it by digest"),
        "missing": (f"{host}/models/arm@sha256:" + hashlib.sha256(b"nothing").hexdigest(), "not found"),
        "index without amd64": (
            f"{host}/models/arm@{arm_index}",
            "no linux/amd64 image (it has: linux/arm64)",
        ),
        "arm64 manifest": (f"{host}/models/arm@{arm64}", "platform is linux/arm64"),
        "over the cap": (f"{host}/models/big@{big}", "over the upload limit"),
        "other registry": ("elsewhere.example/models/arm@" + arm64, "configured registry"),
        "other team": (f"{host}/csawm/beta-99@{arm64}", "belongs to another team"),
    }


def test_bad_references_are_400_with_the_reason_and_charge_nothing(
    reg_api: Api, registry: RegistryServer, tmp_path: Path
) -> None:
    token = _member(reg_api)
    for case, (image, needle) in _refusals(registry, tmp_path).items():
        response = _submit_ref(reg_api, token, image)
        assert response.status_code == 400, (case, response.text)
        assert needle in response.json()["error"]["message"], (case, response.json())
    assert _counts(reg_api) == (0, 0)


def test_reference_with_wrong_server_credentials_is_400(
    tmp_path: Path, sqlite_url: str, registry: RegistryServer
) -> None:
    manifest, _, _ = _push_by_hand(registry, "models/creds", layer=b"creds")
    with running_api(_settings(tmp_path, sqlite_url, registry, registry_password="wrong-password")) as api:
        token = _member(api)
        response = _submit_ref(api, token, f"{registry.host}/models/creds@{manifest}")
        assert response.status_code == 400, response.text
        message = response.json()["error"]["message"]
        assert (
            "refused access to models/creds (401: UNAUTHORIZED)" in message
            and "wrong-password" not in message
        )
        assert _counts(api) == (0, 0)


# -- TLS with a private CA --------------------------------------------------------------------------


@pytest.fixture(scope="module")
def tls_registry() -> Iterator[RegistryServer]:
    with registry_server(tls=True) as server:
        yield server


def test_registry_behind_tls_with_a_private_ca(
    tmp_path: Path, sqlite_url: str, tls_registry: RegistryServer
) -> None:
    """``CSAWM_REGISTRY_CA``: skopeo pushes and the API client checks over TLS trusting that CA."""
    assert tls_registry.ca_file is not None
    settings = _settings(
        tmp_path, sqlite_url, tls_registry, registry_insecure=False, registry_ca=tls_registry.ca_file
    )
    with running_api(settings) as api:
        token = _member(api)
        image_id = write_archive(tmp_path / "m.tar", seed="tls")
        response = _upload(api, token, tmp_path / "m.tar")
        assert response.status_code == 201, response.text
        assert response.json()["image_ref"].startswith(f"{tls_registry.host}/csawm/alpha-")
        manifest, config, _ = _push_by_hand(tls_registry, "models/tls", layer=b"tls")
        checked = _submit_ref(api, token, f"{tls_registry.host}/models/tls@{manifest}")
        assert checked.status_code == 201, checked.text
        assert (checked.json()["image_digest"], response.json()["image_digest"]) == (config, image_id)


def test_registry_behind_tls_without_its_ca_is_503(
    tmp_path: Path, sqlite_url: str, tls_registry: RegistryServer
) -> None:
    """The system store does not trust the self-signed certificate: a clear 503, nothing charged."""
    settings = _settings(tmp_path, sqlite_url, tls_registry, registry_insecure=False)
    with running_api(settings) as api:
        token = _member(api)
        write_archive(tmp_path / "m.tar", seed="tls-no-ca")
        response = _upload(api, token, tmp_path / "m.tar")
        assert response.status_code == 503 and "certificate" in response.json()["error"]["message"]
        ref = f"{tls_registry.host}/models/tls@sha256:" + "b" * 64
        checked = _submit_ref(api, token, ref)
        assert (
            checked.status_code == 503 and "CERTIFICATE_VERIFY_FAILED" in checked.json()["error"]["message"]
        )
        assert _counts(api) == (0, 0)


# -- Bearer tokens (a token service, as hosted registries use) --------------------------------------


@pytest.fixture(scope="module")
def token_registry() -> Iterator[RegistryServer]:
    with registry_server(token_auth=True) as server:
        yield server


def test_registry_with_a_token_service(
    tmp_path: Path, sqlite_url: str, token_registry: RegistryServer
) -> None:
    """The Bearer challenge: skopeo and the API client exchange the credentials for a scoped token."""
    with running_api(_settings(tmp_path, sqlite_url, token_registry)) as api:
        token = _member(api)
        image_id = write_archive(tmp_path / "m.tar", seed="bearer")
        pushed = push_archive(
            tmp_path / "m.tar", "models/bearer", "v1", _config(token_registry), work_dir=tmp_path / "w"
        )
        checked = _submit_ref(api, token, str(pushed.reference))
        assert checked.status_code == 201, checked.text
        assert checked.json()["image_digest"] == image_id
        uploaded = _upload(api, token, tmp_path / "m.tar")
        assert uploaded.status_code == 409  # the same image id: a duplicate, found after its push


def test_token_service_refusing_the_credentials(
    tmp_path: Path, sqlite_url: str, token_registry: RegistryServer
) -> None:
    pushed = push_archive(
        _archive(tmp_path, "bearer-denied"),
        "models/bearer",
        "v2",
        _config(token_registry),
        work_dir=tmp_path / "w",
    )
    settings = _settings(tmp_path, sqlite_url, token_registry, registry_password="wrong-password")
    with running_api(settings) as api:
        token = _member(api)
        checked = _submit_ref(api, token, str(pushed.reference))
        assert checked.status_code == 400, checked.text
        assert "refused the server's credentials" in checked.json()["error"]["message"]
        uploaded = _upload(api, token, _archive(tmp_path, "bearer-denied-2"))
        assert uploaded.status_code == 503 and "unauthorized" in uploaded.json()["error"]["message"]
        assert _counts(api) == (0, 0)


def _archive(tmp_path: Path, seed: str) -> Path:
    write_archive(tmp_path / f"{seed}.tar", seed=seed)
    return tmp_path / f"{seed}.tar"


@pytest.mark.parametrize("auth", ["basic", "bearer"])
def test_ping_checks_the_credentials(
    auth: str, registry: RegistryServer, token_registry: RegistryServer
) -> None:
    """`RegistryClient.ping` (for a readiness check): ok with the right credentials, refused with
    wrong ones, unavailable when nothing listens."""
    server = registry if auth == "basic" else token_registry
    with RegistryClient(_config(server)) as client:
        client.ping()
    wrong = RegistryConfig(server.host, server.username, "wrong", insecure=True)
    with RegistryClient(wrong) as client, pytest.raises(RegistryDenied):
        client.ping()
    closed = RegistryConfig(f"127.0.0.1:{free_port()}", insecure=True)
    with RegistryClient(closed) as client, pytest.raises(RegistryUnavailable, match="unreachable"):
        client.ping()
