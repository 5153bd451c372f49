"""Uploads: a good archive is queued and charged; every bad one is refused with its reason, and
leaves nothing queued, nothing charged, no file behind."""

from __future__ import annotations

import gzip
import io
import socket
import stat
import tarfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
from srvtest import factories as f
from srvtest.app import Api, make_settings, operator_metrics
from srvtest.archives import write_archive, write_traversal, write_two_images
from srvtest.attacks import read_response
from srvtest.live import live_server

from runner.imagetar import inspect_archive
from server.accounts import service
from server.app import create_app
from server.core.db import Database
from server.models import LedgerKind, QuotaEntry, Submission


@pytest.fixture
def token(api: Api) -> str:
    f.team(api.db, "alpha")
    with api.db.transaction() as session:
        service.set_quota(session, "alpha", {"active": 5}, actor="test")
    return f.user(api.db, "a@x.org", team="alpha")


def _counts(api: Api) -> tuple[int, int]:
    with api.db.transaction(write=False) as session:
        return session.query(Submission).count(), session.query(QuotaEntry).count()


def _leftover_files(api: Api) -> list[Path]:
    return [
        p
        for p in api.settings.data_dir.rglob("*")
        if p.is_file() and p.parent.name in ("uploads", "archives")
    ]


def test_good_archive_is_queued_and_charged(api: Api, token: str, tmp_path: Path) -> None:
    digest = write_archive(tmp_path / "m.tar")
    response = api.client.post(
        "/api/v1/submissions",
        params={
            "name": "my model",
            "description": "d",
            "url": "https://example.org/m",
            "method_card": '{"architecture": "resnet34", "external_data": false}',
        },
        content=(tmp_path / "m.tar").read_bytes(),
        headers={**f.auth(token), "Content-Type": "application/x-tar"},
    )
    assert response.status_code == 201, response.text
    body = response.json()
    for key in (
        "id",
        "name",
        "team",
        "status",
        "error_code",
        "failed_phase",
        "error_message",
        "image_digest",
        "created_at",
        "started_at",
        "finished_at",
        "metrics",
        "baseline",
        "review_state",
    ):
        assert key in body
    assert (body["status"], body["team"], body["image_digest"]) == ("queued", "alpha", digest)
    assert body["method_card"] == {"architecture": "resnet34", "external_data": False}
    assert body["review_state"] == "pending" and body["metrics"] is None and body["baseline"] is False
    assert [e["status"] for e in body["events"]] == ["queued"]
    with api.db.transaction(write=False) as session:
        sub = session.get(Submission, body["id"])
        assert sub is not None and sub.archive_path
        stored = Path(sub.archive_path)
        # Stored as uploaded but for the tags (issue 12): same length, same image, no RepoTags.
        assert stored.stat().st_size == (tmp_path / "m.tar").stat().st_size
        assert inspect_archive(stored).digest == digest and inspect_archive(stored).repo_tags == ()
        assert inspect_archive(tmp_path / "m.tar").repo_tags == ("model-a:latest",)
        charges = session.query(QuotaEntry).all()
        assert [(c.kind, c.submission_id) for c in charges] == [(LedgerKind.CHARGE, body["id"])]
    assert "csawm_upload_bytes_total" in operator_metrics(api)


def test_gzip_archive_and_chunked_body_are_accepted(api: Api, token: str, tmp_path: Path) -> None:
    write_archive(tmp_path / "m.tar", seed="gz")
    data = gzip.compress((tmp_path / "m.tar").read_bytes())

    def chunks() -> Iterator[bytes]:
        for i in range(0, len(data), 1000):
            yield data[i : i + 1000]

    response = api.client.post(
        "/api/v1/submissions", params={"name": "gz"}, content=chunks(), headers=f.auth(token)
    )
    assert response.status_code == 201, response.text
    assert response.json()["archive_bytes"] == len(data)


def test_duplicate_digest_is_refused_with_the_earlier_id(api: Api, token: str, tmp_path: Path) -> None:
    write_archive(tmp_path / "m.tar")
    first = api.client.post(
        "/api/v1/submissions",
        params={"name": "one"},
        content=(tmp_path / "m.tar").read_bytes(),
        headers=f.auth(token),
    )
    again = api.client.post(
        "/api/v1/submissions",
        params={"name": "two"},
        content=(tmp_path / "m.tar").read_bytes(),
        headers=f.auth(token),
    )
    assert again.status_code == 409
    error = again.json()["error"]
    assert error["code"] == "duplicate_submission" and error["submission_id"] == first.json()["id"]
    assert _counts(api) == (1, 1)
    # the refused copy was inspected, untagged and stored before creation refused it: none of it stays
    assert [p.parent.name for p in _leftover_files(api)] == ["archives"]
    # another team may submit the same image
    f.team(api.db, "beta")
    other = f.user(api.db, "b@x.org", team="beta")
    third = api.client.post(
        "/api/v1/submissions",
        params={"name": "x"},
        content=(tmp_path / "m.tar").read_bytes(),
        headers=f.auth(other),
    )
    assert third.status_code == 201


def _bad_bodies(tmp_path: Path) -> dict[str, bytes]:
    write_archive(tmp_path / "good.tar", seed="t")
    good = (tmp_path / "good.tar").read_bytes()
    write_two_images(tmp_path / "two.tar")
    write_traversal(tmp_path / "trav.tar")
    write_archive(tmp_path / "arm.tar", seed="arm", arch="arm64")
    return {
        "truncated": good[: len(good) // 2 + 100],
        "not a tar": b"this is not an archive at all\n" * 100,
        "two images": (tmp_path / "two.tar").read_bytes(),
        "traversal": (tmp_path / "trav.tar").read_bytes(),
        "platform": (tmp_path / "arm.tar").read_bytes(),
    }


@pytest.mark.parametrize(
    ("case", "needle"),
    [
        ("truncated", "truncat"),
        ("not a tar", "tar"),
        ("two images", "image"),
        ("traversal", ".."),
        ("platform", "linux/amd64"),
    ],
)
def test_bad_archives_are_422_with_the_reason(
    api: Api, token: str, tmp_path: Path, case: str, needle: str
) -> None:
    body = _bad_bodies(tmp_path)[case]
    response = api.client.post(
        "/api/v1/submissions", params={"name": case}, content=body, headers=f.auth(token)
    )
    assert response.status_code == 422, response.text
    error = response.json()["error"]
    assert error["code"] == "archive_invalid" and needle in error["message"].lower()
    assert _counts(api) == (0, 0)
    assert _leftover_files(api) == []


def test_empty_upload_and_missing_name(api: Api, token: str) -> None:
    empty = api.client.post("/api/v1/submissions", params={"name": "e"}, content=b"", headers=f.auth(token))
    assert empty.status_code == 400 and "empty upload" in empty.json()["error"]["message"]
    nameless = api.client.post("/api/v1/submissions", content=b"x", headers=f.auth(token))
    assert nameless.status_code == 400 and "name" in nameless.json()["error"]["message"]
    assert _counts(api) == (0, 0)


def test_over_the_cap_is_413_declared_or_streamed(api: Api, token: str) -> None:
    cap = api.settings.max_upload_bytes
    declared = api.client.post(
        "/api/v1/submissions", params={"name": "big"}, content=b"\0" * (cap + 1), headers=f.auth(token)
    )
    assert declared.status_code == 413 and declared.json()["error"]["code"] == "upload_too_large"

    sent: list[int] = []

    def endless() -> Iterator[bytes]:
        for _ in range(4 * cap // 65536):
            sent.append(65536)
            yield b"\0" * 65536

    streamed = api.client.post(
        "/api/v1/submissions", params={"name": "big"}, content=endless(), headers=f.auth(token)
    )
    assert streamed.status_code == 413
    assert _counts(api) == (0, 0)
    assert _leftover_files(api) == []


def test_invalid_method_card_is_refused_before_upload(api: Api, token: str) -> None:
    response = api.client.post(
        "/api/v1/submissions",
        params={"name": "m", "method_card": '{"colour": "blue"}'},
        content=b"x",
        headers=f.auth(token),
    )
    assert response.status_code == 400 and "colour" in response.json()["error"]["message"]


def test_registry_reference_needs_a_configured_registry(api: Api, token: str) -> None:
    body = {"name": "r", "image": "reg.example:5000/team/model@sha256:" + "a" * 64}
    response = api.client.post("/api/v1/submissions", json=body, headers=f.auth(token))
    assert response.status_code == 400 and "no registry" in response.json()["error"]["message"]


def test_user_without_team_cannot_submit(api: Api, tmp_path: Path) -> None:
    from server.models import Role

    maint = f.user(api.db, "m@x.org", role=Role.MAINTAINER)
    response = api.client.post(
        "/api/v1/submissions", params={"name": "x"}, content=b"x", headers=f.auth(maint)
    )
    assert response.status_code == 403


def test_maintainer_cancelling_another_teams_run_is_audited(api: Api, token: str, tmp_path: Path) -> None:
    from server.models import Role

    write_archive(tmp_path / "m.tar")
    sub = api.client.post(
        "/api/v1/submissions",
        params={"name": "m"},
        content=(tmp_path / "m.tar").read_bytes(),
        headers=f.auth(token),
    ).json()["id"]
    maint = f.user(api.db, "m@x.org", role=Role.MAINTAINER)
    response = api.client.post(f"/api/v1/submissions/{sub}/cancel", headers=f.auth(maint))
    assert response.status_code == 200 and response.json()["status"] == "cancelled"
    audit = api.client.get(
        "/api/v1/admin/audit", params={"action": "cancel_submission"}, headers=f.auth(maint)
    )
    assert [(e["actor"], e["target_id"]) for e in audit.json()] == [("m@x.org", str(sub))]


def test_upload_cut_off_mid_body_leaves_nothing(tmp_path: Path, sqlite_url: str) -> None:
    """The client declares 100 kB, sends 30 kB and hangs up: no file kept, nothing queued or charged."""
    import socket
    import time

    from srvtest.app import make_settings
    from srvtest.live import live_server

    from server.app import create_app

    settings = make_settings(tmp_path, sqlite_url)
    app = create_app(settings, migrate_on_start=True, embedded_worker=False)
    with live_server(app) as url:
        db: Database = app.state.csawm.db
        f.team(db, "alpha")
        token = f.user(db, "a@x.org", team="alpha")
        port = int(url.rsplit(":", 1)[1])
        with socket.create_connection(("127.0.0.1", port)) as sock:
            head = (
                f"POST /api/v1/submissions?name=cut HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {token}\r\n"
                "Content-Type: application/x-tar\r\nContent-Length: 100000\r\n\r\n"
            )
            sock.sendall(head.encode() + b"\0" * 30000)
            time.sleep(0.3)
        uploads = settings.data_dir / "uploads"
        deadline = time.monotonic() + 10
        while any(uploads.glob("*")) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert list(uploads.glob("*")) == []
        with db.transaction(write=False) as session:
            assert session.query(Submission).count() == 0 and session.query(QuotaEntry).count() == 0


# -- issue 12: slow, parallel and inflating uploads; private files ---------------------------------


def _partial_upload(url: str, token: str, name: str, declared: int, first: bytes) -> socket.socket:
    """Start an upload that declares `declared` bytes and sends only `first`; the caller holds it."""
    port = int(url.rsplit(":", 1)[1])
    sock = socket.create_connection(("127.0.0.1", port), timeout=30)
    sock.sendall(
        f"POST /api/v1/submissions?name={name} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {token}\r\n"
        f"Content-Type: application/x-tar\r\nContent-Length: {declared}\r\n\r\n".encode()
        + first
    )
    return sock


def _wait_for(predicate: Callable[[], bool], what: str) -> None:
    """Wait (bounded) for a state the server reaches on its own, e.g. an upload file appearing."""
    deadline = time.monotonic() + 30
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.01)


def test_idle_upload_is_dropped_with_408_issue_12(tmp_path: Path, sqlite_url: str) -> None:
    settings = make_settings(tmp_path, sqlite_url, upload_idle_timeout="0.3s")
    with live_server(create_app(settings, migrate_on_start=True)) as url:
        db = Database.connect(settings.effective_database_url)
        f.team(db, "alpha")
        token = f.user(db, "a@x.org", team="alpha")
        sock = _partial_upload(url, token, "slow", 10_000, b"\0" * 100)
        with sock:
            answer = read_response(sock)
        db.dispose()
    assert answer.startswith(b"HTTP/1.1 408"), answer
    assert b'"code":"request_timeout"' in answer and b"CSAWM_UPLOAD_IDLE_TIMEOUT" in answer
    assert list((settings.data_dir / "uploads").iterdir()) == []


def test_concurrent_uploads_per_team_are_capped_issue_12(tmp_path: Path, sqlite_url: str) -> None:
    settings = make_settings(tmp_path, sqlite_url, max_concurrent_uploads=2)
    write_archive(tmp_path / "m.tar", seed="after")
    with live_server(create_app(settings, migrate_on_start=True)) as url:
        db = Database.connect(settings.effective_database_url)
        for team in ("alpha", "beta"):
            f.team(db, team)
            with db.transaction() as session:
                service.set_quota(session, team, {"active": 5, "per_day": 5}, actor="test")
        alpha = f.user(db, "a@x.org", team="alpha")
        beta = f.user(db, "b@x.org", team="beta")
        uploads = settings.data_dir / "uploads"
        held = [_partial_upload(url, alpha, f"held{i}", 10_000, b"\0" * 512) for i in range(2)]
        _wait_for(lambda: uploads.exists() and len(list(uploads.iterdir())) == 2, "two uploads in progress")
        with httpx.Client(base_url=url, timeout=30) as client:
            body = (tmp_path / "m.tar").read_bytes()
            third = client.post(
                "/api/v1/submissions", params={"name": "third"}, content=body, headers=f.auth(alpha)
            )
            other_team = client.post(
                "/api/v1/submissions", params={"name": "b"}, content=body, headers=f.auth(beta)
            )
            assert third.status_code == 429, third.text
            assert third.json()["error"]["code"] == "too_many_uploads" and third.headers["Retry-After"]
            assert other_team.status_code == 201, other_team.text
            for sock in held:
                sock.close()
            _wait_for(lambda: list(uploads.iterdir()) == [], "the dropped uploads to be cleaned up")
            again = client.post(
                "/api/v1/submissions", params={"name": "again"}, content=body, headers=f.auth(alpha)
            )
            assert again.status_code == 201, again.text
        db.dispose()


def test_gzip_inflating_past_the_upload_cap_is_refused_issue_12(api: Api, token: str, tmp_path: Path) -> None:
    """A gzip under the upload cap (1 MiB here) that inflates past it: refused, not inflated 4x."""
    write_archive(tmp_path / "m.tar", seed="inflate")
    with tarfile.open(tmp_path / "m.tar", "a") as tf:
        info = tarfile.TarInfo("pad.bin")
        info.size = 3 * api.settings.max_upload_bytes
        tf.addfile(info, io.BytesIO(bytes(info.size)))
    data = gzip.compress((tmp_path / "m.tar").read_bytes())
    assert len(data) < api.settings.max_upload_bytes
    response = api.client.post(
        "/api/v1/submissions", params={"name": "inflate"}, content=data, headers=f.auth(token)
    )
    assert response.status_code == 422, response.text
    assert "unpacks to more than the cap" in response.json()["error"]["message"]
    assert _counts(api) == (0, 0) and _leftover_files(api) == []


def test_gzip_upload_is_stored_as_an_untagged_plain_tar_issue_12(
    api: Api, token: str, tmp_path: Path
) -> None:
    digest = write_archive(tmp_path / "m.tar", seed="gztag")
    data = gzip.compress((tmp_path / "m.tar").read_bytes())
    response = api.client.post(
        "/api/v1/submissions", params={"name": "gz"}, content=data, headers=f.auth(token)
    )
    assert response.status_code == 201, response.text
    with api.db.transaction(write=False) as session:
        sub = session.get(Submission, response.json()["id"])
        assert sub is not None and sub.archive_path
        stored = Path(sub.archive_path)
    assert stored.read_bytes()[:2] != b"\x1f\x8b"
    assert (inspect_archive(stored).digest, inspect_archive(stored).repo_tags) == (digest, ())
    assert response.json()["archive_bytes"] == len(data)  # the record keeps what was uploaded


def test_state_files_are_private_issue_12(api: Api, token: str, tmp_path: Path) -> None:
    write_archive(tmp_path / "m.tar", seed="modes")
    response = api.client.post(
        "/api/v1/submissions",
        params={"name": "m"},
        content=(tmp_path / "m.tar").read_bytes(),
        headers=f.auth(token),
    )
    assert response.status_code == 201
    data_dir = api.settings.data_dir
    modes = {p.relative_to(data_dir).as_posix(): stat.S_IMODE(p.stat().st_mode) for p in data_dir.rglob("*")}
    modes["."] = stat.S_IMODE(data_dir.stat().st_mode)
    for name, mode in modes.items():
        expected = 0o700 if (data_dir / name).is_dir() else 0o600
        assert mode & 0o077 == 0, f"{name} is {oct(mode)}, expected {oct(expected)}"
    assert modes["uploads"] == modes["archives"] == 0o700
    if api.settings.is_sqlite:
        assert modes["csawm.db"] == 0o600
