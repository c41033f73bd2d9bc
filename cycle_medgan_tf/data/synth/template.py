"""The embedded MNI ICBM152 2009a head volume (``data/assets/mni152_head.npz``, see MNI152_NOTICE.txt).

Made once by ``scripts/extract_mni_head.py``; this module only reads it (no nilearn at run time). Axial
slices every 2 mm from MNI z = -52 to +88 mm on a 1 mm in-plane grid (rows anterior -> posterior, columns
right -> left), sampled trilinearly in 3-D so that subjects can be sliced at any tilt. Maps, float32:

* ``t1``: T1-weighted average scaled so that white matter is 1 (0 outside the template's brain mask);
* ``gm``, ``wm``: tissue probabilities; ``brain``: the T1 brain mask (1 inside);
* ``envelope``: signed distance in mm to the skull's inner surface (positive outside).

The maps carry a one-pixel in-plane border (zeros; edge values for the envelope) so sampling outside the
stored field gives the border value; above and below the stored heights the nearest slice is used.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path

import numpy as np

ASSET_PATH = Path(__file__).resolve().parents[1] / "assets" / "mni152_head.npz"
MAP_NAMES = ("t1", "gm", "wm", "brain", "envelope")
WHITE_MATTER_T1 = 222.0  # median template T1 where P(WM) > 0.9


@dataclass(frozen=True)
class Template:
    """Template maps ``maps[channel, slice, row, col]`` (channels in :data:`MAP_NAMES`) at heights ``z_mm``."""

    maps: np.ndarray
    z_mm: np.ndarray
    centre_rc: tuple[float, float]

    def channel(self, name: str) -> int:
        """Index of a map in :attr:`maps`."""
        return MAP_NAMES.index(name)

    def z_index(self, z_mm: np.ndarray) -> np.ndarray:
        """Fractional slice index of MNI heights (mm); the stored heights are evenly spaced."""
        step = float(self.z_mm[1] - self.z_mm[0])
        return (np.asarray(z_mm, dtype=np.float64) - float(self.z_mm[0])) / step

    def sample(self, rows: np.ndarray, cols: np.ndarray, z_mm: np.ndarray) -> np.ndarray:
        """Every map, trilinearly interpolated at template (row, col, MNI z) points: (C, *rows.shape).
        Points outside the stored volume take the value of the nearest stored voxel."""
        n_maps, depth, height, width = self.maps.shape
        shape = np.broadcast_shapes(np.shape(rows), np.shape(cols), np.shape(z_mm))
        lower, weight = [], []
        for pos, n in ((self.z_index(z_mm), depth), (rows, height), (cols, width)):
            pos = np.clip(np.broadcast_to(pos, shape), 0.0, n - 1.0).ravel()
            low = np.minimum(pos.astype(np.int64), n - 2)
            lower.append(low)
            weight.append((pos - low).astype(np.float32)[:, None])
        base = ((lower[0] * height + lower[1]) * width + lower[2]).astype(np.int32)
        out = np.zeros((base.size, n_maps), np.float32)
        for dz in (0, 1):
            wz = weight[0] if dz else 1.0 - weight[0]
            for dr in (0, 1):
                wr = wz * (weight[1] if dr else 1.0 - weight[1])
                index = base + (dz * height + dr) * width
                out += (wr * (1.0 - weight[2])) * np.take(self._voxels, index, axis=0)
                out += (wr * weight[2]) * np.take(self._voxels, index + 1, axis=0)
        return np.ascontiguousarray(out.T).reshape((n_maps,) + shape)

    @functools.cached_property
    def _voxels(self) -> np.ndarray:
        """The maps as (voxels, channels), so one gather fetches every channel of a voxel."""
        return np.ascontiguousarray(np.moveaxis(self.maps, 0, -1)).reshape(-1, self.maps.shape[0])


@functools.lru_cache(maxsize=1)
def load_template(path: str | None = None) -> Template:
    """Load (once per process) the template volume from the packaged npz."""
    with np.load(path or ASSET_PATH, allow_pickle=False) as npz:
        t1 = npz["t1"].astype(np.float32) * np.float32(npz["t1_scale"])
        gm = npz["gm"].astype(np.float32) * np.float32(npz["gm_scale"])
        wm = npz["wm"].astype(np.float32) * np.float32(npz["wm_scale"])
        envelope = (npz["envelope_mm"].astype(np.float32) * np.float32(npz["envelope_scale"])
                    + np.float32(npz["envelope_offset"]))
        z_mm = npz["z_mm"].astype(np.float64)
    brain = (t1 > 0).astype(np.float32)
    inside = envelope < 0
    rows = np.flatnonzero(inside.any(axis=(0, 2)))
    cols = np.flatnonzero(inside.any(axis=(0, 1)))
    centre = ((rows[0] + rows[-1]) / 2.0, (cols[0] + cols[-1]) / 2.0)
    tissue = np.pad(np.stack([t1 / np.float32(WHITE_MATTER_T1), gm, wm, brain]), ((0, 0), (0, 0), (1, 1), (1, 1)))
    envelope = np.pad(envelope, ((0, 0), (1, 1), (1, 1)), mode="edge")
    maps = np.concatenate([tissue, envelope[None]])
    centre = (centre[0] + 1.0, centre[1] + 1.0)
    return Template(maps=np.ascontiguousarray(maps), z_mm=z_mm, centre_rc=centre)
