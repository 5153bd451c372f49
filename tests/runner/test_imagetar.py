"""Archive inspection (issue 3): good archives in both layouts, and each hostile one rejected
before anything is loaded, with its reason."""

from __future__ import annotations

import contextlib
import gzip
import hashlib
import io
import json
import tarfile
from pathlib import Path
from typing import Any

import docker
import pytest

from runner.docker_backend import DockerRunner
from runner.imagetar import ImageArchiveError, inspect_archive

MiB = 1024**2


def _layer(content: bytes = b"hello") -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        info = tarfile.TarInfo("hello.txt")
        info.size = len(content)
        tar.addfile(info, io.BytesIO(content))
    return buf.getvalue()


def _config(arch: str = "amd64", user: str = "", seed: str = "") -> bytes:
    return json.dumps(
        {"architecture": arch, "os": "linux", "config": {"User": user, "Cmd": ["python3"]}, "seed": seed}
    ).encode()


class ArchiveWriter:
    """Writes a tar (optionally gzip) member by member."""

    def __init__(self, path: Path, *, gz: bool = False) -> None:
        # closed by close(); a writer object is clearer than nesting every archive in a with-block
        self.tar = tarfile.open(path, mode="w:gz", compresslevel=1) if gz else tarfile.open(path, mode="w")  # noqa: SIM115

    def add(self, name: str, data: bytes) -> None:
        info = tarfile.TarInfo(name)
        info.size = len(data)
        self.tar.addfile(info, io.BytesIO(data))

    def link(self, name: str, target: str, *, hard: bool = False) -> None:
        info = tarfile.TarInfo(name)
        info.type = tarfile.LNKTYPE if hard else tarfile.SYMTYPE
        info.linkname = target
        self.tar.addfile(info)

    def close(self) -> None:
        self.tar.close()


def legacy_archive(
    path: Path,
    *,
    images: int = 1,
    arch: str = "amd64",
    user: str = "",
    gz: bool = False,
    extra: list[tuple[str, bytes]] | None = None,
) -> str:
    """A ``docker save`` (legacy layout) archive; returns the first image's id."""
    w = ArchiveWriter(path, gz=gz)
    manifest: list[dict[str, Any]] = []
    first = ""
    for i in range(images):
        config = _config(arch, user, seed=str(i))
        digest = hashlib.sha256(config).hexdigest()
        first = first or f"sha256:{digest}"
        layer_id = hashlib.sha256(f"layer{i}".encode()).hexdigest()
        w.add(f"{digest}.json", config)
        w.add(f"{layer_id}/layer.tar", _layer(f"layer {i}".encode()))
        w.add(f"{layer_id}/VERSION", b"1.0")
        manifest.append(
            {
                "Config": f"{digest}.json",
                "RepoTags": [f"team/model{i}:v1"],
                "Layers": [f"{layer_id}/layer.tar"],
            }
        )
    for name, data in extra or []:
        w.add(name, data)
    w.add("manifest.json", json.dumps(manifest).encode())
    w.close()
    return first


def oci_archive(path: Path, *, manifests: int = 1) -> str:
    """An OCI image layout archive without manifest.json (buildah/skopeo style)."""
    w = ArchiveWriter(path)
    index: dict[str, Any] = {"schemaVersion": 2, "manifests": []}
    first = ""
    for i in range(manifests):
        config = _config(seed=f"oci{i}")
        layer = _layer(f"oci {i}".encode())
        cfg_d = hashlib.sha256(config).hexdigest()
        layer_d = hashlib.sha256(layer).hexdigest()
        manifest = json.dumps(
            {
                "schemaVersion": 2,
                "mediaType": "application/vnd.oci.image.manifest.v1+json",
                "config": {
                    "mediaType": "application/vnd.oci.image.config.v1+json",
                    "digest": f"sha256:{cfg_d}",
                    "size": len(config),
                },
                "layers": [
                    {
                        "mediaType": "application/vnd.oci.image.layer.v1.tar",
                        "digest": f"sha256:{layer_d}",
                        "size": len(layer),
                    }
                ],
            }
        ).encode()
        man_d = hashlib.sha256(manifest).hexdigest()
        first = first or f"sha256:{cfg_d}"
        for digest, data in ((cfg_d, config), (layer_d, layer), (man_d, manifest)):
            w.add(f"blobs/sha256/{digest}", data)
        index["manifests"].append(
            {
                "mediaType": "application/vnd.oci.image.manifest.v1+json",
                "digest": f"sha256:{man_d}",
                "size": len(manifest),
                "annotations": {"io.containerd.image.name": f"docker.io/team/oci{i}:v1"},
            }
        )
    w.add("oci-layout", b'{"imageLayoutVersion": "1.0.0"}')
    w.add("index.json", json.dumps(index).encode())
    w.close()
    return first


def test_legacy_archive_is_accepted(tmp_path: Path) -> None:
    path = tmp_path / "a.tar"
    digest = legacy_archive(path, user="1000:1000")
    info = inspect_archive(path)
    assert info.digest == digest
    assert info.repo_tags == ("team/model0:v1",)
    assert (info.os, info.architecture) == ("linux", "amd64")
    assert info.user == "1000:1000" and not info.runs_as_root
    assert info.layer_count == 1
    assert info.size_bytes > 0


def test_gzip_archive_and_root_user_flagged(tmp_path: Path) -> None:
    path = tmp_path / "a.tar.gz"
    digest = legacy_archive(path, gz=True, user="root")
    info = inspect_archive(path)
    assert info.digest == digest
    assert info.runs_as_root


def test_oci_layout_archive_is_accepted(tmp_path: Path) -> None:
    path = tmp_path / "oci.tar"
    digest = oci_archive(path)
    info = inspect_archive(path)
    assert info.digest == digest
    assert info.repo_tags == ("docker.io/team/oci0:v1",)
    assert info.runs_as_root  # empty User


def reject(path: Path, match: str, **caps: int) -> None:
    with pytest.raises(ImageArchiveError, match=match):
        inspect_archive(path, **caps)


def test_truncated_archive(tmp_path: Path) -> None:
    full = tmp_path / "full.tar"
    legacy_archive(full, extra=[("padding.bin", b"\1" * 200_000)])
    cut = tmp_path / "cut.tar"
    cut.write_bytes(full.read_bytes()[: full.stat().st_size // 2])
    reject(cut, "truncated or corrupt")


def test_truncated_gzip_archive(tmp_path: Path) -> None:
    full = tmp_path / "full.tar.gz"
    legacy_archive(full, gz=True, extra=[("padding.bin", bytes(range(256)) * 2000)])
    cut = tmp_path / "cut.tar.gz"
    cut.write_bytes(full.read_bytes()[: full.stat().st_size // 2])
    reject(cut, "truncated or corrupt")


def test_not_an_archive(tmp_path: Path) -> None:
    path = tmp_path / "x.tar"
    path.write_bytes(b"this is not a tar file at all" * 100)
    reject(path, "not a readable tar or tar.gz archive")


def test_two_images(tmp_path: Path) -> None:
    path = tmp_path / "two.tar"
    legacy_archive(path, images=2)
    reject(path, "archive holds 2 images; exactly one is accepted")


def test_two_images_oci(tmp_path: Path) -> None:
    path = tmp_path / "two-oci.tar"
    oci_archive(path, manifests=2)
    reject(path, "archive holds 2 images")


def test_wrong_architecture(tmp_path: Path) -> None:
    path = tmp_path / "arm.tar"
    legacy_archive(path, arch="arm64")
    reject(path, r"image platform is linux/arm64; the server runs linux/amd64 only")


@pytest.mark.parametrize(
    ("name", "match"),
    [
        ("../evil.sh", r"'\.\.' path component"),
        ("layers/../../evil", r"'\.\.' path component"),
        ("/etc/cron.d/evil", "absolute path"),
    ],
)
def test_path_traversal_member(tmp_path: Path, name: str, match: str) -> None:
    path = tmp_path / "trav.tar"
    legacy_archive(path, extra=[(name, b"#!/bin/sh\n")])
    reject(path, match)


@pytest.mark.parametrize(
    ("target", "hard", "match"),
    [
        ("../../etc/passwd", False, "leaves the archive"),
        ("/etc/passwd", False, "absolute path"),
        ("../outside", True, "leaves the archive"),
    ],
)
def test_link_leaving_the_archive(tmp_path: Path, target: str, hard: bool, match: str) -> None:
    path = tmp_path / "link.tar"
    w = ArchiveWriter(path)
    w.add("manifest.json", b"[]")
    w.link("somelayer/layer.tar", target, hard=hard)
    w.close()
    reject(path, match)


def test_link_inside_the_archive_is_followed(tmp_path: Path) -> None:
    """docker save links a shared layer to its first copy; that is fine."""
    path = tmp_path / "shared.tar"
    config = _config()
    digest = hashlib.sha256(config).hexdigest()
    w = ArchiveWriter(path)
    w.add(f"{digest}.json", config)
    w.add("aaa/layer.tar", _layer())
    w.link("bbb/layer.tar", "../aaa/layer.tar")
    w.add(
        "manifest.json",
        json.dumps(
            [{"Config": f"{digest}.json", "RepoTags": None, "Layers": ["aaa/layer.tar", "bbb/layer.tar"]}]
        ).encode(),
    )
    w.close()
    assert inspect_archive(path).layer_count == 2


def test_missing_layer_and_bad_config_digest(tmp_path: Path) -> None:
    config = _config()
    digest = hashlib.sha256(config).hexdigest()
    path = tmp_path / "nolayer.tar"
    w = ArchiveWriter(path)
    w.add(f"{digest}.json", config)
    w.add("manifest.json", json.dumps([{"Config": f"{digest}.json", "Layers": ["x/layer.tar"]}]).encode())
    w.close()
    reject(path, r"layer 'x/layer.tar' named by the manifest is missing")
    path2 = tmp_path / "baddigest.tar"
    w = ArchiveWriter(path2)
    w.add("0" * 64 + ".json", config)
    w.add("manifest.json", json.dumps([{"Config": "0" * 64 + ".json", "Layers": []}]).encode())
    w.close()
    reject(path2, "does not match its digest")


def test_no_manifest(tmp_path: Path) -> None:
    path = tmp_path / "plain.tar"
    w = ArchiveWriter(path)
    w.add("hello.txt", b"hi")
    w.close()
    reject(path, "neither manifest.json nor index.json")


def test_device_member(tmp_path: Path) -> None:
    path = tmp_path / "dev.tar"
    with tarfile.open(path, "w") as tar:
        info = tarfile.TarInfo("dev/sda")
        info.type = tarfile.BLKTYPE
        tar.addfile(info)
    reject(path, "device, FIFO or other special file")


def test_gzip_bomb_stopped_by_compression_ratio(tmp_path: Path) -> None:
    """300 MiB of zeros gzip to ~300 KiB (ratio ~1000:1): refused once 256 MiB are out."""
    path = tmp_path / "bomb.tar.gz"
    info = tarfile.TarInfo("bomb/layer.tar")
    info.size = 300 * MiB
    block = bytes(MiB)
    with gzip.open(path, "wb", compresslevel=1) as gz:
        gz.write(info.tobuf())
        for _ in range(300):
            gz.write(block)
    assert path.stat().st_size < 4 * MiB
    reject(path, "compression ratio over 200:1")


def test_member_and_total_caps_judged_from_headers(tmp_path: Path) -> None:
    path = tmp_path / "big.tar"
    legacy_archive(path, extra=[("a.bin", b"\1" * (2 * MiB)), ("b.bin", b"\2" * (2 * MiB))])
    reject(path, "over the per-member cap", max_member_bytes=1 * MiB)
    reject(path, "unpacks to more than the cap", max_total_bytes=3 * MiB)


class _NoLoadClient:
    """A docker client stand-in that fails the test if anything is loaded."""

    class images:
        @staticmethod
        def load(_: object) -> list[object]:
            raise AssertionError("the archive was loaded despite failing inspection")


def test_load_archive_rejects_before_loading(tmp_path: Path) -> None:
    path = tmp_path / "arm.tar"
    legacy_archive(path, arch="arm64")
    runner = DockerRunner(_NoLoadClient())  # type: ignore[arg-type]
    with pytest.raises(ImageArchiveError, match="arm64"):
        runner.load_archive(path)


def test_multi_member_gzip_is_followed(tmp_path: Path) -> None:
    """pigz and ``cat a.gz b.gz`` write several gzip members; they form one stream."""
    plain = tmp_path / "a.tar"
    digest = legacy_archive(plain, extra=[("padding.bin", bytes(range(256)) * 400)])
    raw = plain.read_bytes()
    path = tmp_path / "multi.tar.gz"
    path.write_bytes(gzip.compress(raw[: len(raw) // 3]) + gzip.compress(raw[len(raw) // 3 :]))
    assert inspect_archive(path).digest == digest


def test_garbage_after_gzip_is_corrupt(tmp_path: Path) -> None:
    plain = tmp_path / "a.tar"
    legacy_archive(plain)
    path = tmp_path / "garbage.tar.gz"
    path.write_bytes(gzip.compress(plain.read_bytes()) + b"not gzip at all")
    reject(path, r"archive is corrupt \(gzip: .*incorrect header check")


# -- issue 12: hostile archives --------------------------------------------------------------------


def _long_name_gzip(path: Path, name_bytes: int) -> None:
    """A GNU long-name header of `name_bytes` before an otherwise valid archive."""
    extension = tarfile.TarInfo("././@LongLink")
    extension.type = tarfile.GNUTYPE_LONGNAME
    extension.size = name_bytes + 1
    with gzip.open(path, "wb", compresslevel=1) as out:
        out.write(extension.tobuf(format=tarfile.GNU_FORMAT))
        out.write(b"a" * name_bytes + b"\0" * (512 - name_bytes % 512))
        out.write(tarfile.TarInfo("model").tobuf(format=tarfile.GNU_FORMAT))
        out.write(bytes(1024))


@pytest.mark.parametrize("gz", [False, True])
def test_long_name_over_the_header_cap_is_refused_issue_12(tmp_path: Path, gz: bool) -> None:
    """A GNU long name of 1 MiB is refused from its header, before tarfile reads it."""
    path = tmp_path / "longname.tar.gz"
    _long_name_gzip(path, MiB)
    if not gz:
        path.write_bytes(gzip.decompress(path.read_bytes()))
    reject(path, r"GNU long name of 1048577 bytes .* over the 64 KiB cap on tar header extensions")


def test_pax_header_over_the_cap_is_refused_and_small_ones_pass_issue_12(tmp_path: Path) -> None:
    big = tmp_path / "pax.tar"
    with tarfile.open(big, "w", format=tarfile.PAX_FORMAT) as tf:
        info = tarfile.TarInfo("x")
        info.pax_headers = {"comment": "c" * (128 * 1024)}
        tf.addfile(info, io.BytesIO(b""))
    reject(big, "PAX header of .* over the 64 KiB cap")
    small = tmp_path / "pax-ok.tar"
    legacy_archive(small)
    with (
        tarfile.open(small) as src,
        tarfile.open(tmp_path / "pax-ok2.tar", "w", format=tarfile.PAX_FORMAT) as dst,
    ):
        for member in src.getmembers():
            member.pax_headers = {"comment": "ok"}
            dst.addfile(member, src.extractfile(member) if member.isreg() else None)
    assert inspect_archive(tmp_path / "pax-ok2.tar").layer_count == 1


def test_sparse_member_is_refused_issue_12(tmp_path: Path) -> None:
    path = tmp_path / "sparse.tar"
    with tarfile.open(path, "w", format=tarfile.GNU_FORMAT) as tf:
        info = tarfile.TarInfo("sparse.bin")
        info.type = tarfile.GNUTYPE_SPARSE
        tf.addfile(info)
    reject(path, "sparse file")


def test_gzip_unpacks_to_at_most_the_cap_issue_12(tmp_path: Path) -> None:
    """Below the ratio guard (8 MiB of zeros is under its 256 MiB floor) but over the cap."""
    path = tmp_path / "inflate.tar.gz"
    legacy_archive(path, gz=True, extra=[("pad.bin", bytes(8 * MiB))])
    assert path.stat().st_size < MiB
    reject(path, "unpacks to more than the cap of", max_total_bytes=4 * MiB)
    assert inspect_archive(path, max_total_bytes=16 * MiB).layer_count == 1


def test_symlink_chain_leaving_the_archive_is_refused_issue_12(tmp_path: Path) -> None:
    """``a -> .`` then ``a/b -> ../escape``: each link is harmless as text; together they escape."""
    path = tmp_path / "chain.tar"
    w = ArchiveWriter(path)
    w.link("a", ".")
    w.link("a/b", "../escape")
    w.close()
    reject(path, "lies under a symbolic link")
    path2 = tmp_path / "chain2.tar"
    w = ArchiveWriter(path2)
    w.link("d/up", "..")
    w.link("out", "d/up/..")  # d/up/.. = d/.. (up is "..") = ../ : outside
    w.close()
    reject(path2, r"link 'out' -> 'd/up/\.\.' leaves the archive")
    path3 = tmp_path / "loop.tar"
    w = ArchiveWriter(path3)
    w.link("x", "y")
    w.link("y", "x")
    w.link("z", "x/q")
    w.close()
    reject(path3, "more than 40 links")


def test_metadata_must_be_one_regular_file_issue_12(tmp_path: Path) -> None:
    twice = tmp_path / "twice.tar"
    legacy_archive(twice, extra=[("manifest.json", b"[]")])
    reject(twice, "manifest.json appears more than once")
    linked = tmp_path / "linked.tar"
    w = ArchiveWriter(linked)
    w.add("real.json", b"[]")
    w.link("manifest.json", "real.json")
    w.close()
    reject(linked, "manifest.json must be a regular file")


def test_remove_tags_in_place_keeps_the_image_issue_12(tmp_path: Path) -> None:
    """RepoTags naming the operator's images are removed; no other byte of the archive moves."""
    from runner.imagetar import remove_tags

    path = tmp_path / "retag.tar"
    config = _config()
    digest = hashlib.sha256(config).hexdigest()
    manifest = [
        {
            "Config": f"{digest}.json",
            "RepoTags": ["csawm-base/torch:bookworm", "csawm-leaderboard:latest"],
            "Layers": ["l/layer.tar"],
        }
    ]
    w = ArchiveWriter(path)
    w.add(f"{digest}.json", config)
    w.add("l/layer.tar", _layer())
    w.add("repositories", json.dumps({"csawm-base/torch": {"bookworm": "l"}}).encode())
    w.add("manifest.json", json.dumps(manifest).encode())
    w.close()
    before = path.read_bytes()
    assert remove_tags(path) == path
    after = path.read_bytes()
    assert len(after) == len(before)
    with tarfile.open(path) as tf:
        spans = [
            range(m.offset_data, m.offset_data + m.size)
            for m in tf
            if m.name in ("manifest.json", "repositories")
        ]
    changed = [i for i, (x, y) in enumerate(zip(before, after, strict=True)) if x != y]
    assert changed and all(any(i in span for span in spans) for i in changed)
    info = inspect_archive(path)
    assert (info.digest, info.repo_tags) == (f"sha256:{digest}", ())
    with tarfile.open(path) as tf:
        fh = tf.extractfile("repositories")
        assert fh is not None and json.loads(fh.read()) == {}


def test_remove_tags_of_gzip_and_oci_archives_issue_12(tmp_path: Path) -> None:
    from runner.imagetar import remove_tags

    gz = tmp_path / "a.tar.gz"
    digest = legacy_archive(gz, gz=True)
    plain = remove_tags(gz)
    assert not gz.exists() and plain.read_bytes()[:2] != b"\x1f\x8b"
    assert (inspect_archive(plain).digest, inspect_archive(plain).repo_tags) == (digest, ())
    oci = tmp_path / "oci.tar"
    digest = oci_archive(oci)
    remove_tags(oci)
    with tarfile.open(oci) as tf:
        fh = tf.extractfile("index.json")
        assert fh is not None
        index = json.loads(fh.read())
    assert all("io.containerd.image.name" not in (m.get("annotations") or {}) for m in index["manifests"])
    assert inspect_archive(oci).digest == digest


def _retagged_copy(source: Path, target: Path, repo_tags: list[str]) -> None:
    """`source` (a docker save archive) with manifest.json's RepoTags replaced by `repo_tags`."""
    with tarfile.open(source) as src, tarfile.open(target, "w") as dst:
        for member in src:
            data = src.extractfile(member) if member.isreg() else None
            if member.name == "manifest.json" and data is not None:
                manifest = json.loads(data.read())
                manifest[0]["RepoTags"] = repo_tags
                raw = json.dumps(manifest).encode()
                member.size = len(raw)
                data = io.BytesIO(raw)
            dst.addfile(member, data)


@pytest.mark.docker
def test_loading_an_upload_never_moves_an_engine_tag_issue_12(
    tmp_path: Path, docker_client: Any, base_image: str
) -> None:
    """An archive whose RepoTags name an existing image (here a victim tag made for the test, in
    production ``csawm-base/torch:bookworm``): once `remove_tags` has run, ``docker load`` leaves
    the victim where it was; without it, the same archive moves the tag (the attack is real)."""
    from runner.imagetar import remove_tags
    from tests.runner.conftest import TEST_REPO, _build

    victim = f"{TEST_REPO}/victim:v"
    attacker = _build(
        docker_client, f"{TEST_REPO}/attacker:x", f"FROM {base_image}\nLABEL csawm.test=attacker\n", {}
    )
    try:
        assert docker_client.images.get(base_image).tag(victim)
        victim_id = docker_client.images.get(victim).id
        saved = tmp_path / "attacker-saved.tar"
        with saved.open("wb") as out:
            for chunk in docker_client.images.get(attacker).save(named=True):
                out.write(chunk)
        hostile = tmp_path / "hostile.tar"
        _retagged_copy(saved, hostile, [victim])
        attacker_id = inspect_archive(hostile).digest
        assert inspect_archive(hostile).repo_tags == (victim,) and attacker_id != victim_id

        untagged = tmp_path / "untagged.tar"
        untagged.write_bytes(hostile.read_bytes())
        assert DockerRunner(docker_client).load_archive(remove_tags(untagged)) == attacker_id
        assert docker_client.images.get(victim).id == victim_id
        # the runner itself loads a tagged archive (csawm check my-model.tar) from an untagged copy
        assert DockerRunner(docker_client).load_archive(hostile) == attacker_id
        assert docker_client.images.get(victim).id == victim_id
        assert inspect_archive(hostile).repo_tags == (victim,)  # the caller's file is left as it was

        with hostile.open("rb") as fh:
            docker_client.images.load(fh)
        assert docker_client.images.get(victim).id == attacker_id  # the attack, without remove_tags
    finally:
        for tag in (victim, attacker):
            with contextlib.suppress(docker.errors.ImageNotFound):
                docker_client.images.remove(tag)
