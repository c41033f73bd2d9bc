"""The checks of a format-v1 slice store (layout in data/format.py): :func:`validate_store` lists every problem.
Image data are scanned for NaN/Inf in bounded blocks, so a huge store is never loaded whole. The command line is
data/validate.py; readers get a checked store from ``data.store.check_store``, which runs this once.
"""

from __future__ import annotations

import os

import h5py
import numpy as np

from cycle_medgan_tf.data.format import (DOMAINS, FORMAT_NAME, FORMAT_VERSION, IMAGE_DATASETS, REQUIRED_ATTRS,
                                         SUBJECT_DATASETS)
from cycle_medgan_tf.data.window import WindowError, as_window

MAX_SIDE = 4096                 # larger slices are not plausible medical 2-D slices
MAX_SLICES = 50_000_000
MAX_WINDOW_ABS = 1e12           # window bounds beyond this are not physical units (and overflow float32 maths)
SCAN_BLOCK_BYTES = 64 * 2**20   # NaN/Inf scan reads at most this much at a time


def validate_store(path) -> list[str]:
    """Return every problem found in the store at ``path`` (an empty list means it is valid)."""
    path = os.fspath(path)
    if not os.path.exists(path):
        return [f"{path}: file not found"]
    if os.path.isdir(path):
        return [f"{path}: is a directory, not an HDF5 file"]
    if not h5py.is_hdf5(path):
        return [f"{path}: not an HDF5 file"]
    try:
        with h5py.File(path, "r") as f:
            return _validate_open(f)
    except (OSError, ValueError, KeyError, RuntimeError) as exc:
        return [f"{path}: unreadable HDF5 file ({exc})"]


def _validate_open(f: h5py.File) -> list[str]:
    problems: list[str] = []
    for attr in REQUIRED_ATTRS:
        if attr not in f.attrs:
            problems.append(f"missing file attribute '{attr}'")
    if "format" in f.attrs and _as_str(f.attrs["format"]) != FORMAT_NAME:
        problems.append(f"file attribute format is {_as_str(f.attrs['format'])!r}, expected {FORMAT_NAME!r}")
    if "version" in f.attrs:
        try:
            version = int(np.asarray(f.attrs["version"]))
        except (TypeError, ValueError):
            version = None
        if version != FORMAT_VERSION:
            problems.append(f"unsupported format version {f.attrs['version']!r} (this tool reads {FORMAT_VERSION})")
    if "pixel_spacing_mm" in f.attrs:
        try:
            spacing = float(np.asarray(f.attrs["pixel_spacing_mm"]))
            if not (np.isfinite(spacing) and spacing > 0):
                problems.append(f"pixel_spacing_mm must be positive, got {spacing}")
        except (TypeError, ValueError):
            problems.append("pixel_spacing_mm is not a number")

    shapes: dict[str, tuple] = {}
    for name in IMAGE_DATASETS:
        problems.extend(_check_image_dataset(f, name, shapes))
    sides = {shape[1:] for shape in shapes.values()}
    if len(sides) > 1:
        problems.append("slice sizes differ between datasets: "
                        + ", ".join(f"{n} {s[1]}x{s[2]}" for n, s in shapes.items()))
    if "val/A/images" in shapes and "val/B/images" in shapes and shapes["val/A/images"] != shapes["val/B/images"]:
        problems.append(f"val/A/images {shapes['val/A/images']} and val/B/images {shapes['val/B/images']} "
                        "differ in shape (validation must be paired row by row)")
    for name, images in SUBJECT_DATASETS.items():
        problems.extend(_check_subjects(f, name, shapes.get(images)))
    for domain in DOMAINS:
        problems.extend(_check_window(f, domain))
    return problems


def _check_image_dataset(f: h5py.File, name: str, shapes: dict) -> list[str]:
    obj = f.get(name)
    if obj is None:
        return [f"missing dataset /{name}"]
    if not isinstance(obj, h5py.Dataset):
        return [f"/{name} is a group, expected a dataset"]
    if obj.ndim != 3:
        return [f"/{name} has rank {obj.ndim}, expected 3 (N, H, W)"]
    if obj.dtype.kind != "f":
        return [f"/{name} has dtype {obj.dtype}, expected floating point (float32)"]
    n, h, w = obj.shape
    if n == 0:
        return [f"/{name} is empty (0 slices)"]
    if h == 0 or w == 0 or h > MAX_SIDE or w > MAX_SIDE or n > MAX_SLICES:
        return [f"/{name} has implausible shape {obj.shape} (at most {MAX_SLICES} slices of {MAX_SIDE}x{MAX_SIDE})"]
    shapes[name] = obj.shape
    try:
        bad = _count_non_finite(obj)
    except (OSError, ValueError, RuntimeError) as exc:
        return [f"/{name} cannot be read ({exc})"]
    if bad:
        return [f"/{name} contains {bad} NaN/Inf values"]
    return []


def _count_non_finite(dataset: h5py.Dataset) -> int:
    n = dataset.shape[0]
    per_slice = max(1, dataset.shape[1] * dataset.shape[2] * dataset.dtype.itemsize)
    step = max(1, SCAN_BLOCK_BYTES // per_slice)
    bad = 0
    for start in range(0, n, step):
        block = dataset[start:start + step]
        bad += int(block.size - np.count_nonzero(np.isfinite(block)))
    return bad


def _check_subjects(f: h5py.File, name: str, image_shape) -> list[str]:
    obj = f.get(name)
    if obj is None:
        return [f"missing dataset /{name}"]
    if not isinstance(obj, h5py.Dataset) or obj.ndim != 1:
        return [f"/{name} must be a 1-D dataset of strings"]
    if obj.dtype.kind not in ("O", "S", "U"):
        return [f"/{name} has dtype {obj.dtype}, expected strings"]
    if image_shape is not None and obj.shape[0] != image_shape[0]:
        return [f"/{name} has {obj.shape[0]} entries but the images have {image_shape[0]} slices"]
    for start in range(0, obj.shape[0], 100_000):
        for value in obj[start:start + 100_000]:
            try:
                value.decode("utf-8") if isinstance(value, bytes) else str(value)
            except UnicodeDecodeError:
                return [f"/{name} holds a subject id that is not valid UTF-8 ({value[:20]!r})"]
    return []


def _check_window(f: h5py.File, domain: str) -> list[str]:
    group = f.get(f"train/{domain}")
    if not isinstance(group, h5py.Group):
        return []  # already reported as a missing dataset
    if "window" not in group.attrs:
        return [f"missing attribute 'window' on /train/{domain}"]
    try:
        window = np.asarray(group.attrs["window"], dtype=np.float64).ravel()
    except (TypeError, ValueError):
        return [f"window on /train/{domain} is not numeric"]
    if window.shape != (2,) or not np.all(np.isfinite(window)) or window[1] <= window[0]:
        return [f"window on /train/{domain} must be [lo, hi] with lo < hi, got {window.tolist()}"]
    if np.any(np.abs(window) > MAX_WINDOW_ABS) or np.float32(window[1]) <= np.float32(window[0]):
        return [f"window on /train/{domain} {window.tolist()} is not a plausible intensity window "
                f"(|values| <= {MAX_WINDOW_ABS:g} and distinct in float32)"]
    if "transfer" in group.attrs:
        try:
            as_window(window, group.attrs["transfer"])
        except WindowError as exc:
            return [f"transfer on /train/{domain}: {exc}"]
    return _check_normalisation(group, domain)


def _check_normalisation(group: h5py.Group, domain: str) -> list[str]:
    """The optional ``normalisation`` attribute must be a JSON record of a known method."""
    from cycle_medgan_tf.data.normalise import NormalisationError, from_record

    if "normalisation" not in group.attrs:
        return []
    value = group.attrs["normalisation"]
    try:
        from_record(value if isinstance(value, (str, bytes)) else str(value))
    except (NormalisationError, TypeError, ValueError) as exc:
        return [f"normalisation on /train/{domain} is not usable ({exc})"]
    return []


def _as_str(value) -> str:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)
