"""Test-set consistency: the input the models will read is the test set the server scores against.

Why: an operator who loads the wrong images onto the cluster's volume (an old release, the public
set, a half-finished copy) would otherwise turn every run into an ``output_invalid`` — or worse, a
wrong score — that the submitter pays for. The worker checks before it leases anything; a mismatch
is a permanent infrastructure fault: `TestSetMismatch` is raised from the worker's
``prepare_test_set``, so the worker leases no run (nothing is charged) and ``/readyz`` answers
503 naming ``test_set`` until it is fixed (the worker keeps re-checking).

The stamp
    ``MANIFEST.sha256`` at the root of the test-images volume, written by the operator's load step
    (`load_volume`, ``python -m server.worker.test_set load BENCHMARK_DIR TARGET``), in
    ``sha256sum`` layout (``<hex>  <name>``), one line each for:

    * ``test-set``: `EvaluationSet.manifest_digest` (private images + private labels,
      `server.benchmark.manifest`);
    * ``public``: the public set's manifest digest, or ``-`` when the benchmark has none;
    * ``hidden``, ``preflight`` and ``public-input``: `input_digest` of the ``hidden/``,
      ``preflight/`` and ``public/`` folders as copied onto the volume (``manifest.csv`` plus every
      image), i.e. what the model Pods mount at ``/input``; ``public/`` (the public images only, the
      hidden input of a development phase) is ``-`` without a public set. A stamp written before
      ``public/`` existed has no ``public-input`` line and is refused: reload the volume;
    * ``images`` and ``public-images``: the images-only digest (`server.worker.images_digest`) of the
      images copied onto the volume: ``hidden/`` split into private and public images by the public
      set's names, and ``public/`` alone (``-`` without a public set). They cover no label, so a
      remote worker (images only, issue 25) can check them; a stamp written before they existed has
      neither line and stays valid for database workers, while a remote worker refuses it.

Docker runner
    The worker materialises the hidden and public inputs itself from ``CSAWM_BENCHMARK_DIR``;
    `verify_materialised` checks that each folder it will mount holds exactly the benchmark's images (its
    manifest, hashed from the copies with the benchmark's label file, equals the benchmark's
    digest), lists them in ``manifest.csv``, and holds no other file.

Kubernetes runner
    The model Pods read a PVC the worker does not write. The worker reads the stamp from
    ``CSAWM_K8S_TEST_SET_DIGEST_FILE`` (the same volume, mounted read-only into the worker; see
    k8s/README.md) and compares every line with what it computes from its own benchmark copy
    (a database worker: the five lines with labels, `verify_stamp`; a remote worker, which has no
    labels: ``images``, ``public-images`` and ``preflight``, `verify_images_stamp`). A
    missing setting or file blocks the worker too: an unverified volume is not trusted. A file was
    chosen over a probe Job because it costs nothing per check, needs no image pull and no extra
    RBAC, and keeps working while the cluster is busy; its limit (documented): it proves what the
    load step wrote, so the volume must be mounted read-only everywhere but in the load step.
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import json
import shutil
import sys
import tempfile
from dataclasses import dataclass, replace
from pathlib import Path

from runner.errors import PermanentInfraError
from server.benchmark.dataset import Benchmark
from server.benchmark.manifest import build_manifest, sha256_file
from server.worker.evaluation import HIDDEN_INPUT, PREFLIGHT_INPUT, PUBLIC_INPUT, EvaluationSet
from server.worker.images_digest import digest_files, files_of
from server.worker.inputs import ImagesOnly

STAMP_FILE = "MANIFEST.sha256"
PUBLIC_DIR = PUBLIC_INPUT
MAX_STAMP_BYTES = 4096
_NAMES = ("test-set", "public", HIDDEN_INPUT, PREFLIGHT_INPUT, "public-input")
_IMAGES_NAMES = ("images", "public-images")  # optional: absent from stamps written before issue 25


class TestSetMismatch(PermanentInfraError):
    """The models' input is not (or cannot be shown to be) the server's test set."""

    __test__ = False  # not a pytest test class, despite the name


@dataclass(frozen=True)
class Stamp:
    """The lines of ``MANIFEST.sha256`` (module docstring); `public` and `public_input` are None
    without a public set. `images` and `public_images` are the images-only lines as written (``-``
    for no public set), both None in a stamp written before they existed."""

    test_set: str
    public: str | None
    hidden: str
    preflight: str
    public_input: str | None
    images: str | None = None
    public_images: str | None = None

    def values(self) -> tuple[str, str, str, str, str]:
        """The lines' values in `_NAMES` order, ``-`` for what the benchmark does not have."""
        return (self.test_set, self.public or "-", self.hidden, self.preflight, self.public_input or "-")

    def render(self) -> str:
        lines = list(zip(self.values(), _NAMES, strict=True))
        if self.images is not None:
            lines += [(self.images, "images"), (self.public_images or "-", "public-images")]
        return "".join(f"{value}  {name}\n" for value, name in lines)

    @classmethod
    def parse(cls, text: str) -> Stamp:
        """Read a stamp; `TestSetMismatch` naming what is wrong with a malformed one."""
        found: dict[str, str] = {}
        for number, line in enumerate(text.splitlines(), start=1):
            if not line.strip():
                continue
            value, sep, name = line.partition("  ")
            if not sep or name not in _NAMES + _IMAGES_NAMES or name in found:
                raise TestSetMismatch(f"{STAMP_FILE} line {number} is not '<sha256>  <name>': {line[:80]!r}")
            found[name] = value
        missing = [name for name in _NAMES if name not in found]
        if missing:
            raise TestSetMismatch(
                f"{STAMP_FILE} has no line for {', '.join(missing)} (a volume loaded before the "
                f"{PUBLIC_DIR}/ input existed: reload it into an empty volume)"
            )
        halves = [name for name in _IMAGES_NAMES if name in found]
        if len(halves) == 1:
            raise TestSetMismatch(f"{STAMP_FILE} has a {halves[0]} line without the other images line")
        public, public_input = found["public"], found["public-input"]
        return cls(
            found["test-set"], None if public == "-" else public, found[HIDDEN_INPUT], found[PREFLIGHT_INPUT],
            None if public_input == "-" else public_input, found.get("images"), found.get("public-images"),
        )  # fmt: skip


def input_digest(folder: Path) -> str:
    """sha256 of a model input folder: its ``manifest.csv`` and each listed image, canonically.

    The sha256 of ``{"images": [[name, sha256], ...], "manifest_csv": sha256}`` (sorted keys, no
    whitespace). A listed image that is missing, or a file in ``images/`` that is not listed (a
    model can list the folder: an extra file there is mounted with the rest), raises
    `TestSetMismatch`.
    """
    manifest = folder / "manifest.csv"
    if not manifest.is_file():
        raise TestSetMismatch(f"{folder} has no manifest.csv")
    names = _listed(folder)
    _refuse_unlisted(folder, names)
    images = []
    for name in names:
        path = folder / "images" / name
        if not path.is_file():
            raise TestSetMismatch(f"{folder}: image {name} listed in manifest.csv is missing")
        images.append([name, sha256_file(path)])
    body = {"images": images, "manifest_csv": sha256_file(manifest)}
    return hashlib.sha256(json.dumps(body, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


def expected_stamp(evaluation: EvaluationSet, root: Path | None = None) -> Stamp:
    """The stamp a volume loaded from this worker's benchmark must carry; with `root` (the load
    step's target), the input digests are those of the copies there."""

    def digest(folder: Path, name: str) -> str:
        return input_digest(folder if root is None else root / name)

    return Stamp(
        test_set=evaluation.manifest_digest,
        public=evaluation.public_manifest_digest,
        hidden=digest(evaluation.hidden_input, HIDDEN_INPUT),
        preflight=digest(evaluation.preflight_input, PREFLIGHT_INPUT),
        public_input=None if evaluation.public_input is None else digest(evaluation.public_input, PUBLIC_DIR),
    )


def verify_materialised(benchmark_dir: Path, evaluation: EvaluationSet) -> None:
    """Docker runner: the folders the worker mounts as ``/input`` in the hidden stage are the
    benchmark's test set (``hidden``) and its public set alone (``public``, development phases).

    Re-hashes the copies with the benchmark's own label files, so a stale or edited copy (the
    folder name keys only a digest prefix) is caught before a model runs on it.
    """
    bench = Benchmark.open(benchmark_dir)
    hidden = evaluation.hidden_input
    _check_listing(hidden, evaluation.hidden_filenames)
    copy = build_manifest(hidden / "images", bench.private_labels, evaluation.private.filenames).digest()
    if copy != evaluation.manifest_digest:
        raise TestSetMismatch(
            f"the hidden input {hidden} is not the test set (manifest {copy[:12]}…, "
            f"expected {evaluation.manifest_digest[:12]}…): delete it and restart the worker"
        )
    if evaluation.public is None or bench.public_labels is None:
        return
    public_input = evaluation.public_input
    if public_input is None:
        raise TestSetMismatch("the benchmark has a public set but the worker prepared no public input")
    _check_listing(public_input, evaluation.public.filenames)
    for folder in (hidden, public_input):
        public = build_manifest(folder / "images", bench.public_labels, evaluation.public.filenames).digest()
        if public != evaluation.public_manifest_digest:
            raise TestSetMismatch(
                f"the public images in {folder} are not the benchmark's public set: delete it and "
                "restart the worker"
            )


def verify_stamp(stamp_file: Path | None, evaluation: EvaluationSet) -> None:
    """Kubernetes runner: the stamp on the test-images volume matches this worker's test set."""
    found = read_stamp(stamp_file)
    expected = expected_stamp(evaluation)
    wrong = [name for name, a, b in zip(_NAMES, found.values(), expected.values(), strict=True) if a != b]
    if wrong:
        raise TestSetMismatch(
            f"the test-images volume ({stamp_file}) does not hold the server's test set: "
            f"{', '.join(wrong)} differ (volume test-set {found.test_set[:12]}…, server "
            f"{expected.test_set[:12]}…); reload it with `python -m server.worker.test_set load`"
        )


def verify_images_stamp(stamp_file: Path | None, inputs: ImagesOnly) -> None:
    """Kubernetes runner on a remote worker: the volume holds the images of this worker's copy.

    The worker has no labels, so it checks the stamp's images-only lines against its own
    images-only digest (which the server checks at every lease: 409 ``test_set_mismatch``), and
    the ``preflight`` line against its own preflight folder (the preflight predictions are
    validated against its names). A stamp without the images lines is refused: reload the volume.
    """
    found = read_stamp(stamp_file)
    if found.images is None:
        raise TestSetMismatch(
            f"{stamp_file} has no images line (a volume loaded before remote workers existed): a "
            "remote worker cannot verify it; reload the volume into an empty one with "
            "`python -m server.worker.test_set load`"
        )
    pairs = {
        "images": (found.images, inputs.digest.images),
        "public-images": (found.public_images, inputs.digest.public or "-"),
        PREFLIGHT_INPUT: (found.preflight, input_digest(inputs.preflight_input)),
    }
    wrong = [name for name, (a, b) in pairs.items() if a != b]
    if wrong:
        raise TestSetMismatch(
            f"the test-images volume ({stamp_file}) does not hold this worker's test images: "
            f"{', '.join(wrong)} differ (volume images {found.images[:12]}…, worker "
            f"{inputs.digest.images[:12]}…); reload it with `python -m server.worker.test_set load` "
            "(with the workers' CSAWM_PREFLIGHT_IMAGES)"
        )


def read_stamp(stamp_file: Path | None) -> Stamp:
    """The stamp at `stamp_file` (``CSAWM_K8S_TEST_SET_DIGEST_FILE``); `TestSetMismatch` when it is
    not set, unreadable, too large or malformed."""
    if stamp_file is None:
        raise TestSetMismatch(
            "CSAWM_K8S_TEST_SET_DIGEST_FILE is not set: the worker cannot verify the test-images "
            f"volume (mount it read-only and point the setting at its {STAMP_FILE}; k8s/README.md)"
        )
    try:
        with stamp_file.open("rb") as fh:
            raw = fh.read(MAX_STAMP_BYTES + 1)
    except OSError as exc:
        raise TestSetMismatch(f"cannot read the test-set stamp {stamp_file}: {exc}") from None
    if len(raw) > MAX_STAMP_BYTES:
        raise TestSetMismatch(f"{stamp_file} is larger than {MAX_STAMP_BYTES} bytes: not a stamp")
    return Stamp.parse(raw.decode("utf-8", errors="replace"))


def _listed(folder: Path) -> list[str]:
    with (folder / "manifest.csv").open(newline="") as fh:
        return [row["Filename"] for row in csv.DictReader(fh)]


def _refuse_unlisted(folder: Path, names: list[str]) -> None:
    """Every file in ``images/`` is listed: a model that lists the folder sees nothing else."""
    images = folder / "images"
    if not images.is_dir():
        raise TestSetMismatch(f"{folder} has no images/ folder")
    extra = sorted({p.name for p in images.iterdir()} - set(names))
    if extra:
        raise TestSetMismatch(
            f"{folder}/images holds {len(extra)} file(s) not listed in manifest.csv, e.g. {extra[0]!r}"
        )


def _check_listing(folder: Path, expected: tuple[str, ...]) -> None:
    """The folder's ``manifest.csv`` lists exactly `expected`, in order, and nothing else is there."""
    listed = _listed(folder)
    if listed != list(expected):
        raise TestSetMismatch(
            f"{folder}/manifest.csv lists {len(listed)} images, not the {len(expected)} of the test set"
        )
    _refuse_unlisted(folder, listed)


# -- the operator's load step ------------------------------------------------------------------------


def load_volume(benchmark_dir: Path, target: Path, n_preflight: int) -> Stamp:
    """Write ``hidden/``, ``preflight/``, ``public/`` (with a public set) and ``MANIFEST.sha256``
    into `target` (the volume's root).

    The folders are the ones a worker with the same benchmark and ``CSAWM_PREFLIGHT_IMAGES``
    materialises (same code, `EvaluationSet.prepare`); labels are never copied. The stamp's input
    digests and images-only digests are computed from the copies in `target`, after copying (the
    ``hidden/`` images split by the public set's names), and the stamp is written last
    (under a temporary name, then renamed), so a failed load leaves no valid stamp behind.
    """
    target.mkdir(parents=True, exist_ok=True)
    for name in (HIDDEN_INPUT, PREFLIGHT_INPUT, PUBLIC_DIR, STAMP_FILE):
        if (target / name).exists():
            raise FileExistsError(f"{target / name} exists: load into an empty volume")
    with tempfile.TemporaryDirectory(prefix=".csawm-load-", dir=target) as staging:
        evaluation = EvaluationSet.prepare(benchmark_dir, Path(staging), n_preflight)
        shutil.copytree(evaluation.hidden_input, target / HIDDEN_INPUT)
        shutil.copytree(evaluation.preflight_input, target / PREFLIGHT_INPUT)
        if evaluation.public_input is not None:
            shutil.copytree(evaluation.public_input, target / PUBLIC_DIR)
    # The public input is copied exactly when the benchmark has a public set (`EvaluationSet.prepare`).
    public_names = set() if evaluation.public is None else set(evaluation.public.filenames)
    hidden_files = files_of(target / HIDDEN_INPUT / "images")
    images = digest_files(
        [p for p in hidden_files if p.name not in public_names],
        [p for p in hidden_files if p.name in public_names] if public_names else None,
    ).images
    public_images = (
        digest_files([], files_of(target / PUBLIC_DIR / "images")).public if public_names else None
    )
    stamp = replace(expected_stamp(evaluation, target), images=images, public_images=public_images or "-")
    partial = target / f".{STAMP_FILE}.tmp"
    partial.write_text(stamp.render())
    partial.rename(target / STAMP_FILE)
    return stamp


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m server.worker.test_set",
        description="Load the model inputs of a CSAW-M benchmark onto the Kubernetes test-images volume.",
    )
    sub = parser.add_subparsers(dest="command", required=True)
    load = sub.add_parser("load", help="write hidden/, preflight/, public/ and MANIFEST.sha256 into TARGET")
    load.add_argument("benchmark_dir", type=Path, help="dataset root in the CSAW-M layout (with labels)")
    load.add_argument("target", type=Path, help="the volume's root, mounted read-write")
    load.add_argument("--preflight-images", type=int, default=4, help="CSAWM_PREFLIGHT_IMAGES of the workers")
    args = parser.parse_args(argv)
    stamp = load_volume(args.benchmark_dir.resolve(), args.target.resolve(), args.preflight_images)
    sys.stdout.write(stamp.render())
    return 0


if __name__ == "__main__":
    sys.exit(main())
