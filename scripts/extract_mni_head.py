"""Extract the MNI ICBM152 2009a head volume the default datasets are built from (run once by a developer).

Reads the T1, grey-matter and white-matter maps that ship inside the nilearn wheel straight from the wheel
(a zip file; nilearn itself is not imported or installed) and writes
``cycle_medgan_tf/data/assets/mni152_head.npz``:

* ``t1``, ``gm``, ``wm``: uint8 (Z, H, W) axial slices, 1 mm in-plane, every ``--z_step`` mm;
  value = q * ``<name>_scale`` (t1 in template units 0..255, gm/wm as probabilities 0..1).
* ``envelope_mm``: uint8 signed distance (mm, > 0 outside) to a smooth brain envelope (the brain closed
  over sulci and fissures, i.e. the inner surface of the skull), computed in 3-D at 1 mm before slicing;
  value = q * ``envelope_scale`` + ``envelope_offset``, clipped to the representable range.
* ``z_mm`` (Z,) MNI z of each slice; ``origin_mm`` (2,) MNI (y, x) of pixel [0, 0]; ``row_step_mm`` and
  ``col_step_mm`` the signed MNI steps per row and column (rows run anterior to posterior, columns from the
  subject's right to left: radiological display convention).

Get the wheel with ``pip download nilearn --no-deps -d /tmp/x`` and run
``python scripts/extract_mni_head.py --wheel /tmp/x/nilearn-*.whl``.
"""

from __future__ import annotations

import glob
import gzip
import io
import os
import sys
import zipfile

import numpy as np
from absl import app, flags

FLAGS = flags.FLAGS
flags.DEFINE_string("wheel", None, "path to a nilearn wheel (glob patterns allowed)")
flags.DEFINE_string("out", os.path.join(os.path.dirname(__file__), "..", "cycle_medgan_tf", "data", "assets",
                                        "mni152_head.npz"), "output npz")
flags.DEFINE_float("z_lo", -52.0, "lowest MNI z (mm) to keep")
flags.DEFINE_float("z_hi", 88.0, "highest MNI z (mm) to keep")
flags.DEFINE_integer("z_step", 2, "keep every z_step-th 1 mm slice")
flags.DEFINE_float("head_margin_mm", 25.0, "crop to the envelope's bounding box plus this margin")
flags.DEFINE_bool("overwrite", False, "replace an existing output file")

MAPS = {"t1": "mni_icbm152_t1_tal_nlin_sym_09a_converted.nii.gz",
        "gm": "mni_icbm152_gm_tal_nlin_sym_09a_converted.nii.gz",
        "wm": "mni_icbm152_wm_tal_nlin_sym_09a_converted.nii.gz"}
ENVELOPE_OFFSET_MM = -10.0
ENVELOPE_SCALE_MM = 0.2
CLOSING_RADIUS_MM = 6


class ExtractError(Exception):
    """A problem with the input wheel or output path."""


def read_wheel_volumes(wheel_path: str) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """Read the MNI maps from a nilearn wheel; returns ({name: float32 volume}, voxel-to-mm affine)."""
    import nibabel as nib

    volumes, affine = {}, None
    try:
        with zipfile.ZipFile(wheel_path) as wheel:
            names = wheel.namelist()
            for key, base in MAPS.items():
                member = next((n for n in names if n.endswith("nilearn/datasets/data/" + base)), None)
                if member is None:
                    raise ExtractError(f"{wheel_path} does not contain {base}")
                raw = gzip.decompress(wheel.read(member))
                image = nib.Nifti1Image.from_bytes(raw)
                volumes[key] = np.asarray(image.dataobj, dtype=np.float32)
                if affine is None:
                    affine = image.affine
                elif not np.allclose(affine, image.affine):
                    raise ExtractError(f"{base} is not on the same grid as the other maps")
    except zipfile.BadZipFile as exc:
        raise ExtractError(f"{wheel_path} is not a wheel (zip) file") from exc
    return volumes, affine


def brain_envelope_distance(t1: np.ndarray, gm: np.ndarray, wm: np.ndarray) -> np.ndarray:
    """Signed distance (mm, positive outside) to the brain closed over sulci: the skull's inner surface."""
    from scipy import ndimage as ndi

    brain = (t1 > 0) | ((gm + wm) / 255.0 > 0.3)
    r = CLOSING_RADIUS_MM
    zz, yy, xx = np.mgrid[-r:r + 1, -r:r + 1, -r:r + 1]
    ball = zz ** 2 + yy ** 2 + xx ** 2 <= r * r
    padded = np.pad(brain, r + 1)
    closed = ndi.binary_closing(padded, structure=ball)[(slice(r + 1, -r - 1),) * 3]
    closed = ndi.binary_fill_holes(closed)
    smooth = ndi.gaussian_filter(closed.astype(np.float32), 2.0) > 0.5
    outside = ndi.distance_transform_edt(~smooth)
    inside = ndi.distance_transform_edt(smooth)
    return (outside - inside).astype(np.float32)


def to_display_slices(volume: np.ndarray, z_index: np.ndarray) -> np.ndarray:
    """RAS volume (x, y, z) -> axial slices (z, row, col) with anterior at the top and the subject's right
    on the left of the image (radiological convention)."""
    return np.ascontiguousarray(volume[::-1, ::-1, :][:, :, z_index].transpose(2, 1, 0))


def quantise(values: np.ndarray, offset: float, scale: float) -> np.ndarray:
    """Round (values - offset) / scale into uint8."""
    return np.clip(np.rint((values - offset) / scale), 0, 255).astype(np.uint8)


def extract(wheel_path: str, z_lo: float, z_hi: float, z_step: int, margin_mm: float) -> dict[str, np.ndarray]:
    """Build the arrays written to the npz (see the module docstring)."""
    volumes, affine = read_wheel_volumes(wheel_path)
    if not np.allclose(np.abs(np.diag(affine)[:3]), 1.0) or not np.allclose(affine[:3, :3],
                                                                           np.diag(np.diag(affine)[:3])):
        raise ExtractError("expected an axis-aligned 1 mm template grid")
    if not np.all(np.diag(affine)[:3] > 0):
        raise ExtractError("expected RAS voxel axes")
    envelope = brain_envelope_distance(volumes["t1"], volumes["gm"], volumes["wm"])
    z_mm_all = affine[2, 3] + np.arange(volumes["t1"].shape[2])
    z_index = np.flatnonzero((z_mm_all >= z_lo - 1e-6) & (z_mm_all <= z_hi + 1e-6))[::z_step]
    slices = {key: to_display_slices(vol, z_index) for key, vol in volumes.items()}
    env = to_display_slices(envelope, z_index)

    head = (env < margin_mm).any(axis=0)
    rows, cols = np.flatnonzero(head.any(axis=1)), np.flatnonzero(head.any(axis=0))
    r0, r1, c0, c1 = rows[0], rows[-1] + 1, cols[0], cols[-1] + 1
    nx, ny = volumes["t1"].shape[:2]
    # Display row r is RAS y index (ny - 1 - r); display column c is RAS x index (nx - 1 - c).
    origin_y = affine[1, 3] + (ny - 1 - r0)
    origin_x = affine[0, 3] + (nx - 1 - c0)
    crop = (slice(None), slice(r0, r1), slice(c0, c1))
    return {
        "t1": quantise(slices["t1"][crop], 0.0, 1.0), "t1_scale": np.float32(1.0),
        "gm": quantise(slices["gm"][crop], 0.0, 1.0), "gm_scale": np.float32(1.0 / 255.0),
        "wm": quantise(slices["wm"][crop], 0.0, 1.0), "wm_scale": np.float32(1.0 / 255.0),
        "envelope_mm": quantise(env[crop], ENVELOPE_OFFSET_MM, ENVELOPE_SCALE_MM),
        "envelope_offset": np.float32(ENVELOPE_OFFSET_MM), "envelope_scale": np.float32(ENVELOPE_SCALE_MM),
        "z_mm": z_mm_all[z_index].astype(np.float32),
        "origin_mm": np.array([origin_y, origin_x], dtype=np.float32),
        "row_step_mm": np.float32(-1.0), "col_step_mm": np.float32(-1.0),
        "source": np.array("MNI ICBM152 2009a nonlinear symmetric (nilearn wheel "
                           + os.path.basename(wheel_path) + "); see MNI152_NOTICE.txt"),
    }


def main(argv):
    del argv
    try:
        matches = sorted(glob.glob(FLAGS.wheel or ""))
        if len(matches) != 1:
            raise ExtractError(f"--wheel must name exactly one nilearn wheel, matched {len(matches)}")
        out = os.path.abspath(FLAGS.out)
        if os.path.exists(out) and not FLAGS.overwrite:
            raise ExtractError(f"{out} exists (use --overwrite to replace it)")
        if FLAGS.z_step < 1 or FLAGS.z_hi <= FLAGS.z_lo:
            raise ExtractError("need --z_step >= 1 and --z_hi > --z_lo")
        arrays = extract(matches[0], FLAGS.z_lo, FLAGS.z_hi, FLAGS.z_step, FLAGS.head_margin_mm)
    except (ExtractError, OSError) as exc:
        print(f"extract_mni_head: {exc}", file=sys.stderr)
        return 2
    buffer = io.BytesIO()
    np.savez_compressed(buffer, **arrays)
    os.makedirs(os.path.dirname(out), exist_ok=True)
    tmp = out + ".tmp"
    with open(tmp, "wb") as f:
        f.write(buffer.getvalue())
    os.replace(tmp, out)
    print(f"wrote {out}: {arrays['t1'].shape} slices z {arrays['z_mm'][0]:g}..{arrays['z_mm'][-1]:g} mm, "
          f"{os.path.getsize(out) / 1e6:.2f} MB")
    return 0


if __name__ == "__main__":
    app.run(main)
