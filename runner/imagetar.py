"""Inspecting a ``docker save`` archive before anything loads it.

A submission arrives as an archive that the engine would unpack with root privileges, so it is read
here first, in one forward pass with memory that stays flat whatever the size (``tarfile`` headers
only; at most one small JSON member held at a time, plus the metadata kept). A plain tar on disk is
walked header to header, seeking over layer data, which is never read; a gzip archive is streamed
through a bounded decompressor (`_GzipStream`) in ``tarfile``'s stream mode, under a
compression-ratio guard. Two layouts are understood:

* **legacy** (``docker save`` up to Docker 24): ``manifest.json`` (a list of
  ``{"Config", "RepoTags", "Layers"}``), ``<config-hex>.json``, ``<layer>/layer.tar``;
* **OCI layout** (Docker 25+, buildah, skopeo): ``oci-layout``, ``index.json`` → image manifest blob
  → config blob, all under ``blobs/sha256/``; Docker 25+ also writes a compatible ``manifest.json``.

Checks, each failing with an `ImageArchiveError` that names the problem:

* the archive is a readable tar (plain or gzip), not truncated;
* every member name is relative, has no ``..`` component and does not lie under a symbolic link;
  link targets are resolved against the links already seen (so a chain such as ``a -> .`` then
  ``b -> a/..`` that ends outside the archive is refused); only regular files, directories and such
  links are allowed (no devices, FIFOs, sparse files); the metadata files (``manifest.json``,
  ``index.json``, ``repositories``, ``oci-layout``) are regular files, each present once;
* header extensions (GNU long names and link names, PAX records) of at most
  `MAX_HEADER_EXTENSION` bytes each: ``tarfile`` reads an extension whole before the member it
  describes, so a 250 MiB long name would otherwise sit in memory before any other check;
* at most `max_member_bytes` per member and `max_total_bytes` in all, judged from the tar headers
  before any data is read; at most `MAX_MEMBERS` members; a gzip archive stops decompressing at
  `max_total_bytes` out (the server passes its upload cap, so nothing inflates past it);
* decompression ratio at most `MAX_COMPRESSION_RATIO` once `RATIO_CHECK_AFTER` bytes are out, which
  stops a gzip bomb long before it reaches the size caps;
* exactly one image (one distinct config), its manifest, config and every layer present;
* the config's sha256 matches its name (that digest is the image id the engine will report);
* ``linux/amd64``.

The image's ``USER`` is recorded; running as root is flagged (the runner forces a non-root uid
anyway). Members of the layer tars themselves are not opened: the engine unpacks them with its own
path checks, and reading them would double the cost.

Loading never changes the engine's names: ``docker load`` applies the archive's ``RepoTags`` (and an
OCI index's image-name annotations), so an archive naming ``csawm-base/torch:bookworm`` would retag
the operator's base image. `remove_tags` rewrites those metadata files, in place and at the same
length (JSON padded with spaces), before the server stores an upload; the image is then referred to
by its id only.
"""

from __future__ import annotations

import hashlib
import json
import os
import posixpath
import tarfile
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, BinaryIO, NoReturn, cast

MAX_MEMBERS = 100_000
MAX_HEADER_EXTENSION = 64 * 1024  # a GNU long name or PAX record set; real ones are < 1 KiB
MAX_LINK_HOPS = 40  # as Linux's limit on symbolic links followed in one path lookup
METADATA_FILES = ("manifest.json", "index.json", "repositories", "oci-layout")
# Index annotations that ``docker load`` (containerd image store, Docker 25+) turns into names.
NAME_ANNOTATIONS = ("io.containerd.image.name", "org.opencontainers.image.ref.name")
MAX_JSON_BYTES = 8 * 1024**2  # a manifest, index or config larger than this is not credible
MAX_JSON_TOTAL = 64 * 1024**2
MAX_COMPRESSION_RATIO = 200.0
RATIO_CHECK_AFTER = 256 * 1024**2
STREAM_BUFSIZE = 1024 * 1024
SUPPORTED_PLATFORM = ("linux", "amd64")
_OCI_INDEX_TYPES = {
    "application/vnd.oci.image.index.v1+json",
    "application/vnd.docker.distribution.manifest.list.v2+json",
}


class ImageArchiveError(ValueError):
    """The archive is rejected; ``str()`` is the reason, fit to show the submitter."""


@dataclass(frozen=True)
class ImageArchiveInfo:
    """What the archive holds.

    Attributes
    ----------
    digest : str
        ``sha256:<hex>`` of the image config, i.e. the image id the engine reports after loading.
    repo_tags : tuple of str
        Tags recorded in the archive (may be empty).
    architecture, os : str
        From the image config.
    user : str
        The config's ``User`` (empty = root).
    runs_as_root : bool
        True when ``user`` names uid 0 or is empty.
    size_bytes : int
        Uncompressed bytes of all archive members.
    layer_count : int
        Number of layers in the image manifest.
    """

    digest: str
    repo_tags: tuple[str, ...]
    architecture: str
    os: str
    user: str
    runs_as_root: bool
    size_bytes: int
    layer_count: int


_EXTENSION_TYPES = {
    tarfile.GNUTYPE_LONGNAME: "GNU long name",
    tarfile.GNUTYPE_LONGLINK: "GNU long link name",
    tarfile.XHDTYPE: "PAX header",
    tarfile.XGLTYPE: "PAX global header",
    tarfile.SOLARIS_XHDTYPE: "PAX header",
}


class _BoundedTarInfo(tarfile.TarInfo):
    """A `tarfile.TarInfo` that refuses a header extension over `MAX_HEADER_EXTENSION` and sparse
    members before ``tarfile`` reads them (it would read either whole, into memory)."""

    def _proc_member(self, tarfile_: tarfile.TarFile) -> tarfile.TarInfo:
        what = _EXTENSION_TYPES.get(self.type)
        if what is not None and self.size > MAX_HEADER_EXTENSION:
            raise ImageArchiveError(
                f"a {what} of {self.size} bytes (at offset {self.offset}) is over the "
                f"{MAX_HEADER_EXTENSION // 1024} KiB cap on tar header extensions"
            )
        if self.type == tarfile.GNUTYPE_SPARSE:
            self._sparse_refused()
        member: tarfile.TarInfo = super()._proc_member(tarfile_)  # type: ignore[misc]
        return member

    def _sparse_refused(self, *_: object) -> NoReturn:
        raise ImageArchiveError(f"member {self.name!r} is a sparse file (docker save writes none)")

    _proc_gnusparse_00 = _proc_gnusparse_01 = _proc_gnusparse_10 = _sparse_refused


class _GzipStream:
    """Bounded gzip decompression: never inflates more than the ``size`` asked for.

    ``tarfile``'s own gzip stream inflates a whole input buffer at once (1 MiB of a bomb becomes
    1 GiB in memory), and `gzip.GzipFile` works in 8 KiB steps (slow); this reads the file in
    `STREAM_BUFSIZE` steps and asks zlib for at most ``size`` bytes out, keeping the rest of the
    input in ``unconsumed_tail``. zlib checks each member's CRC and length trailer; concatenated
    members (``pigz``, ``cat a.gz b.gz``) are followed.
    """

    def __init__(self, source: BinaryIO) -> None:
        self._source = source
        self._zlib = zlib.decompressobj(16 + zlib.MAX_WBITS)
        self._pending = b""  # input not yet given to zlib
        self._done = False

    def read(self, size: int = -1) -> bytes:
        size = STREAM_BUFSIZE if size < 0 else size
        out: list[bytes] = []
        n = 0
        while n < size and not self._done:
            data = self._zlib.unconsumed_tail or self._pending or self._source.read(STREAM_BUFSIZE)
            self._pending = b""
            if not data:
                if not self._zlib.eof:  # zlib holds the trailer back until all output is out
                    raise EOFError("gzip stream ends before its end-of-stream marker")
                self._done = True
                break
            if self._zlib.eof:  # the last member is complete: what follows is another or padding
                if not data.strip(b"\0"):
                    continue
                self._zlib = zlib.decompressobj(16 + zlib.MAX_WBITS)
            chunk = self._zlib.decompress(data, size - n)
            out.append(chunk)
            n += len(chunk)
            if self._zlib.eof:
                self._pending = self._zlib.unused_data
        return b"".join(out)


class _RatioGuard:
    """The decompressed stream handed to ``tarfile``; refuses a decompression bomb as it reads.

    Every read checks bytes out / bytes in against `MAX_COMPRESSION_RATIO` once
    `RATIO_CHECK_AFTER` bytes are out, and bytes out against `max_out`.
    """

    def __init__(self, source: BinaryIO, max_out: int) -> None:
        self._source = source
        self._inner = _GzipStream(source)
        self.max_out = max_out
        self.out = 0

    @property
    def compressed(self) -> int:
        """Bytes read from disk so far (the file is read forward from its start)."""
        return self._source.tell()

    def read(self, size: int = -1) -> bytes:
        data = self._inner.read(min(size, self.max_out + 1 - self.out) if size >= 0 else size)
        self.out += len(data)
        if self.out > self.max_out:
            raise ImageArchiveError(f"archive unpacks to more than the cap of {_gib(self.max_out)}")
        if self.out > RATIO_CHECK_AFTER and self.out > MAX_COMPRESSION_RATIO * max(self.compressed, 1):
            raise ImageArchiveError(
                f"compression ratio over {MAX_COMPRESSION_RATIO:.0f}:1 ({_gib(self.out)} out of "
                f"{_gib(self.compressed)} read): refusing a likely decompression bomb"
            )
        return data


def _gib(n: float) -> str:
    return f"{n / 1024**3:.2f} GiB"


def _check_name(name: str) -> str:
    """The normalised member name, or an error for an absolute or escaping one."""
    if "\x00" in name:
        raise ImageArchiveError(f"member name {name!r} contains a NUL byte")
    if name.startswith("/"):
        raise ImageArchiveError(f"member {name!r} has an absolute path")
    if ".." in name.split("/"):
        raise ImageArchiveError(f"member {name!r} contains a '..' path component (path traversal)")
    norm = posixpath.normpath(name)
    return "" if norm == "." else norm


def _resolve_path(symlinks: dict[str, str], path: str, what: str) -> str:
    """`path` (archive-relative) with every symbolic link on it replaced by its target, in the
    order the engine would follow them, against the links seen so far.

    Raises `ImageArchiveError` when a ``..`` climbs above the archive root or the links loop.
    """
    pending = path.split("/")
    real: list[str] = []
    hops = 0
    while pending:
        part = pending.pop(0)
        if part in ("", "."):
            continue
        if part == "..":
            if not real:
                raise ImageArchiveError(f"{what} leaves the archive")
            real.pop()
            continue
        real.append(part)
        target = symlinks.get("/".join(real))
        if target is not None:
            hops += 1
            if hops > MAX_LINK_HOPS:
                raise ImageArchiveError(f"{what} goes through more than {MAX_LINK_HOPS} links (a loop?)")
            real.pop()  # a symlink's target is relative to the directory holding it
            pending = target.split("/") + pending
    return "/".join(real)


def _check_link(member: tarfile.TarInfo, name: str, scan: _Scan) -> None:
    target = member.linkname
    if not target or target.startswith("/"):
        raise ImageArchiveError(f"link {name!r} points to the absolute path {target!r}")
    what = f"link {name!r} -> {target!r}"
    if member.issym():
        _resolve_path(scan.symlinks, posixpath.join(posixpath.dirname(name), target), what)
        scan.symlinks[name] = target
    else:  # hard link: the target is an archive path
        scan.links[name] = _resolve_path(scan.symlinks, target, what)


def _loads(raw: bytes, what: str) -> Any:
    try:
        return json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ImageArchiveError(f"{what} is not valid JSON: {exc}") from None


def _blob_name(digest: str) -> str:
    algo, _, hexpart = digest.partition(":")
    if algo != "sha256" or len(hexpart) != 64 or any(c not in "0123456789abcdef" for c in hexpart):
        raise ImageArchiveError(f"unsupported or malformed digest {digest!r}")
    return f"blobs/sha256/{hexpart}"


class _Scan:
    """Accumulates what one streaming pass has seen."""

    def __init__(self) -> None:
        self.files: set[str] = set()
        self.symlinks: dict[str, str] = {}  # member -> link target as written (relative to its dir)
        self.links: dict[str, str] = {}  # hard link member -> resolved target (archive path)
        self.metadata: set[str] = set()
        self.json: dict[str, bytes] = {}
        self.json_total = 0
        self.total = 0  # uncompressed bytes declared by the headers of the members seen so far


def _scan(path: Path, *, max_total_bytes: int, max_member_bytes: int) -> _Scan:
    try:
        raw = path.open("rb")
    except OSError as exc:
        raise ImageArchiveError(f"cannot open archive {path}: {exc.strerror}") from None
    with raw:
        gzipped = raw.read(2) == b"\x1f\x8b"
        raw.seek(0)
        scan = _Scan()
        count = 0
        try:
            if gzipped:  # one forward pass through the decompressor, guarded against bombs
                tf = tarfile.open(  # noqa: SIM115 - closed by the with-block below
                    fileobj=cast(IO[bytes], _RatioGuard(raw, max_total_bytes)),
                    mode="r|",
                    bufsize=STREAM_BUFSIZE,
                    tarinfo=_BoundedTarInfo,
                )
            else:  # a plain tar on disk: headers are read, layer data is seeked over, never read
                tf = tarfile.open(fileobj=raw, mode="r:", tarinfo=_BoundedTarInfo)  # noqa: SIM115 - closed below
            with tf:
                while (member := tf.next()) is not None:
                    cast(Any, tf).members.clear()  # tarfile would keep every TarInfo otherwise
                    count += 1
                    if count > MAX_MEMBERS:
                        raise ImageArchiveError(f"archive has more than {MAX_MEMBERS} members")
                    _visit(
                        tf, member, scan, max_total_bytes=max_total_bytes, max_member_bytes=max_member_bytes
                    )
        except (tarfile.ReadError, EOFError, OSError, zlib.error) as exc:
            if isinstance(exc, zlib.error) or str(exc).startswith("zlib error: "):
                detail = str(exc).removeprefix("zlib error: ")
                raise ImageArchiveError(f"archive is corrupt (gzip: {detail})") from None
            truncated = isinstance(exc, EOFError) or "end of data" in str(exc) or "truncated" in str(exc)
            if count == 0 and not truncated:
                raise ImageArchiveError(f"not a readable tar or tar.gz archive ({exc})") from None
            raise ImageArchiveError(f"archive is truncated or corrupt ({exc})") from None
        if count == 0:
            raise ImageArchiveError("archive is empty")
    return scan


def _visit(
    tf: tarfile.TarFile, member: tarfile.TarInfo, scan: _Scan, *, max_total_bytes: int, max_member_bytes: int
) -> None:
    name = _check_name(member.name)
    parent = posixpath.dirname(name)
    if parent and _resolve_path(scan.symlinks, parent, f"member {name!r}") != parent:
        raise ImageArchiveError(f"member {name!r} lies under a symbolic link")
    if name in METADATA_FILES:
        if not member.isreg():
            raise ImageArchiveError(f"{name} must be a regular file, not a link or directory")
        if name in scan.metadata:
            raise ImageArchiveError(f"{name} appears more than once in the archive")
        scan.metadata.add(name)
    if member.issym() or member.islnk():
        _check_link(member, name, scan)
        return
    if member.isdir():
        return
    if not member.isreg():
        raise ImageArchiveError(f"member {name!r} is a device, FIFO or other special file")
    if member.size > max_member_bytes:
        raise ImageArchiveError(
            f"member {name!r} is {_gib(member.size)}, over the per-member cap of {_gib(max_member_bytes)}"
        )
    scan.total += member.size
    if scan.total > max_total_bytes:
        raise ImageArchiveError(f"archive unpacks to more than the cap of {_gib(max_total_bytes)}")
    scan.files.add(name)
    # Only small members can be JSON metadata. Others are never read here: tarfile seeks over them
    # (plain tar) or reads through them in the guarded decompressor (gzip).
    if member.size > MAX_JSON_BYTES or not (
        name.endswith(".json") or name in ("oci-layout", "repositories") or name.startswith("blobs/")
    ):
        return
    fobj = tf.extractfile(member)
    if fobj is None:
        return
    head = fobj.read(1)
    if head not in (b"{", b"["):
        return
    scan.json_total += member.size
    if scan.json_total > MAX_JSON_TOTAL:
        raise ImageArchiveError(f"archive holds more than {MAX_JSON_TOTAL // 1024**2} MiB of JSON metadata")
    scan.json[name] = head + fobj.read()


def _resolve(scan: _Scan, name: str) -> str:
    """Follow in-archive links (symbolic and hard, bounded) to the member holding the data."""
    for _ in range(MAX_LINK_HOPS):
        name = _resolve_path(scan.symlinks, name, f"{name!r}")
        if name not in scan.links:
            return name
        name = scan.links[name]
    raise ImageArchiveError(f"link chain at {name!r} is too long or circular")


def _member_json(scan: _Scan, name: str, what: str) -> tuple[bytes, Any]:
    real = _resolve(scan, posixpath.normpath(name))
    if real not in scan.json:
        if real in scan.files:
            raise ImageArchiveError(f"{what} {name!r} is not JSON or too large")
        raise ImageArchiveError(f"{what} {name!r} is missing from the archive")
    raw = scan.json[real]
    return raw, _loads(raw, f"{what} {name!r}")


def _legacy_image(scan: _Scan) -> tuple[str, list[str], tuple[str, ...]]:
    """(config member, layer members, repo tags) from ``manifest.json``."""
    _, manifest = _member_json(scan, "manifest.json", "manifest")
    if not isinstance(manifest, list) or not manifest:
        raise ImageArchiveError("manifest.json holds no image")
    configs: dict[str, dict[str, Any]] = {}
    for entry in manifest:
        if not isinstance(entry, dict) or not isinstance(entry.get("Config"), str):
            raise ImageArchiveError("manifest.json entry without a Config")
        configs.setdefault(posixpath.normpath(entry["Config"]), entry)
    if len(configs) != 1:
        raise ImageArchiveError(f"archive holds {len(configs)} images; exactly one is accepted")
    tags: list[str] = []
    for entry in manifest:
        tags += [t for t in entry.get("RepoTags") or [] if isinstance(t, str)]
    ((config, entry),) = configs.items()
    layers = entry.get("Layers")
    if not isinstance(layers, list) or not all(isinstance(x, str) for x in layers):
        raise ImageArchiveError("manifest.json entry has no list of Layers")
    return config, layers, tuple(dict.fromkeys(tags))


def _oci_image(scan: _Scan) -> tuple[str, list[str], tuple[str, ...]]:
    """(config member, layer members, repo tags) from ``index.json`` (nested indexes followed)."""
    _, index = _member_json(scan, "index.json", "OCI index")
    manifests: dict[str, dict[str, Any]] = {}
    tags: list[str] = []
    pending = [index]
    for _ in range(8):
        nxt = []
        for idx in pending:
            entries = idx.get("manifests") if isinstance(idx, dict) else None
            for desc in entries if isinstance(entries, list) else []:
                if not isinstance(desc, dict) or not isinstance(desc.get("digest"), str):
                    raise ImageArchiveError("OCI index entry without a digest")
                tag = (desc.get("annotations") or {}).get("io.containerd.image.name")
                if isinstance(tag, str):
                    tags.append(tag)
                if desc.get("mediaType") in _OCI_INDEX_TYPES:
                    _, child = _member_json(scan, _blob_name(desc["digest"]), "nested OCI index")
                    nxt.append(child)
                else:
                    manifests.setdefault(desc["digest"], desc)
        pending = nxt
        if not pending:
            break
    if not manifests:
        raise ImageArchiveError("OCI index.json lists no image manifest")
    if len(manifests) != 1:
        raise ImageArchiveError(f"archive holds {len(manifests)} images; exactly one is accepted")
    (digest,) = manifests
    _, manifest = _member_json(scan, _blob_name(digest), "OCI image manifest")
    cfg = manifest.get("config") if isinstance(manifest, dict) else None
    if not isinstance(cfg, dict) or not isinstance(cfg.get("digest"), str):
        raise ImageArchiveError("OCI image manifest has no config")
    layers = [
        _blob_name(d["digest"]) for d in manifest.get("layers") or [] if isinstance(d, dict) and "digest" in d
    ]
    return _blob_name(cfg["digest"]), layers, tuple(dict.fromkeys(tags))


def inspect_archive(
    path: Path, *, max_total_bytes: int = 16 * 1024**3, max_member_bytes: int = 8 * 1024**3
) -> ImageArchiveInfo:
    """Inspect a ``docker save`` archive (tar or tar.gz, legacy or OCI layout) without loading it.

    Raises
    ------
    ImageArchiveError
        With the reason, for any check listed in the module docstring.
    """
    scan = _scan(path, max_total_bytes=max_total_bytes, max_member_bytes=max_member_bytes)
    if "manifest.json" in scan.json or "manifest.json" in scan.files:
        config_name, layers, tags = _legacy_image(scan)
    elif "index.json" in scan.files:
        config_name, layers, tags = _oci_image(scan)
    else:
        raise ImageArchiveError("neither manifest.json nor index.json found: not a docker save archive")
    raw, config = _member_json(scan, config_name, "image config")
    hexdigest = hashlib.sha256(raw).hexdigest()
    stem = posixpath.basename(config_name).removesuffix(".json")
    if len(stem) == 64 and stem != hexdigest:
        raise ImageArchiveError(
            f"image config {config_name!r} does not match its digest (sha256:{hexdigest})"
        )
    if not isinstance(config, dict):
        raise ImageArchiveError("image config is not a JSON object")
    for layer in layers:
        real = _resolve(scan, posixpath.normpath(layer))
        if real not in scan.files:
            raise ImageArchiveError(f"layer {layer!r} named by the manifest is missing from the archive")
    arch = str(config.get("architecture") or "")
    osname = str(config.get("os") or "")
    if (osname, arch) != SUPPORTED_PLATFORM:
        raise ImageArchiveError(
            f"image platform is {osname or '?'}/{arch or '?'}; the server runs linux/amd64 only "
            "(build with --platform linux/amd64)"
        )
    inner = config.get("config")
    user = str((inner if isinstance(inner, dict) else {}).get("User") or "")
    return ImageArchiveInfo(
        digest=f"sha256:{hexdigest}",
        repo_tags=tags,
        architecture=arch,
        os=osname,
        user=user,
        runs_as_root=user.split(":", 1)[0].strip() in ("", "0", "root"),
        size_bytes=scan.total,
        layer_count=len(layers),
    )


def _untagged(name: str, raw: bytes) -> bytes | None:
    """`raw` (a metadata file) without the names ``docker load`` would apply; None when it has none."""
    data = _loads(raw, name)
    changed = False
    if name == "manifest.json" and isinstance(data, list):
        for entry in data:
            if isinstance(entry, dict) and entry.pop("RepoTags", None) is not None:
                changed = True
    elif name == "index.json" and isinstance(data, dict):
        for desc in data.get("manifests") or []:
            annotations = desc.get("annotations") if isinstance(desc, dict) else None
            if isinstance(annotations, dict):
                for key in NAME_ANNOTATIONS:
                    changed = annotations.pop(key, None) is not None or changed
    elif name == "repositories" and data != {}:
        data, changed = {}, True
    if not changed:
        return None
    return json.dumps(data, ensure_ascii=False, separators=(",", ":")).encode()


def _decompress(source: Path, target: Path, max_bytes: int) -> None:
    """Inflate the gzip archive `source` into `target` (created 0600), through the same bounded,
    ratio-guarded stream as the inspection."""
    with source.open("rb") as raw:
        stream = _RatioGuard(raw, max_bytes)
        fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as out:
            while chunk := stream.read(STREAM_BUFSIZE):
                out.write(chunk)


def remove_tags(path: Path, *, max_total_bytes: int = 16 * 1024**3) -> Path:
    """Make an inspected archive name no image; return the path of the plain tar to load.

    ``manifest.json`` loses its ``RepoTags``, ``index.json`` its image-name annotations
    (`NAME_ANNOTATIONS`) and ``repositories`` its entries, so ``docker load`` creates the image
    under its id and moves no existing tag. A plain tar is rewritten in place: each changed file
    keeps its length (the compact JSON is padded with spaces), so no other byte moves. A gzip
    archive is first inflated to ``<path>.tar`` next to it (bounded by `max_total_bytes`), and the
    gzip file removed.

    Raises
    ------
    ImageArchiveError
        When the archive is not readable, or a rewritten file would not fit in place.
    """
    with path.open("rb") as fh:
        gzipped = fh.read(2) == b"\x1f\x8b"
    if gzipped:
        plain = path.with_name(path.name + ".tar")
        try:
            _decompress(path, plain, max_total_bytes)
        except BaseException:
            plain.unlink(missing_ok=True)
            raise
        path.unlink()
        path = plain
    with path.open("r+b") as fh:
        spots: list[tuple[str, int, int]] = []
        try:
            with tarfile.open(fileobj=fh, mode="r:", tarinfo=_BoundedTarInfo) as tf:
                while (member := tf.next()) is not None:
                    cast(Any, tf).members.clear()
                    name = _check_name(member.name)
                    if member.isreg() and name in METADATA_FILES:
                        spots.append((name, member.offset_data, member.size))
        except (tarfile.ReadError, EOFError, OSError) as exc:
            raise ImageArchiveError(f"archive is truncated or corrupt ({exc})") from None
        for name, offset, size in spots:
            if size > MAX_JSON_BYTES:
                raise ImageArchiveError(f"{name} is over {MAX_JSON_BYTES // 1024**2} MiB")
            fh.seek(offset)
            new = _untagged(name, fh.read(size))
            if new is None:
                continue
            if len(new) > size:
                raise ImageArchiveError(f"{name} cannot be rewritten without its tags in place")
            fh.seek(offset)
            fh.write(new + b" " * (size - len(new)))
    return path
