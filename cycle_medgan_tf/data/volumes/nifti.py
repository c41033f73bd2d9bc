"""NIfTI-1/2 files: reading a 3-D volume (header scaling applied, trailing singleton dimensions dropped) and writing
float32 NIfTI-1 atomically."""

from __future__ import annotations

import os
from typing import Sequence

import nibabel as nib
import numpy as np

from cycle_medgan_tf.atomic import atomic_path
from cycle_medgan_tf.data.volumes.core import Volume, VolumeError, check_values, error_reason, is_nifti_path


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


def open_nifti(path: str):
    try:
        img = nib.load(path)
    except Exception as exc:  # nibabel raises many types (ImageFileError, OSError, EOFError, zlib.error...)
        raise VolumeError(f"{path}: cannot read NIfTI file ({error_reason(exc)})") from exc
    if not isinstance(img, (nib.Nifti1Image, nib.Nifti2Image)):
        raise VolumeError(f"{path}: is not a NIfTI-1/2 image")
    shape = _spatial_shape(path, img.shape)
    header = img.header
    if int(header["sform_code"]) == 0 and int(header["qform_code"]) == 0:
        raise VolumeError(f"{path}: has no usable geometry (qform_code and sform_code are both 0)")
    return img, shape, _check_affine(path, img.affine)


def read_nifti(path) -> Volume:
    """Read a 3-D NIfTI file (trailing singleton dimensions are dropped); scaling from the header is applied."""
    path = os.fspath(path)
    img, shape, affine = open_nifti(path)
    try:
        data = img.get_fdata(dtype=np.float32).reshape(shape)
    except Exception as exc:  # truncated or corrupt (compressed) data
        raise VolumeError(f"{path}: cannot read image data ({error_reason(exc)})") from exc
    check_values(path, data)
    return Volume(data, affine, "", path)


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
    with atomic_path(path, suffix=".nii.gz" if path.lower().endswith(".gz") else ".nii") as tmp:
        nib.save(img, tmp)
    return path
