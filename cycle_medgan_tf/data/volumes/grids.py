"""Orientation, resampling and slicing of volumes: canonical (RAS+) reorientation, grids of another voxel size,
resampling through world coordinates, field-of-view coverage, axial slices in display orientation and centre
crops."""

from __future__ import annotations

from dataclasses import replace
from typing import Sequence

import numpy as np
from nibabel import orientations
from scipy import ndimage

from cycle_medgan_tf.data.volumes.core import Geometry, Volume, background_value, voxel_spacing

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
