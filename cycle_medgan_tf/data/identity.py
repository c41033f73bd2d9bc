"""Subject identity beyond exact file names, for the leak checks of prepare.

Three sources, each compared across train A, train B and validation:

* a subject key from the name: a BIDS ``sub-<label>`` entity, else the name without modality tokens
  (``sub01_pet`` and ``sub01_ct`` are both ``sub01``);
* DICOM PatientID and StudyInstanceUID (placeholder ids such as ``ANON`` or an empty id are ignored);
* content: each volume resampled onto its own canonical grid at :data:`FINGERPRINT_MM` mm. Identical volumes
  have the same SHA-256 of that resampled array; near-identical ones (a copy converted to another format,
  rescaled, re-quantised) have a correlation of at least :data:`NEAR_IDENTICAL_CORRELATION` between them.
"""

from __future__ import annotations

import hashlib
import os
import re
from dataclasses import dataclass

import numpy as np

from cycle_medgan_tf.data import volumes

FINGERPRINT_MM = 4.0
NEAR_IDENTICAL_CORRELATION = 0.999
MODALITY_TOKENS = {"pet", "pt", "ct", "mr", "mri", "t1", "t1w", "t2", "t2w", "flair", "pd", "pdw", "fdg", "suv",
                   "ac", "nac", "motion", "nomotion", "corrected", "uncorrected", "img", "image", "scan", "series"}
PLACEHOLDER_IDS = {"", "ANON", "ANONYMOUS", "ANONYMIZED", "ANONYMISED", "UNKNOWN", "NONE", "NA", "N/A", "0"}
_BIDS_SUBJECT = re.compile(r"(?:^|_)(sub-[A-Za-z0-9]+)")


def subject_id(path) -> str:
    """Subject id of an input: the file name without .nii/.nii.gz, or the DICOM directory's name."""
    name = os.path.basename(os.path.normpath(os.fspath(path)))
    return volumes.strip_nifti_suffix(name)


def subject_key(name: str) -> str:
    """The part of a subject id that names the subject: ``sub-01`` of ``sub-01_ses-2_pet``, ``s07`` of
    ``s07_T1w``; the id itself when nothing else is left."""
    bids = _BIDS_SUBJECT.search(name)
    if bids:
        return bids.group(1).lower()
    tokens = [t for t in re.split(r"[_\-.\s]+", name) if t]
    kept = [t for t in tokens if t.lower() not in MODALITY_TOKENS]
    return "_".join(kept).lower() if kept else name.lower()


def dicom_ids(geometry: volumes.Geometry) -> dict[str, str]:
    """The PatientID and StudyInstanceUID of a DICOM input that identify someone (placeholders dropped)."""
    ids = {"PatientID": geometry.patient_id, "StudyInstanceUID": geometry.study_uid}
    return {k: v for k, v in ids.items() if v and v.strip().upper() not in PLACEHOLDER_IDS}


def first_overlap(groups: dict[str, list[tuple[str, dict]]], allowed: set[frozenset] = frozenset()) -> str | None:
    """A message for the first identifier shared by two groups, or None.

    ``groups`` maps a group label ("train A") to (input label, {kind: value}) entries; two entries whose labels
    form a set in ``allowed`` (a validation pair) may share identifiers.
    """
    seen: dict[tuple[str, str], tuple[str, str]] = {}
    for group, entries in groups.items():
        for label, ids in entries:
            for kind, value in ids.items():
                other = seen.get((kind, value))
                if other and other[0] != group and frozenset((other[1], label)) not in allowed:
                    return f"{other[0]} and {group} share {kind} {value!r} ({other[1]}, {label})"
                seen.setdefault((kind, value), (group, label))
    return None


@dataclass(frozen=True)
class Fingerprint:
    """Content identity of one volume: SHA-256 and shape of its coarse resampled array, and that array's z-score."""

    sha256: str
    shape: tuple[int, int, int]
    signature: np.ndarray

    def matches(self, other: "Fingerprint") -> str | None:
        """"identical", "near-identical" or None."""
        if self.sha256 == other.sha256:
            return "identical"
        if self.shape != other.shape:
            return None
        r = float(np.mean(self.signature * other.signature))
        return "near-identical" if r >= NEAR_IDENTICAL_CORRELATION else None

    def correlation(self, other: "Fingerprint") -> float:
        return float(np.mean(self.signature * other.signature)) if self.shape == other.shape else float("nan")


def fingerprint(volume: volumes.Volume) -> Fingerprint:
    """The :class:`Fingerprint` of a volume (non-finite voxels count as background)."""
    canonical = volumes.canonical_geometry(volume.shape, volume.affine)
    coarse = volumes.resample_to_grid(volume, *volumes.resampled_grid(*canonical, FINGERPRINT_MM)).data
    digest = hashlib.sha256(np.ascontiguousarray(coarse, dtype=np.float32).tobytes())
    digest.update(repr(coarse.shape).encode())
    values = coarse.astype(np.float64).ravel()
    spread = values.std()
    signature = (values - values.mean()) / spread if spread > 0 else np.zeros_like(values)
    return Fingerprint(digest.hexdigest(), tuple(coarse.shape), signature.astype(np.float32))


def first_content_match(groups: dict[str, list[tuple[str, Fingerprint]]],
                        allowed: set[frozenset] = frozenset()) -> str | None:
    """A message for the first pair of inputs with identical or near-identical content, or None.

    Every pair is compared, within a group too (a volume twice under two names); pairs in ``allowed`` are not.
    """
    entries = [(group, label, fp) for group, items in groups.items() for label, fp in items]
    for i, (group_i, label_i, fp_i) in enumerate(entries):
        for group_j, label_j, fp_j in entries[i + 1:]:
            if frozenset((label_i, label_j)) in allowed:
                continue
            match = fp_i.matches(fp_j)
            if match:
                where = group_i if group_i == group_j else f"{group_i} and {group_j}"
                return (f"{where} hold {match} volumes ({label_i}, {label_j}; content correlation "
                        f"{fp_i.correlation(fp_j):.4f})")
    return None
