"""Subject-specific head anatomy at 1 mm: the MNI head volume warped in 3-D, plus CSF rim, skull and scalp.

Per subject (all drawn from the subject's own random stream):

* head size and shape: an anisotropic scale per axis, 1 + N(0, 4 %) clipped to +-10 %, and a small shear;
* head position: in-plane rotation +-10 deg, pitch and roll +-12 deg about a point at MNI z = +20 mm (the
  volume is rotated in 3-D before slicing), in-plane translation +-6 mm;
* a smooth low-frequency 3-D elastic deformation (wavelengths 50-150 mm, 2-4 mm standard deviation);
* slice heights drawn uniformly over the cerebrum (template z of the slice centre in -16..+70 mm), sorted;
* age/atrophy ``a`` (most subjects young, some old): ventricles grown by up to 5 mm and a CSF rim widened
  by up to 2 mm;
* skull 4.5-9 mm thick on average (+-1.5 mm locally; inner table ~28 %, diploe ~42 %, outer table ~30 %),
  and a frontal sinus of 4-14 mm depth (absent in 10 % of subjects), an air cavity inside the frontal bone;
* pathology in some subjects: a lesion (25 %; tissue class ``lesion``: hypodense on CT, hypometabolic on PET,
  hypointense on T1) or a resection cavity filled with CSF (15 %).

Outside the brain, layers are cut from the (warped) 3-D distance to the skull's inner surface, each with a
smoothly varying thickness: CSF rim, inner table, sinus (air), diploe, outer table, galea/muscle (plus a
temporalis muscle over the temporal fossa in lower slices), subcutaneous fat and skin. Voxel fractions use a
linear ramp across each boundary, so tissue maps carry partial-volume information and average down cleanly.
The template's population-average GM/WM/CSF probabilities are sharpened (p**2, renormalised) towards the
crisper boundaries of an individual brain.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage as ndi

from cycle_medgan_tf.data.synth.fields import SmoothField, between, coarse_grid, upsample_coarse
from cycle_medgan_tf.data.synth.template import Template, load_template

BUILD_SIZE = 256
BUILD_PIXEL_MM = 1.0
Z_RANGE_MM = (-16.0, 70.0)          # template heights of the slice centres
ROTATION_CENTRE_Z_MM = 20.0
TISSUES = ("gm", "wm", "csf", "cortical", "diploe", "soft", "fat", "lesion")
SKULL_MEAN_MM = (4.5, 9.0)
SKULL_LOCAL_MM = 1.5
INNER_TABLE_SHARE, OUTER_TABLE_SHARE = 0.28, 0.30
SHARPEN_POWER = 2.0
MAX_TILT_DEG = 12.0
MAX_YAW_DEG = 10.0
SCALE_SD, SCALE_LIMIT = 0.04, 0.10
PATHOLOGY_P = {"none": 0.60, "lesion": 0.25, "cavity": 0.15}
_LAYER_ORDER = ("csf", "inner", "sinus", "diploe", "outer", "muscle", "fat", "skin")  # outwards from the brain
_LAYER_FIELDS = ("csf", "skull", "muscle", "fat", "skin")
DEEP_MM = -9.5   # "deep inside the brain"; the stored envelope distance saturates at -10 mm


@dataclass
class Anatomy:
    """Tissue fractions (len(TISSUES), n, S, S) at 1 mm (air = 1 - sum), the warped template T1 (WM = 1),
    the warped template brain-mask weight (0 inside pathology) and the subject height (mm) of each slice."""

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
class _Blob:
    """An ellipsoid in template coordinates (row, col, MNI z; mm) with a kind ("lesion" or "cavity")."""

    kind: str
    centre: np.ndarray
    radii: np.ndarray

    def fraction(self, points: np.ndarray) -> np.ndarray:
        """Partial-volume fraction (0..1) of the blob at template points (3, ...)."""
        shape = (3,) + (1,) * (points.ndim - 1)
        q = np.sqrt(np.sum(((points - self.centre.reshape(shape)) / self.radii.reshape(shape)) ** 2, axis=0))
        return np.clip((1.0 - q) * self.radii.min() + 0.5, 0.0, 1.0).astype(np.float32)


@dataclass(frozen=True)
class _Geometry:
    """A subject's warp (subject mm -> template coordinates), layer fields and individual features."""

    inverse_linear: np.ndarray        # (3, 3) on (y, x, z) offsets
    translation: np.ndarray           # (3,) subject mm
    mean_scale: float
    elastic: tuple[SmoothField, SmoothField, SmoothField]
    elastic_mm: float
    layer_fields: dict
    layer_offsets: dict
    temporalis_mm: float
    skull_mm: float
    atrophy: float
    sinus: tuple[float, float, float, float]   # depth mm, MNI z, z spread mm, angular spread deg
    blob: _Blob | None


def _rotation(axis_a: int, axis_b: int, degrees: float) -> np.ndarray:
    """3 x 3 rotation in the plane of two of the (y, x, z) axes."""
    a = np.deg2rad(degrees)
    r = np.eye(3)
    r[axis_a, axis_a] = r[axis_b, axis_b] = np.cos(a)
    r[axis_a, axis_b], r[axis_b, axis_a] = -np.sin(a), np.sin(a)
    return r


def _random_blob(rng: np.random.Generator, template: Template) -> _Blob | None:
    kinds = list(PATHOLOGY_P)
    kind = kinds[int(rng.choice(len(kinds), p=list(PATHOLOGY_P.values())))]
    if kind == "none":
        return None
    maps = template.maps[:, ::3, ::3, ::3]
    z = template.z_mm[::3][:, None, None]
    envelope = maps[template.channel("envelope")]
    in_range = (z > Z_RANGE_MM[0] + 10.0) & (z < Z_RANGE_MM[1] - 15.0)
    if kind == "lesion":     # deep: white matter well inside the brain
        ok = (maps[template.channel("wm")] > 0.6) & (envelope < DEEP_MM)
        radii = rng.uniform(6.0, 16.0, size=3)
    else:                    # a resection reaches the cortex
        ok = (maps[template.channel("gm")] > 0.4) & (envelope < -3.0) & (envelope > DEEP_MM)
        radii = rng.uniform(10.0, 20.0, size=3)
    candidates = np.argwhere(ok & in_range)
    k, r, c = candidates[rng.integers(len(candidates))] * 3
    return _Blob(kind, np.array([float(r), float(c), float(template.z_mm[k])]), radii)


def _random_geometry(rng: np.random.Generator, template: Template) -> _Geometry:
    yaw, pitch, roll = (rng.uniform(-MAX_YAW_DEG, MAX_YAW_DEG), rng.uniform(-MAX_TILT_DEG, MAX_TILT_DEG),
                        rng.uniform(-MAX_TILT_DEG, MAX_TILT_DEG))
    scale = 1.0 + np.clip(rng.normal(0.0, SCALE_SD, size=3), -SCALE_LIMIT, SCALE_LIMIT)
    shear = np.eye(3)
    shear[0, 1] = rng.uniform(-0.04, 0.04)
    linear = _rotation(0, 1, yaw) @ _rotation(0, 2, pitch) @ _rotation(1, 2, roll) @ shear @ np.diag(scale)
    has_sinus = rng.uniform() > 0.1
    return _Geometry(
        inverse_linear=np.linalg.inv(linear),
        translation=np.array([rng.uniform(-6.0, 6.0), rng.uniform(-6.0, 6.0), 0.0]),
        mean_scale=float(np.cbrt(scale.prod())),
        elastic=tuple(SmoothField(rng, 50.0, 150.0) for _ in range(3)),
        elastic_mm=float(rng.uniform(2.0, 4.0)),
        layer_fields={name: SmoothField(rng, 50.0, 200.0) for name in _LAYER_FIELDS},
        layer_offsets={name: float(rng.normal()) for name in _LAYER_FIELDS},
        temporalis_mm=float(rng.uniform(3.0, 7.0)),
        skull_mm=float(rng.uniform(*SKULL_MEAN_MM)),
        atrophy=float(rng.uniform() ** 2),
        sinus=(float(rng.uniform(4.0, 14.0)) if has_sinus else 0.0, float(rng.uniform(0.0, 15.0)),
               float(rng.uniform(6.0, 12.0)), float(rng.uniform(8.0, 16.0))),
        blob=_random_blob(rng, template),
    )


def _to_template(geo: _Geometry, template: Template, y, x, height: float, elastic=None) -> np.ndarray:
    """Template (row, col, MNI z) of subject points (y, x) on the slice at ``height``: (3, *shape)."""
    y, x = np.broadcast_arrays(y, x)
    offsets = np.stack([y, x, np.full(y.shape, height - ROTATION_CENTRE_Z_MM)]) - geo.translation.reshape(3, 1, 1)
    points = np.einsum("ij,j...->i...", geo.inverse_linear, offsets)
    points += np.array([template.centre_rc[0], template.centre_rc[1], ROTATION_CENTRE_Z_MM]).reshape(3, 1, 1)
    return points if elastic is None else points + elastic


def _sinus_mm(geo: _Geometry, template: Template, points: np.ndarray) -> np.ndarray:
    """Frontal-sinus depth (mm) at template points (3, ...): anterior midline, around the sinus height."""
    depth, z_centre, z_spread, angle_spread = geo.sinus
    if depth == 0.0:
        return np.zeros(points.shape[1:], np.float32)
    dr, dc = points[0] - template.centre_rc[0], points[1] - template.centre_rc[1]
    angle = np.degrees(np.arctan2(np.abs(dc), -dr))       # 0 deg = straight ahead (anterior)
    weight = np.exp(-(angle / angle_spread) ** 2 - ((points[2] - z_centre) / z_spread) ** 2)
    return (depth * weight).astype(np.float32)


def _layer_thickness(geo: _Geometry, template: Template, cy: np.ndarray, cx: np.ndarray,
                     height: float) -> dict[str, np.ndarray]:
    """Thickness (mm) of each layer on the coarse grid of the slice at ``height``."""
    def field(name):
        return 0.75 * geo.layer_fields[name](cy, cx, height) + 0.65 * geo.layer_offsets[name]

    points = _to_template(geo, template, cy, cx, height)
    skull = np.maximum(geo.skull_mm + SKULL_LOCAL_MM * np.clip(field("skull") / 2.0, -1.0, 1.0), 2.0)
    dy, dx = cy - geo.translation[0], cx - geo.translation[1]
    radius = np.sqrt(dy ** 2 + dx ** 2) + 1e-6
    lateral = (np.abs(dx) / radius) ** 2 * np.exp(-(((dy + 15.0) / 40.0) ** 2))
    temporalis = geo.temporalis_mm * lateral * np.clip((45.0 - points[2]) / 25.0, 0.0, 1.0)
    return {
        "csf": between(field("csf"), 1.0, 3.0) + np.float32(2.0 * geo.atrophy),
        "inner": INNER_TABLE_SHARE * skull,
        "sinus": _sinus_mm(geo, template, points),
        "diploe": (1.0 - INNER_TABLE_SHARE - OUTER_TABLE_SHARE) * skull,
        "outer": OUTER_TABLE_SHARE * skull,
        "muscle": between(field("muscle"), 0.8, 1.6) + temporalis.astype(np.float32),
        "fat": between(field("fat"), 1.5, 4.5),
        "skin": between(field("skin"), 1.2, 2.2),
    }


def _ramp(distance_past_boundary: np.ndarray) -> np.ndarray:
    """Fraction of a 1 mm voxel lying beyond a boundary at signed distance ``-distance_past_boundary``."""
    return np.clip(distance_past_boundary + 0.5, 0.0, 1.0)


def _warp_slice(template: Template, geo: _Geometry, height: float, y: np.ndarray, x: np.ndarray,
                cy: np.ndarray, cx: np.ndarray, size: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Template maps resampled onto the subject's slice: (C, S, S), the envelope distance (subject mm) and
    the template coordinates of every pixel (3, S, S)."""
    elastic = np.stack([geo.elastic_mm * f(cy, cx, height) for f in geo.elastic])
    points = _to_template(geo, template, y, x, height, upsample_coarse(elastic, size))
    maps = template.sample(points[0], points[1], points[2])
    _, _, h, w = template.maps.shape
    z_lo, z_hi = template.z_mm[0], template.z_mm[-1]
    outside = np.sqrt(sum(np.maximum(np.maximum(lo - p, p - hi), 0.0) ** 2
                          for p, lo, hi in zip(points, (0.0, 0.0, z_lo), (h - 1.0, w - 1.0, z_hi))))
    env_index = template.channel("envelope")
    envelope = (maps[env_index] + outside) * geo.mean_scale
    return np.delete(maps, env_index, axis=0), envelope.astype(np.float32), points


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


def _grow_ventricles(gm, wm, csf, envelope, growth_mm: float):
    """Shrink brain tissue next to the deep CSF (ventricles) by ``growth_mm`` (atrophy): (gm, wm)."""
    seed = (csf > 0.5) & (envelope < 0.9 * DEEP_MM)   # subject mm: the head may be 10 % smaller
    if growth_mm <= 0.0 or not seed.any():
        return gm, wm
    distance = ndi.distance_transform_edt(~seed) * BUILD_PIXEL_MM
    keep = 1.0 - np.clip(growth_mm - distance + 0.5, 0.0, 1.0) * (envelope < -6.0)
    return gm * keep, wm * keep


def _slice_fractions(gm, wm, envelope, layers, growth_mm: float, blob: np.ndarray | None,
                     blob_kind: str) -> np.ndarray:
    """Tissue fractions (len(TISSUES), S, S) from warped GM/WM, envelope distance and layer thicknesses."""
    gm, wm = _sharpen_tissues(gm, wm)
    beyond = _ramp(envelope)
    brain_space = np.maximum(1.0 - beyond, gm + wm)
    gm, wm = _grow_ventricles(gm, wm, brain_space - gm - wm, envelope, growth_mm)
    lesion = np.zeros_like(gm)
    if blob is not None:
        if blob_kind == "lesion":
            lesion = blob * (gm + wm)
        gm, wm = gm * (1.0 - blob), wm * (1.0 - blob)
    share = (1.0 - brain_space) / np.maximum(beyond, 1e-6)
    boundary = np.zeros_like(envelope)
    past = beyond
    layer = {}
    for name in _LAYER_ORDER:
        boundary = boundary + layers[name]
        past_next = _ramp(envelope - boundary)
        layer[name] = (past - past_next) * share
        past = past_next
    csf = brain_space - gm - wm - lesion + layer["csf"]
    return np.stack([gm, wm, csf, layer["inner"] + layer["outer"], layer["diploe"],
                     layer["muscle"] + layer["skin"], layer["fat"], lesion]).astype(np.float32)


def slice_heights(rng: np.random.Generator, n_slices: int, z_range=Z_RANGE_MM) -> np.ndarray:
    """Template heights (mm) of a subject's slice centres: uniform over ``z_range``, ascending."""
    return np.sort(rng.uniform(z_range[0], z_range[1], size=n_slices))


def random_anatomy(rng: np.random.Generator, n_slices: int, z_range=Z_RANGE_MM,
                   template: Template | None = None) -> Anatomy:
    """Draw one subject's head and build ``n_slices`` axial slices at 1 mm on a 256 x 256 grid."""
    template = template or load_template()
    geo = _random_geometry(rng, template)
    z_mm = slice_heights(rng, n_slices, z_range)
    size = BUILD_SIZE
    axis = (np.arange(size) + 0.5) * BUILD_PIXEL_MM - size * BUILD_PIXEL_MM / 2.0
    y, x = axis[:, None], axis[None, :]
    cy, cx = coarse_grid(size, BUILD_PIXEL_MM)
    fractions = np.empty((len(TISSUES), n_slices, size, size), np.float32)
    t1 = np.empty((n_slices, size, size), np.float32)
    brain = np.empty_like(t1)
    for i, height in enumerate(z_mm):
        warped, envelope, points = _warp_slice(template, geo, height, y, x, cy, cx, size)
        thickness = _layer_thickness(geo, template, cy, cx, height)
        layers = dict(zip(_LAYER_ORDER, upsample_coarse(np.stack([thickness[n] for n in _LAYER_ORDER]), size)))
        t1[i], gm, wm, brain[i] = warped
        blob = geo.blob.fraction(points) if geo.blob is not None else None
        fractions[:, i] = _slice_fractions(gm, wm, envelope, layers, 5.0 * geo.atrophy, blob,
                                           geo.blob.kind if geo.blob is not None else "")
        if blob is not None:
            brain[i] *= 1.0 - blob
    return Anatomy(fractions=fractions, t1=t1, brain=np.clip(brain, 0.0, 1.0), z_mm=z_mm)
