"""The volume type and what every reader shares: :class:`Volume`, :class:`Geometry`, :class:`VolumeError`, modality
names and background values, and the input-path check."""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np

NIFTI_SUFFIXES = (".nii.gz", ".nii")
BACKGROUND = {"CT": -1000.0, "PET": 0.0, "MR": 0.0}


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


def error_reason(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0]}" if text else type(exc).__name__


def _looks_like_dicom(path: str) -> bool:
    try:
        with open(path, "rb") as f:
            head = f.read(132)
    except OSError:
        return False
    return len(head) == 132 and head[128:] == b"DICM"


def check_path(path) -> str:
    path = os.fspath(path)
    if not os.path.exists(path):
        raise VolumeError(f"{path}: no such file or directory")
    if not os.path.isdir(path) and not is_nifti_path(path):
        if _looks_like_dicom(path):
            raise VolumeError(f"{path}: is a single DICOM file; pass the directory holding the whole series")
        raise VolumeError(f"{path}: unsupported input (expected a .nii/.nii.gz file or a DICOM series directory)")
    return path


def check_values(path: str, data: np.ndarray) -> None:
    """Refuse data without a single finite value."""
    if not np.isfinite(data).any():
        raise VolumeError(f"{path}: contains no finite values (all NaN or Inf)")
