"""DICOM series: reading one single-frame series from a directory (slices sorted along the normal, rescaled, the
geometry checked for consistency; LPS patient coordinates converted to RAS+) and writing one atomically."""

from __future__ import annotations

import os

import numpy as np

from cycle_medgan_tf.atomic import atomic_path
from cycle_medgan_tf.data.volumes.core import (Geometry, Volume, VolumeError, check_values, check_path, error_reason,
                                               modality_kind, voxel_spacing)

LPS_TO_RAS = np.diag([-1.0, -1.0, 1.0, 1.0])
DICOM_SOP_CLASSES = {"CT": "1.2.840.10008.5.1.4.1.1.2",     # CT Image Storage
                     "PET": "1.2.840.10008.5.1.4.1.1.128",  # Positron Emission Tomography Image Storage
                     "MR": "1.2.840.10008.5.1.4.1.1.4"}     # MR Image Storage
DICOM_MODALITY_CODES = {"CT": "CT", "PET": "PT", "MR": "MR"}

_ORIENTATION_TOL = 1e-4     # direction cosines of slices in one series must agree this closely
_SPACING_TOL = 0.05         # relative deviation allowed between consecutive slice steps
_DUPLICATE_MM = 1e-3        # slices closer than this along the normal count as duplicates


def _series_files(directory: str) -> list[str]:
    names = sorted(n for n in os.listdir(directory) if not n.startswith(".") and n.upper() != "DICOMDIR")
    files = [os.path.join(directory, n) for n in names if os.path.isfile(os.path.join(directory, n))]
    if not files:
        raise VolumeError(f"{directory}: no files found (expected the slices of one DICOM series)")
    return files


def read_series(directory: str, *, with_pixels: bool) -> list:
    import pydicom

    datasets = []
    for path in _series_files(directory):
        try:
            ds = pydicom.dcmread(path, stop_before_pixels=not with_pixels)
        except Exception as exc:  # InvalidDicomError, truncated files, bad encodings...
            raise VolumeError(f"{path}: not a readable DICOM file ({error_reason(exc)})") from exc
        datasets.append((path, ds))
    return datasets


def _require(path: str, ds, keyword: str):
    value = ds.get(keyword)
    if value is None or value == "":
        raise VolumeError(f"{path}: missing {keyword} (no usable geometry)")
    return value


def series_geometry(directory: str, datasets: list) -> tuple[list[int], Geometry]:
    """Slice order and geometry of a single-frame series; raise for any inconsistency."""
    series = {str(ds.get("SeriesInstanceUID", "")) for _, ds in datasets}
    if len(series) > 1:
        raise VolumeError(f"{directory}: holds {len(series)} DICOM series; put each series in its own directory")
    first_path, first = datasets[0]
    sizes, orientations_, spacings, positions = set(), [], [], []
    for path, ds in datasets:
        if int(ds.get("NumberOfFrames", 1) or 1) > 1:
            raise VolumeError(f"{path}: multi-frame DICOM is not supported (convert the series to NIfTI first)")
        sizes.add((int(_require(path, ds, "Rows")), int(_require(path, ds, "Columns"))))
        orientations_.append(np.array(_require(path, ds, "ImageOrientationPatient"), dtype=np.float64))
        spacings.append(np.array(_require(path, ds, "PixelSpacing"), dtype=np.float64))
        positions.append(np.array(_require(path, ds, "ImagePositionPatient"), dtype=np.float64))
    if len(sizes) > 1:
        raise VolumeError(f"{directory}: inconsistent series: mixed slice sizes {sorted(sizes)}")
    if any(o.shape != (6,) for o in orientations_) or any(s.shape != (2,) for s in spacings) or \
            any(p.shape != (3,) for p in positions):
        raise VolumeError(f"{directory}: malformed ImageOrientationPatient, PixelSpacing or ImagePositionPatient")
    if np.ptp(np.stack(orientations_), axis=0).max() > _ORIENTATION_TOL:
        raise VolumeError(f"{directory}: inconsistent series: slices have different orientations")
    if np.ptp(np.stack(spacings), axis=0).max() > _ORIENTATION_TOL * spacings[0].max():
        raise VolumeError(f"{directory}: inconsistent series: slices have different pixel spacings")
    row_cos, col_cos = orientations_[0][:3], orientations_[0][3:]
    normal = np.cross(row_cos, col_cos)
    if abs(np.linalg.norm(normal) - 1.0) > 1e-3 or not np.all(spacings[0] > 0):
        raise VolumeError(f"{first_path}: invalid ImageOrientationPatient or PixelSpacing (no usable geometry)")
    depth = np.array([p @ normal for p in positions])
    order = [int(i) for i in np.argsort(depth, kind="stable")]
    ordered = np.stack([positions[i] for i in order])
    gaps = np.diff(depth[order])
    if gaps.size and gaps.min() < _DUPLICATE_MM:
        k = int(np.argmin(gaps))
        a, b = datasets[order[k]][0], datasets[order[k + 1]][0]
        raise VolumeError(f"{directory}: inconsistent series: duplicate slice position "
                          f"{depth[order[k]]:.3f} mm ({os.path.basename(a)}, {os.path.basename(b)})")
    if len(order) > 1:
        steps = np.diff(ordered, axis=0)
        typical = np.median(steps, axis=0)
        if np.linalg.norm(steps - typical, axis=1).max() > _SPACING_TOL * np.linalg.norm(typical) + 1e-3:
            raise VolumeError(f"{directory}: inconsistent series: slice spacing is not uniform "
                              f"(steps {gaps.min():.3f} to {gaps.max():.3f} mm; missing slices?)")
        slice_step = (ordered[-1] - ordered[0]) / (len(order) - 1)
    else:
        thickness = first.get("SpacingBetweenSlices") or first.get("SliceThickness")
        if not thickness or float(thickness) <= 0:
            raise VolumeError(f"{first_path}: single slice without SliceThickness (no usable geometry)")
        slice_step = normal * float(thickness)
    row_spacing, col_spacing = spacings[0]
    lps = np.eye(4)
    lps[:3, 0] = row_cos * col_spacing      # array axis 0 = DICOM column index
    lps[:3, 1] = col_cos * row_spacing      # array axis 1 = DICOM row index
    lps[:3, 2] = slice_step
    lps[:3, 3] = ordered[0]
    rows, cols = sizes.pop()
    modality = str(first.get("Modality", "")).strip().upper()
    return order, Geometry((cols, rows, len(order)), LPS_TO_RAS @ lps, modality,
                           str(first.get("PatientID", "") or "").strip(),
                           str(first.get("StudyInstanceUID", "") or "").strip())


def read_dicom_headers(directory) -> list:
    """The pydicom datasets (without pixel data) of a series, in the slice order of :func:`read_dicom_series`."""
    directory = check_path(directory)
    datasets = read_series(directory, with_pixels=False)
    order, _ = series_geometry(directory, datasets)
    return [datasets[i][1] for i in order]


def read_dicom_series(directory) -> Volume:
    """Read a directory holding one single-frame DICOM series (sorted along the slice normal, rescaled)."""
    directory = os.fspath(directory)
    datasets = read_series(directory, with_pixels=True)
    order, geometry = series_geometry(directory, datasets)
    data = np.empty(geometry.shape, dtype=np.float32)
    for k, index in enumerate(order):
        path, ds = datasets[index]
        if "PixelData" not in ds:
            raise VolumeError(f"{path}: has no pixel data")
        try:
            pixels = ds.pixel_array
        except Exception as exc:  # unsupported compression, truncated pixel data...
            syntax = getattr(getattr(ds, "file_meta", None), "TransferSyntaxUID", None)
            raise VolumeError(f"{path}: cannot decode pixel data ({getattr(syntax, 'name', syntax)}; "
                              f"{error_reason(exc)})") from exc
        if pixels.ndim != 2:
            raise VolumeError(f"{path}: expected a single-channel 2-D image, got pixel array {pixels.shape}")
        slope = float(ds.get("RescaleSlope", 1.0) or 1.0)
        intercept = float(ds.get("RescaleIntercept", 0.0) or 0.0)
        data[:, :, k] = (pixels.astype(np.float32) * np.float32(slope) + np.float32(intercept)).T
    check_values(directory, data)
    return Volume(data, geometry.affine, geometry.modality, directory)


def _quantize(values: np.ndarray) -> tuple[np.ndarray, float, float]:
    """int16 pixels with slope/intercept; exact for integer data that fits int16."""
    lo, hi = float(values.min()), float(values.max())
    if np.all(values == np.round(values)) and lo >= -32768 and hi <= 32767:
        return values.astype(np.int16), 1.0, 0.0
    slope = (hi - lo) / 65535.0 if hi > lo else 1.0
    intercept = lo + 32768.0 * slope
    raw = np.clip(np.round((values.astype(np.float64) - intercept) / slope), -32768, 32767)
    return raw.astype(np.int16), slope, intercept


def write_dicom_series(volume: Volume, directory, *, modality: str | None = None, patient_id: str = "ANON",
                       series_description: str = "", overwrite: bool = False) -> str:
    """Write ``volume`` as a single-frame CT, PET or MR image series (int16 + per-slice rescale), one file per
    slice, into a new ``directory`` (written under a temporary name, then renamed)."""
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian, generate_uid
    from pydicom.valuerep import format_number_as_ds

    directory = os.fspath(directory)
    kind = modality_kind(modality or volume.modality)
    if kind is None:
        raise VolumeError(f"cannot write DICOM for modality {modality or volume.modality!r} (CT, PET or MR)")
    if os.path.exists(directory) and not overwrite:
        raise VolumeError(f"{directory}: already exists (use --overwrite to replace it)")
    if not np.all(np.isfinite(volume.data)):
        raise VolumeError("cannot write non-finite values to DICOM")
    lps = np.linalg.inv(LPS_TO_RAS) @ volume.affine
    spacing = voxel_spacing(lps)
    row_cos, col_cos = lps[:3, 0] / spacing[0], lps[:3, 1] / spacing[1]

    def ds_values(values):
        return [format_number_as_ds(float(v)) for v in values]

    study, series, frame = generate_uid(), generate_uid(), generate_uid()
    os.makedirs(os.path.dirname(os.path.abspath(directory)), exist_ok=True)
    with atomic_path(directory, directory=True) as tmp:
        for k in range(volume.shape[2]):
            raw, slope, intercept = _quantize(volume.data[:, :, k].T)
            meta = FileMetaDataset()
            meta.MediaStorageSOPClassUID = DICOM_SOP_CLASSES[kind]
            meta.MediaStorageSOPInstanceUID = generate_uid()
            meta.TransferSyntaxUID = ExplicitVRLittleEndian
            ds = Dataset()
            ds.file_meta = meta
            ds.SOPClassUID, ds.SOPInstanceUID = meta.MediaStorageSOPClassUID, meta.MediaStorageSOPInstanceUID
            ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.FrameOfReferenceUID = study, series, frame
            ds.Modality = DICOM_MODALITY_CODES[kind]
            ds.PatientName = ds.PatientID = patient_id
            ds.SeriesDescription = series_description
            ds.SeriesNumber, ds.InstanceNumber = 1, k + 1
            ds.ImageType = ["DERIVED", "SECONDARY", "AXIAL"]
            ds.ImagePositionPatient = ds_values(lps[:3, 3] + k * lps[:3, 2])
            ds.ImageOrientationPatient = ds_values(np.concatenate([row_cos, col_cos]))
            ds.PixelSpacing = ds_values([spacing[1], spacing[0]])
            ds.SliceThickness = format_number_as_ds(float(spacing[2]))
            ds.Rows, ds.Columns = raw.shape
            ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
            ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 16, 15, 1
            ds.RescaleSlope, ds.RescaleIntercept = format_number_as_ds(slope), format_number_as_ds(intercept)
            if kind == "CT":
                ds.RescaleType = "HU"
            if kind == "PET":
                ds.Units, ds.SeriesType = "BQML", ["STATIC", "IMAGE"]
            ds.PixelData = np.ascontiguousarray(raw).tobytes()
            ds.save_as(os.path.join(tmp, f"slice{k + 1:04d}.dcm"), enforce_file_format=True)
    return directory
