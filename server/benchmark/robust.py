"""The inputs of ``csawm check --robust``: the hidden set's count, names and size, content at the extremes.

A preview of a few images shows a model none of what breaks it on the hidden run: the full count
(a model that keeps every image in memory, or indexes a fixed-size array), the name patterns, the
real size and depth, and content at the extremes. `generate_inputs` writes one PNG per name of a
`HiddenSetShape` (private first, then public, as the hidden run mounts them): ordinary synthetic
mammograms (`server.benchmark.images`), with every kind of `EXTREMES` spread evenly across the whole
list, so each appears early, late and in both splits.

Speed: a few dozen distinct images are rendered and each file is a hard link to one of them (a copy
where links fail), so the full CSAW-M count takes seconds; the model still reads one file per name.

Client side (``server.cli.check`` imports it): numpy and Pillow only, no server dependency.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from server.benchmark.images import Anatomy, ImageRenderer
from server.benchmark.shape import HiddenSetShape

ORDINARY_POOL = 24  # distinct ordinary images the ordinary inputs cycle through
REPEATS = 3  # each extreme appears this many times (spread out), when the count allows


def _saturated(renderer: ImageRenderer, rng: np.random.Generator) -> np.ndarray:
    """A breast over-exposed to the top of the range: most tissue clipped at 255."""
    image = renderer.render(Anatomy(0.5, 0.9, 150.0), rng).astype(np.float32)
    clipped: np.ndarray = np.clip(image * 4.0, 0, 255).astype(np.uint8)
    return clipped


def _full_frame(renderer: ImageRenderer, rng: np.random.Generator) -> np.ndarray:
    """The inner part of a breast (chest wall side) stretched to fill the whole frame: no background."""
    image = renderer.render(Anatomy(0.3, 0.6, 250.0), rng)
    rows, cols = np.nonzero(image > 20)
    top, bottom, left, right = rows.min(), rows.max(), cols.min(), cols.max()
    height, width = bottom - top, right - left
    # Inside the half-ellipse: its middle rows, from the chest wall to half-way to the nipple.
    crop = image[top + height // 4 : bottom - height // 4 + 1, left : left + max(1, width // 2)]
    stretched = Image.fromarray(crop, mode="L").resize((renderer.width, renderer.height))
    return np.asarray(stretched, dtype=np.uint8)


def _burned_text(renderer: ImageRenderer, rng: np.random.Generator) -> np.ndarray:
    """An ordinary breast with a remnant of burned-in annotation text (white) in two corners."""
    img = Image.fromarray(renderer.render(Anatomy(0.2, 0.5, 150.0), rng), mode="L")
    draw = ImageDraw.Draw(img)
    size = max(8, renderer.height // 30)
    font = ImageFont.load_default(size=2 * size)
    draw.text((renderer.width - 7 * size, size), "L MLO", fill=255, font=font)
    draw.rectangle((size, renderer.height - 3 * size, 8 * size, renderer.height - size), fill=255)
    return np.asarray(img, dtype=np.uint8)


Painter = Callable[[ImageRenderer, np.random.Generator], np.ndarray]
#: The extreme contents, by the name the check's report uses (docs/submitting.md lists them).
EXTREMES: dict[str, Painter] = {
    "near_black": lambda r, rng: rng.integers(0, 4, size=(r.height, r.width), dtype=np.uint8),
    "near_white": lambda r, rng: rng.integers(252, 256, size=(r.height, r.width), dtype=np.uint8),
    "saturated": _saturated,
    "full_frame": _full_frame,
    "burned_text": _burned_text,
    "very_dense": lambda renderer, rng: renderer.render(Anatomy(0.95, 0.9, 150.0), rng),
    "very_fatty": lambda renderer, rng: renderer.render(Anatomy(0.01, 0.08, 150.0), rng),
}
ORDINARY = "ordinary"


@dataclass(frozen=True)
class RobustInput:
    """One written input: its file and what it shows (`ORDINARY` or a key of `EXTREMES`)."""

    path: Path
    kind: str


def extreme_positions(total: int) -> dict[int, str]:
    """Index in the manifest -> extreme kind: every kind `REPEATS` times (fewer when `total` is
    small), spread evenly over the whole list, the last slot near its end."""
    kinds = list(EXTREMES)
    slots = min(total, REPEATS * len(kinds))
    return {min(total - 1, (m + 1) * total // slots - 1): kinds[m % len(kinds)] for m in range(slots)}


def _write(image: np.ndarray, path: Path, bit_depth: int) -> None:
    if bit_depth == 16:
        wide = image.astype(np.uint16) * 257  # 0..255 -> 0..65535, the range's ends kept
        Image.fromarray(wide).save(path, format="PNG", compress_level=1)  # a uint16 array is mode I;16
    else:
        Image.fromarray(image, mode="L").save(path, format="PNG", compress_level=1)


def _place(source: Path, target: Path) -> None:
    try:
        os.link(source, target)
    except OSError:
        shutil.copyfile(source, target)


def generate_inputs(shape: HiddenSetShape, folder: Path, *, seed: int = 0) -> list[RobustInput]:
    """Write one PNG per name of `shape` into `folder` (created); return them in manifest order."""
    folder.mkdir(parents=True, exist_ok=True)
    pool = folder / ".pool"
    pool.mkdir()
    renderer = ImageRenderer(shape.height, shape.width)
    rng = np.random.default_rng(seed)
    sources: dict[str, Path] = {}
    for kind, paint in EXTREMES.items():
        sources[kind] = pool / f"{kind}.png"
        _write(paint(renderer, rng), sources[kind], shape.bit_depth)
    ordinary: list[Path] = []
    for j in range(ORDINARY_POOL):
        m = (j + 0.5) / ORDINARY_POOL  # masking across its range, as the cohort spreads it
        anatomy = Anatomy(0.04 + 0.5 * m, 0.2 + 0.55 * m, float(rng.uniform(100.0, 200.0)))
        ordinary.append(pool / f"ordinary_{j}.png")
        _write(renderer.render(anatomy, rng), ordinary[-1], shape.bit_depth)
    extremes = extreme_positions(shape.total)
    inputs = []
    for index, name in enumerate(shape.names()):
        kind = extremes.get(index, ORDINARY)
        source = sources[kind] if kind != ORDINARY else ordinary[index % ORDINARY_POOL]
        _place(source, folder / name)
        inputs.append(RobustInput(folder / name, kind))
    return inputs
