"""3-D medical volumes: reading NIfTI files and DICOM series, writing NIfTI (and DICOM), resampling, slicing.

One import for all of it; the code lives by concern in ``core`` (the :class:`Volume` type, modalities),
``nifti``, ``dicom`` and ``grids`` (orientation, resampling, slices and crops).

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

from cycle_medgan_tf.data.volumes.core import (BACKGROUND, NIFTI_SUFFIXES, Geometry, Volume, VolumeError,  # noqa: F401
                                               background_value, check_path, is_nifti_path, modality_kind,
                                               strip_nifti_suffix, voxel_spacing)
from cycle_medgan_tf.data.volumes.dicom import (DICOM_MODALITY_CODES, DICOM_SOP_CLASSES, LPS_TO_RAS,  # noqa: F401
                                                read_dicom_headers, read_dicom_series, read_series, series_geometry,
                                                write_dicom_series)
from cycle_medgan_tf.data.volumes.grids import (axial_slices, canonical_geometry, center_crop_pad,  # noqa: F401
                                                center_uncrop, grid_coverage, reorient_canonical, resample_to_grid,
                                                resample_to_spacing, resampled_grid, volume_from_axial_slices)
from cycle_medgan_tf.data.volumes.nifti import open_nifti, read_nifti, write_nifti  # noqa: F401


def read_volume(path) -> Volume:
    """Read a NIfTI file or a DICOM series directory into a :class:`Volume`; raise :class:`VolumeError`."""
    path = check_path(path)
    return read_dicom_series(path) if os.path.isdir(path) else read_nifti(path)


def read_geometry(path) -> Geometry:
    """Shape, affine and modality of a NIfTI file or DICOM series from its headers only (cheap)."""
    path = check_path(path)
    if os.path.isdir(path):
        return series_geometry(path, read_series(path, with_pixels=False))[1]
    _, shape, affine = open_nifti(path)
    return Geometry(shape, affine, "")
