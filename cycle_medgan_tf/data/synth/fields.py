"""Smooth random fields and small resampling helpers shared by the synthetic-data modules."""

from __future__ import annotations

import numpy as np
from scipy import ndimage as ndi

COARSE_STEP_MM = 8.0


class SmoothField:
    """A smooth 3-D random field with unit variance: a sum of random plane waves.

    Wavelengths are drawn log-uniformly in ``[min_wavelength_mm, max_wavelength_mm]`` with random directions
    (mostly in-plane) and phases, so the field is smooth in x, y and z and consistent across slices.
    """

    def __init__(self, rng: np.random.Generator, min_wavelength_mm: float = 40.0,
                 max_wavelength_mm: float = 160.0, n_waves: int = 8):
        wavelength = np.exp(rng.uniform(np.log(min_wavelength_mm), np.log(max_wavelength_mm), n_waves))
        direction = rng.normal(size=(n_waves, 3)) * np.array([1.0, 1.0, 0.5])
        direction /= np.linalg.norm(direction, axis=1, keepdims=True)
        self._k = 2.0 * np.pi * direction / wavelength[:, None]
        self._phase = rng.uniform(0.0, 2.0 * np.pi, n_waves)
        self._amplitude = np.sqrt(2.0 / n_waves)

    def __call__(self, y_mm: np.ndarray, x_mm: np.ndarray, z_mm: float) -> np.ndarray:
        """Evaluate at in-plane coordinates (broadcastable arrays) on the slice at height ``z_mm``."""
        total = np.zeros(np.broadcast_shapes(np.shape(y_mm), np.shape(x_mm)), dtype=np.float64)
        for (ky, kx, kz), phase in zip(self._k, self._phase):
            total += np.cos(ky * y_mm + kx * x_mm + (kz * z_mm + phase))
        return (self._amplitude * total).astype(np.float32)


def between(value: np.ndarray, lo: float, hi: float) -> np.ndarray:
    """Map a unit-variance field into [lo, hi]: -2 sigma to lo, +2 sigma to hi, clipped."""
    return (lo + (hi - lo) * np.clip(0.5 + 0.25 * value, 0.0, 1.0)).astype(np.float32)


def coarse_grid(size_px: int, pixel_mm: float) -> tuple[np.ndarray, np.ndarray]:
    """Centred (y, x) mm coordinates of a coarse grid covering a ``size_px`` image, for smooth fields."""
    extent = size_px * pixel_mm
    n = int(np.ceil(extent / COARSE_STEP_MM)) + 1
    axis = (np.arange(n) - (n - 1) / 2.0) * (extent / (n - 1))
    return axis[:, None], axis[None, :]


def _linear_weights(n_coarse: int, size_px: int) -> tuple[np.ndarray, np.ndarray]:
    """Lower coarse index and weight of the upper neighbour for each of ``size_px`` output pixels."""
    pos = (np.arange(size_px) + 0.5) / size_px * (n_coarse - 1)
    lower = np.minimum(np.floor(pos).astype(np.int64), n_coarse - 2)
    return lower, (pos - lower).astype(np.float32)


def upsample_coarse(coarse: np.ndarray, size_px: int) -> np.ndarray:
    """Bilinearly resample coarse grids (..., n, n) made by :func:`coarse_grid` to (..., size_px, size_px)."""
    lower, w = _linear_weights(coarse.shape[-1], size_px)
    coarse = coarse.astype(np.float32, copy=False)
    rows = coarse[..., lower, :] * (1.0 - w)[:, None] + coarse[..., lower + 1, :] * w[:, None]
    return rows[..., lower] * (1.0 - w) + rows[..., lower + 1] * w


def smooth_field_image(field: SmoothField, z_mm: float, size_px: int, pixel_mm: float) -> np.ndarray:
    """A smooth field on a ``size_px`` image grid at height ``z_mm``, evaluated coarsely and upsampled."""
    cy, cx = coarse_grid(size_px, pixel_mm)
    return upsample_coarse(field(cy, cx, z_mm), size_px)


def area_mean(images: np.ndarray, factor: int) -> np.ndarray:
    """Average non-overlapping ``factor`` x ``factor`` blocks of the last two axes."""
    if factor == 1:
        return images.astype(np.float32, copy=False)
    *lead, h, w = images.shape
    blocks = images.reshape(*lead, h // factor, factor, w // factor, factor)
    return blocks.mean(axis=(-3, -1), dtype=np.float64).astype(np.float32)


def fwhm_to_sigma_px(fwhm_mm: float, pixel_mm: float) -> float:
    """Gaussian standard deviation in pixels for a full width at half maximum in mm."""
    return fwhm_mm / (2.0 * np.sqrt(2.0 * np.log(2.0))) / pixel_mm


def gaussian_blur_2d(images: np.ndarray, sigma_px: float) -> np.ndarray:
    """Gaussian blur of the last two axes of a (..., H, W) stack."""
    sigma = (0.0,) * (images.ndim - 2) + (sigma_px, sigma_px)
    return ndi.gaussian_filter(images, sigma, mode="nearest").astype(np.float32)


def mix(values, fractions: np.ndarray) -> np.ndarray:
    """Sum of ``values[i] * fractions[i]`` over the first axis (partial-volume mixing), without BLAS so the
    result is bit-identical whatever the thread settings."""
    out = np.zeros(fractions.shape[1:], np.float32)
    for value, fraction in zip(values, fractions):
        out += np.float32(value) * fraction
    return out
