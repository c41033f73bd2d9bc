"""The embedded MNI ICBM152 2009a axial slab (``data/assets/mni152_slices.npz``, see MNI152_NOTICE.txt).

Made once by ``scripts/extract_mni_slices.py``; this module only reads it (no nilearn at run time).
Maps, all float32 on a 1 mm grid with rows anterior -> posterior and columns right -> left:

* ``t1``: T1-weighted average scaled so that white matter is 1 (0 outside the template's brain mask);
* ``gm``, ``wm``: tissue probabilities; ``brain``: the T1 brain mask (1 inside);
* ``envelope``: signed distance in mm to the skull's inner surface (positive outside).

The maps carry a one-pixel border (zeros; edge values for the envelope) so bilinear sampling outside the
stored field gives the border value.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path

import numpy as np

ASSET_PATH = Path(__file__).resolve().parents[1] / "assets" / "mni152_slices.npz"
MAP_NAMES = ("t1", "gm", "wm", "brain", "envelope")
WHITE_MATTER_T1 = 222.0  # median template T1 where P(WM) > 0.9


@dataclass(frozen=True)
class Template:
    """Axial template maps ``maps[channel, slice, row, col]`` (channels in :data:`MAP_NAMES`)."""

    maps: np.ndarray
    z_mm: np.ndarray
    centre_rc: tuple[float, float]

    def channel(self, name: str) -> int:
        """Index of a map in :attr:`maps`."""
        return MAP_NAMES.index(name)

    def slab(self, z_mm: float) -> np.ndarray:
        """All maps at height ``z_mm`` (MNI), linearly interpolated between stored slices: (C, H, W)."""
        pos = float(np.interp(z_mm, self.z_mm, np.arange(len(self.z_mm))))
        i0 = min(int(np.floor(pos)), len(self.z_mm) - 2)
        w = np.float32(pos - i0)
        return (1 - w) * self.maps[:, i0] + w * self.maps[:, i0 + 1]


@functools.lru_cache(maxsize=1)
def load_template(path: str | None = None) -> Template:
    """Load (once per process) the template slab from the packaged npz."""
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
