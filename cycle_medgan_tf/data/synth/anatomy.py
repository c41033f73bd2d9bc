"""Subject-specific head anatomy at 1 mm: warped MNI tissue maps plus synthetic CSF rim, skull and scalp.

Per subject: a random in-plane affine (rotation +-8 deg, scale 0.92-1.08 per axis, shear +-0.06,
translation +-6 mm) and a smooth elastic deformation (up to a few mm) are applied to axial template slices
between MNI z = -14 and +66 mm. Outside the brain, layers are cut from the (warped) 3-D distance to the
skull's inner surface, each with a smoothly varying thickness: CSF rim 1-3 mm, skull 5-8 mm (inner table
~28 %, diploe ~42 %, outer table ~30 %), galea/muscle 0.8-1.6 mm plus a temporalis muscle over the temporal
fossa in the lower slices, subcutaneous fat 1.5-4.5 mm and skin 1.2-2.2 mm. Voxel fractions use a linear
ramp across each boundary, so tissue maps carry partial-volume information and average down cleanly.
The template's population-average GM/WM/CSF probabilities are sharpened (p**2, renormalised) towards the
crisper boundaries of an individual brain.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from cycle_medgan_tf.data.synth.fields import SmoothField, between, coarse_grid, upsample_coarse
from cycle_medgan_tf.data.synth.template import Template, load_template

BUILD_SIZE = 256
BUILD_PIXEL_MM = 1.0
Z_RANGE_MM = (-14.0, 66.0)
TISSUES = ("gm", "wm", "csf", "cortical", "diploe", "soft", "fat")
SKULL_MM = (5.0, 8.0)
INNER_TABLE_SHARE, OUTER_TABLE_SHARE = 0.28, 0.30
SHARPEN_POWER = 2.0
_LAYER_ORDER = ("csf", "inner", "diploe", "outer", "muscle", "fat", "skin")  # outwards from the brain


@dataclass
class Anatomy:
    """Tissue fractions (len(TISSUES), n, S, S) at 1 mm (air = 1 - sum), the warped template T1 (WM = 1),
    the warped template brain-mask weight and the template z (mm) of each slice."""

    fractions: np.ndarray
    t1: np.ndarray
    brain: np.ndarray
    z_mm: np.ndarray

    def fraction(self, tissue: str) -> np.ndarray:
        """The (n, S, S) fraction map of one tissue in :data:`TISSUES`."""
        return self.fractions[TISSUES.index(tissue)]

    @property
    def size(self) -> int:
        return self.t1.shape[-1]

    @property
    def n_slices(self) -> int:
        return self.t1.shape[0]


@dataclass(frozen=True)
class _Geometry:
    """A subject's warp (subject mm -> template mm) and layer-thickness fields."""

    inverse_linear: np.ndarray
    translation: np.ndarray
    mean_scale: float
    elastic: tuple[SmoothField, SmoothField]
    elastic_mm: float
    layer_fields: dict
    layer_offsets: dict
    temporalis_mm: float


def slice_positions(rng: np.random.Generator, n_slices: int, z_range=Z_RANGE_MM) -> np.ndarray:
    """Evenly spaced template heights over ``z_range`` with a random common phase, ascending."""
    lo, hi = z_range
    step = (hi - lo) / n_slices
    return lo + step * (np.arange(n_slices) + rng.uniform(0.0, 1.0))


def _random_geometry(rng: np.random.Generator) -> _Geometry:
    angle = np.deg2rad(rng.uniform(-8.0, 8.0))
    scale = rng.uniform(0.92, 1.08, size=2)
    shear = rng.uniform(-0.06, 0.06)
    rotation = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    linear = rotation @ np.array([[1.0, shear], [0.0, 1.0]]) @ np.diag(scale)
    layer_names = ("csf", "skull", "muscle", "fat", "skin")
    return _Geometry(
        inverse_linear=np.linalg.inv(linear),
        translation=rng.uniform(-6.0, 6.0, size=2),
        mean_scale=float(np.sqrt(scale.prod())),
        elastic=(SmoothField(rng, 40.0, 120.0), SmoothField(rng, 40.0, 120.0)),
        elastic_mm=float(rng.uniform(1.0, 2.0)),
        layer_fields={name: SmoothField(rng, 50.0, 200.0) for name in layer_names},
        layer_offsets={name: float(rng.normal()) for name in layer_names},
        temporalis_mm=float(rng.uniform(3.0, 7.0)),
    )


def _layer_thickness(geo: _Geometry, cy: np.ndarray, cx: np.ndarray, z: float) -> dict[str, np.ndarray]:
    """Thickness (mm) of each layer on the coarse grid at height z."""
    def field(name):
        return 0.75 * geo.layer_fields[name](cy, cx, z) + 0.65 * geo.layer_offsets[name]

    skull = between(field("skull"), *SKULL_MM)
    dy, dx = cy - geo.translation[0], cx - geo.translation[1]
    radius = np.sqrt(dy ** 2 + dx ** 2) + 1e-6
    lateral = (np.abs(dx) / radius) ** 2 * np.exp(-(((dy + 15.0) / 40.0) ** 2))
    temporalis = geo.temporalis_mm * lateral * np.clip((45.0 - z) / 25.0, 0.0, 1.0)
    return {
        "csf": between(field("csf"), 1.0, 3.0),
        "inner": INNER_TABLE_SHARE * skull,
        "diploe": (1.0 - INNER_TABLE_SHARE - OUTER_TABLE_SHARE) * skull,
        "outer": OUTER_TABLE_SHARE * skull,
        "muscle": between(field("muscle"), 0.8, 1.6) + temporalis.astype(np.float32),
        "fat": between(field("fat"), 1.5, 4.5),
        "skin": between(field("skin"), 1.2, 2.2),
    }


def _ramp(distance_past_boundary: np.ndarray) -> np.ndarray:
    """Fraction of a 1 mm voxel lying beyond a boundary at signed distance ``-distance_past_boundary``."""
    return np.clip(distance_past_boundary + 0.5, 0.0, 1.0)


def _bilinear(maps: np.ndarray, rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
    """Bilinear samples of every channel of ``maps`` (C, H, W) at (rows, cols); points outside take the
    border value (the template is padded with zeros, and with edge values for the envelope distance)."""
    _, h, w = maps.shape
    r = np.clip(rows, 0.0, h - 1.0)
    c = np.clip(cols, 0.0, w - 1.0)
    r0 = np.minimum(r.astype(np.int64), h - 2)
    c0 = np.minimum(c.astype(np.int64), w - 2)
    fr = (r - r0).astype(np.float32)
    fc = (c - c0).astype(np.float32)
    flat = maps.reshape(maps.shape[0], -1)
    index = r0 * w + c0

    def at(offset):
        return np.take(flat, index + offset, axis=1)

    top = at(0) * (1.0 - fc) + at(1) * fc
    bottom = at(w) * (1.0 - fc) + at(w + 1) * fc
    return top * (1.0 - fr) + bottom * fr


def _warp_slice(template: Template, geo: _Geometry, z: float, y: np.ndarray, x: np.ndarray,
                cy: np.ndarray, cx: np.ndarray, size: int) -> tuple[np.ndarray, np.ndarray]:
    """Template maps resampled onto the subject's slice grid: (C, S, S), and the envelope distance (mm)."""
    slab = template.slab(z)
    elastic = np.stack([geo.elastic_mm * f(cy, cx, z) for f in geo.elastic])
    elastic = upsample_coarse(elastic, size)
    py, px = y - geo.translation[0], x - geo.translation[1]
    inv = geo.inverse_linear
    rows = template.centre_rc[0] + inv[0, 0] * py + inv[0, 1] * px + elastic[0]
    cols = template.centre_rc[1] + inv[1, 0] * py + inv[1, 1] * px + elastic[1]
    maps = _bilinear(slab, rows, cols)
    h, w = slab.shape[1:]
    outside = np.hypot(np.maximum(np.maximum(-rows, rows - (h - 1)), 0.0),
                       np.maximum(np.maximum(-cols, cols - (w - 1)), 0.0))
    env_index = template.channel("envelope")
    envelope = maps[env_index] + outside
    warped = np.delete(maps, env_index, axis=0)
    return warped, envelope * geo.mean_scale


def _sharpen_tissues(gm: np.ndarray, wm: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Sharpen population-average GM/WM/CSF probabilities towards an individual's crisper tissue boundaries:
    p_i**g / sum_j p_j**g within the brain (g = SHARPEN_POWER), keeping the brain's total occupancy."""
    gm = np.clip(gm, 0.0, 1.0)
    wm = np.clip(wm, 0.0, 1.0)
    occupancy = np.minimum(gm + wm, 1.0)
    scale = occupancy / np.maximum(gm + wm, 1e-6)
    gm, wm = gm * scale, wm * scale
    csf = 1.0 - gm - wm
    powered = [np.power(p, SHARPEN_POWER) for p in (gm, wm, csf)]
    total = np.maximum(powered[0] + powered[1] + powered[2], 1e-12)
    brain = np.where(occupancy > 0, 1.0, 0.0)
    return powered[0] / total * brain, powered[1] / total * brain


def _slice_fractions(gm, wm, envelope, layers) -> np.ndarray:
    """Tissue fractions (len(TISSUES), S, S) from warped GM/WM, envelope distance and layer thicknesses."""
    gm, wm = _sharpen_tissues(gm, wm)
    beyond = _ramp(envelope)
    brain_space = np.maximum(1.0 - beyond, gm + wm)
    share = (1.0 - brain_space) / np.maximum(beyond, 1e-6)
    boundary = np.zeros_like(envelope)
    past = beyond
    layer = {}
    for name in _LAYER_ORDER:
        boundary = boundary + layers[name]
        past_next = _ramp(envelope - boundary)
        layer[name] = (past - past_next) * share
        past = past_next
    csf = brain_space - gm - wm + layer["csf"]
    return np.stack([gm, wm, csf, layer["inner"] + layer["outer"], layer["diploe"],
                     layer["muscle"] + layer["skin"], layer["fat"]]).astype(np.float32)


def random_anatomy(rng: np.random.Generator, n_slices: int, z_range=Z_RANGE_MM,
                   template: Template | None = None) -> Anatomy:
    """Draw one subject's head and build ``n_slices`` axial slices at 1 mm on a 256 x 256 grid."""
    template = template or load_template()
    geo = _random_geometry(rng)
    z_mm = slice_positions(rng, n_slices, z_range)
    size = BUILD_SIZE
    axis = (np.arange(size) + 0.5) * BUILD_PIXEL_MM - size * BUILD_PIXEL_MM / 2.0
    y, x = axis[:, None], axis[None, :]
    cy, cx = coarse_grid(size, BUILD_PIXEL_MM)
    fractions = np.empty((len(TISSUES), n_slices, size, size), np.float32)
    t1 = np.empty((n_slices, size, size), np.float32)
    brain = np.empty_like(t1)
    for i, z in enumerate(z_mm):
        warped, envelope = _warp_slice(template, geo, z, y, x, cy, cx, size)
        thickness = _layer_thickness(geo, cy, cx, z)
        layers = dict(zip(_LAYER_ORDER, upsample_coarse(np.stack([thickness[n] for n in _LAYER_ORDER]), size)))
        t1[i], gm, wm, brain[i] = warped
        fractions[:, i] = _slice_fractions(gm, wm, envelope, layers)
    return Anatomy(fractions=fractions, t1=t1, brain=np.clip(brain, 0.0, 1.0), z_mm=z_mm)
