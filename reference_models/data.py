"""Reading CSAW-M images and training labels, and the image transforms.

Images are the preprocessed 8-bit grey PNGs. As in the authors' code the image is resized to the
model resolution, copied to 3 channels and scaled to [0, 1] with no mean/std normalisation.
Training augmentation (the authors' ``h_flip v_flip rot_10 color_jitter``): horizontal and vertical
flips (p = 0.5 each), rotation by up to +-10 degrees, brightness and contrast jitter of 0.2. The
transforms run on the single grey channel and the tensor is then repeated to 3 channels, which is
the same as the authors' ``convert('RGB')`` first (every channel is equal) and three times cheaper.
"""

from __future__ import annotations

import csv
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
from PIL import Image
from torch.utils.data import Dataset
from torchvision import transforms

from reference_models.rules import N_LEVELS

PAPER_RESOLUTION = (632, 512)
"""(height, width) of the preprocessed CSAW-M images and of the authors' model input."""

CACHE_LIMIT_BYTES = 2 * 1024**3
"""Resized training images are kept in memory when all of them fit in this many bytes."""


def parse_resolution(text: str) -> tuple[int, int]:
    """``"632x512"`` -> (632, 512): height x width, as the CSAW-M paper writes it."""
    parts = text.lower().split("x")
    if len(parts) != 2 or not all(p.strip().isdigit() for p in parts):
        raise ValueError(f"resolution must look like HEIGHTxWIDTH (e.g. 632x512), got {text!r}")
    height, width = (int(p) for p in parts)
    if not (16 <= height <= 4096 and 16 <= width <= 4096):
        raise ValueError(f"resolution {text!r} out of range: each side must be 16..4096 pixels")
    return height, width


@dataclass(frozen=True)
class TrainLabels:
    """Training images and their 0-based levels (the CSV's ``Label`` 1..8 minus one)."""

    filenames: tuple[str, ...]
    levels: tuple[int, ...]


def read_train_labels(path: Path) -> TrainLabels:
    """Read ``CSAW-M_train.csv`` (``;``-separated, header starting ``Filename;Label``).

    Like the authors' loader only the first two fields are used. A bad row raises ValueError naming
    the file, the 1-based data row and the column.
    """
    if not path.is_file():
        raise ValueError(f"training labels not found: {path}")
    filenames: list[str] = []
    levels: list[int] = []
    with path.open(newline="", encoding="utf-8-sig") as handle:
        reader = csv.reader(handle, delimiter=";")
        header = next(reader, None)
        if header is None or [h.strip() for h in header[:2]] != ["Filename", "Label"]:
            raise ValueError(f"{path}: header must start with 'Filename;Label', got {header!r}")
        for row_number, row in enumerate(reader, start=1):
            if not row or all(not cell.strip() for cell in row):
                continue
            if len(row) < 2:
                raise ValueError(f"{path}: row {row_number} has {len(row)} field(s), expected >= 2")
            name, label = row[0].strip(), row[1].strip()
            if not name or "/" in name or name in {".", ".."}:
                raise ValueError(f"{path}: row {row_number}, column Filename: bad file name {name!r}")
            if not label.isdigit() or not 1 <= int(label) <= N_LEVELS:
                raise ValueError(f"{path}: row {row_number}, column Label: expected 1..8, got {label!r}")
            filenames.append(name)
            levels.append(int(label) - 1)
    if not filenames:
        raise ValueError(f"{path}: no data rows")
    return TrainLabels(tuple(filenames), tuple(levels))


def load_grey(path: Path) -> Image.Image:
    """Open an image as 8-bit grey; ValueError naming the file when it cannot be read."""
    try:
        with Image.open(path) as image:
            return image.convert("L")
    except (OSError, ValueError) as exc:
        raise ValueError(f"cannot read image {path}: {exc}") from exc


def _to_three_channels(tensor: torch.Tensor) -> torch.Tensor:
    return tensor.expand(3, -1, -1).contiguous()


def eval_transform() -> transforms.Compose:
    """Grey PIL image (already at model resolution) -> (3, H, W) float tensor in [0, 1]."""
    return transforms.Compose([transforms.ToTensor(), transforms.Lambda(_to_three_channels)])


def train_transform(augment: bool) -> transforms.Compose:
    """The authors' training augmentation followed by `eval_transform`'s conversion."""
    if not augment:
        return eval_transform()
    return transforms.Compose(
        [
            transforms.RandomHorizontalFlip(p=0.5),
            transforms.RandomVerticalFlip(p=0.5),
            transforms.RandomRotation(degrees=10),
            transforms.ColorJitter(brightness=0.2, contrast=0.2),
            transforms.ToTensor(),
            transforms.Lambda(_to_three_channels),
        ]
    )


class ImageDataset(Dataset):  # type: ignore[misc]
    """Images of one folder, resized to `resolution`, paired with an integer target.

    `targets` holds the 0-based level for training, or the row index for inference (so results can
    be put back in manifest order). The resized grey images are cached in memory when `cache` is set.
    """

    def __init__(
        self,
        image_dir: Path,
        filenames: Sequence[str],
        targets: Sequence[int],
        resolution: tuple[int, int],
        transform: transforms.Compose,
        *,
        cache: bool = False,
    ) -> None:
        if len(filenames) != len(targets):
            raise ValueError(f"{len(filenames)} file names but {len(targets)} targets")
        missing = [name for name in filenames if not (image_dir / name).is_file()]
        if missing:
            raise ValueError(
                f"{len(missing)} image(s) missing from {image_dir}, e.g. {', '.join(missing[:3])}"
            )
        self.image_dir = image_dir
        self.filenames = list(filenames)
        self.targets = list(targets)
        self.resolution = resolution
        self.transform = transform
        self._cache: dict[int, Image.Image] | None = {} if cache else None

    def __len__(self) -> int:
        return len(self.filenames)

    def resized(self, index: int) -> Image.Image:
        """The grey image at model resolution (bilinear, antialiased as PIL resizes)."""
        if self._cache is not None and index in self._cache:
            return self._cache[index]
        height, width = self.resolution
        image = load_grey(self.image_dir / self.filenames[index])
        if image.size != (width, height):
            image = image.resize((width, height), Image.Resampling.BILINEAR)
        if self._cache is not None:
            self._cache[index] = image
        return image

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        return self.transform(self.resized(index)), self.targets[index]


def fits_in_cache(n_images: int, resolution: tuple[int, int]) -> bool:
    """Whether `n_images` grey images at `resolution` fit in `CACHE_LIMIT_BYTES`."""
    return n_images * resolution[0] * resolution[1] <= CACHE_LIMIT_BYTES
