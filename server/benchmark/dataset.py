"""A dataset root in the CSAW-M folder layout (``CSAWM_BENCHMARK_DIR``; docs/settings.md).

::

    <root>/images/preprocessed/private/      hidden test images        (required)
    <root>/labels/CSAW-M_test_private.csv    their labels, private layout (required)
    <root>/images/preprocessed/test/         public test images        (optional, with its labels)
    <root>/labels/CSAW-M_test.csv            public layout
    <root>/images/preprocessed/train/        training images           (optional, with its labels)
    <root>/labels/CSAW-M_train.csv           training layout

A split is either complete (folder and label file) or absent; half a split is an error, because a
public folder without labels (or the reverse) is a deployment mistake that would otherwise silently
drop the pooled clinical view or the preflight sample. Anything else under the root (such as the
generator's ``synthetic/``) is ignored.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from server.scoring.labels import FILE_NAMES, LabelFileError, LabelLayout, LabelTable, read_labels

IMAGES_DIR = Path("images") / "preprocessed"
LABELS_DIR = Path("labels")
SPLIT_FOLDERS: dict[LabelLayout, str] = {
    LabelLayout.PRIVATE: "private",
    LabelLayout.PUBLIC: "test",
    LabelLayout.TRAIN: "train",
}


class BenchmarkError(ValueError):
    """A dataset root that is missing files, or whose labels and images disagree."""


@dataclass(frozen=True)
class Benchmark:
    """The paths of one dataset root; :meth:`open` checks they exist."""

    root: Path
    private_images: Path
    private_labels: Path
    public_images: Path | None
    public_labels: Path | None
    train_images: Path | None
    train_labels: Path | None

    @classmethod
    def open(cls, root: Path) -> Benchmark:
        """Locate the splits under ``root``.

        Raises
        ------
        BenchmarkError
            ``root`` is not a folder, the private split is incomplete, or an optional split has its
            image folder without its label file or the reverse.
        """
        root = Path(root)
        if not root.is_dir():
            raise BenchmarkError(f"benchmark root {root} is not a directory")
        private = _split_paths(root, LabelLayout.PRIVATE)
        if private is None:
            raise BenchmarkError(
                f"benchmark root {root} has no hidden test set: expected "
                f"{root / IMAGES_DIR / 'private'} and {root / LABELS_DIR / FILE_NAMES[LabelLayout.PRIVATE]}"
            )
        public = _split_paths(root, LabelLayout.PUBLIC)
        train = _split_paths(root, LabelLayout.TRAIN)
        return cls(
            root=root,
            private_images=private[0],
            private_labels=private[1],
            public_images=public[0] if public else None,
            public_labels=public[1] if public else None,
            train_images=train[0] if train else None,
            train_labels=train[1] if train else None,
        )

    def read_private(self) -> LabelTable:
        """The private labels, checked against the private image folder (:func:`read_split`)."""
        return read_split(self.private_images, self.private_labels, LabelLayout.PRIVATE)

    def read_public(self) -> LabelTable | None:
        """The public labels checked against their images, or None without a public split."""
        if self.public_images is None or self.public_labels is None:
            return None
        return read_split(self.public_images, self.public_labels, LabelLayout.PUBLIC)


def read_split(images: Path, labels: Path, layout: LabelLayout) -> LabelTable:
    """Read a label file and check that every listed image is a regular file in ``images``.

    Images in the folder that the labels do not list are allowed (they are never evaluated).

    Raises
    ------
    BenchmarkError
        Wrapping the :class:`LabelFileError` of a bad label file, or naming missing images.
    """
    try:
        table = read_labels(labels, layout=layout)
    except LabelFileError as exc:
        raise BenchmarkError(str(exc)) from exc
    missing = [name for name in table.filenames if not (images / name).is_file()]
    if missing:
        shown = ", ".join(missing[:5]) + (f" and {len(missing) - 5} more" if len(missing) > 5 else "")
        raise BenchmarkError(f"{labels} lists {len(missing)} image(s) missing from {images}: {shown}")
    return table


def _split_paths(root: Path, layout: LabelLayout) -> tuple[Path, Path] | None:
    images = root / IMAGES_DIR / SPLIT_FOLDERS[layout]
    labels = root / LABELS_DIR / FILE_NAMES[layout]
    has_images, has_labels = images.is_dir(), labels.is_file()
    if has_images and has_labels:
        return images, labels
    if has_images != has_labels:
        present, absent = (images, labels) if has_images else (labels, images)
        raise BenchmarkError(
            f"incomplete {SPLIT_FOLDERS[layout]} split under {root}: {present} exists but {absent} does not"
        )
    return None
