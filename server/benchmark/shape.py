"""The hidden test set's shape: what a model must cope with, and nothing of what it holds.

A server publishes it on ``GET /api/v1/test-set/shape`` (docs/api.md) so that ``csawm check --robust``
can run an image on inputs that follow the hidden set's contract: how many private and public images
the hidden run mounts, their size and bit depth, and the pattern their names follow. The rule: only
figures that describe the whole set, never one image (no name, no per-image size, no digest, no
label). Without a server the client uses `CSAW_M`, the real set's published shape.

Client side (``server.cli.check`` imports it): numpy and Pillow only, no server dependency.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from PIL import Image

PRIVATE_PATTERN = "private_<i>.png"
PUBLIC_PATTERN = "test_<i>.png"
MAX_IMAGES = 100_000  # a bound on what a server may ask a client to write (CSAW-M: 972)
#: Bits per pixel of the grey PNG modes a test set may hold; anything else is refused.
BIT_DEPTHS = {"L": 8, "I;16": 16, "I;16B": 16, "I;16L": 16}


@dataclass(frozen=True)
class HiddenSetShape:
    """How many images the hidden run mounts (private first, then public), their size and depth.

    A name pattern is None when the set's names follow no published pattern; the client then names
    its inputs by the CSAW-M pattern.
    """

    private_images: int
    public_images: int
    width: int
    height: int
    bit_depth: int
    private_pattern: str | None = PRIVATE_PATTERN
    public_pattern: str | None = PUBLIC_PATTERN

    def __post_init__(self) -> None:
        if self.private_images < 1 or self.public_images < 0 or self.total > MAX_IMAGES:
            raise ValueError(
                f"image counts {self.private_images} + {self.public_images}: need at least one private "
                f"and at most {MAX_IMAGES} in all"
            )
        if not (8 <= self.width <= 8192 and 8 <= self.height <= 8192):
            raise ValueError(f"image size {self.width} wide x {self.height} high is outside 8..8192")
        if self.bit_depth not in (8, 16):
            raise ValueError(f"bit depth {self.bit_depth}: only 8 and 16 bit grey images are supported")
        for pattern in (self.private_pattern, self.public_pattern):
            if pattern is not None and not _PATTERN.fullmatch(pattern):
                raise ValueError(f"name pattern {pattern!r} is not like private_<i>.png")

    @property
    def total(self) -> int:
        return self.private_images + self.public_images

    def names(self) -> list[str]:
        """The inputs' file names in manifest order: the private ones, then the public ones."""
        private = self.private_pattern or PRIVATE_PATTERN
        public = self.public_pattern or PUBLIC_PATTERN
        return [private.replace("<i>", str(i)) for i in range(1, self.private_images + 1)] + [
            public.replace("<i>", str(i)) for i in range(1, self.public_images + 1)
        ]


_PATTERN = re.compile(r"[A-Za-z0-9_-]{1,32}<i>\.png")
#: CSAW-M's test sets (evaluation facts §2): 475 private + 497 public, 632x512 (height x width: 632
#: high, 512 wide), 8-bit grey.
CSAW_M = HiddenSetShape(private_images=475, public_images=497, width=512, height=632, bit_depth=8)


def _pattern_of(names: list[str], pattern: str) -> str | None:
    """`pattern` when every name is an instance of it (any indices), else None."""
    prefix = re.escape(pattern.split("<i>")[0])
    rule = re.compile(prefix + r"[0-9]+\.png")
    return pattern if names and all(rule.fullmatch(n) for n in names) else None


def measure(private: list[Path], public: list[Path]) -> HiddenSetShape:
    """The shape of a test set from its image files (headers only: no pixel is decoded).

    Width and height are the largest of any image, the bit depth the deepest: the inputs a robust
    check makes are at least as big as every hidden image.

    Raises
    ------
    ValueError
        An image that is not a grey PNG of a supported depth, or no private image.
    """
    widths, heights, depths = [], [], []
    for path in [*private, *public]:
        with Image.open(path) as img:
            if img.mode not in BIT_DEPTHS:
                raise ValueError(f"{path.name}: mode {img.mode} is not an 8 or 16 bit grey image")
            widths.append(img.width)
            heights.append(img.height)
            depths.append(BIT_DEPTHS[img.mode])
    if not private:
        raise ValueError("the test set has no private image")
    return HiddenSetShape(
        private_images=len(private),
        public_images=len(public),
        width=max(widths),
        height=max(heights),
        bit_depth=max(depths),
        private_pattern=_pattern_of([p.name for p in private], PRIVATE_PATTERN),
        public_pattern=_pattern_of([p.name for p in public], PUBLIC_PATTERN) if public else PUBLIC_PATTERN,
    )
