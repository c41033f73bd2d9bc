"""3-D medical volumes: reading NIfTI files and DICOM series, writing NIfTI (and DICOM), resampling, slicing.

Conventions
-----------
* ``Volume.data`` is float32 with shape (X, Y, Z) in physical units (HU, Bq/ml or SUV, arbitrary MR units).
* ``Volume.affine`` maps voxel indices (i, j, k) to world millimetres in **RAS+** (the NIfTI convention);
  DICOM's LPS patient coordinates are converted on reading.
* After :func:`reorient_canonical` axis 2 runs inferior to superior, so ``data[:, :, k]`` is an axial slice.
  :func:`axial_slices` returns those slices in radiological display orientation (rows anterior to posterior,
  columns patient right to left, as a DICOM axial image is shown); this is the orientation of the slices in a
  slice store, and :func:`volume_from_axial_slices` inverts it.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from dataclasses import dataclass, replace
from typing import NamedTuple, Sequence

import nibabel as nib
import numpy as np
from nibabel import orientations
from scipy import ndimage

NIFTI_SUFFIXES = (".nii.gz", ".nii")
LPS_TO_RAS = np.diag([-1.0, -1.0, 1.0, 1.0])
BACKGROUND = {"CT": -1000.0, "PET": 0.0, "MR": 0.0}
DICOM_SOP_CLASSES = {"CT": "1.2.840.10008.5.1.4.1.1.2",     # CT Image Storage
                     "PET": "1.2.840.10008.5.1.4.1.1.128",  # Positron Emission Tomography Image Storage
                     "MR": "1.2.840.10008.5.1.4.1.1.4"}     # MR Image Storage
DICOM_MODALITY_CODES = {"CT": "CT", "PET": "PT", "MR": "MR"}
_ORIENTATION_TOL = 1e-4     # direction cosines of slices in one series must agree this closely
_SPACING_TOL = 0.05         # relative deviation allowed between consecutive slice steps
_DUPLICATE_MM = 1e-3        # slices closer than this along the normal count as duplicates


class VolumeError(Exception):
    """A volume cannot be read, written or used; the message names the file and the problem."""


@dataclass
class Volume:
    """A 3-D image: float32 ``data`` (X, Y, Z), RAS+ voxel-to-mm ``affine`` (4x4), ``modality``, ``source``."""

    data: np.ndarray
    affine: np.ndarray
    modality: str = ""
    source: str = ""

    def __post_init__(self):
        self.data = np.asarray(self.data, dtype=np.float32)
        self.affine = np.asarray(self.affine, dtype=np.float64)
        if self.data.ndim != 3:
            raise VolumeError(f"{self.source or 'volume'}: data must be 3-D, got shape {self.data.shape}")
        if self.affine.shape != (4, 4):
            raise VolumeError(f"{self.source or 'volume'}: affine must be 4x4, got {self.affine.shape}")

    @property
    def shape(self) -> tuple[int, int, int]:
        return tuple(int(n) for n in self.data.shape)

    @property
    def spacing(self) -> np.ndarray:
        """Voxel size in mm along each array axis."""
        return voxel_spacing(self.affine)


class Geometry(NamedTuple):
    """What a volume's header says without reading its pixels (DICOM also names the patient and study)."""

    shape: tuple[int, int, int]
    affine: np.ndarray
    modality: str
    patient_id: str = ""
    study_uid: str = ""


def modality_kind(name: str) -> str | None:
    """Map a modality or domain name ("CT", "PT", "PET", "MR", "MRI", "MR_motion", "T1"...) to CT/PET/MR."""
    n = str(name).strip().upper()
    if n.startswith("CT"):
        return "CT"
    if n.startswith(("PET", "PT")):
        return "PET"
    if n.startswith(("MR", "T1", "T2", "FLAIR")):
        return "MR"
    return None


def background_value(modality: str) -> float:
    """Intensity of empty space: -1000 HU for CT, 0 for PET, MR and unknown modalities."""
    return BACKGROUND.get(modality_kind(modality) or "", 0.0)


def voxel_spacing(affine: np.ndarray) -> np.ndarray:
    """Voxel size in mm along each array axis of ``affine``."""
    return np.linalg.norm(np.asarray(affine, dtype=np.float64)[:3, :3], axis=0)


def is_nifti_path(path) -> bool:
    return os.fspath(path).lower().endswith(NIFTI_SUFFIXES)


def strip_nifti_suffix(name: str) -> str:
    """File name without its .nii / .nii.gz suffix."""
    lower = name.lower()
    for suffix in NIFTI_SUFFIXES:
        if lower.endswith(suffix):
            return name[: -len(suffix)]
    return name


def _reason(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0]}" if text else type(exc).__name__


def _looks_like_dicom(path: str) -> bool:
    try:
        with open(path, "rb") as f:
            head = f.read(132)
    except OSError:
        return False
    return len(head) == 132 and head[128:] == b"DICM"


def _check_path(path) -> str:
    path = os.fspath(path)
    if not os.path.exists(path):
        raise VolumeError(f"{path}: no such file or directory")
    if not os.path.isdir(path) and not is_nifti_path(path):
        if _looks_like_dicom(path):
            raise VolumeError(f"{path}: is a single DICOM file; pass the directory holding the whole series")
        raise VolumeError(f"{path}: unsupported input (expected a .nii/.nii.gz file or a DICOM series directory)")
    return path


def read_volume(path) -> Volume:
    """Read a NIfTI file or a DICOM series directory into a :class:`Volume`; raise :class:`VolumeError`."""
    path = _check_path(path)
    return read_dicom_series(path) if os.path.isdir(path) else read_nifti(path)


def read_geometry(path) -> Geometry:
    """Shape, affine and modality of a NIfTI file or DICOM series from its headers only (cheap)."""
    path = _check_path(path)
    if os.path.isdir(path):
        return _series_geometry(path, _read_series(path, with_pixels=False))[1]
    _, shape, affine = _open_nifti(path)
    return Geometry(shape, affine, "")


# ----------------------------------------------------------------------------------------------------- NIfTI

def _spatial_shape(path: str, shape: Sequence[int]) -> tuple[int, int, int]:
    shape = tuple(int(n) for n in shape)
    while len(shape) > 3 and shape[-1] == 1:
        shape = shape[:-1]
    if len(shape) != 3:
        raise VolumeError(f"{path}: has shape {shape}; expected a single 3-D volume")
    if min(shape) < 1:
        raise VolumeError(f"{path}: has an empty dimension (shape {shape})")
    return shape


def _check_affine(path: str, affine: np.ndarray) -> np.ndarray:
    affine = np.asarray(affine, dtype=np.float64)
    if not np.all(np.isfinite(affine)) or abs(np.linalg.det(affine[:3, :3])) < 1e-9:
        raise VolumeError(f"{path}: has no usable geometry (singular or non-finite affine)")
    return affine


def _open_nifti(path: str):
    try:
        img = nib.load(path)
    except Exception as exc:  # nibabel raises many types (ImageFileError, OSError, EOFError, zlib.error...)
        raise VolumeError(f"{path}: cannot read NIfTI file ({_reason(exc)})") from exc
    if not isinstance(img, (nib.Nifti1Image, nib.Nifti2Image)):
        raise VolumeError(f"{path}: is not a NIfTI-1/2 image")
    shape = _spatial_shape(path, img.shape)
    header = img.header
    if int(header["sform_code"]) == 0 and int(header["qform_code"]) == 0:
        raise VolumeError(f"{path}: has no usable geometry (qform_code and sform_code are both 0)")
    return img, shape, _check_affine(path, img.affine)


def _check_values(path: str, data: np.ndarray) -> None:
    if not np.isfinite(data).any():
        raise VolumeError(f"{path}: contains no finite values (all NaN or Inf)")


def read_nifti(path) -> Volume:
    """Read a 3-D NIfTI file (trailing singleton dimensions are dropped); scaling from the header is applied."""
    path = os.fspath(path)
    img, shape, affine = _open_nifti(path)
    try:
        data = img.get_fdata(dtype=np.float32).reshape(shape)
    except Exception as exc:  # truncated or corrupt (compressed) data
        raise VolumeError(f"{path}: cannot read image data ({_reason(exc)})") from exc
    _check_values(path, data)
    return Volume(data, affine, "", path)


def _temp_path_for(path: str, suffix: str) -> str:
    directory = os.path.dirname(os.path.abspath(path)) or "."
    handle, tmp = tempfile.mkstemp(prefix=f".{os.path.basename(path)}.", suffix=suffix, dir=directory)
    os.close(handle)
    return tmp


def write_nifti(volume: Volume, path, *, description: str = "", overwrite: bool = False) -> str:
    """Write ``volume`` as float32 NIfTI-1 (qform = sform = its affine, units mm); atomic, refuses to overwrite."""
    path = os.fspath(path)
    if not is_nifti_path(path):
        raise VolumeError(f"{path}: output must end in .nii or .nii.gz")
    if os.path.exists(path) and not overwrite:
        raise VolumeError(f"{path}: already exists (use --overwrite to replace it)")
    img = nib.Nifti1Image(np.asarray(volume.data, dtype=np.float32), volume.affine)
    img.set_sform(volume.affine, code=1)
    img.set_qform(volume.affine, code=1)
    img.header.set_xyzt_units("mm")
    img.header["descrip"] = description.encode("ascii", "replace")[:79]
    tmp = _temp_path_for(path, ".nii.gz" if path.lower().endswith(".gz") else ".nii")
    try:
        nib.save(img, tmp)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)
    return path


# ----------------------------------------------------------------------------------------------------- DICOM

def _series_files(directory: str) -> list[str]:
    names = sorted(n for n in os.listdir(directory) if not n.startswith(".") and n.upper() != "DICOMDIR")
    files = [os.path.join(directory, n) for n in names if os.path.isfile(os.path.join(directory, n))]
    if not files:
        raise VolumeError(f"{directory}: no files found (expected the slices of one DICOM series)")
    return files


def _read_series(directory: str, *, with_pixels: bool) -> list:
    import pydicom

    datasets = []
    for path in _series_files(directory):
        try:
            ds = pydicom.dcmread(path, stop_before_pixels=not with_pixels)
        except Exception as exc:  # InvalidDicomError, truncated files, bad encodings...
            raise VolumeError(f"{path}: not a readable DICOM file ({_reason(exc)})") from exc
        datasets.append((path, ds))
    return datasets


def _require(path: str, ds, keyword: str):
    value = ds.get(keyword)
    if value is None or value == "":
        raise VolumeError(f"{path}: missing {keyword} (no usable geometry)")
    return value


def _series_geometry(directory: str, datasets: list) -> tuple[list[int], Geometry]:
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
    directory = _check_path(directory)
    datasets = _read_series(directory, with_pixels=False)
    order, _ = _series_geometry(directory, datasets)
    return [datasets[i][1] for i in order]


def read_dicom_series(directory) -> Volume:
    """Read a directory holding one single-frame DICOM series (sorted along the slice normal, rescaled)."""
    directory = os.fspath(directory)
    datasets = _read_series(directory, with_pixels=True)
    order, geometry = _series_geometry(directory, datasets)
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
                              f"{_reason(exc)})") from exc
        if pixels.ndim != 2:
            raise VolumeError(f"{path}: expected a single-channel 2-D image, got pixel array {pixels.shape}")
        slope = float(ds.get("RescaleSlope", 1.0) or 1.0)
        intercept = float(ds.get("RescaleIntercept", 0.0) or 0.0)
        data[:, :, k] = (pixels.astype(np.float32) * np.float32(slope) + np.float32(intercept)).T
    _check_values(directory, data)
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
    parent = os.path.dirname(os.path.abspath(directory))
    os.makedirs(parent, exist_ok=True)
    tmp = tempfile.mkdtemp(prefix=f".{os.path.basename(directory)}.", dir=parent)
    try:
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
        if os.path.exists(directory):
            shutil.rmtree(directory)
        os.replace(tmp, directory)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return directory


# ------------------------------------------------------------------------------------ orientation and grids

_CANONICAL = np.array([[0, 1], [1, 1], [2, 1]])


def canonical_geometry(shape: Sequence[int], affine: np.ndarray) -> tuple[tuple[int, int, int], np.ndarray]:
    """Shape and affine of the grid (shape, affine) after :func:`reorient_canonical`."""
    ornt = orientations.io_orientation(affine)
    new_shape = [0, 0, 0]
    for axis, (target, _) in enumerate(ornt):
        new_shape[int(target)] = int(shape[axis])
    return tuple(new_shape), np.asarray(affine, dtype=np.float64) @ orientations.inv_ornt_aff(ornt, shape)


def reorient_canonical(volume: Volume) -> Volume:
    """Permute and flip the array axes so the affine is closest to RAS+ (as ``nibabel.as_closest_canonical``)."""
    ornt = orientations.io_orientation(volume.affine)
    if np.array_equal(ornt, _CANONICAL):
        return volume
    data = np.ascontiguousarray(orientations.apply_orientation(volume.data, ornt))
    return replace(volume, data=data, affine=canonical_geometry(volume.shape, volume.affine)[1])


def _per_axis(spacing) -> list[float | None]:
    if spacing is None or np.isscalar(spacing):
        values = [spacing] * 3
    else:
        values = list(spacing)
    if len(values) != 3 or any(v is not None and not float(v) > 0 for v in values):
        raise ValueError(f"spacing must be a positive number or three (positive or None), got {spacing!r}")
    return [None if v is None else float(v) for v in values]


def resampled_grid(shape: Sequence[int], affine: np.ndarray, spacing=1.0) -> tuple[tuple[int, int, int], np.ndarray]:
    """A grid with the same axis directions and centre as (shape, affine) and voxel size ``spacing`` mm
    (a number, or one value per axis where None keeps that axis unchanged)."""
    affine = np.asarray(affine, dtype=np.float64)
    old = voxel_spacing(affine)
    new = np.array([o if s is None else s for o, s in zip(old, _per_axis(spacing))])
    shape = np.array(shape, dtype=np.float64)
    new_shape = np.where(np.isclose(new, old, rtol=1e-9, atol=0), shape,
                         np.maximum(1, np.round(shape * old / new)))
    linear = affine[:3, :3] * (new / old)
    centre = affine[:3, :3] @ ((shape - 1) / 2) + affine[:3, 3]
    result = np.eye(4)
    result[:3, :3] = linear
    result[:3, 3] = centre - linear @ ((new_shape - 1) / 2)
    return tuple(int(n) for n in new_shape), result


def resample_to_grid(volume: Volume, shape: Sequence[int], affine: np.ndarray, *, order: int = 1,
                     cval: float | None = None, antialias: bool = True) -> Volume:
    """Resample ``volume`` onto the grid (shape, affine) through world coordinates.

    Linear interpolation by default; points more than half a voxel outside the input get ``cval`` (default: the
    modality's background). With ``antialias`` the input is Gaussian-smoothed along axes that are sampled more
    coarsely than their voxel size (sigma = (step - 1) / 2 input voxels).
    """
    shape = tuple(int(n) for n in shape)
    affine = np.asarray(affine, dtype=np.float64)
    fill = background_value(volume.modality) if cval is None else float(cval)
    source = np.where(np.isfinite(volume.data), volume.data, np.float32(fill)).astype(np.float32, copy=False)
    mapping = np.linalg.inv(volume.affine) @ affine       # output voxel -> input voxel
    linear, offset = mapping[:3, :3], mapping[:3, 3]
    if antialias:
        sigma = np.maximum(0.0, (np.abs(linear).max(axis=1) - 1.0) / 2.0)
        if sigma.max() > 0.01:
            source = ndimage.gaussian_filter(source, sigma, mode="nearest")
    limit = np.array(source.shape, dtype=np.float64)[:, None, None] - 0.5
    ii, jj = np.meshgrid(np.arange(shape[0]), np.arange(shape[1]), indexing="ij")
    plane = (linear[:, 0, None, None] * ii + linear[:, 1, None, None] * jj + offset[:, None, None])
    out = np.empty(shape, dtype=np.float32)
    for k in range(shape[2]):
        coords = plane + linear[:, 2, None, None] * k
        values = ndimage.map_coordinates(source, coords, order=order, mode="nearest", prefilter=order > 1)
        inside = np.all((coords >= -0.5) & (coords <= limit), axis=0)
        out[:, :, k] = np.where(inside, values, np.float32(fill))
    return replace(volume, data=out, affine=affine)


def resample_to_spacing(volume: Volume, spacing=1.0, **kwargs) -> Volume:
    """Resample to voxel size ``spacing`` mm (default isotropic 1 mm) keeping axis directions and centre."""
    shape, affine = resampled_grid(volume.shape, volume.affine, spacing)
    return resample_to_grid(volume, shape, affine, **kwargs)


def grid_coverage(shape: Sequence[int], affine: np.ndarray, other: Geometry, samples: int = 16) -> float:
    """Fraction of the grid (shape, affine) that lies inside ``other``'s field of view (sampled coarsely)."""
    axes = [np.linspace(0, n - 1, min(int(n), samples)) for n in shape]
    points = np.stack(np.meshgrid(*axes, indexing="ij"), axis=0).reshape(3, -1)
    mapping = np.linalg.inv(other.affine) @ np.asarray(affine, dtype=np.float64)
    coords = mapping[:3, :3] @ points + mapping[:3, 3:4]
    limit = np.array(other.shape, dtype=np.float64)[:, None] - 0.5
    return float(np.mean(np.all((coords >= -0.5) & (coords <= limit), axis=0)))


# ------------------------------------------------------------------------------------------ slices and crops

def axial_slices(volume: Volume) -> np.ndarray:
    """(Z, Y, X) axial slices of a canonical (RAS+) volume in radiological display orientation."""
    if not np.array_equal(orientations.io_orientation(volume.affine), _CANONICAL):
        raise ValueError("axial_slices needs a canonical (RAS+) volume; call reorient_canonical first")
    return np.ascontiguousarray(np.transpose(volume.data[::-1, ::-1, :], (2, 1, 0)))


def volume_from_axial_slices(slices: np.ndarray, like: Volume, modality: str | None = None) -> Volume:
    """Inverse of :func:`axial_slices`: a volume on ``like``'s grid from (Z, Y, X) display-oriented slices."""
    data = np.transpose(np.asarray(slices, dtype=np.float32), (2, 1, 0))[::-1, ::-1, :]
    if data.shape != like.shape:
        raise ValueError(f"slices {np.shape(slices)} do not fit a volume of shape {like.shape}")
    return replace(like, data=np.ascontiguousarray(data), modality=like.modality if modality is None else modality)


def _span(n: int, size: int) -> tuple[int, int, int]:
    """(start in the original, start in the centred size-long axis, length) of the centre crop or pad."""
    if n >= size:
        return (n - size) // 2, 0, size
    return 0, (size - n) // 2, n


def center_crop_pad(images: np.ndarray, size: int, fill: float) -> np.ndarray:
    """Centre-crop or pad the last two axes of ``images`` to size x size, padding with ``fill``."""
    images = np.asarray(images, dtype=np.float32)
    (r0, rd, rn), (c0, cd, cn) = _span(images.shape[-2], size), _span(images.shape[-1], size)
    out = np.full(images.shape[:-2] + (size, size), fill, dtype=np.float32)
    out[..., rd:rd + rn, cd:cd + cn] = images[..., r0:r0 + rn, c0:c0 + cn]
    return out


def center_uncrop(images: np.ndarray, shape: Sequence[int], fill: float) -> np.ndarray:
    """Inverse of :func:`center_crop_pad`: put size x size images back into (H, W) = ``shape``, filling the rest."""
    images = np.asarray(images, dtype=np.float32)
    size = images.shape[-1]
    (r0, rd, rn), (c0, cd, cn) = _span(int(shape[0]), size), _span(int(shape[1]), size)
    out = np.full(images.shape[:-2] + tuple(int(n) for n in shape), fill, dtype=np.float32)
    out[..., r0:r0 + rn, c0:c0 + cn] = images[..., rd:rd + rn, cd:cd + cn]
    return out
