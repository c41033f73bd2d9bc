"""A 2-D parallel-beam projector as sparse matrices, split into ordered subsets for OSEM.

Pixel-driven: each pixel centre inside the circular field of view is projected onto the detector at every
angle and its value (times the pixel width, so sinograms are line integrals in value x mm) is split linearly
between the two nearest detector bins. Angle ``a`` of ``n_angles`` is ``a * 180 / n_angles`` degrees and
subset ``s`` holds angles ``s, s + n_subsets, ...``. Works on many slices at once: images are (P, n) with P
the field-of-view pixels, sinograms are (rows, n) with rows = angles x bins, angle-major.
"""

from __future__ import annotations

import functools

import numpy as np
from scipy import sparse


class Projector:
    """Sparse system matrix for an ``n`` x ``n`` grid of ``pixel_mm`` pixels; ``n`` detector bins of the
    same width; ``n_angles`` angles over 180 degrees in ``n_subsets`` interleaved subsets."""

    def __init__(self, n: int, pixel_mm: float, n_angles: int, n_subsets: int):
        if n_angles % n_subsets:
            raise ValueError(f"n_angles ({n_angles}) must be a multiple of n_subsets ({n_subsets})")
        self.n, self.pixel_mm, self.n_angles, self.n_subsets = n, pixel_mm, n_angles, n_subsets
        centre = (n - 1) / 2.0
        rr, cc = np.mgrid[0:n, 0:n]
        y, x = (rr - centre), (cc - centre)  # in pixels; rows point down, columns right
        self.fov = np.hypot(y, x) <= n / 2.0 - 1.0
        self.fov_index = np.flatnonzero(self.fov.ravel())
        self.angles_deg = np.arange(n_angles) * 180.0 / n_angles
        self._x, self._y = x.ravel()[self.fov_index], y.ravel()[self.fov_index]
        self.subsets = [self._subset_matrix(np.arange(s, n_angles, n_subsets)) for s in range(n_subsets)]
        self.subsets_t = [m.T.tocsr() for m in self.subsets]

    @property
    def n_pixels(self) -> int:
        return len(self.fov_index)

    def subset_angles(self, subset: int) -> np.ndarray:
        """Angle indices held by one subset, in row order."""
        return np.arange(subset, self.n_angles, self.n_subsets)

    def _subset_matrix(self, angles: np.ndarray) -> sparse.csc_matrix:
        theta = np.deg2rad(self.angles_deg[angles])
        # detector coordinate (in bins) of each pixel at each angle: shape (P, A)
        u = np.outer(self._x, np.cos(theta)) - np.outer(self._y, np.sin(theta)) + (self.n - 1) / 2.0
        lower = np.floor(u).astype(np.int64)
        frac = (u - lower).astype(np.float32)
        rows_lower = lower + (np.arange(len(angles)) * self.n)[None, :]
        rows = np.stack([rows_lower, rows_lower + 1], axis=-1).reshape(len(self._x), -1)
        weights = np.stack([1.0 - frac, frac], axis=-1).reshape(len(self._x), -1) * np.float32(self.pixel_mm)
        per_pixel = rows.shape[1]
        indptr = np.arange(0, rows.size + 1, per_pixel)
        return sparse.csc_matrix((weights.ravel(), rows.ravel(), indptr),
                                 shape=(len(angles) * self.n, len(self._x)))

    def to_pixels(self, images: np.ndarray) -> np.ndarray:
        """(k, n, n) images -> (P, k) field-of-view pixel columns (float64)."""
        flat = images.reshape(images.shape[0], -1)
        return np.ascontiguousarray(flat[:, self.fov_index].T, dtype=np.float64)

    def to_images(self, pixels: np.ndarray) -> np.ndarray:
        """(P, k) pixel columns -> (k, n, n) images, zero outside the field of view."""
        out = np.zeros((pixels.shape[1], self.n * self.n), np.float32)
        out[:, self.fov_index] = pixels.T
        return out.reshape(-1, self.n, self.n)

    def forward(self, pixels: np.ndarray, subset: int | None = None) -> np.ndarray:
        """Line integrals (rows, k) of pixel columns (P, k), for one subset or all angles (angle-major)."""
        if subset is not None:
            return self.subsets[subset] @ pixels
        full = np.empty((self.n_angles * self.n, pixels.shape[1]))
        for s, matrix in enumerate(self.subsets):
            full[self.subset_rows(s)] = matrix @ pixels
        return full

    def back(self, sinogram: np.ndarray, subset: int | None = None) -> np.ndarray:
        """Adjoint of :meth:`forward`."""
        if subset is not None:
            return self.subsets_t[subset] @ sinogram
        return sum(self.subsets_t[s] @ sinogram[self.subset_rows(s)] for s in range(self.n_subsets))

    def subset_rows(self, subset: int) -> np.ndarray:
        """Row indices (in the full angle-major sinogram) of one subset's rows, in that subset's order."""
        return (self.subset_angles(subset)[:, None] * self.n + np.arange(self.n)[None, :]).ravel()


@functools.lru_cache(maxsize=4)
def get_projector(n: int, pixel_mm: float, n_angles: int, n_subsets: int) -> Projector:
    """A cached :class:`Projector` (building one takes a fraction of a second)."""
    return Projector(n, pixel_mm, n_angles, n_subsets)
