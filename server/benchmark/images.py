"""Rendering of synthetic preprocessed CSAW-M mammograms (8-bit grey, H x W, MONOCHROME2).

What the real preprocessed images look like (evaluation facts §2.2): the DICOM pixels are windowed
with centre 2047 / width 4096 to 8 bits, a right breast (``Dicom_image_laterality == 'R'``) is
mirrored so that *every* breast faces the same way, the breast centroid is centred horizontally,
and the result is cropped to 632 x 512. Bright = dense (MONOCHROME2); the background is black.

Orientation and laterality. Stored images are rendered directly in the preprocessed orientation:
chest wall on the left, nipple pointing right, whatever the laterality. That is exactly what
rendering a breast in its acquisition orientation (chest wall on the left for a left breast, on the
right for a right breast) and then applying the authors' mirror step gives, so ``Dicom_image_laterality`` is
metadata that the pixels do not reveal, as in the real preprocessed set. A model that needs the
acquisition orientation must mirror ``R`` images back itself.

Image model (all sizes relative to the image height, so any resolution shows the same anatomy):

* **Breast region**: a tilted half-ellipse whose straight side is the chest wall, placed so that its
  centroid sits at the horizontal centre (black padding left of the chest wall), semi-axes scaled
  by ``sqrt(A / 150 cm²)`` (``A`` the woman's breast area), with a soft skin line
  (compressed thickness falls off towards the edge) and an MLO-like bright pectoral triangle in the
  upper left corner whose size varies independently of masking.
* **Fibroglandular tissue**: a two-scale smooth random field plus a central prior (dense tissue
  sits behind the nipple, not at the skin), thresholded per image at the quantile that leaves the
  woman's dense fraction ``d`` of the breast dense, with soft edges. Its brightness above fat is
  ``170 c`` grey levels (``c`` the woman's contrast), modulated by a fine texture. Both ``d`` and
  ``c`` grow with the latent masking (:mod:`server.benchmark.cohort`).
* **Fat**: fatty tissue has one grey level per image, drawn uniformly from ``FAT_LEVEL_RANGE``
  (30..110) independently of masking, plus 22 levels with compressed thickness. Exposure,
  thickness and the vendor's processing move the whole breast's grey level in real mammograms; here
  it means that masking shows in the dense tissue's contrast against the fat *around* it, a local
  property, and not in the breast's mean grey level (issue 10: with fat fixed at 62 the one-line rule
  ``mean(x[x > 20])`` ranked masking with tau-b 0.78, above the trained reference models; now 0.38).
* **Noise**: quantum noise over the whole image (triangular, close to Gaussian, sd 3.2 grey levels)
  and a faint background level of 3.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

HALF_ELLIPSE_CENTROID = 4.0 / (3.0 * np.pi)
STREAK_ELONGATION = 1.6
"""Correlation length of the tissue field along x relative to y (structures point at the nipple)."""
BACKGROUND_LEVEL = 3.0
NOISE_MEAN = 7.0
"""Mean of the quantum noise ``(b & 7) + (b >> 5)`` of a random byte ``b`` (sd sqrt(2 * 63 / 12))."""
PNG_COMPRESS_LEVEL = 1
"""zlib level 1, OpenCV's default for ``cv2.imwrite`` (the authors' preprocessing writes with cv2)."""
LOW_RES_TARGET_HEIGHT = 160
"""Smooth fields are computed at about this height and upsampled bilinearly (speed)."""
FAT_LEVEL_RANGE = (30.0, 110.0)
"""Grey level of fatty tissue, drawn per image (exposure, compressed thickness and processing)."""


@dataclass(frozen=True)
class Anatomy:
    """What one image shows; the per-woman values come from the cohort."""

    dense_fraction: float
    contrast: float
    breast_area_cm2: float


class ImageRenderer:
    """Renders images of one resolution; holds the coordinate grids shared by every image."""

    def __init__(self, height: int, width: int) -> None:
        if height < 8 or width < 8:
            raise ValueError(f"resolution {height}x{width} is too small (at least 8x8)")
        self.height = height
        self.width = width
        factor = max(1, round(height / LOW_RES_TARGET_HEIGHT))
        self.low_height = max(8, -(-height // factor))
        self.low_width = max(8, -(-width // factor))
        # Coordinates in units of the image height: y in [0, 1), x in [0, width / height).
        self._y = ((np.arange(height, dtype=np.float32) + 0.5) / height)[:, None]
        self._x = ((np.arange(width, dtype=np.float32) + 0.5) / height)[None, :]
        self._ly = ((np.arange(self.low_height, dtype=np.float32) + 0.5) / self.low_height)[:, None]
        self._lx = ((np.arange(self.low_width, dtype=np.float32) + 0.5) / self.low_width * (width / height))[
            None, :
        ]
        fy = np.fft.fftfreq(self.low_height)[:, None]
        fx = np.fft.rfftfreq(self.low_width)[None, :]
        # Fibroglandular structures run from the chest wall towards the nipple: longer along x.
        self._freq2 = (fy**2 + (STREAK_ELONGATION * fx) ** 2).astype(np.float32)

    def render(self, anatomy: Anatomy, rng: np.random.Generator) -> np.ndarray:
        """One uint8 image of shape (height, width)."""
        aspect = self.width / self.height
        scale = float(np.clip(np.sqrt(anatomy.breast_area_cm2 / 150.0), 0.75, 1.25))
        semi_x = min(0.62 * scale * aspect, 0.95 * aspect)
        semi_y = min(0.40 * scale, 0.48)
        # The authors' preprocessing centres the breast centroid horizontally; a half-ellipse's
        # centroid lies 4 a / (3 pi) from its straight side. Left of the chest wall is black padding.
        x0 = 0.5 * aspect - HALF_ELLIPSE_CENTROID * semi_x + rng.normal(0.0, 0.01) * aspect
        x0 = float(np.clip(x0, 0.0, 0.97 * aspect - semi_x))
        centre_y = 0.5 + rng.normal(0.0, 0.03)
        tilt = rng.normal(0.15, 0.06)
        pectoral_w = rng.uniform(0.12, 0.30) * aspect
        pectoral_h = rng.uniform(0.30, 0.55)
        pectoral_level = rng.uniform(140.0, 185.0)
        fat_level = rng.uniform(*FAT_LEVEL_RANGE)

        def radius2(y: np.ndarray, x: np.ndarray) -> np.ndarray:
            """Squared normalised distance from the ellipse centre; 4 (outside) left of the wall."""
            dx2 = ((x - x0) / semi_x) ** 2
            r2 = y - (centre_y + tilt * (x - x0))
            r2 *= 1.0 / semi_y
            r2 *= r2
            r2 += dx2
            r2[:, x[0] < x0] = 4.0
            return r2

        # Dense tissue at low resolution: smooth field + central prior, cut at the (1 - d) quantile.
        low_r2 = radius2(self._ly, self._lx)
        low_inside = low_r2 < 1.0
        field = self._smooth_noise(rng, (0.02, 0.06), (0.6, 1.0))
        prior = np.clip(1.0 - np.sqrt(low_r2), 0.0, 1.0) ** 0.7
        score = field + 1.2 * prior
        inside_scores = score[low_inside] if low_inside.any() else score.ravel()
        cut = np.quantile(inside_scores, 1.0 - anatomy.dense_fraction)
        dense = 1.0 / (1.0 + np.exp(-(score - cut) / 0.25))
        texture = self._smooth_noise(rng, (0.006,), (1.0,))
        dense_signal = (170.0 * anatomy.contrast) * dense * (0.85 + 0.15 * texture)
        image = self._upsample(dense_signal.astype(np.float32))

        # Full resolution, in place where possible (this loop runs ~10^4 times for a default set).
        thickness = radius2(self._y, self._x)
        np.subtract(1.0, thickness, out=thickness)
        np.clip(thickness, 0.0, 1.0, out=thickness)  # 0 outside the breast
        np.sqrt(thickness, out=thickness)
        np.sqrt(thickness, out=thickness)
        image += fat_level
        image += 22.0 * thickness
        image *= thickness  # fat + dense tissue, falling off at the skin line, 0 outside
        rows = self._y[:, 0] < pectoral_h
        top = image[rows]
        pectoral = ((self._x - x0) < pectoral_w * (1.0 - self._y[rows] / pectoral_h)) & (top > 0)
        np.maximum(top, pectoral_level * thickness[rows], out=top, where=pectoral)
        image[rows] = top
        image += BACKGROUND_LEVEL
        # Quantum noise: the sum of two independent 3-bit uniforms of one random byte (triangular,
        # 0..14, sd 3.24 grey levels), centred; 6x cheaper than drawing Gaussian floats.
        raw = np.frombuffer(rng.bytes(image.size), dtype=np.uint8).reshape(image.shape)
        image += (raw & 7) + (raw >> 5)
        image -= NOISE_MEAN
        np.clip(image, 0.0, 255.0, out=image)
        image += 0.5
        return image.astype(np.uint8)

    def _smooth_noise(
        self, rng: np.random.Generator, scales: tuple[float, ...], weights: tuple[float, ...]
    ) -> np.ndarray:
        """Standardised sum of Gaussian-filtered white noise fields (``scales`` in image heights)."""
        total = np.zeros((self.low_height, self.low_width), dtype=np.float32)
        for scale, weight in zip(scales, weights, strict=True):
            sigma = scale * self.low_height
            white = rng.standard_normal((self.low_height, self.low_width), dtype=np.float32)
            transfer = np.exp(-2.0 * (np.pi * sigma) ** 2 * self._freq2)
            smooth = np.fft.irfft2(np.fft.rfft2(white) * transfer, s=white.shape).astype(np.float32)
            spread = float(smooth.std())
            total += weight * (smooth / spread if spread > 0 else smooth)
        spread = float(total.std())
        return total / spread if spread > 0 else total

    def _upsample(self, low: np.ndarray) -> np.ndarray:
        if low.shape == (self.height, self.width):
            return low.copy()
        img = Image.fromarray(low, mode="F").resize((self.width, self.height), Image.Resampling.BILINEAR)
        return np.array(img, dtype=np.float32)


def write_png(image: np.ndarray, path: Path) -> None:
    """Save an 8-bit single-channel PNG (mode ``L``), the format of the preprocessed CSAW-M files."""
    if image.dtype != np.uint8 or image.ndim != 2:
        raise ValueError(f"expected a 2-D uint8 image, got {image.dtype} with shape {image.shape}")
    Image.fromarray(image, mode="L").save(path, format="PNG", compress_level=PNG_COMPRESS_LEVEL)
