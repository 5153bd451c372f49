"""A remote worker's test set: the images alone, no labels (issue 25).

A remote worker runs models on its own copy of the test images and never has the labels (the
server scores). What it mounts is what `server.worker.evaluation.EvaluationSet` mounts, built from
the image folders instead of the label files:

* hidden input: every file of the private image folder, then every file of the public one (when
  the benchmark has it), copied once into ``DATA_DIR/inputs/hidden-images-<images digest>``;
* public input: the public images alone (the hidden input of a development phase);
* preflight input: the first `n` public images by name, or `n` synthetic images of the private
  images' size when there is no public set (the same as the server's).

The images-only digest (`server.worker.images_digest`) covers exactly these files, and the server
refuses a worker whose digest differs from its own: so the folders mounted here hold the same
images as the server's test set.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from server.benchmark.dataset import IMAGES_DIR, SPLIT_FOLDERS
from server.scoring.labels import LabelLayout
from server.worker.evaluation import (
    HIDDEN_INPUT,
    PUBLIC_INPUT,
    TEST_SETS,
    NoPublicTestSet,
    materialise_inputs,
)
from server.worker.images_digest import ImagesDigest, files_of, images_digest


@dataclass(frozen=True)
class ImagesOnly:
    """The inputs a remote worker mounts (module docstring); a `server.worker.stages.StageInputs`."""

    digest: ImagesDigest
    hidden_input: Path
    public_input: Path | None
    preflight_filenames: tuple[str, ...]
    preflight_input: Path
    preflight_source: str  # "public" | "synthetic"

    @classmethod
    def prepare(cls, benchmark_dir: Path, data_dir: Path, n_preflight: int) -> ImagesOnly:
        """Digest the images and materialise the inputs; `FileNotFoundError` without private images."""
        digest = images_digest(benchmark_dir)
        root = Path(benchmark_dir) / IMAGES_DIR
        private = files_of(root / SPLIT_FOLDERS[LabelLayout.PRIVATE])
        if not private:
            raise FileNotFoundError(f"{root / SPLIT_FOLDERS[LabelLayout.PRIVATE]} holds no image")
        public_dir = root / SPLIT_FOLDERS[LabelLayout.PUBLIC]
        public = files_of(public_dir) if public_dir.is_dir() else []
        key = f"images-{digest.images[:16]}"
        hidden, public_input, names, preflight, source = materialise_inputs(
            data_dir / "inputs", key, key, private + public, public or None, n_preflight
        )
        return cls(
            digest=digest,
            hidden_input=hidden,
            public_input=public_input,
            preflight_filenames=names,
            preflight_input=preflight,
            preflight_source=source,
        )

    def hidden_input_for(self, test_set: str) -> tuple[Path, str]:
        """``private``: every image; ``public`` (a development phase): the public images only."""
        if test_set == "private":
            return self.hidden_input, HIDDEN_INPUT
        if test_set != "public":
            raise ValueError(f"test set must be one of {TEST_SETS}, not {test_set!r}")
        if self.public_input is None:
            raise NoPublicTestSet(
                "this phase scores on the public test set, and this worker has no public images"
            )
        return self.public_input, PUBLIC_INPUT
